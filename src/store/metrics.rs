//! `trellis_store_*`: the shared store's health as Prometheus sees it.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Metrics of the store. Cheap to clone (handles to shared atomics).
#[derive(Debug, Clone, Default)]
pub struct StoreMetrics {
    pub(crate) up: Gauge,
    pub(crate) failures: Counter,
    pub(crate) reconciles: Counter,
    pub(crate) pending: Gauge,
}

impl StoreMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = StoreMetrics::default();
        registry.register(
            "trellis_store_up",
            "1 while the shared store (etcd) answers and this replica's registrations are in it",
            m.up.clone(),
        );
        registry.register(
            "trellis_store_failures",
            "Times the shared store (etcd) became unreachable or a request to it failed",
            m.failures.clone(),
        );
        registry.register(
            "trellis_store_reconciles",
            "Times this replica re-wrote its sidecars and re-read the shared registry \
             after (re)connecting to the store",
            m.reconciles.clone(),
        );
        registry.register(
            "trellis_store_pending_writes",
            "Registrations and deregistrations waiting for the store to answer",
            m.pending.clone(),
        );
        m
    }
}
