//! A gateway proxy's own resources (istiod: `pilot/pkg/networking/core/gateway.go`):
//! one listener per server port of the `Gateway`s that select it, each
//! routing with RDS `http.PORT` whose virtual hosts come from the
//! VirtualServices bound to those Gateways; HTTPS servers terminate TLS
//! with certificates from `credentialName` (served over SDS) or files.

mod l4;
mod sni;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    filter, Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::envoy::config::route::v3::{
    virtual_host::TlsRequirementType, Route, RouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier, StripPortMode},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret as XdsSecret;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::routes;
use super::source::Source;
use super::util::{ads, socket};
use super::Shared;
use crate::config::model::{
    host_matches, Gateway, GatewayProtocol, GatewayServer, MeshConfig, VirtualService,
};
use crate::registry::{GatewayNode, Proxy};

pub use sni::{east_west_port, sni_clusters, sni_for_cluster, SniCluster};
pub(crate) use tls::{client_secrets, downstream as server_tls, Ctx as ServerTlsCtx};
pub use tls::{credential_secret_names, Credential, Credentials};

/// Translated routes of one gateway-bound VirtualService on one server
/// port of one Gateway, by `(VS NAMESPACE/NAME, GATEWAY NAMESPACE/NAME,
/// PORT)`, each with its client conditions; built with the shared
/// resources (they need every service), assembled per gateway proxy.
pub type GatewayRoutes = BTreeMap<GatewayKey, Vec<(Route, Option<Source>)>>;

/// A [`GatewayRoutes`] key: `(VS NAMESPACE/NAME, GATEWAY NAMESPACE/NAME, PORT)`.
pub type GatewayKey = (String, String, u16);

/// Every gateway-bound VirtualService on every server port of the
/// Gateways it binds to.
pub(crate) fn bindings(mesh: &MeshConfig) -> Vec<(GatewayKey, &VirtualService)> {
    let mut out = Vec::new();
    for vs in &mesh.gateway_virtual_services {
        let key = format!("{}/{}", vs.origin.namespace, vs.origin.name);
        for g in mesh.gateways.iter() {
            let gw = g.qualified();
            if !vs.binds_gateway(&gw) {
                continue;
            }
            for port in g.servers.iter().map(|s| s.port) {
                out.push(((key.clone(), gw.clone(), port), &**vs));
            }
        }
    }
    out
}

/// The routes of one binding (see [`bindings`]), with the matches that
/// apply there.
pub(crate) fn binding_routes(
    ctx: routes::Ctx<'_>,
    (_, gw, port): &GatewayKey,
    vs: &VirtualService,
) -> Vec<(Route, Option<Source>)> {
    let here = |m: Option<&_>| super::source::http_bound_here(vs, m, *port, Some(gw));
    (vs.http.iter())
        .flat_map(|rule| super::route_rule::matched_routes(ctx, rule, *port, here))
        .map(|(m, r)| (r, Source::of_http(m)))
        .collect()
}

/// The routes of every binding, under each host's default rule.
pub fn all_routes(ctx: routes::Ctx<'_>) -> GatewayRoutes {
    (bindings(ctx.mesh).into_iter())
        .map(|(key, vs)| {
            let routes = binding_routes(ctx, &key, vs);
            (key, routes)
        })
        .collect()
}

/// Istio's route configuration name for a gateway server port.
pub fn route_name(port: u16) -> String {
    format!("http.{port}")
}

/// What a gateway proxy gets of its own.
#[derive(Debug, Default)]
pub struct GatewayResources {
    /// One listener per server port.
    pub listeners: Vec<Listener>,
    /// `http.PORT` per listener.
    pub routes: Vec<RouteConfiguration>,
    /// Server certificates from `credentialName`.
    pub secrets: Vec<XdsSecret>,
    /// The AUTO_PASSTHROUGH servers' clusters (`outbound_.PORT_.SUBSET_.HOST`).
    pub clusters: Vec<envoy_types::pb::envoy::config::cluster::v3::Cluster>,
    /// Servers left out: `(Gateway NAMESPACE/NAME, server index, why)`.
    pub skipped: Vec<(String, usize, String)>,
}

