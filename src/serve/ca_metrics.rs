//! CA metrics, computed at scrape time from the CA and the issued leaves:
//! `trellis_ca_certificates_issued_total`, `trellis_ca_leaf_soonest_expiry_seconds`
//! and `trellis_ca_root_expiry_seconds` (seconds from now; a failed
//! control plane stops renewing, which these show counting down).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::core::Core;

/// Registered before the core exists (the registry is handed to the admin
/// state first); [`CaMetrics::attach`] connects it.
#[derive(Clone, Default)]
pub(crate) struct CaMetrics {
    core: Arc<OnceLock<Weak<Core>>>,
}

impl std::fmt::Debug for CaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaMetrics")
    }
}

impl CaMetrics {
    pub(crate) fn attach(&self, core: &Arc<Core>) {
        let _ = self.core.set(Arc::downgrade(core));
    }
}

/// Seconds from now until `t` (negative once past).
fn seconds_until(t: SystemTime, now: SystemTime) -> f64 {
    match t.duration_since(now) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for CaMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(core) = self.core.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let now = SystemTime::now();
        let issued = ConstCounter::new(core.certs.issued_total.load(Ordering::Relaxed));
        issued.encode(encoder.encode_descriptor(
            "trellis_ca_certificates_issued",
            "Workload certificates issued by the mesh CA since the start",
            None,
            issued.metric_type(),
        )?)?;
        let soonest = core.certs.leaves().values().map(|l| l.not_after).min();
        if let Some(secs) = soonest {
            let t = UNIX_EPOCH + std::time::Duration::from_secs(secs);
            gauge(
                &mut encoder,
                "trellis_ca_leaf_soonest_expiry_seconds",
                "Seconds until the soonest-expiring workload certificate of a registered sidecar expires",
                seconds_until(t, now),
            )?;
        }
        if let Some(t) = core.certs.ca.root_expiry() {
            gauge(
                &mut encoder,
                "trellis_ca_root_expiry_seconds",
                "Seconds until the soonest-expiring trusted root certificate expires",
                seconds_until(t, now),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_until_is_signed() {
        let now = SystemTime::now();
        let later = now + std::time::Duration::from_secs(90);
        assert!((seconds_until(later, now) - 90.0).abs() < 1e-6);
        assert!((seconds_until(now, later) + 90.0).abs() < 1e-6);
    }
}
