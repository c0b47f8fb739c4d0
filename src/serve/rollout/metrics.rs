//! The rollout's metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::State;

/// Labels of `trellis_rollout_generations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndLabels {
    /// `promoted` or `failed`.
    pub(crate) outcome: &'static str,
    /// What ended it: `bake`, `operator`, `nack`, `error_rate`, `latency`.
    pub(crate) cause: String,
}

/// Gauges of the rollout in progress and counts of how rollouts ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct RolloutMetrics {
    ended: Family<EndLabels, Counter>,
    in_progress: Gauge,
    canary_generation: Gauge,
    good_generation: Gauge,
    canary_proxies: Gauge,
    last_failed: Gauge,
}

impl RolloutMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = RolloutMetrics::default();
        registry.register(
            "trellis_rollout_generations",
            "Rollouts that ended, by outcome (promoted, failed) and cause",
            m.ended.clone(),
        );
        registry.register(
            "trellis_rollout_in_progress",
            "1 while a config generation bakes on the canary set",
            m.in_progress.clone(),
        );
        registry.register(
            "trellis_rollout_canary_generation",
            "The generation baking on the canary set (0: none)",
            m.canary_generation.clone(),
        );
        registry.register(
            "trellis_rollout_good_generation",
            "The last good generation: what proxies outside the canary set run",
            m.good_generation.clone(),
        );
        registry.register(
            "trellis_rollout_canary_proxies",
            "Proxies in the canary set of the rollout in progress",
            m.canary_proxies.clone(),
        );
        registry.register(
            "trellis_rollout_last_failed_generation",
            "The most recent generation that failed its rollout (0: none)",
            m.last_failed.clone(),
        );
        m
    }

    /// Shows `state` in the gauges.
    pub(crate) fn show(&self, state: &State) {
        let current = state.current.as_ref();
        self.in_progress.set(i64::from(current.is_some()));
        self.canary_generation
            .set(current.map_or(0, |c| c.generation.number as i64));
        self.canary_proxies
            .set(current.map_or(0, |c| c.canary.len() as i64));
        self.good_generation
            .set(state.good.as_ref().map_or(0, |g| g.number as i64));
        let failed = state.history.iter().find(|e| e.outcome == "failed");
        self.last_failed
            .set(failed.map_or(0, |e| e.generation as i64));
    }

    /// Counts a rollout that ended.
    pub(crate) fn ended(&self, outcome: &'static str, cause: &str) {
        self.ended
            .get_or_create(&EndLabels {
                outcome,
                cause: cause.to_string(),
            })
            .inc();
    }
}
