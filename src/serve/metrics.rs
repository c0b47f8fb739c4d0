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

/// Labels of `trellis_proxy_rejections_total`: the config object blamed
/// (a bounded set: objects of the config, never proxies or messages).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// `VirtualService`, `DestinationRule`, ...
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Metrics owned by `serve`. Cheap to clone (handles to shared atomics).
#[derive(Debug, Clone, Default)]
pub struct ServeMetrics {
    reloads: Family<ReloadLabels, Counter>,
    last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    generation: Gauge,
    sidecars: Gauge,
    restored_pending: Gauge,
    gateway_skipped: Gauge,
    credential_errors: Counter,
    jwks_fetch_errors: Counter,
    rejections: Family<RejectionLabels, Counter>,
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
        registry.register(
            "trellis_restored_sidecars_pending",
            "Sidecars restored from the last run that have not reconnected yet \
             (they stay endpoints until they do or the restart grace period ends)",
            m.restored_pending.clone(),
        );
        registry.register(
            "trellis_config_last_reload_success_timestamp_seconds",
            "When the config in force was loaded (Unix time; the load at start counts)",
            m.last_success.clone(),
        );
        registry.register(
            "trellis_gateway_servers_skipped",
            "Gateway servers and Sidecar ports left out of proxies (summed over proxies): \
             their credential is missing or unusable, or their address is one the sidecar \
             already listens on",
            m.gateway_skipped.clone(),
        );
        registry.register(
            "trellis_credential_errors",
            "Credentials in --credentials-dir found unusable on a load (missing file, \
             bad PEM, key not matching the certificate); the last good pair stays",
            m.credential_errors.clone(),
        );
        registry.register(
            "trellis_jwks_fetch_errors",
            "Failed fetches of a RequestAuthentication jwksUri; the rule keeps its last good keys",
            m.jwks_fetch_errors.clone(),
        );
        registry.register(
            "trellis_proxy_rejections",
            "xDS responses proxies rejected (NACKs), by the config object they were traced to",
            m.rejections.clone(),
        );
        m.set_last_success_now();
        // Both series exist from the start so rate() works before the first failure.
        let _ = m.reloads.get_or_create(&ReloadLabels { result: "ok" });
        let _ = m.reloads.get_or_create(&ReloadLabels { result: "failed" });
        m
    }

    /// Sets how many gateway servers the last build left out.
    pub fn set_gateway_servers_skipped(&self, n: usize) {
        self.gateway_skipped
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one unusable credential found on a load.
    pub fn credential_error(&self) {
        self.credential_errors.inc();
    }

    /// Counts one failed `jwksUri` fetch.
    pub fn jwks_fetch_error(&self) {
        self.jwks_fetch_errors.inc();
    }

    /// Counts one reload by result.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
        if ok {
            self.set_last_success_now();
        }
    }

    #[cfg(test)]
    fn set_last_success_for_test(&self, v: f64) {
        self.last_success.set(v);
    }

    fn set_last_success_now(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_success.set(now);
    }

    /// Sets how many restored sidecars have not reconnected yet.
    pub fn set_restored_pending(&self, n: usize) {
        self.restored_pending
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a proxy's rejection traced to `blame`'s object.
    pub fn rejected(&self, blame: &crate::translate::provenance::Blame) {
        let labels = RejectionLabels {
            kind: blame.kind.clone(),
            namespace: blame.namespace.clone(),
            name: blame.name.clone(),
        };
        self.rejections.get_or_create(&labels).inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge_value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn last_success_moves_on_ok_reloads_only() {
        let mut registry = Registry::default();
        let m = ServeMetrics::register(&mut registry);
        let encode = |r: &Registry| {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, r).unwrap();
            text
        };
        let name = "trellis_config_last_reload_success_timestamp_seconds";
        let start = gauge_value(&encode(&registry), name);
        assert!(start > 1.0e9, "set at start: {start}");
        m.set_last_success_for_test(1.0);
        m.reload(false);
        let text = encode(&registry);
        assert_eq!(gauge_value(&text, name), 1.0);
        assert!(text.contains("trellis_config_reloads_total{result=\"failed\"} 1"));
        m.reload(true);
        assert!(gauge_value(&encode(&registry), name) >= start);
    }
}
