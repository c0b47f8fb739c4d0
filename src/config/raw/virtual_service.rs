//! `VirtualService` as written.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Destination, DurationText, Headers, Percent, StringMatch, Unsupported};

/// `VirtualService.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct VirtualService {
    #[serde(default)]
    pub hosts: Vec<String>,
    pub gateways: Option<Vec<String>>,
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    #[serde(default)]
    pub tls: Vec<TlsRoute>,
    #[serde(default)]
    pub tcp: Vec<TcpRoute>,
    pub export_to: Option<Vec<String>>,
}

/// `TCPRoute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TcpRoute {
    #[serde(default, rename = "match")]
    pub matches: Vec<L4Match>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// `TLSRoute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TlsRoute {
    #[serde(default, rename = "match")]
    pub matches: Vec<L4Match>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// `L4MatchAttributes` and `TLSMatchAttributes` in one: `sniHosts` is
/// rejected on a `tcp` rule and required on a `tls` one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct L4Match {
    pub sni_hosts: Option<Vec<String>>,
    pub destination_subnets: Option<Unsupported>,
    pub port: Option<i64>,
    pub source_labels: Option<BTreeMap<String, String>>,
    pub gateways: Option<Vec<String>>,
    pub source_namespace: Option<String>,
    pub source_subnet: Option<Unsupported>,
}

/// `HTTPRoute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpRoute {
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatch>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    pub redirect: Option<Redirect>,
    pub direct_response: Option<DirectResponse>,
    pub delegate: Option<Delegate>,
    pub rewrite: Option<Rewrite>,
    pub timeout: Option<DurationText>,
    pub retries: Option<Retries>,
    pub fault: Option<Fault>,
    pub mirror: Option<Destination>,
    pub mirrors: Option<Vec<MirrorPolicy>>,
    pub mirror_percentage: Option<Percent>,
    /// Deprecated in Istio (an integer): accepted with a warning.
    pub mirror_percent: Option<i64>,
    pub cors_policy: Option<CorsPolicy>,
    pub headers: Option<Headers>,
    /// Deprecated in Istio, which upgrades WebSockets on every route:
    /// accepted with a warning.
    pub websocket_upgrade: Option<bool>,
}

/// `Delegate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Delegate {
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
}

/// `HTTPMirrorPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MirrorPolicy {
    pub destination: Option<Destination>,
    pub percentage: Option<Percent>,
}

/// `CorsPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CorsPolicy {
    /// Deprecated in Istio (exact origins): accepted with a warning.
    pub allow_origin: Option<Vec<String>>,
    #[serde(default)]
    pub allow_origins: Vec<StringMatch>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age: Option<DurationText>,
    pub allow_credentials: Option<bool>,
    pub unmatched_preflights: Option<String>,
}

/// `HTTPMatchRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpMatch {
    pub name: Option<String>,
    pub uri: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    pub port: Option<i64>,
    pub source_labels: Option<BTreeMap<String, String>>,
    pub gateways: Option<Vec<String>>,
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    pub ignore_uri_case: Option<bool>,
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    pub source_namespace: Option<String>,
    pub stat_prefix: Option<Unsupported>,
}

/// `HTTPRouteDestination`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RouteDestination {
    pub destination: Option<Destination>,
    pub weight: Option<i64>,
    pub headers: Option<Headers>,
}

/// `HTTPRedirect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub port: Option<i64>,
    pub derive_port: Option<String>,
    pub scheme: Option<String>,
    pub redirect_code: Option<i64>,
    pub prefix_rewrite: Option<String>,
}

/// `HTTPDirectResponse`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DirectResponse {
    pub status: i64,
    pub body: Option<Body>,
}

/// `HTTPBody`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Body {
    pub string: Option<String>,
    pub bytes: Option<String>,
}

/// `HTTPRewrite`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Rewrite {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// `RegexRewrite`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RegexRewrite {
    #[serde(rename = "match", default)]
    pub pattern: String,
    #[serde(default)]
    pub rewrite: String,
}

/// `HTTPRetry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Retries {
    pub attempts: Option<i64>,
    pub per_try_timeout: Option<DurationText>,
    pub retry_on: Option<String>,
    pub retry_remote_localities: Option<bool>,
    pub retry_ignore_previous_hosts: Option<bool>,
    pub backoff: Option<DurationText>,
}

/// `HTTPFaultInjection`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Fault {
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
}

/// `HTTPFaultInjection.Delay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Delay {
    /// Deprecated in Istio but still a field of `Delay`: accepted.
    pub percent: Option<i64>,
    pub fixed_delay: Option<DurationText>,
    pub exponential_delay: Option<Unsupported>,
    pub percentage: Option<Percent>,
}

/// `HTTPFaultInjection.Abort`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Abort {
    /// Removed from Istio's `Abort` (reserved): rejected with a hint.
    pub percent: Option<Unsupported>,
    pub http_status: Option<i64>,
    pub grpc_status: Option<String>,
    pub http2_error: Option<Unsupported>,
    pub percentage: Option<Percent>,
}
