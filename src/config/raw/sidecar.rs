//! `Sidecar` (`networking.istio.io`), as written. Trellis reads the egress
//! hosts (the services a sidecar may reach), the ingress listeners (the
//! ports it serves) and the workload selector.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::destination_rule::ConnectionPool;
use super::gateway::ServerTls;
use super::Unsupported;

/// `Sidecar.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Sidecar {
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub egress: Vec<EgressListener>,
    /// Inbound listeners per port.
    #[serde(default)]
    pub ingress: Vec<IngressListener>,
    /// What happens to hosts not in the registry.
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Inbound connection pool settings of every inbound cluster.
    pub inbound_connection_pool: Option<ConnectionPool>,
}

/// `IstioIngressListener`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IngressListener {
    /// The port the listener binds (required).
    pub port: Option<SidecarPort>,
    /// The address it binds.
    pub bind: Option<String>,
    /// `DEFAULT`, `NONE` or `IPTABLES`.
    pub capture_mode: Option<String>,
    /// Where connections go: `127.0.0.1:PORT`, `0.0.0.0:PORT` or `unix://PATH`.
    pub default_endpoint: Option<String>,
    /// Server TLS on this port (for callers outside the mesh).
    pub tls: Option<ServerTls>,
    /// Limits of this port's inbound cluster.
    pub connection_pool: Option<ConnectionPool>,
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
