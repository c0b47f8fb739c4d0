//! `RolloutPolicy` (`trellis.dev/v1alpha1`), as written: how a new config
//! generation reaches the proxies (a canary set, a bake time, then everyone)
//! and when it is rolled back.

use serde::Deserialize;

use super::peer_authentication::WorkloadSelector;
use super::DurationText;

/// `RolloutPolicy.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RolloutPolicy {
    pub canary: Option<Canary>,
    pub bake_time: Option<DurationText>,
    pub abort: Option<Abort>,
}

/// `spec.canary`: exactly one way of choosing the canary proxies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Canary {
    pub selector: Option<WorkloadSelector>,
    pub service: Option<String>,
    pub percent: Option<f64>,
}

/// `spec.abort`: regression thresholds, canary against the other proxies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Abort {
    pub max_error_rate_increase: Option<f64>,
    pub max_latency_ratio: Option<f64>,
    pub min_requests: Option<i64>,
}
