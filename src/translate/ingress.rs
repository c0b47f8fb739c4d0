//! A sidecar's `Sidecar.ingress[]` listeners (Istio's
//! `IstioIngressListener`; istiod builds them in
//! `pilot/pkg/networking/core/listener_inbound.go`,
//! `buildInboundChainConfigs` from `sidecarScope.Sidecar.Ingress`).
//! When a proxy's Sidecar has any, they are its only inbound listeners.
//! Each one listens on `bind:port.number` (the sidecar's inbound address
//! by default), serves the port with the inbound features of the default
//! listener (mTLS per `PeerAuthentication` on that port, or the entry's
//! own server `tls`; RBAC checking rules' `ports` against it; access
//! logs, stats and tracing) and forwards to `defaultEndpoint` through
//! `inbound|PORT||`.

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::core::v3::{address, Address, Pipe, TrafficDirection};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener, ListenerFilter};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret as XdsSecret;

use super::addresses::Taken;
use super::gateway::{server_tls, ServerTlsCtx};
use super::inbound::{self, Serve};
use super::listeners::{inbound_cluster_name, inbound_hcm, static_cluster, InboundNames};
use super::util::socket;
use super::{ProxySecurity, Shared};
use crate::config::model::{sidecar_for, IngressEndpoint, IngressPort, Protocol, SidecarScope};
use crate::registry::Proxy;

/// The `Sidecar` that applies to `proxy` when it has ingress listeners.
pub fn sidecar_with_ingress<'a>(shared: &'a Shared, proxy: &Proxy) -> Option<&'a SidecarScope> {
    let root = &shared.mesh.root_namespace;
    sidecar_for(&shared.sidecars, &proxy.namespace, &proxy.labels, root)
        .filter(|s| !s.ingress.is_empty())
}

/// What a proxy's ingress listeners need of its own resources.
#[derive(Default)]
pub struct Built {
    /// One listener per port that could be built.
    pub listeners: Vec<Listener>,
    /// `inbound|PORT||` per port, in the Sidecar's order.
    pub clusters: Vec<XdsCluster>,
    /// The server certificates of ports with `tls.credentialName`.
    pub secrets: Vec<XdsSecret>,
    /// Ports left out: `(Sidecar, entry index, why)`.
    pub skipped: Vec<(String, usize, String)>,
}

/// The listeners and clusters of every ingress entry of `sc`.
/// A port on an address `taken` holds is left out ([`Taken`]).
pub fn build(
    shared: &Shared,
    proxy: &Proxy,
    security: &ProxySecurity,
    sc: &SidecarScope,
    taken: &mut Taken,
) -> Built {
    let mut out = Built::default();
    for (i, p) in sc.ingress.iter().enumerate() {
        out.clusters.push(cluster(proxy, p));
        let what = format!("ingress port {} ({})", p.name, p.number);
        // Claimed once built: a port left out for its credential holds nothing.
        let built = listener(shared, proxy, security, p).and_then(|built| {
            let at = (p.bind_on(&proxy.inbound_address), p.number);
            let app = p.app_address(&proxy.inbound_address);
            taken.claim_before(at, app, &what).map(|()| built)
        });
        match built {
            Ok((l, secrets)) => {
                out.listeners.push(l);
                for s in secrets {
                    if !out.secrets.iter().any(|have| have.name == s.name) {
                        out.secrets.push(s);
                    }
                }
            }
            Err(why) => {
                let name = format!("Sidecar {}/{}", sc.origin.namespace, sc.origin.name);
                out.skipped.push((name, i, why));
            }
        }
    }
    out
}

/// The listener's name: `inbound_PORT` (one listener per port number;
/// Trellis has no `virtualInbound` to hang filter chains on).
pub fn listener_name(port: u16) -> String {
    format!("inbound_{port}")
}

/// True for the name of an ingress listener (`EnvoyFilter` patches them
/// in the SIDECAR_INBOUND context).
pub fn is_ingress_listener(name: &str) -> bool {
    name.strip_prefix("inbound_")
        .is_some_and(|port| port.parse::<u16>().is_ok())
}

/// One ingress listener and the secrets its TLS refers to; `Err` when its
/// `tls.credentialName` is not in the credentials directory.
fn listener(
    shared: &Shared,
    proxy: &Proxy,
    security: &ProxySecurity,
    p: &IngressPort,
) -> Result<(Listener, Vec<XdsSecret>), String> {
    let bind = p.bind_on(&proxy.inbound_address);
    let cluster = inbound_cluster_name(p.number);
    let hcm;
    let tcp;
    let serve = if p.protocol.is_http() {
        let names = InboundNames {
            route: cluster.clone(),
            virtual_host: format!("inbound|http|{}", p.number),
            stat_prefix: format!("inbound_{bind}_{}", p.number),
        };
        hcm = inbound_hcm(shared, proxy, p.number, &cluster, names);
        Serve::Http(&hcm)
    } else {
        tcp = inbound::tcp_filters(shared, proxy, p.number, &cluster);
        Serve::Tcp(&tcp)
    };
    let (listener_filters, filter_chains, secrets) = chains(shared, proxy, security, p, &serve)?;
    let listener = Listener {
        name: listener_name(p.number),
        address: Some(socket(bind, p.number)),
        listener_filters,
        filter_chains,
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    };
    Ok((listener, secrets))
}

type Chains = (Vec<ListenerFilter>, Vec<FilterChain>, Vec<XdsSecret>);

/// The entry's own server TLS when it has `tls` (Istio: TLS for callers
/// outside the mesh, in place of the mesh mTLS), else the chains of its
/// `PeerAuthentication` mode on this port.
fn chains(
    shared: &Shared,
    proxy: &Proxy,
    security: &ProxySecurity,
    p: &IngressPort,
    serve: &Serve<'_>,
) -> Result<Chains, String> {
    let td = &shared.mesh.trust_domain;
    let Some(t) = &p.tls else {
        let mode = inbound::mode(shared, proxy, security, p.number);
        let (filters, chains) = inbound::chains(mode, td, serve);
        return Ok((filters, chains, Vec::new()));
    };
    let cx = ServerTlsCtx {
        credentials: &shared.credentials,
        trust_domain: td,
        mesh_tls: security.mtls,
    };
    let (socket, secrets) = server_tls(t, &proxy.namespace, &cx, p.protocol.is_http())?;
    Ok((Vec::new(), inbound::tls_chain(serve, socket), secrets))
}

/// `inbound|PORT||`: STATIC, to `defaultEndpoint`; HTTP/2 to the app
/// when the port says HTTP2 or GRPC; the entry's connection pool.
pub fn cluster(proxy: &Proxy, p: &IngressPort) -> XdsCluster {
    let address = match &p.endpoint {
        IngressEndpoint::Loopback { ip, port } => socket(ip, *port),
        IngressEndpoint::Instance(port) => socket(&proxy.inbound_address, *port),
        IngressEndpoint::Unix(path) => Address {
            address: Some(address::Address::Pipe(Pipe {
                path: path.clone(),
                mode: 0,
            })),
        },
    };
    let cla = ClusterLoadAssignment {
        cluster_name: inbound_cluster_name(p.number),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(address),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let h2 = matches!(p.protocol, Protocol::Http2 | Protocol::Grpc);
    static_cluster(cla, h2, &p.connection_pool.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests;
