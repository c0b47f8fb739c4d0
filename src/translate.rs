//! Pure translation: `MeshConfig` + service instances (+ one proxy) →
//! Envoy resources. No I/O, no tonic. Names and shapes follow istiod's
//! sidecar output so Istio users recognise them in `/config_dump`.
//!
//! [`shared`] builds what every sidecar sees (outbound clusters, their
//! endpoints, the `outbound` route configuration) once per change;
//! [`for_proxy`] adds a proxy's own listeners and inbound cluster.

mod clusters;
mod endpoints;
#[cfg(test)]
pub(crate) mod fixtures;
mod listeners;
mod policy;
mod retry;
mod route_match;
mod route_rule;
mod routes;
mod util;

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::Name;

use crate::config::model::{Host, MeshConfig, Protocol, ServicePort};
use crate::registry::{Proxy, ServiceInstances, ServiceView};

pub use clusters::cluster_name;
pub use listeners::inbound_cluster_name;
pub use policy::DEFAULT_CONNECT_TIMEOUT;
pub use retry::{DEFAULT_ATTEMPTS, DEFAULT_RETRIABLE_STATUS_CODES, DEFAULT_RETRY_ON};
pub use routes::OUTBOUND_ROUTE;

/// Name of every sidecar's inbound listener.
pub const INBOUND_LISTENER: &str = "inbound";
/// Name of every sidecar's outbound listener.
pub const OUTBOUND_LISTENER: &str = "outbound";
/// The HTTP fault filter (per-route config carries a rule's `fault`).
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// Resources every sidecar shares; built once per config or registry
/// change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shared {
    /// Outbound clusters (`outbound|PORT|SUBSET|HOST`).
    pub clusters: Vec<XdsCluster>,
    /// Endpoints of the EDS clusters, named like their cluster.
    pub load_assignments: Vec<ClusterLoadAssignment>,
    /// The `outbound` route configuration.
    pub routes: Vec<RouteConfiguration>,
    /// Ports of every service, for per-proxy inbound settings.
    pub service_ports: BTreeMap<Host, Vec<ServicePort>>,
}

/// Everything one sidecar gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyResources {
    /// Shared outbound clusters plus the proxy's inbound cluster.
    pub clusters: Vec<XdsCluster>,
    /// Endpoints of the EDS clusters.
    pub load_assignments: Vec<ClusterLoadAssignment>,
    /// `inbound` and `outbound` listeners.
    pub listeners: Vec<Listener>,
    /// The `outbound` route configuration.
    pub routes: Vec<RouteConfiguration>,
}

/// Builds the shared resources for every service.
pub fn shared(mesh: &MeshConfig, services: &ServiceInstances) -> Shared {
    let views: Vec<&ServiceView> = services.services.values().collect();
    let (clusters, load_assignments) = clusters::outbound(mesh, &views);
    let ctx = routes::Ctx { mesh, services };
    Shared {
        clusters,
        load_assignments,
        routes: vec![routes::outbound(ctx)],
        service_ports: views
            .iter()
            .map(|v| (v.host.clone(), v.ports.clone()))
            .collect(),
    }
}

/// One proxy's view: the shared resources plus its inbound cluster and
/// both listeners.
pub fn for_proxy(shared: &Shared, proxy: &Proxy) -> ProxyResources {
    // The app speaks HTTP/2 when its service's port says so (first port:
    // a sidecar fronts one app port).
    let h2 = shared
        .service_ports
        .get(&proxy.host())
        .and_then(|ports| ports.first())
        .is_some_and(|p| matches!(p.protocol, Protocol::Http2 | Protocol::Grpc));
    let mut clusters = shared.clusters.clone();
    clusters.push(listeners::inbound_cluster(proxy, h2));
    ProxyResources {
        clusters,
        load_assignments: shared.load_assignments.clone(),
        listeners: vec![listeners::inbound(proxy), listeners::outbound(proxy)],
        routes: shared.routes.clone(),
    }
}

/// One packed resource with its type URL and name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedResource {
    /// Full type URL (`type.googleapis.com/envoy.config.cluster.v3.Cluster`).
    pub type_url: String,
    /// Resource name.
    pub name: String,
    /// The packed resource.
    pub resource: Any,
}

impl ProxyResources {
    /// Every resource packed, sorted by type URL then name.
    pub fn packed(&self) -> Vec<NamedResource> {
        let mut out = Vec::new();
        out.extend(self.clusters.iter().map(|c| packed(&c.name, c)));
        out.extend(
            self.load_assignments
                .iter()
                .map(|c| packed(&c.cluster_name, c)),
        );
        out.extend(self.listeners.iter().map(|l| packed(&l.name, l)));
        out.extend(self.routes.iter().map(|r| packed(&r.name, r)));
        out.sort_by(|a, b| (&a.type_url, &a.name).cmp(&(&b.type_url, &b.name)));
        out
    }
}

fn packed<M: prost::Message + Name + Clone>(name: &str, msg: &M) -> NamedResource {
    NamedResource {
        type_url: M::type_url(),
        name: name.to_string(),
        resource: pack_any(msg.clone()),
    }
}

#[cfg(test)]
mod tests;
