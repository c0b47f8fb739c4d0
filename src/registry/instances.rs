//! The pure join of config and registered sidecars into services with
//! instances (docs/architecture.md, "registry").

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{labels_match, Instance, Proxy, Registry};
use crate::config::model::{
    effective_mtls, sidecar_for, Host, IngressPort, Location, MeshConfig, MtlsMode, Protocol,
    Resolution, RouteAction, Service, ServicePort, StaticEndpoint,
};

/// Every service `translate` must build, by canonical host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceInstances {
    /// Services by host. Shared, so that a translation made from a view
    /// keeps it without a copy (to tell a later view from it).
    pub services: BTreeMap<Host, Arc<ServiceView>>,
    /// Every network's east-west gateways.
    pub network_gateways: NetworkGateways,
}

/// Where clients on other networks reach one network's services: an
/// east-west gateway's address and AUTO_PASSTHROUGH port (Istio's
/// `NetworkGateway`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkGateway {
    /// The gateway's endpoint address.
    pub address: String,
    /// Its AUTO_PASSTHROUGH listener's port.
    pub port: u16,
}

/// East-west gateways by network, each list sorted and without repeats.
pub type NetworkGateways = BTreeMap<String, Vec<NetworkGateway>>;

/// One service with its ports and current instances.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    /// Canonical host.
    pub host: Host,
    /// Namespace the service lives in.
    pub namespace: String,
    /// Ports, in declaration order (never empty).
    pub ports: Vec<ServicePort>,
    /// How instance addresses resolve.
    pub resolution: Resolution,
    /// Inside or outside the mesh.
    pub location: Location,
    /// Instances, one per (endpoint, service port).
    pub instances: Vec<Instance>,
    /// `subjectAltNames` of the declaring `ServiceEntry`.
    pub subject_alt_names: Vec<String>,
}

impl ServiceView {
    /// The view without the room its lists were grown with: a translation
    /// keeps it until the service changes (with one instance, a list that
    /// was pushed to holds room for four).
    fn at_size(mut self) -> Self {
        self.instances.shrink_to_fit();
        self.ports.shrink_to_fit();
        self.subject_alt_names.shrink_to_fit();
        self
    }
}

/// The port a service known only from sidecars (or only by name) gets:
/// plain HTTP on 80, as a Kubernetes `Service` named `http` would.
pub fn implicit_http_port() -> ServicePort {
    ServicePort {
        number: 80,
        name: "http".to_string(),
        protocol: Protocol::Http,
        target_port: None,
    }
}

/// Joins config and sidecars: `ServiceEntry` services with their static
/// endpoints and selected `WorkloadEntry`s; each sidecar added to the
/// services whose host is its service host or whose `workloadSelector`
/// matches its labels (same namespace), else to an implicit HTTP service;
/// and cluster-local hosts named by a `VirtualService` or
/// `DestinationRule` with no instances yet.
pub fn instances(mesh: &MeshConfig, registry: &Registry) -> ServiceInstances {
    let mut services: BTreeMap<Host, ServiceView> = mesh
        .services
        .values()
        .map(|svc| (svc.host.clone(), service_entry_view(svc, mesh)))
        .collect();
    // Services that select workloads by label, found once: a sidecar joins
    // its own host's service by a map lookup and is matched against these
    // only, so the join costs O(sidecars × selecting services).
    let selecting: Vec<&Service> = mesh
        .services
        .values()
        .filter(|svc| svc.workload_selector.is_some())
        .collect();
    // A gateway proxy fronts no app: it is a service endpoint only when
    // its node gives the address it is reached on.
    let endpoints = (registry.sidecars().values()).filter(|p| match &p.gateway {
        None => true,
        Some(gw) => gw.endpoint_address.is_some(),
    });
    // Most meshes have no ingress listeners: then no sidecar looks up its
    // Sidecar here.
    let ingress = mesh.sidecars.iter().any(|s| !s.ingress.is_empty());
    for proxy in endpoints {
        join_sidecar(&mut services, mesh, &selecting, proxy, ingress);
    }
    // A wildcard names no one service: a rule for one applies to the
    // services it covers (`translate::shared_from`).
    for host in named_hosts(mesh).into_iter().filter(|h| !h.is_wildcard()) {
        if let (false, Some((_, ns))) = (services.contains_key(&host), host.cluster_local_parts()) {
            let view = implicit_view(host.clone(), ns.to_string());
            services.insert(host, view);
        }
    }
    ServiceInstances {
        services: (services.into_iter())
            .map(|(host, view)| (host, Arc::new(view.at_size())))
            .collect(),
        network_gateways: network_gateways(mesh, registry),
    }
}

