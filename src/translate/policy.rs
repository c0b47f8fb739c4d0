//! `DestinationRule` traffic policy → cluster settings, following istiod
//! (`pilot/pkg/networking/core/cluster_traffic_policy.go`): port-level
//! settings replace the host policy wholesale; a subset's blocks override
//! the host's block by block; Istio's defaults fill the rest.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{
    circuit_breakers::{thresholds::RetryBudget as XdsRetryBudget, Thresholds},
    cluster, CircuitBreakers, Cluster as XdsCluster, OutlierDetection as XdsOutlierDetection,
};
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpOptions,
    RuntimeDouble,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::UInt64Value;
use envoy_types::util::pack_any;
use prost::Name;

use super::util::{duration, u32v};
use crate::config::model::{
    ClientTls, ConnectionPool, DestinationRule, HashAlgorithm, LoadBalancer, LocalityLbSetting,
    OutlierDetection, ProxyProtocolVersion, RetryBudget, ServicePort, SimpleLb, Subset,
    TrafficPolicy, Warmup,
};

/// Istio's mesh-wide `connectTimeout` default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Envoy's default minimum ring size, which Istio sets explicitly.
const RING_SIZE: u64 = 1024;

/// The policy blocks that apply to one cluster after merging.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Policy<'a> {
    /// `loadBalancer`.
    pub load_balancer: Option<&'a LoadBalancer>,
    /// `loadBalancer.localityLbSetting`.
    pub locality_lb: Option<&'a LocalityLbSetting>,
    /// `connectionPool`.
    pub connection_pool: Option<&'a ConnectionPool>,
    /// `outlierDetection`.
    pub outlier_detection: Option<&'a OutlierDetection>,
    /// `tls` (`None`: auto mTLS).
    pub tls: Option<&'a ClientTls>,
    /// `retryBudget` (`None`: the mesh default, unless `maxRetries` is set).
    pub retry_budget: Option<&'a RetryBudget>,
    /// `loadBalancer.warmup` (Envoy's slow start).
    pub warmup: Option<&'a Warmup>,
    /// `proxyProtocol`.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
}

impl<'a> Policy<'a> {
    fn of(tp: &'a TrafficPolicy) -> Self {
        Policy {
            load_balancer: tp.load_balancer.as_ref(),
            locality_lb: tp.locality_lb.as_ref(),
            connection_pool: tp.connection_pool.as_ref(),
            outlier_detection: tp.outlier_detection.as_ref(),
            tls: tp.tls.as_ref(),
            retry_budget: tp.retry_budget.as_ref(),
            warmup: tp.warmup.as_ref(),
            proxy_protocol: tp.proxy_protocol,
        }
    }
}

/// Istio's `GetPortLevelTrafficPolicy`: the port's settings if any (and
/// whether they were found), else the policy itself.
fn port_level(tp: Option<&TrafficPolicy>, port: u16) -> (Option<Policy<'_>>, bool) {
    match tp {
        None => (None, false),
        Some(tp) => match tp.port_level.get(&port) {
            Some(pl) => (Some(Policy::of(pl)), true),
            None => (Some(Policy::of(tp)), false),
        },
    }
}

/// The policy for the cluster of `port` (and `subset`), per Istio's
/// `MergeSubsetTrafficPolicy`.
pub fn effective<'a>(
    dr: Option<&'a DestinationRule>,
    port: u16,
    subset: Option<&'a Subset>,
) -> Policy<'a> {
    // Port-level settings cannot set a budget or the PROXY protocol, so
    // theirs never replace the rule's: the subset's if set, else the rule's.
    let budget = |tp: Option<&'a TrafficPolicy>| tp.and_then(|t| t.retry_budget.as_ref());
    let proxy = |tp: Option<&'a TrafficPolicy>| tp.and_then(|t| t.proxy_protocol);
    let top = dr.and_then(|d| d.traffic_policy.as_ref());
    let sub = subset.and_then(|s| s.traffic_policy.as_ref());
    Policy {
        retry_budget: budget(sub).or(budget(top)),
        proxy_protocol: proxy(sub).or(proxy(top)),
        ..merged(dr, port, subset)
    }
}