/// The servers of `gateways` that select `proxy`, by port.
pub(crate) type Ports<'a> = BTreeMap<u16, Vec<(&'a Gateway, usize, &'a GatewayServer)>>;

/// A gateway proxy's listeners, routes and server secrets; `mesh_tls`
/// when the runtime serves it a workload certificate (ISTIO_MUTUAL).
pub fn resources(
    shared: &Shared,
    proxy: &Proxy,
    node: &GatewayNode,
    mesh_tls: bool,
) -> GatewayResources {
    let tls_cx = tls::Ctx {
        credentials: &shared.credentials,
        trust_domain: &shared.mesh.trust_domain,
        mesh_tls,
    };
    // A VirtualService reaches the gateways of the namespaces it is
    // exported to.
    let visible: Vec<_> = (shared.gateway_virtual_services.iter())
        .filter(|vs| vs.export_to.admits(&proxy.namespace))
        .cloned()
        .collect();
    let routes = Bound {
        shared: &shared.gateway_routes,
        variants: &shared.rule_variants,
        profile: shared.rule_variants.profile(proxy),
    };
    let bound = &visible;
    let mut ports: Ports<'_> = BTreeMap::new();
    for gw in shared.gateways.iter().filter(|g| g.selects(&proxy.labels)) {
        for (i, s) in gw.servers.iter().enumerate() {
            ports.entry(s.port).or_default().push((gw, i, s));
        }
    }
    let mut out = GatewayResources::default();
    let mut taken = super::addresses::Taken::gateway(proxy);
    for (port, servers) in &ports {
        // The first server of the port names it when its address is taken.
        let (gw, first, _) = servers[0];
        let mut claim = |out: &mut GatewayResources| {
            let what = format!("server port {port}");
            let at = (node.listen_address.as_str(), node.listen_port(*port));
            let claimed = taken.claim(at.0, at.1, &what);
            claimed.map_err(|why| out.skipped.push((gw.qualified(), first, why)))
        };
        let protocol = servers[0].2.protocol;
        // Config checks reject mixed protocols on one port among gateways
        // that may share a proxy; any left are not served.
        let servers: Vec<_> = servers
            .iter()
            .filter(|s| s.2.protocol == protocol)
            .collect();
        if matches!(protocol, GatewayProtocol::Tcp | GatewayProtocol::Tls) {
            let chains = l4::chains(shared, proxy, (*port, &tls_cx), &servers, &mut out);
            if !chains.is_empty() && claim(&mut out).is_ok() {
                out.listeners.push(listener(*port, node, chains, protocol));
            }
            continue;
        }
        let hcm = hcm(*port, shared, proxy);
        let chains = chains(&servers, &tls_cx, &mut out, &hcm);
        if chains.is_empty() || claim(&mut out).is_err() {
            continue;
        }
        out.routes
            .push(route_config(*port, &servers, bound, &routes, proxy));
        out.listeners.push(listener(*port, node, chains, protocol));
    }
    out
}

/// The filter chains of one port: one plain-text chain, or for HTTPS one
/// per distinct TLS setting, chosen by SNI (the servers' hosts).
fn chains(
    servers: &[&(&Gateway, usize, &GatewayServer)],
    tls_cx: &tls::Ctx<'_>,
    out: &mut GatewayResources,
    hcm: &HttpConnectionManager,
) -> Vec<FilterChain> {
    if servers[0].2.protocol != GatewayProtocol::Https {
        return vec![chain(None, Vec::new(), hcm)];
    }
    let mut result: Vec<FilterChain> = Vec::new();
    let mut seen = Vec::new();
    for (gw, i, s) in servers.iter().map(|s| **s) {
        let Some(t) = &s.tls else { continue };
        let built = tls::downstream(t, &gw.origin.namespace, tls_cx, true);
        let (socket, secrets) = match built {
            Ok(b) => b,
            Err(why) => {
                out.skipped.push((gw.qualified(), i, why));
                continue;
            }
        };
        let names = server_names(s);
        if seen.contains(&(names.clone(), t)) {
            continue;
        }
        seen.push((names.clone(), t));
        for secret in secrets {
            if !out.secrets.iter().any(|x| x.name == secret.name) {
                out.secrets.push(secret);
            }
        }
        result.push(chain(Some(socket), names, hcm));
    }
    result
}

