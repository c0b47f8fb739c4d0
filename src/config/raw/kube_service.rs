//! Kubernetes `v1 Service`, as `kubectl get -o yaml` or a chart writes it.
//! Trellis reads it as a service definition, as istiod does.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Unsupported;

/// `Service.spec` (core v1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct KubeService {
    #[serde(default)]
    pub ports: Vec<KubePort>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub service_type: Option<String>,
    pub external_name: Option<String>,
    pub session_affinity: Option<String>,
    pub session_affinity_config: Option<Unsupported>,
    pub internal_traffic_policy: Option<String>,
    pub publish_not_ready_addresses: Option<bool>,
    // Kubernetes' own data path (kube-proxy, cloud load balancers):
    // addresses and node ports that configure the cluster, not the mesh;
    // istiod routes sidecars by name without them too. Read, not used.
    #[allow(dead_code)]
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<Unsupported>,
    #[allow(dead_code)]
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Option<Unsupported>,
    #[allow(dead_code)]
    pub ip_families: Option<Unsupported>,
    #[allow(dead_code)]
    pub ip_family_policy: Option<Unsupported>,
    #[allow(dead_code)]
    pub external_traffic_policy: Option<Unsupported>,
    #[allow(dead_code)]
    pub health_check_node_port: Option<Unsupported>,
    #[allow(dead_code)]
    pub allocate_load_balancer_node_ports: Option<Unsupported>,
    #[allow(dead_code)]
    pub load_balancer_class: Option<Unsupported>,
    #[allow(dead_code)]
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: Option<Unsupported>,
    #[allow(dead_code)]
    pub load_balancer_source_ranges: Option<Unsupported>,
    #[allow(dead_code)]
    #[serde(rename = "externalIPs")]
    pub external_ips: Option<Unsupported>,
    pub traffic_distribution: Option<Unsupported>,
}

/// `ServicePort` (core v1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct KubePort {
    #[serde(default)]
    pub name: String,
    pub port: Option<i64>,
    /// An integer, or the name of a container port (needs the pod spec).
    pub target_port: Option<Unsupported>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
    /// kube-proxy's node port; not the mesh's.
    #[allow(dead_code)]
    pub node_port: Option<i64>,
}
