//! The local and global rate-limit filters of one rule.

use envoy_types::pb::envoy::config::core::v3::{
    grpc_service::{EnvoyGrpc, TargetSpecifier},
    header_value_option::HeaderAppendAction,
    ApiVersion, GrpcService, HeaderValue, HeaderValueOption, RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::config::ratelimit::v3::RateLimitServiceConfig;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor::Entry, LocalRateLimitDescriptor, XRateLimitHeadersRfcVersion,
};
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::{
    rate_limit::XRateLimitHeadersRfcVersion as GlobalHeaders, RateLimit as GlobalRateLimit,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::r#type::v3::{
    fractional_percent::DenominatorType, FractionalPercent, HttpStatus, TokenBucket,
};
use envoy_types::util::pack_any;

use super::actions::{actions, descriptor};
use super::service_cluster_name;
use crate::config::model::{RateLimit, RateLimitRule, RateLimitService};
use crate::translate::util::{duration, u32v};

/// The local filter's name in the HTTP filter chain (one per rule).
pub const LOCAL_FILTER: &str = "envoy.filters.http.local_ratelimit";
/// The global filter's name in the HTTP filter chain (one per rule).
pub const GLOBAL_FILTER: &str = "envoy.filters.http.ratelimit";

/// How long a sidecar waits for the rate-limit service before it lets
/// the request through (fail open).
pub const SERVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// `ratelimit_NAMESPACE_NAME_RULE`: the rule's stat prefix.
pub fn stat_prefix(rl: &RateLimit, rule: &RateLimitRule) -> String {
    format!(
        "ratelimit_{}_{}_{}",
        rl.origin.namespace, rl.origin.name, rule.name
    )
}

/// Envoy's local rate-limit filter for one rule: its own token bucket of
/// `requests + burst` tokens, `requests` more each `unit`.
pub(super) fn local(rl: &RateLimit, rule: &RateLimitRule, td: &str) -> HttpFilter {
    let limit = rule.limit;
    let entries = (descriptor(rl, rule).into_iter())
        .map(|(key, value)| Entry { key, value })
        .collect();
    let config = LocalRateLimit {
        stat_prefix: stat_prefix(rl, rule),
        status: Some(status(rule)),
        filter_enabled: Some(percent(rl, rule, "enabled", 100)),
        filter_enforced: Some(percent(rl, rule, "enforced", enforced(rule))),
        response_headers_to_add: headers(rule),
        descriptors: vec![LocalRateLimitDescriptor {
            entries,
            token_bucket: Some(TokenBucket {
                max_tokens: limit.capacity(),
                tokens_per_fill: Some(u32v(limit.requests)),
                fill_interval: Some(duration(limit.unit.duration())),
            }),
            ..Default::default()
        }],
        enable_x_ratelimit_headers: XRateLimitHeadersRfcVersion::DraftVersion03 as i32,
        // Only the rule's bucket counts; there is no default bucket.
        always_consume_default_token_bucket: Some(envoy_types::pb::google::protobuf::BoolValue {
            value: false,
        }),
        rate_limits: vec![actions(rl, rule, td)],
        ..Default::default()
    };
    filter(LOCAL_FILTER, pack_any(config))
}

/// Envoy's rate-limit filter for one rule, asking `svc`.
pub(super) fn global(
    rl: &RateLimit,
    rule: &RateLimitRule,
    td: &str,
    svc: &RateLimitService,
) -> HttpFilter {
    let service = GrpcService {
        target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
            cluster_name: service_cluster_name(svc),
            // The default, the cluster name, has `|`, which no HTTP/2
            // server takes as an `:authority`.
            authority: svc.host.clone(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let config = GlobalRateLimit {
        domain: super::DOMAIN.to_string(),
        timeout: Some(duration(SERVICE_TIMEOUT)),
        // Fail open: an unreachable service must not stop the mesh.
        failure_mode_deny: false,
        rate_limit_service: Some(RateLimitServiceConfig {
            grpc_service: Some(service),
            transport_api_version: ApiVersion::V3 as i32,
        }),
        enable_x_ratelimit_headers: GlobalHeaders::DraftVersion03 as i32,
        rate_limited_status: Some(status(rule)),
        response_headers_to_add: headers(rule),
        stat_prefix: stat_prefix(rl, rule),
        filter_enabled: Some(percent(rl, rule, "enabled", 100)),
        filter_enforced: Some(percent(rl, rule, "enforced", enforced(rule))),
        rate_limits: vec![actions(rl, rule, td)],
        ..Default::default()
    };
    filter(GLOBAL_FILTER, pack_any(config))
}

fn filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

fn enforced(rule: &RateLimitRule) -> u32 {
    if rule.shadow {
        0
    } else {
        100
    }
}

fn status(rule: &RateLimitRule) -> HttpStatus {
    HttpStatus {
        code: i32::from(rule.response.status),
    }
}

/// A fraction Envoy's runtime may override under a key naming the rule.
fn percent(
    rl: &RateLimit,
    rule: &RateLimitRule,
    what: &str,
    value: u32,
) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: value,
            denominator: DenominatorType::Hundred as i32,
        }),
        runtime_key: format!("{}.{what}", stat_prefix(rl, rule)),
    }
}

fn headers(rule: &RateLimitRule) -> Vec<HeaderValueOption> {
    (rule.response.headers.iter())
        .map(|(k, v)| HeaderValueOption {
            header: Some(HeaderValue {
                key: k.clone(),
                value: v.clone(),
                ..Default::default()
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        })
        .collect()
}
