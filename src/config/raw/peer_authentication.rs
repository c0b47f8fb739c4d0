//! `PeerAuthentication` (`security.istio.io` v1beta1, v1) and the
//! `trellis.dev/v1alpha1` `Mesh` resource, as written.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{DurationText, Unsupported};

/// `PeerAuthentication.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PeerAuthentication {
    pub selector: Option<WorkloadSelector>,
    pub mtls: Option<MutualTls>,
    /// Keys are workload port numbers, as strings in YAML maps.
    #[serde(default)]
    pub port_level_mtls: BTreeMap<PortKey, MutualTls>,
    /// Istio 1.28's per-port server TLS: not supported yet.
    pub port_level_tls: Option<Unsupported>,
}

/// A map key that names a port: YAML writes `8080:` as a number, JSON
/// as a string; both are kept as text and checked in conversion.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PortKey(pub String);

impl<'de> Deserialize<'de> for PortKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PortKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a port number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `WorkloadSelector`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WorkloadSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// `PeerAuthentication.MutualTLS`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MutualTls {
    pub mode: Option<String>,
}

/// `Mesh.spec` (`trellis.dev/v1alpha1`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Mesh {
    pub trust_domain: Option<String>,
    pub root_namespace: Option<String>,
    pub certificates: Option<Certificates>,
    /// Istio's `trustDomainAliases` (`MeshConfig`): not supported yet.
    pub trust_domain_aliases: Option<Unsupported>,
    /// `MeshConfig.extensionProviders` (tracing and access log providers).
    #[serde(default)]
    pub extension_providers: Vec<super::telemetry::ExtensionProvider>,
    /// `MeshConfig.defaultProviders`.
    pub default_providers: Option<super::telemetry::DefaultProviders>,
    /// `NAMESPACE` or `ALL_SERVICES`: the egress scope of a sidecar no
    /// `Sidecar` applies to.
    pub default_sidecar_scope: Option<String>,
    /// `MeshConfig.outboundTrafficPolicy`: the default of every sidecar.
    pub outbound_traffic_policy: Option<MeshOutboundTrafficPolicy>,
    /// This cluster and the remote clusters whose registries it watches.
    pub multi_cluster: Option<MultiCluster>,
    /// The retry budget of clusters whose `DestinationRule` sets none.
    pub default_retry_budget: Option<MeshRetryBudget>,
}

/// `Mesh.spec.defaultRetryBudget`: a `retryBudget`, or `disabled: true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MeshRetryBudget {
    pub disabled: Option<bool>,
    pub percent: Option<f64>,
    pub min_retry_concurrency: Option<i64>,
    pub budget_interval: Option<DurationText>,
}

/// `Mesh.spec.multiCluster`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MultiCluster {
    pub cluster_name: Option<String>,
    pub network: Option<String>,
    #[serde(default)]
    pub remote_clusters: Vec<RemoteCluster>,
}

/// One entry of `Mesh.spec.multiCluster.remoteClusters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RemoteCluster {
    pub name: Option<String>,
    pub network: Option<String>,
    /// `etcd://HOST:PORT[,HOST:PORT...]`.
    pub store: Option<String>,
    pub store_prefix: Option<String>,
}

/// `MeshConfig.OutboundTrafficPolicy` (it has no `egressProxy`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MeshOutboundTrafficPolicy {
    /// `REGISTRY_ONLY` or `ALLOW_ANY`; required here.
    pub mode: Option<String>,
}

/// `Mesh.spec.certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Certificates {
    #[serde(rename = "workloadTTL")]
    pub workload_ttl: Option<DurationText>,
    #[serde(rename = "rootTTL")]
    pub root_ttl: Option<DurationText>,
}