/// [`effective`] but for the retry budget.
fn merged<'a>(
    dr: Option<&'a DestinationRule>,
    port: u16,
    subset: Option<&'a Subset>,
) -> Policy<'a> {
    let (original, _) = port_level(dr.and_then(|d| d.traffic_policy.as_ref()), port);
    let Some(subset_tp) = subset.and_then(|s| s.traffic_policy.as_ref()) else {
        return original.unwrap_or_default();
    };
    let (sub, wholesale) = port_level(Some(subset_tp), port);
    let sub = sub.unwrap_or_default();
    let Some(orig) = original else {
        return sub;
    };
    // `loadBalancer` is one block, its locality setting included.
    let sub_lb = sub.load_balancer.is_some() || sub.locality_lb.is_some() || sub.warmup.is_some();
    let lb_from = if sub_lb || wholesale { &sub } else { &orig };
    Policy {
        load_balancer: lb_from.load_balancer,
        locality_lb: lb_from.locality_lb,
        connection_pool: pick(sub.connection_pool, orig.connection_pool, wholesale),
        outlier_detection: pick(sub.outlier_detection, orig.outlier_detection, wholesale),
        tls: pick(sub.tls, orig.tls, wholesale),
        retry_budget: None,
        warmup: lb_from.warmup,
        proxy_protocol: None,
    }
}

/// Istio's `MergeTrafficPolicy`: a block the subset sets wins; with
/// port-level subset settings, the subset's blocks win even when unset.
fn pick<T>(subset: Option<T>, original: Option<T>, wholesale: bool) -> Option<T> {
    if subset.is_some() || wholesale {
        subset
    } else {
        original
    }
}

/// Applies connection pool, retry budget, HTTP protocol, outlier
/// detection and load balancing to an outbound cluster; `default_budget`
/// is the mesh's (`None`: disabled).
pub fn apply(
    c: &mut XdsCluster,
    policy: &Policy<'_>,
    port: &ServicePort,
    default_budget: Option<&RetryBudget>,
) {
    let default_pool = ConnectionPool::default();
    let pool = policy.connection_pool.unwrap_or(&default_pool);
    apply_connection_pool(c, pool);
    apply_retry_budget(c, retry_budget(policy, pool, default_budget));
    let h2 = wants_h2(pool, port);
    set_http_options(c, pool, h2);
    apply_outlier(c, policy.outlier_detection);
    apply_load_balancer(c, policy.load_balancer, policy.warmup);
}

/// Circuit breakers at Istio's "never bite" defaults unless set, and the
/// connect timeout. Used for inbound clusters too.
pub fn apply_connection_pool(c: &mut XdsCluster, pool: &ConnectionPool) {
    c.connect_timeout = Some(duration(
        pool.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
    ));
    let limit = |v: Option<u32>| Some(u32v(v.filter(|n| *n > 0).unwrap_or(u32::MAX)));
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: limit(pool.max_connections),
            max_pending_requests: limit(pool.http1_max_pending_requests),
            max_requests: limit(pool.http2_max_requests),
            max_retries: limit(pool.max_retries),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    });
}

/// The cluster's budget: its rule's; else none when the rule sets
/// `maxRetries` (Envoy ignores `max_retries` once a budget is set, so a
/// default budget would override the user's limit); else the mesh's.
fn retry_budget<'a>(
    policy: &Policy<'a>,
    pool: &ConnectionPool,
    default_budget: Option<&'a RetryBudget>,
) -> Option<&'a RetryBudget> {
    match policy.retry_budget {
        Some(b) => Some(b),
        None if pool.max_retries.is_some() => None,
        None => default_budget,
    }
}

/// Envoy's `retry_budget` on the cluster's (one, default-priority)
/// thresholds: concurrent retries at most `percent` of active plus
/// pending requests, and never fewer than `min_retry_concurrency`.
fn apply_retry_budget(c: &mut XdsCluster, budget: Option<&RetryBudget>) {
    let Some(b) = budget else { return };
    let thresholds = c.circuit_breakers.get_or_insert_with(Default::default);
    if thresholds.thresholds.is_empty() {
        thresholds.thresholds.push(Thresholds::default());
    }
    for t in &mut thresholds.thresholds {
        t.retry_budget = Some(XdsRetryBudget {
            budget_percent: Some(Percent { value: b.percent }),
            min_retry_concurrency: Some(u32v(b.min_retry_concurrency)),
            budget_interval: b.budget_interval.map(duration),
        });
    }
}

/// Istio's `shouldH2Upgrade` (mesh default `DO_NOT_UPGRADE`) plus
/// `setUpstreamProtocol`: HTTP2 and gRPC ports always speak h2.
fn wants_h2(pool: &ConnectionPool, port: &ServicePort) -> bool {
    use crate::config::model::Protocol;
    matches!(port.protocol, Protocol::Http2 | Protocol::Grpc) || pool.h2_upgrade == Some(true)
}