/// SNI names of a server: its hosts, none (any) when one is `*`.
pub(crate) fn server_names(s: &GatewayServer) -> Vec<String> {
    if s.hosts.iter().any(|h| h.host == "*") {
        return Vec::new();
    }
    let names: BTreeSet<String> = s.hosts.iter().map(|h| h.host.clone()).collect();
    names.into_iter().collect()
}

fn chain(
    socket: Option<envoy_types::pb::envoy::config::core::v3::TransportSocket>,
    server_names: Vec<String>,
    hcm: &HttpConnectionManager,
) -> FilterChain {
    FilterChain {
        filter_chain_match: (!server_names.is_empty()).then(|| FilterChainMatch {
            server_names,
            ..Default::default()
        }),
        filters: vec![Filter {
            name: "envoy.filters.network.http_connection_manager".to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm.clone()))),
        }],
        transport_socket: socket,
        ..Default::default()
    }
}

/// The edge's HCM: the client's address is the remote address, and the
/// `Host` port is stripped so that `shop.example.com:8443` matches
/// `shop.example.com`. AuthorizationPolicies that select the gateway's
/// labels apply before the router, as on a sidecar's inbound side; its
/// Telemetry (access logs, tracing) applies as to a client.
fn hcm(port: u16, shared: &Shared, proxy: &Proxy) -> HttpConnectionManager {
    let router = HttpFilter {
        name: "envoy.filters.http.router".to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    };
    // JWT before RBAC: RBAC matches the payload the JWT filter verified.
    let mut http_filters: Vec<HttpFilter> = super::jwt::http_filter(&shared.jwt, proxy)
        .into_iter()
        .collect();
    http_filters.extend(super::rbac::http_filters(&shared.authz, proxy));
    http_filters.extend(super::ratelimit::http_filters(shared, proxy));
    // After authorization: a preflight is a request like any other.
    http_filters.push(super::cors::http_filter());
    http_filters.push(router);
    let mut hcm = HttpConnectionManager {
        stat_prefix: format!("outbound_0.0.0.0_{port}"),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_name(port),
        })),
        http_filters,
        use_remote_address: Some(BoolValue { value: true }),
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        upgrade_configs: vec![super::listeners::websocket()],
        ..Default::default()
    };
    super::jwt::local_reply::apply(&mut hcm);
    super::telemetry::apply(
        &mut hcm,
        shared,
        proxy,
        super::telemetry::Direction::Outbound,
    );
    hcm
}

fn listener(
    port: u16,
    node: &GatewayNode,
    filter_chains: Vec<FilterChain>,
    protocol: GatewayProtocol,
) -> Listener {
    let listener_filters = match protocol {
        GatewayProtocol::Https | GatewayProtocol::Tls => vec![super::inbound::tls_inspector()],
        _ => Vec::new(),
    };
    Listener {
        name: format!("{}_{port}", node.listen_address),
        address: Some(socket(&node.listen_address, node.listen_port(port))),
        listener_filters,
        filter_chains,
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

/// A gateway proxy's routes per binding: the shared ones, or those of the
/// rules it sees where it sees another rule than a host's default (only a
/// consistent hash changes a route).
struct Bound<'a> {
    shared: &'a GatewayRoutes,
    variants: &'a super::rules::RuleVariants,
    profile: super::rules::Profile,
}

impl Bound<'_> {
    fn get(&self, key: &GatewayKey) -> &[(Route, Option<Source>)] {
        let varied = self.variants.gateway_routes(key, &self.profile);
        varied.unwrap_or_else(|| self.shared.get(key).map_or(&[], Vec::as_slice))
    }
}

