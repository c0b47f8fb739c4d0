//! Service instances: static ones from `ServiceEntry` endpoints and
//! `WorkloadEntry`s, and sidecars that registered themselves by connecting.
//!
//! The registry only records sidecars; [`instances`] joins them with a
//! [`MeshConfig`](crate::config::model::MeshConfig) into the per-service
//! endpoint view that `translate` reads. Keeping the join pure means a
//! config reload and a sidecar joining go through the same code.

mod instances;
mod node;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::model::{Host, Labels, MultiCluster, Topology};

pub use crate::config::model::Resolution;
pub use instances::{
    implicit_http_port, instances, NetworkGateway, NetworkGateways, ServiceInstances, ServiceView,
};
pub use node::{parse_port_map, NodeError};

/// A sidecar's identity and ports, from its Envoy node (see
/// `bootstrap` for the metadata keys).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Proxy {
    /// Envoy `node.id`: unique per instance.
    pub id: String,
    /// Service name (`node.cluster`, metadata `service`).
    pub service: String,
    /// Namespace (metadata `namespace`, default `default`).
    pub namespace: String,
    /// Workload labels (metadata `labels`), e.g. `version: v2`.
    pub labels: Labels,
    /// Service account (metadata `service_account`, default the service name).
    pub service_account: String,
    /// The application's port on 127.0.0.1.
    pub app_port: u16,
    /// Address other sidecars reach this one on (metadata `inbound_address`).
    pub inbound_address: String,
    /// The inbound listener's port.
    pub inbound_port: u16,
    /// The outbound listener's port.
    pub outbound_port: u16,
    /// The Prometheus stats listener's port on `inbound_address` (metadata
    /// `stats_port`), which the service graph scrapes; `None`: not scraped.
    pub stats_port: Option<u16>,
    /// Envoy's admin port on 127.0.0.1 (metadata `admin_port`), which no
    /// listener may take; `None` from bootstraps that do not say it.
    pub admin_port: Option<u16>,
    /// Set for a gateway proxy (metadata `gateway`): it has no app and no
    /// inbound or outbound listener (the ports above are 0), only the
    /// listeners of the `Gateway` servers that select its labels.
    pub gateway: Option<GatewayNode>,
    /// Locality (Envoy `node.locality`, else the topology labels), network
    /// and mesh cluster (metadata `network`, `cluster_name`).
    pub topology: Topology,
}

/// Where a gateway proxy listens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayNode {
    /// Address its listeners bind (metadata `listen_address`, default
    /// `0.0.0.0`).
    pub listen_address: String,
    /// Server port → the port it really listens on (metadata `port_map`,
    /// `443=8443,80=8080`), so that a gateway runs without root.
    pub port_map: BTreeMap<u16, u16>,
    /// Metadata `endpoint_address`: when set, the gateway is an endpoint
    /// of its own service (`SERVICE.NAMESPACE.svc.cluster.local`, or the
    /// services whose `workloadSelector` its labels match) at this address,
    /// on the port it listens on for each service port, so sidecars can
    /// route to it as a mesh destination (an egress or east-west gateway).
    pub endpoint_address: Option<String>,
    /// The port other networks dial, at `endpoint_address`, to reach the
    /// services of this gateway's network: the listen port of the
    /// AUTO_PASSTHROUGH server of a `Gateway` selecting it, which makes it
    /// its network's east-west gateway. Set by its own cluster's control
    /// plane from that cluster's config (never read from the node) and
    /// published with it, so that remote clusters, which lack that
    /// config, know it too.
    pub network_port: Option<u16>,
}

impl GatewayNode {
    /// The port a server on `port` listens on.
    pub fn listen_port(&self, port: u16) -> u16 {
        self.port_map.get(&port).copied().unwrap_or(port)
    }
}

impl Proxy {
    /// The canonical host of the proxy's own service.
    pub fn host(&self) -> Host {
        Host::canonical(&self.service, &self.namespace)
    }

    /// `HOST:PORT` of the sidecar's stats listener, when it has one.
    pub fn stats_addr(&self) -> Option<String> {
        let port = self.stats_port?;
        let host = &self.inbound_address;
        Some(match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        })
    }

    /// The proxy's workload identity.
    pub fn identity(&self) -> Identity {
        Identity {
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
        }
    }

    /// The proxy's SPIFFE ID in `trust_domain`.
    pub fn spiffe_id(&self, trust_domain: &str) -> String {
        self.identity().spiffe_id(trust_domain)
    }

    /// Tags the proxy with the cluster name and network of the mesh it
    /// registered with (`Mesh.spec.multiCluster`) where its bootstrap named
    /// none: a sidecar connected to this cluster's control plane is in this
    /// cluster. What the bootstrap says wins.
    pub fn default_topology(&mut self, multi_cluster: &MultiCluster) {
        if self.topology.cluster.is_empty() {
            self.topology.cluster = multi_cluster.cluster_name.clone();
        }
        if self.topology.network.is_empty() {
            self.topology.network = multi_cluster.network.clone();
        }
    }
}

