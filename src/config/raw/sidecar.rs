//! `Sidecar` (`networking.istio.io`), as written. Trellis reads the egress
//! hosts (the services a sidecar may reach) and the workload selector.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Unsupported;

/// `Sidecar.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Sidecar {
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub egress: Vec<EgressListener>,
    /// Inbound listeners per port: not supported yet.
    pub ingress: Option<Unsupported>,
    /// What happens to hosts not in the registry.
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Inbound connection pool settings: not supported yet.
    pub inbound_connection_pool: Option<Unsupported>,
}

/// `OutboundTrafficPolicy` (Sidecar's, with `egressProxy`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OutboundTrafficPolicy {
    /// `REGISTRY_ONLY` or `ALLOW_ANY`; absent reads as `REGISTRY_ONLY`
    /// (the proto's zero value), as Istio reads it.
    pub mode: Option<String>,
    /// Where `ALLOW_ANY` sends traffic to unknown hosts instead of the
    /// host it names.
    pub egress_proxy: Option<super::Destination>,
}

/// `WorkloadSelector` (Sidecar spells it `labels`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WorkloadSelector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `IstioEgressListener`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EgressListener {
    #[serde(default)]
    pub hosts: Vec<String>,
    /// A per-port egress listener (TCP and TLS protocols).
    pub port: Option<SidecarPort>,
    /// The address that listener binds (default 127.0.0.1).
    pub bind: Option<String>,
    /// Traffic capture mode: not supported yet.
    pub capture_mode: Option<Unsupported>,
}

/// `SidecarPort`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SidecarPort {
    pub number: i64,
    #[serde(default)]
    pub protocol: String,
    pub name: Option<String>,
    pub target_port: Option<Unsupported>,
}