/// `http.PORT`: a redirecting server's hosts answer 301 to https; else
/// one virtual host per bound VirtualService, with the hosts the servers
/// admit (a domain two claim gets the routes of both, in order).
fn route_config(
    port: u16,
    servers: &[&(&Gateway, usize, &GatewayServer)],
    bound: &[Arc<VirtualService>],
    routes: &Bound<'_>,
    proxy: &Proxy,
) -> RouteConfiguration {
    let mut used = BTreeSet::new();
    let mut vhosts = Vec::new();
    for (gw, _, s) in servers.iter().map(|s| **s) {
        if s.tls.as_ref().is_some_and(|t| t.https_redirect) {
            let domains = claim(&mut used, s.hosts.iter().map(|h| h.host.clone()));
            if !domains.is_empty() {
                vhosts.push(redirect_vhost(&gw.qualified(), port, domains));
            }
            continue;
        }
        // VirtualServices with only tcp/tls rules claim no HTTP domain.
        for vs in bound
            .iter()
            .filter(|vs| vs.binds_gateway(&gw.qualified()) && !vs.http.is_empty())
        {
            let ns = &vs.origin.namespace;
            let admitted = vs.hosts.iter().flat_map(|h| {
                (s.hosts.iter().filter(|sh| sh.admits(ns, h.as_str()))).map(|sh| {
                    let specific = host_matches(&sh.host, h.as_str());
                    if specific {
                        h.0.clone()
                    } else {
                        sh.host.clone()
                    }
                })
            });
            let admitted: Vec<String> = admitted.collect();
            let key = (format!("{ns}/{}", vs.origin.name), gw.qualified(), port);
            let (labels, namespace) = (&proxy.labels, proxy.namespace.as_str());
            let here = (routes.get(&key).iter())
                .filter(|(_, source)| source.as_ref().is_none_or(|s| s.holds(labels, namespace)))
                .map(|(r, _)| r.clone());
            let here: Vec<Route> = here.collect();
            // A VirtualService whose matches all name other ports (or
            // gateways) claims no domain here.
            if here.is_empty() {
                continue;
            }
            let taken: Vec<String> = (admitted.iter())
                .filter(|d| used.contains(*d))
                .cloned()
                .collect();
            let domains = claim(&mut used, admitted.into_iter());
            merge_taken(&mut vhosts, &taken, &here, &key.0);
            if !domains.is_empty() {
                vhosts.push(VirtualHost {
                    name: format!("{}:{port}", key.0),
                    domains,
                    routes: here,
                    ..Default::default()
                });
            }
        }
    }
    RouteConfiguration {
        name: route_name(port),
        virtual_hosts: vhosts,
        ..Default::default()
    }
}

/// Istio merges several VirtualServices for one host on a gateway: the
/// routes of a later one (by namespace and name) follow the earlier's on
/// the domains both claim. A virtual host that also serves other domains
/// is split, so that those keep their own routes.
fn merge_taken(vhosts: &mut Vec<VirtualHost>, taken: &[String], routes: &[Route], name: &str) {
    if routes.is_empty() {
        return;
    }
    // An https redirect (`require_tls`) answers before any route.
    let owner = |v: &VirtualHost, d: &String| v.domains.contains(d) && v.require_tls == 0;
    let owners: BTreeSet<usize> = (taken.iter())
        .filter_map(|d| vhosts.iter().position(|v| owner(v, d)))
        .collect();
    for j in owners {
        let (shared, rest): (Vec<String>, Vec<String>) =
            (vhosts[j].domains.iter().cloned()).partition(|d| taken.contains(d));
        if rest.is_empty() {
            vhosts[j].routes.extend_from_slice(routes);
            continue;
        }
        vhosts[j].domains = rest;
        let mut merged = vhosts[j].clone();
        merged.name = format!("{}+{name}", merged.name);
        merged.domains = shared;
        merged.routes.extend_from_slice(routes);
        vhosts.push(merged);
    }
}

/// The domains of `hosts` not claimed yet (Envoy refuses a domain twice).
fn claim(used: &mut BTreeSet<String>, hosts: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for h in hosts {
        if used.insert(h.clone()) {
            out.push(h);
        }
    }
    out
}

/// Every request to `domains` answered with a 301 to https (Envoy's
/// `require_tls: ALL` redirect comes before any route).
fn redirect_vhost(gateway: &str, port: u16, domains: Vec<String>) -> VirtualHost {
    VirtualHost {
        name: format!("{gateway}:{port}:https-redirect"),
        domains,
        require_tls: TlsRequirementType::All as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod api_tests;