/// `typed_extension_protocol_options` with `HttpProtocolOptions` when any
/// HTTP setting differs from Envoy's defaults.
pub fn set_http_options(c: &mut XdsCluster, pool: &ConnectionPool, h2: bool) {
    let common = CommonHttpOptions {
        idle_timeout: pool.idle_timeout.map(duration),
        max_requests_per_connection: pool
            .max_requests_per_connection
            .filter(|n| *n > 0)
            .map(u32v),
        ..Default::default()
    };
    let has_common = common != CommonHttpOptions::default();
    if !has_common && !h2 {
        return;
    }
    // upstream_protocol_options is required by Envoy: HTTP/1 unless h2.
    let protocol = if h2 {
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
    };
    let options = HttpProtocolOptions {
        common_http_protocol_options: has_common.then_some(common),
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(protocol),
            },
        )),
        ..Default::default()
    };
    c.typed_extension_protocol_options
        .insert(HttpProtocolOptions::full_name(), pack_any(options));
}

/// Istio's `applyOutlierDetection`: only what the user set, success-rate
/// ejection off, and `minHealthPercent` (default 0) as the panic threshold.
fn apply_outlier(c: &mut XdsCluster, outlier: Option<&OutlierDetection>) {
    let Some(o) = outlier else { return };
    let enforce = |v: u32| u32v(if v > 0 { 100 } else { 0 });
    c.outlier_detection = Some(XdsOutlierDetection {
        enforcing_success_rate: Some(u32v(0)),
        consecutive_5xx: o.consecutive_5xx_errors.map(u32v),
        enforcing_consecutive_5xx: o.consecutive_5xx_errors.map(enforce),
        consecutive_gateway_failure: o.consecutive_gateway_errors.map(u32v),
        enforcing_consecutive_gateway_failure: o.consecutive_gateway_errors.map(enforce),
        interval: o.interval.map(duration),
        base_ejection_time: o.base_ejection_time.map(duration),
        max_ejection_percent: o.max_ejection_percent.filter(|p| *p > 0).map(u32v),
        ..Default::default()
    });
    let threshold = f64::from(o.min_health_percent.unwrap_or(0));
    c.common_lb_config
        .get_or_insert_with(Default::default)
        .healthy_panic_threshold = Some(Percent { value: threshold });
}

/// Istio's `applyLoadBalancer`: least request by default, ring hash (or
/// Maglev) for consistent hashing (the route carries the hash policy),
/// and slow start on round robin and least request (Istio's
/// `setSlowStartConfig`; validation allows warmup on nothing else).
fn apply_load_balancer(c: &mut XdsCluster, lb: Option<&LoadBalancer>, warmup: Option<&Warmup>) {
    use cluster::{LbConfig, LbPolicy};
    let slow_start = warmup.map(slow_start);
    let (policy, config) = match lb {
        Some(LoadBalancer::Simple(SimpleLb::RoundRobin)) => (
            LbPolicy::RoundRobin,
            slow_start.map(|s| {
                LbConfig::RoundRobinLbConfig(cluster::RoundRobinLbConfig {
                    slow_start_config: Some(s),
                })
            }),
        ),
        Some(LoadBalancer::Simple(SimpleLb::Random)) => (LbPolicy::Random, None),
        Some(LoadBalancer::ConsistentHash(_, algorithm)) => hash_config(*algorithm),
        // PASSTHROUGH is rejected by validation (no original destination
        // behind an explicit outbound listener); it falls back to the default.
        _ => (
            LbPolicy::LeastRequest,
            slow_start.map(|s| {
                LbConfig::LeastRequestLbConfig(cluster::LeastRequestLbConfig {
                    slow_start_config: Some(s),
                    ..Default::default()
                })
            }),
        ),
    };
    c.lb_policy = policy as i32;
    c.lb_config = config;
}

fn hash_config(algorithm: HashAlgorithm) -> (cluster::LbPolicy, Option<cluster::LbConfig>) {
    use cluster::{LbConfig, LbPolicy};
    match algorithm {
        HashAlgorithm::RingHash { minimum_ring_size } => (
            LbPolicy::RingHash,
            Some(LbConfig::RingHashLbConfig(cluster::RingHashLbConfig {
                minimum_ring_size: Some(UInt64Value {
                    value: minimum_ring_size.unwrap_or(RING_SIZE),
                }),
                ..Default::default()
            })),
        ),
        HashAlgorithm::Maglev { table_size } => (
            LbPolicy::Maglev,
            table_size.map(|t| {
                LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
                    table_size: Some(UInt64Value { value: t }),
                })
            }),
        ),
    }
}

/// Envoy's `SlowStartConfig` (cluster.proto, "Slow start"): a new host's
/// weight is scaled by `max(min_weight_percent, time_factor^(1/aggression))`
/// for `slow_start_window` after it joins.
fn slow_start(w: &Warmup) -> cluster::SlowStartConfig {
    cluster::SlowStartConfig {
        slow_start_window: Some(duration(w.duration)),
        aggression: Some(RuntimeDouble {
            default_value: w.aggression,
            runtime_key: String::new(),
        }),
        min_weight_percent: Some(Percent {
            value: w.minimum_percent,
        }),
    }
}

#[cfg(test)]
mod tests;
