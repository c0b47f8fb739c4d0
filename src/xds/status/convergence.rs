//! Convergence time: from a snapshot change (config reload or registry
//! change) until the proxy ACKed every type of the new snapshot, observed
//! per proxy like Istio's `pilot_proxy_convergence_time`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::xds::Snapshot;

/// Buckets in seconds: Istio's, with finer ones below 100 ms.
const BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 5.0, 10.0, 30.0];

/// A proxy that has not ACKed a change this long after it began counts as
/// stale: convergence normally takes well under a second, and a NACKed or
/// stuck proxy never gets there.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(30);

/// A change a proxy has not ACKed completely yet.
#[derive(Debug)]
struct Pending {
    since: Instant,
    /// Type URL → version still waiting for its ACK.
    waiting: BTreeMap<String, String>,
}

/// Pending changes per node id and the histogram. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Convergence {
    histogram: Histogram,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
}

impl Default for Convergence {
    fn default() -> Self {
        Convergence {
            histogram: Histogram::new(BUCKETS),
            pending: Arc::default(),
        }
    }
}

impl Convergence {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "trellis_proxy_convergence_seconds",
            "Time from a config or registry change until a proxy ACKed every type of its new snapshot",
            self.histogram.clone(),
        );
        registry.register_collector(Box::new(StaleProxies(Arc::clone(&self.pending))));
    }

    /// Proxies with a change pending for longer than `after`.
    fn stale(pending: &Mutex<HashMap<String, Pending>>, after: Duration) -> i64 {
        let pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
        let stale = pending
            .values()
            .filter(|p| p.since.elapsed() > after)
            .count();
        i64::try_from(stale).unwrap_or(i64::MAX)
    }

    /// A new snapshot for `node_id`, built for a change that began at
    /// `since`. `acked` gives the version the proxy last ACKed per type;
    /// types already at the new version are not waited for. An earlier
    /// change not yet ACKed keeps its start: convergence is measured from
    /// the first change the proxy has not absorbed.
    pub(crate) fn expect(
        &self,
        node_id: &str,
        snapshot: &Snapshot,
        since: Instant,
        acked: impl Fn(&str) -> Option<String>,
    ) {
        let waiting: BTreeMap<String, String> = snapshot
            .type_urls()
            .filter_map(|t| {
                let version = snapshot.version(t)?.to_string();
                (acked(t).as_deref() != Some(version.as_str())).then(|| (t.to_string(), version))
            })
            .collect();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.is_empty() {
            pending.remove(node_id);
            return;
        }
        let since = pending.get(node_id).map_or(since, |p| p.since.min(since));
        pending.insert(node_id.to_string(), Pending { since, waiting });
    }

    /// An ACK: observes the convergence time once every type is ACKed.
    pub(crate) fn acked(&self, node_id: &str, type_url: &str, version: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(p) = pending.get_mut(node_id) else {
            return;
        };
        if p.waiting.get(type_url).map(String::as_str) == Some(version) {
            p.waiting.remove(type_url);
        }
        if p.waiting.is_empty() {
            self.histogram.observe(p.since.elapsed().as_secs_f64());
            pending.remove(node_id);
        }
    }

    /// Forgets a proxy that left: it will never ACK.
    pub(crate) fn forget(&self, node_id: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.remove(node_id);
    }

    #[cfg(test)]
    pub(crate) fn stale_after(&self, after: Duration) -> i64 {
        Self::stale(&self.pending, after)
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        let mut text = String::new();
        let mut registry = Registry::default();
        self.register(&mut registry);
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("trellis_proxy_convergence_seconds_count "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// `trellis_proxies_stale`, counted when scraped: the proxies whose newest
/// change has been waiting for their ACK longer than [`STALE_AFTER`].
#[derive(Debug)]
struct StaleProxies(Arc<Mutex<HashMap<String, Pending>>>);

impl Collector for StaleProxies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(Convergence::stale(&self.0, STALE_AFTER));
        let help = "Proxies that have not ACKed every type of their newest snapshot \
                    30 s after the change began (NACKed, stuck or disconnected)";
        let metric =
            encoder.encode_descriptor("trellis_proxies_stale", help, None, gauge.metric_type())?;
        gauge.encode(metric)
    }
}