/// The registered gateways that are their network's east-west gateway
/// ([`super::GatewayNode::network_port`] and an endpoint address), by
/// network: the gateway's own, else this cluster's (`multiCluster.network`).
fn network_gateways(mesh: &MeshConfig, registry: &Registry) -> NetworkGateways {
    let mut out = NetworkGateways::new();
    for proxy in registry.sidecars().values() {
        let Some(gw) = &proxy.gateway else { continue };
        let (Some(address), Some(port)) = (&gw.endpoint_address, gw.network_port) else {
            continue;
        };
        let network = match proxy.topology.network.as_str() {
            "" => mesh.mesh.multi_cluster.network.clone(),
            own => own.to_string(),
        };
        let address = address.clone();
        out.entry(network)
            .or_default()
            .push(NetworkGateway { address, port });
    }
    for list in out.values_mut() {
        list.sort();
        list.dedup();
    }
    out
}

fn implicit_view(host: Host, namespace: String) -> ServiceView {
    ServiceView {
        host,
        namespace,
        ports: vec![implicit_http_port()],
        resolution: Resolution::Static,
        location: Location::MeshInternal,
        instances: Vec::new(),
        subject_alt_names: Vec::new(),
    }
}

fn service_entry_view(svc: &Service, mesh: &MeshConfig) -> ServiceView {
    let mut endpoints: Vec<&StaticEndpoint> = svc.endpoints.iter().collect();
    if let Some(selector) = &svc.workload_selector {
        endpoints.extend(
            mesh.workload_entries
                .iter()
                .filter(|we| in_service_namespace(svc, &we.origin.namespace))
                .filter(|we| labels_match(selector, &we.endpoint.labels))
                .map(|we| &we.endpoint),
        );
    }
    let mut instances: Vec<Instance> = endpoints
        .iter()
        .flat_map(|ep| svc.ports.iter().map(move |port| static_instance(ep, port)))
        .collect();
    // Istio: a DNS ServiceEntry without endpoints resolves its own hosts.
    if instances.is_empty() && svc.resolution.is_dns() && !svc.host.0.contains('*') {
        instances = svc
            .ports
            .iter()
            .map(|p| host_instance(&svc.host, p))
            .collect();
    }
    ServiceView {
        host: svc.host.clone(),
        namespace: svc.namespace.clone(),
        ports: svc.ports.clone(),
        resolution: svc.resolution,
        location: svc.location,
        instances,
        subject_alt_names: svc.subject_alt_names.clone(),
    }
}

/// Istio selects workloads in the `ServiceEntry`'s own namespace; a
/// cluster-local host also names a namespace (`billing.legacy`), and
/// workloads there are selected too, so an entry written without
/// `metadata.namespace` still finds them.
fn in_service_namespace(svc: &Service, namespace: &str) -> bool {
    svc.namespace == namespace
        || svc
            .host
            .cluster_local_parts()
            .is_some_and(|(_, ns)| ns == namespace)
}

/// Endpoint port: the endpoint's `ports[name]`, else the service port's
/// `targetPort`, else the service port itself (Istio's rule).
fn endpoint_port(ep: &StaticEndpoint, port: &ServicePort) -> u16 {
    ep.ports
        .get(&port.name)
        .copied()
        .or(port.target_port)
        .unwrap_or(port.number)
}

fn static_instance(ep: &StaticEndpoint, port: &ServicePort) -> Instance {
    Instance {
        address: ep.address.clone(),
        port: endpoint_port(ep, port),
        service_port: port.number,
        labels: ep.labels.clone(),
        weight: ep.weight.unwrap_or(1).max(1),
        sidecar: false,
        identity: None,
        mtls: false,
        topology: ep.topology.clone(),
    }
}

fn host_instance(host: &Host, port: &ServicePort) -> Instance {
    Instance {
        address: host.0.clone(),
        port: port.target_port.unwrap_or(port.number),
        service_port: port.number,
        labels: Default::default(),
        weight: 1,
        sidecar: false,
        identity: None,
        mtls: false,
        topology: Default::default(),
    }
}

fn join_sidecar(
    services: &mut BTreeMap<Host, ServiceView>,
    mesh: &MeshConfig,
    selecting: &[&Service],
    proxy: &Proxy,
    any_ingress: bool,
) {
    let own = proxy.host();
    let mut targets: Vec<Host> = selecting
        .iter()
        .filter(|svc| {
            svc.host != own
                && svc.workload_selector.as_ref().is_some_and(|sel| {
                    in_service_namespace(svc, &proxy.namespace) && labels_match(sel, &proxy.labels)
                })
        })
        .map(|svc| svc.host.clone())
        .collect();
    if mesh.services.contains_key(&own) {
        targets.push(own.clone());
    }
    // The order of the former full scan (by host), for stable output.
    targets.sort();
    if targets.is_empty() {
        services
            .entry(own.clone())
            .or_insert_with(|| implicit_view(own.clone(), proxy.namespace.clone()));
        targets.push(own);
    }
    let ingress = any_ingress.then(|| ingress_of(mesh, proxy)).flatten();
    let mtls = accepts_mtls(mesh, proxy, proxy.app_port);
    for host in targets {
        if let Some(view) = services.get_mut(&host) {
            let added: Vec<Instance> = (view.ports.iter())
                .filter_map(|p| match ingress {
                    Some(ports) => ingress_instance(mesh, proxy, ports, p),
                    None => Some(sidecar_instance(proxy, p, mtls)),
                })
                .collect();
            view.instances.extend(added);
        }
    }
}

