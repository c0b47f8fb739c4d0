//! The control plane's own metrics (xds registers its stream metrics).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of `trellis_config_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `failed`.
    pub result: &'static str,
}

/// Metrics owned by `serve`. Cheap to clone (handles to shared atomics).
#[derive(Debug, Clone, Default)]
pub struct ServeMetrics {
    reloads: Family<ReloadLabels, Counter>,
    generation: Gauge,
    sidecars: Gauge,
}

impl ServeMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = ServeMetrics::default();
        registry.register(
            "trellis_config_reloads",
            "Config reloads after a change in the config directory, by result",
            m.reloads.clone(),
        );
        registry.register(
            "trellis_config_generation",
            "Generation of the config in force (1 = the config loaded at start)",
            m.generation.clone(),
        );
        registry.register(
            "trellis_registered_sidecars",
            "Sidecars registered as endpoints (connected or within the grace period)",
            m.sidecars.clone(),
        );
        // Both series exist from the start so rate() works before the first failure.
        let _ = m.reloads.get_or_create(&ReloadLabels { result: "ok" });
        let _ = m.reloads.get_or_create(&ReloadLabels { result: "failed" });
        m
    }

    /// Counts one reload by result.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// Sets the config generation.
    pub fn set_generation(&self, generation: u64) {
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// Sets the number of registered sidecars.
    pub fn set_sidecars(&self, n: usize) {
        self.sidecars.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
