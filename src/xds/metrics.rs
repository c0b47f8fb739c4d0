//! Prometheus metrics of the ADS server.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::short_type_name;

/// The `type` label: `cds`, `eds`, `lds`, `rds`, `sds` or a message name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

/// ADS counters and gauges. Cheap to clone (the metrics are shared).
#[derive(Debug, Clone, Default)]
pub struct XdsMetrics {
    connected: Gauge,
    pushes: Family<TypeLabel, Counter>,
    acks: Family<TypeLabel, Counter>,
    nacks: Family<TypeLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
}

/// The `reason` label of refused streams.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

impl XdsMetrics {
    /// Creates the metrics and registers them: `trellis_xds_connected_proxies`,
    /// `trellis_xds_pushes_total{type}`, `trellis_xds_acks_total{type}`,
    /// `trellis_xds_nacks_total{type}`, `trellis_xds_streams_refused_total{reason}`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = XdsMetrics::default();
        registry.register(
            "trellis_xds_connected_proxies",
            "Open ADS streams",
            m.connected.clone(),
        );
        registry.register(
            "trellis_xds_pushes",
            "xDS responses sent, by resource type",
            m.pushes.clone(),
        );
        registry.register(
            "trellis_xds_acks",
            "xDS responses ACKed by proxies, by resource type",
            m.acks.clone(),
        );
        registry.register(
            "trellis_xds_nacks",
            "xDS responses NACKed (rejected) by proxies, by resource type",
            m.nacks.clone(),
        );
        registry.register(
            "trellis_xds_streams_refused",
            "ADS streams refused at open (no node, or refused by the control plane) \
             or cut later by it (e.g. a token revoked), by reason",
            m.refused.clone(),
        );
        m
    }

    fn label(type_url: &str) -> TypeLabel {
        TypeLabel {
            r#type: short_type_name(type_url),
        }
    }

    pub(crate) fn stream_opened(&self) {
        self.connected.inc();
    }

    pub(crate) fn stream_closed(&self) {
        self.connected.dec();
    }

    pub(crate) fn stream_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub(crate) fn pushed(&self, type_url: &str) {
        self.pushes.get_or_create(&Self::label(type_url)).inc();
    }

    pub(crate) fn acked(&self, type_url: &str) {
        self.acks.get_or_create(&Self::label(type_url)).inc();
    }

    pub(crate) fn nacked(&self, type_url: &str) {
        self.nacks.get_or_create(&Self::label(type_url)).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::CLUSTER_TYPE;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn exposes_names_with_type_label() {
        let mut registry = Registry::default();
        let m = XdsMetrics::register(&mut registry);
        m.stream_opened();
        m.pushed(&CLUSTER_TYPE);
        m.nacked(&CLUSTER_TYPE);
        m.stream_refused("no_node");
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("trellis_xds_connected_proxies 1"), "{text}");
        assert!(
            text.contains("trellis_xds_pushes_total{type=\"cds\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("trellis_xds_nacks_total{type=\"cds\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("trellis_xds_streams_refused_total{reason=\"no_node\"} 1"),
            "{text}"
        );
    }
}