/// One instance of a service port, as `translate` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Address (IP or DNS name).
    pub address: String,
    /// Port to connect to.
    pub port: u16,
    /// The service port (`ServicePort::number`) this instance serves; a
    /// multi-port service has one instance per port and endpoint.
    pub service_port: u16,
    /// Labels, for subsets.
    pub labels: Labels,
    /// Load-balancing weight.
    pub weight: u32,
    /// True when a sidecar fronts it (mTLS-capable later).
    pub sidecar: bool,
    /// The workload identity of a sidecar instance (`None` without one).
    pub identity: Option<Identity>,
    /// True when a sidecar fronts it and its `PeerAuthentication` mode on
    /// this port is not DISABLE: clients send mTLS (EDS metadata
    /// `tlsMode: istio`, Istio's auto mTLS).
    pub mtls: bool,
    /// Where it runs (EDS groups endpoints by locality).
    pub topology: Topology,
}

/// Who a sidecar instance is: its SPIFFE ID's namespace and service account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
}

impl Identity {
    /// `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
    pub fn spiffe_id(&self, trust_domain: &str) -> String {
        format!(
            "spiffe://{trust_domain}/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }
}

/// Sidecars currently registered, by node id. Each sidecar is shared
/// (`Arc`): a rebuild takes a copy of the registry, and that copy must cost
/// pointers, not every sidecar's strings, at 10,000 sidecars.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    sidecars: BTreeMap<String, Arc<Proxy>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a sidecar. Returns true if anything changed.
    pub fn register(&mut self, proxy: Proxy) -> bool {
        if self
            .sidecars
            .get(&proxy.id)
            .is_some_and(|old| **old == proxy)
        {
            return false;
        }
        self.sidecars.insert(proxy.id.clone(), Arc::new(proxy));
        true
    }

    /// Removes a sidecar. Returns true if it was present.
    pub fn deregister(&mut self, id: &str) -> bool {
        self.sidecars.remove(id).is_some()
    }

    /// Registered sidecars, by node id.
    pub fn sidecars(&self) -> &BTreeMap<String, Arc<Proxy>> {
        &self.sidecars
    }
}

/// True when every selector label is present in `labels` with the same
/// value (Kubernetes label-selector semantics: an empty selector matches).
pub fn labels_match(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(id: &str) -> Proxy {
        Proxy {
            id: id.into(),
            service: "a".into(),
            namespace: "default".into(),
            labels: Labels::new(),
            service_account: "a".into(),
            app_port: 8080,
            inbound_address: "127.0.0.1".into(),
            inbound_port: 15006,
            outbound_port: 15001,
            stats_port: None,
            admin_port: None,
            gateway: None,
            topology: Default::default(),
        }
    }

    #[test]
    fn register_reports_changes_only() {
        let mut reg = Registry::new();
        assert!(reg.register(proxy("x")));
        assert!(!reg.register(proxy("x")));
        let mut moved = proxy("x");
        moved.inbound_port = 16006;
        assert!(reg.register(moved));
        assert!(reg.deregister("x"));
        assert!(!reg.deregister("x"));
    }

    #[test]
    fn topology_defaults_to_the_mesh_unless_the_bootstrap_names_it() {
        let mc = MultiCluster {
            cluster_name: "east".into(),
            network: "net-1".into(),
            remotes: Vec::new(),
        };
        let mut p = proxy("x");
        p.default_topology(&mc);
        assert_eq!(
            (p.topology.cluster.as_str(), p.topology.network.as_str()),
            ("east", "net-1")
        );
        let mut own = proxy("y");
        own.topology.network = "net-2".into();
        own.default_topology(&mc);
        assert_eq!(
            (own.topology.cluster.as_str(), own.topology.network.as_str()),
            ("east", "net-2")
        );
        let mut single = proxy("z");
        single.default_topology(&MultiCluster::default());
        assert!(single.topology.cluster.is_empty() && single.topology.network.is_empty());
    }

    #[test]
    fn host_is_canonical() {
        assert_eq!(proxy("x").host().as_str(), "a.default.svc.cluster.local");
    }

    #[test]
    fn selector_semantics() {
        let labels: Labels = [("app".into(), "a".into()), ("version".into(), "v1".into())].into();
        assert!(labels_match(&Labels::new(), &labels));
        assert!(labels_match(&[("app".into(), "a".into())].into(), &labels));
        assert!(!labels_match(&[("app".into(), "b".into())].into(), &labels));
        assert!(!labels_match(
            &[("zone".into(), "z".into())].into(),
            &labels
        ));
    }
}
