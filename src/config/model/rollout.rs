//! `RolloutPolicy`: how a new config generation reaches the proxies.

use std::time::Duration;

use super::{Labels, Origin};

/// The mesh's staged-rollout policy (at most one per mesh).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPolicy {
    /// Which proxies get a new generation first.
    pub canary: CanarySelector,
    /// How long the canary runs the new generation before everyone gets it.
    pub bake_time: Duration,
    /// When the canary is rolled back on its own.
    pub abort: AbortThresholds,
    /// The declaring resource.
    pub origin: Origin,
}

/// How the canary set is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum CanarySelector {
    /// Proxies whose labels include all of these.
    Labels(Labels),
    /// Proxies of one service (the node's service name).
    Service(String),
    /// About this percentage of proxies, by a stable hash of the node id, so
    /// every replica and every restart picks the same set.
    Percent(f64),
}

/// Regression thresholds, canary proxies against the others, on outbound
/// requests toward the destinations the change touches.
#[derive(Debug, Clone, PartialEq)]
pub struct AbortThresholds {
    /// Abort when the canary's error fraction exceeds the others' by more
    /// than this (0.05: five percentage points).
    pub max_error_rate_increase: f64,
    /// Abort when the canary's mean latency exceeds this multiple of the
    /// others'; `None`: latency is not compared.
    pub max_latency_ratio: Option<f64>,
    /// Canary requests needed before the rates are compared.
    pub min_requests: u64,
}

/// `spec.abort.maxErrorRateIncrease` when not written.
pub const DEFAULT_MAX_ERROR_RATE_INCREASE: f64 = 0.05;
/// `spec.abort.minRequests` when not written.
pub const DEFAULT_MIN_REQUESTS: u64 = 20;

impl Default for AbortThresholds {
    fn default() -> Self {
        AbortThresholds {
            max_error_rate_increase: DEFAULT_MAX_ERROR_RATE_INCREASE,
            max_latency_ratio: None,
            min_requests: DEFAULT_MIN_REQUESTS,
        }
    }
}