/// The ingress listeners of the `Sidecar` that applies to a sidecar (not
/// a gateway), when it has any.
fn ingress_of<'a>(mesh: &'a MeshConfig, proxy: &Proxy) -> Option<&'a [IngressPort]> {
    if proxy.gateway.is_some() {
        return None;
    }
    let root = &mesh.mesh.root_namespace;
    sidecar_for(&mesh.sidecars, &proxy.namespace, &proxy.labels, root)
        .map(|s| s.ingress.as_slice())
        .filter(|ports| !ports.is_empty())
}

/// A sidecar with ingress listeners serves a service port on the listener
/// whose number is the port's target (its `targetPort`, else its number:
/// Istio's endpoint port), on that listener's address. A port no listener
/// serves has no instance on this sidecar: with `ingress`, Istio builds no
/// other inbound listener. A port with its own server `tls` takes no mesh
/// mTLS, so clients are not told to send it (`tlsMode`).
fn ingress_instance(
    mesh: &MeshConfig,
    proxy: &Proxy,
    ingress: &[IngressPort],
    port: &ServicePort,
) -> Option<Instance> {
    let target = port.target_port.unwrap_or(port.number);
    let listener = ingress.iter().find(|i| i.number == target)?;
    let mtls = listener.tls.is_none() && accepts_mtls(mesh, proxy, listener.number);
    Some(Instance {
        address: listener
            .endpoint_address(&proxy.inbound_address)
            .to_string(),
        port: listener.number,
        ..sidecar_instance(proxy, port, mtls)
    })
}

fn sidecar_instance(proxy: &Proxy, port: &ServicePort, mtls: bool) -> Instance {
    if let Some(gw) = &proxy.gateway {
        return gateway_instance(proxy, gw, port);
    }
    Instance {
        address: proxy.inbound_address.clone(),
        port: proxy.inbound_port,
        service_port: port.number,
        labels: proxy.labels.clone(),
        weight: 1,
        sidecar: true,
        identity: Some(proxy.identity()),
        mtls,
        topology: proxy.topology.clone(),
    }
}

/// A gateway that registers itself: reached on its endpoint address and
/// the port its server for `port` listens on. Its servers are not mesh
/// inbound listeners, so clients send it no auto mTLS (`mtls: false`, no
/// `tlsMode: istio`, as Istio's gateways carry none); a `DestinationRule`
/// with ISTIO_MUTUAL sends mTLS to an ISTIO_MUTUAL server and checks the
/// gateway's identity.
fn gateway_instance(proxy: &Proxy, gw: &super::GatewayNode, port: &ServicePort) -> Instance {
    Instance {
        address: gw.endpoint_address.clone().unwrap_or_default(),
        port: gw.listen_port(port.number),
        service_port: port.number,
        labels: proxy.labels.clone(),
        weight: 1,
        sidecar: false,
        identity: Some(proxy.identity()),
        mtls: false,
        topology: proxy.topology.clone(),
    }
}

/// Whether the sidecar's listener for workload port `port` takes mTLS:
/// its `PeerAuthentication` mode there (the app port, or an ingress port:
/// the workload ports Istio keys `portLevelMtls` by) is not DISABLE.
fn accepts_mtls(mesh: &MeshConfig, proxy: &Proxy, port: u16) -> bool {
    let mode = effective_mtls(
        &mesh.peer_authentications,
        &mesh.mesh.root_namespace,
        &proxy.namespace,
        &proxy.labels,
        port,
    );
    mode != MtlsMode::Disable
}

/// Hosts a `VirtualService` or `DestinationRule` names: routed hosts,
/// route and mirror destinations, and rule hosts.
fn named_hosts(mesh: &MeshConfig) -> Vec<Host> {
    let rules = mesh.destination_rule_set.by_host.keys();
    let mut hosts: Vec<Host> = rules
        .chain(mesh.destination_rules.keys())
        .cloned()
        .collect();
    for vs in mesh.virtual_services.values() {
        hosts.extend(vs.hosts.iter().cloned());
        for rule in &vs.http {
            if let RouteAction::Route(dests) = &rule.action {
                hosts.extend(dests.iter().map(|d| d.destination.host.clone()));
            }
            hosts.extend(rule.mirrors.iter().map(|m| m.destination.host.clone()));
        }
    }
    hosts
}

#[cfg(test)]
mod tests;
