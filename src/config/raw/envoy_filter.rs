//! `EnvoyFilter` (`networking.istio.io/v1alpha3`), as written: patches to
//! the Envoy resources Trellis generates.

use serde::Deserialize;

use super::sidecar::WorkloadSelector;
use super::Unsupported;

/// `EnvoyFilter.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EnvoyFilter {
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub target_refs: Vec<TargetRef>,
    #[serde(default)]
    pub config_patches: Vec<ConfigPatch>,
    #[serde(default)]
    pub priority: i32,
}

/// `PolicyTargetReference`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TargetRef {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
}

/// `EnvoyConfigObjectPatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConfigPatch {
    pub apply_to: Option<String>,
    #[serde(rename = "match")]
    pub matches: Option<ObjectMatch>,
    pub patch: Option<Patch>,
}

/// `EnvoyConfigObjectMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ObjectMatch {
    pub context: Option<String>,
    /// Istio version and node metadata: Trellis sidecars carry neither.
    pub proxy: Option<Unsupported>,
    pub listener: Option<ListenerMatch>,
    pub route_configuration: Option<RouteConfigurationMatch>,
    pub cluster: Option<ClusterMatch>,
}

/// `ListenerMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ListenerMatch {
    #[serde(default)]
    pub port_number: u32,
    /// Deprecated in Istio and never implemented by it.
    pub port_name: Option<Unsupported>,
    pub filter_chain: Option<FilterChainMatch>,
    #[serde(default)]
    pub listener_filter: String,
    #[serde(default)]
    pub name: String,
}

/// `ListenerMatch.FilterChainMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FilterChainMatch {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sni: String,
    #[serde(default)]
    pub transport_protocol: String,
    #[serde(default)]
    pub application_protocols: String,
    pub filter: Option<FilterMatch>,
    #[serde(default)]
    pub destination_port: u32,
}

/// `ListenerMatch.FilterMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FilterMatch {
    #[serde(default)]
    pub name: String,
    pub sub_filter: Option<SubFilterMatch>,
}

/// `ListenerMatch.SubFilterMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SubFilterMatch {
    #[serde(default)]
    pub name: String,
}

/// `RouteConfigurationMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RouteConfigurationMatch {
    #[serde(default)]
    pub port_number: u32,
    #[serde(default)]
    pub port_name: String,
    #[serde(default)]
    pub gateway: String,
    pub vhost: Option<VirtualHostMatch>,
    #[serde(default)]
    pub name: String,
}

/// `RouteConfigurationMatch.VirtualHostMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct VirtualHostMatch {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub domain_name: String,
    pub route: Option<RouteMatch>,
}

/// `RouteConfigurationMatch.RouteMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RouteMatch {
    #[serde(default)]
    pub name: String,
    pub action: Option<String>,
}

/// `ClusterMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClusterMatch {
    #[serde(default)]
    pub port_number: u32,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub subset: String,
    #[serde(default)]
    pub name: String,
}

/// `Patch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Patch {
    pub operation: Option<String>,
    /// The Envoy object, as Envoy's proto3 JSON (read into protos later).
    pub value: Option<yaml_serde::Value>,
    /// `UNSPECIFIED`, `AUTHN`, `AUTHZ` or `STATS`: where to add an HTTP
    /// filter relative to the control plane's own.
    pub filter_class: Option<String>,
}
