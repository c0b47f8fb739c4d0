//! `trellis_store_*`: the shared store's health as Prometheus sees it.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Metrics of the store. Cheap to clone (handles to shared atomics).
#[derive(Debug, Clone, Default)]
pub struct StoreMetrics {
    pub(crate) up: Gauge,
    pub(crate) failures: Counter,
    pub(crate) reconciles: Counter,
    pub(crate) pending: Gauge,
    /// Per remote cluster (`cluster` label): its store answers.
    pub(crate) remote_up: Family<Vec<(String, String)>, Gauge>,
    /// Per remote cluster: times its store became unreachable.
    pub(crate) remote_failures: Family<Vec<(String, String)>, Counter>,
    /// Per remote cluster: sidecars in its registry at the last read.
    pub(crate) remote_sidecars: Family<Vec<(String, String)>, Gauge>,
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
        registry.register(
            "trellis_remote_cluster_up",
            "1 while a remote cluster's store (etcd) answers and its registry is watched",
            m.remote_up.clone(),
        );
        registry.register(
            "trellis_remote_cluster_failures",
            "Times a remote cluster's store became unreachable (its endpoints are kept)",
            m.remote_failures.clone(),
        );
        registry.register(
            "trellis_remote_cluster_sidecars",
            "Sidecars in a remote cluster's registry when last read whole",
            m.remote_sidecars.clone(),
        );
        m
    }
}
