//! `DestinationRule` as written.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{DurationText, PortSelector, Unsupported};

/// `DestinationRule.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DestinationRule {
    #[serde(default)]
    pub host: String,
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    pub subsets: Vec<Subset>,
    pub export_to: Option<Vec<String>>,
    pub workload_selector: Option<super::authorization_policy::WorkloadSelector>,
}

/// `Subset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Subset {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub traffic_policy: Option<TrafficPolicy>,
}

/// `TrafficPolicy` (also the body of a port-level policy).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTls>,
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    pub tunnel: Option<Unsupported>,
    pub proxy_protocol: Option<ProxyProtocol>,
    pub retry_budget: Option<RetryBudget>,
}

/// `TrafficPolicy.RetryBudget`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RetryBudget {
    pub percent: Option<f64>,
    pub min_retry_concurrency: Option<i64>,
    pub budget_interval: Option<DurationText>,
}

/// `TrafficPolicy.PortTrafficPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PortTrafficPolicy {
    pub port: Option<PortSelector>,
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTls>,
}

/// `ClientTLSSettings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClientTls {
    pub mode: Option<String>,
    pub client_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    pub credential_name: Option<String>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    pub sni: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub ca_crl: Option<Unsupported>,
}

/// `LoadBalancerSettings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LoadBalancer {
    pub simple: Option<String>,
    pub consistent_hash: Option<ConsistentHash>,
    pub locality_lb_setting: Option<LocalityLbSetting>,
    pub zone_aware_lb_setting: Option<Unsupported>,
    pub warmup_duration_secs: Option<DurationText>,
    pub warmup: Option<Warmup>,
}

/// `WarmupConfiguration`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Warmup {
    pub duration: Option<DurationText>,
    pub minimum_percent: Option<f64>,
    pub aggression: Option<f64>,
}

/// `TrafficPolicy.ProxyProtocol`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProxyProtocol {
    pub version: Option<String>,
}

/// `LocalityLoadBalancerSetting`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LocalityLbSetting {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub distribute: Vec<LocalityDistribute>,
    #[serde(default)]
    pub failover: Vec<LocalityFailover>,
    #[serde(default)]
    pub failover_priority: Vec<String>,
}

/// `LocalityLoadBalancerSetting.Distribute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LocalityDistribute {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: BTreeMap<String, i64>,
}

/// `LocalityLoadBalancerSetting.Failover`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LocalityFailover {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// `LoadBalancerSettings.ConsistentHashLB`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConsistentHash {
    pub http_header_name: Option<String>,
    pub http_cookie: Option<HttpCookie>,
    pub use_source_ip: Option<bool>,
    pub http_query_parameter_name: Option<String>,
    pub ring_hash: Option<RingHash>,
    pub maglev: Option<Maglev>,
    /// Deprecated in Istio for `ringHash.minimumRingSize`.
    pub minimum_ring_size: Option<i64>,
}

/// `ConsistentHashLB.RingHash`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RingHash {
    pub minimum_ring_size: Option<i64>,
}

/// `ConsistentHashLB.MagLev`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Maglev {
    pub table_size: Option<i64>,
}

/// `HTTPCookie.Attribute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CookieAttribute {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// `ConsistentHashLB.HTTPCookie`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpCookie {
    #[serde(default)]
    pub name: String,
    pub path: Option<String>,
    pub ttl: Option<DurationText>,
    #[serde(default)]
    pub attributes: Vec<CookieAttribute>,
}

/// `ConnectionPoolSettings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConnectionPool {
    pub tcp: Option<TcpSettings>,
    pub http: Option<HttpSettings>,
}

/// `ConnectionPoolSettings.TCPSettings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TcpSettings {
    pub max_connections: Option<i64>,
    pub connect_timeout: Option<DurationText>,
    pub tcp_keepalive: Option<Unsupported>,
    pub max_connection_duration: Option<Unsupported>,
    pub idle_timeout: Option<Unsupported>,
}

/// `ConnectionPoolSettings.HTTPSettings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpSettings {
    pub http1_max_pending_requests: Option<i64>,
    pub http2_max_requests: Option<i64>,
    pub max_requests_per_connection: Option<i64>,
    pub max_retries: Option<i64>,
    pub idle_timeout: Option<DurationText>,
    pub h2_upgrade_policy: Option<String>,
    pub use_client_protocol: Option<Unsupported>,
    pub max_concurrent_streams: Option<Unsupported>,
    pub http2_keep_alive: Option<Unsupported>,
}

/// `OutlierDetection`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OutlierDetection {
    pub split_external_local_origin_errors: Option<Unsupported>,
    pub consecutive_local_origin_failures: Option<Unsupported>,
    pub consecutive_gateway_errors: Option<i64>,
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<i64>,
    pub interval: Option<DurationText>,
    pub base_ejection_time: Option<DurationText>,
    pub max_ejection_percent: Option<i64>,
    pub min_health_percent: Option<i64>,
    pub consecutive_errors: Option<Unsupported>,
    pub outlier_detection_http_error_codes: Option<Unsupported>,
}
