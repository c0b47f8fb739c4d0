//! The shared outbound `RouteConfiguration`: one virtual host per service
//! port, reached by `Host`/`:authority`, with the VirtualService's
//! rules or the default route (istiod: `route/route.go`,
//! `BuildSidecarVirtualHostWrapper`).

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{
    route, route_action, route_match, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost,
};

use super::clusters::cluster_name;
use super::passthrough;
use super::policy::effective;
use super::retry;
use super::route_rule;
use super::source::{http_bound_here, Source, SourceRoutes};
use crate::config::model::{
    Destination, DestinationRule, HashKey, Host, HttpMatch, LoadBalancer, MeshConfig, ServicePort,
    VirtualService,
};
use crate::registry::{ServiceInstances, ServiceView};

/// Name of the outbound route configuration (fetched over RDS).
pub const OUTBOUND_ROUTE: &str = "outbound";

/// What route translation needs to resolve destinations.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The config.
    pub mesh: &'a MeshConfig,
    /// Every service.
    pub services: &'a ServiceInstances,
    /// The rules some proxies see instead of the default ones
    /// (`translate::rules`): `None` under a host means no rule.
    pub overrides: Option<&'a BTreeMap<Host, Option<Arc<DestinationRule>>>>,
}

impl<'a> Ctx<'a> {
    /// The context of the shared routes (every host's default rule).
    pub fn new(mesh: &'a MeshConfig, services: &'a ServiceInstances) -> Self {
        Ctx {
            mesh,
            services,
            overrides: None,
        }
    }

    /// This context with the rules of `overrides` in place of the defaults.
    pub fn with<'b>(self, overrides: &'b BTreeMap<Host, Option<Arc<DestinationRule>>>) -> Ctx<'b>
    where
        'a: 'b,
    {
        Ctx {
            mesh: self.mesh,
            services: self.services,
            overrides: Some(overrides),
        }
    }

    /// Istio's `GetDestinationCluster` port choice: the destination's port,
    /// else the service's only port, else the port being routed.
    pub fn dest_port(&self, d: &Destination, listener_port: u16) -> u16 {
        if let Some(p) = d.port {
            return p;
        }
        match self.services.services.get(&d.host) {
            Some(v) if v.ports.len() == 1 => v.ports[0].number,
            Some(v) if !v.ports.iter().any(|p| p.number == listener_port) => v.ports[0].number,
            _ => listener_port,
        }
    }

    /// The cluster a destination resolves to.
    pub fn cluster(&self, d: &Destination, listener_port: u16) -> String {
        let port = self.dest_port(d, listener_port);
        cluster_name(port, d.subset.as_deref(), d.host.as_str())
    }

    /// The consistent-hash key of the destination's cluster, if its
    /// effective load balancer hashes (so the route must carry it).
    pub fn hash_key(&self, d: &Destination, listener_port: u16) -> Option<&'a HashKey> {
        let dr = match self.overrides.and_then(|o| o.get(&d.host)) {
            Some(rule) => rule.as_deref()?,
            None => self.mesh.destination_rules.get(&d.host)?.as_ref(),
        };
        let subset = d
            .subset
            .as_ref()
            .and_then(|name| dr.subsets.iter().find(|s| &s.name == name));
        match effective(Some(dr), self.dest_port(d, listener_port), subset).load_balancer {
            Some(LoadBalancer::ConsistentHash(key, _)) => Some(key),
            _ => None,
        }
    }
}

/// A route configuration whose virtual hosts are shared: a virtual host
/// that did not change keeps its `Arc` from one translation to the next,
/// so it is neither copied into the next one nor encoded again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedRoutes {
    /// The configuration's fields but its virtual hosts.
    pub shell: RouteConfiguration,
    /// Its virtual hosts, in order.
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
}

impl SharedRoutes {
    /// The configuration's name.
    pub fn name(&self) -> &str {
        &self.shell.name
    }

    /// The whole configuration as one message.
    pub fn to_config(&self) -> RouteConfiguration {
        assemble(&self.shell, &self.virtual_hosts)
    }
}

/// A route configuration from its fields but the virtual hosts (`shell`)
/// and shared virtual hosts.
pub fn assemble(shell: &RouteConfiguration, vhosts: &[Arc<VirtualHost>]) -> RouteConfiguration {
    RouteConfiguration {
        virtual_hosts: vhosts.iter().map(|v| (**v).clone()).collect(),
        ..shell.clone()
    }
}

/// The outbound route configuration: a virtual host per service port.
/// HTTP ports route requests; every port, TCP and TLS ones too, takes
/// `CONNECT HOST:PORT` (an `https_proxy` client's tunnel) to its cluster.
#[cfg(test)]
pub fn outbound(ctx: Ctx<'_>) -> RouteConfiguration {
    outbound_with_sources(ctx, None).0.to_config()
}

/// What a virtual host's domains are made from: its service's host, the
/// port, whether the port is the service's default, whether it is HTTP.
type Named<'a> = (&'a Host, u16, bool, bool);

/// The outbound route configuration for every service's HTTP ports, and
/// its routes that only some clients get (`sourceLabels`,
/// `sourceNamespace`). Virtual hosts none of whose inputs changed since
/// `previous` are taken from it (equal to a fresh translation, the same
/// `Arc`).
pub fn outbound_with_sources(
    ctx: Ctx<'_>,
    previous: Option<Previous<'_>>,
) -> (SharedRoutes, SourceRoutes) {
    let reuse = previous.map(|p| reuse::Reuse::new(p, ctx));
    let mut vhosts = Vec::new();
    let mut named: Vec<Named<'_>> = Vec::new();
    let mut sources = SourceRoutes::default();
    for view in ctx.services.services.values() {
        let default_port = default_port(view);
        for port in &view.ports {
            let http = port.protocol.is_http();
            let bare = http && Some(port.number) == default_port;
            let name = format!("{}:{}", view.host, port.number);
            named.push((&view.host, port.number, bare, http));
            let kept = (reuse.as_ref()).and_then(|r| r.vhost(ctx, &view.host, &name));
            vhosts.push(match kept {
                Some((vhost, kept_sources)) => {
                    for (index, source) in kept_sources {
                        sources.add(&name, index, source);
                    }
                    vhost
                }
                None => {
                    let routes =
                        port_routes(ctx, &view.host, port.number, http, &name, &mut sources);
                    Arc::new(VirtualHost {
                        name,
                        routes,
                        ..Default::default()
                    })
                }
            });
        }
    }
    // Domains depend only on every service's ports and addresses: when
    // none changed, each virtual host keeps its last ones.
    if !reuse.as_ref().is_some_and(|r| r.take_domains(&mut vhosts)) {
        assign_domains(&mut vhosts, &candidates(ctx, &named));
    }
    let shell = RouteConfiguration {
        name: OUTBOUND_ROUTE.to_string(),
        ..Default::default()
    };
    let config = SharedRoutes {
        shell,
        virtual_hosts: vhosts,
    };
    (config, sources)
}

/// Each virtual host's candidate domains.
fn candidates(ctx: Ctx<'_>, named: &[Named<'_>]) -> Vec<Vec<Candidate>> {
    (named.iter())
        .map(|&(host, port, bare, http)| {
            let mut names = domains(host, port, bare);
            if http {
                names.extend(address_domains(ctx, host, port, bare));
            }
            names
        })
        .collect()
}

/// The routes of `vs`'s http rules whose matches apply on sidecars at
/// `port`, appended to `out`; those with client conditions are recorded in
/// `sources` by their index in `out`.
fn sidecar_routes(
    ctx: Ctx<'_>,
    vs: &VirtualService,
    port: u16,
    (vhost, sources): (&str, &mut SourceRoutes),
    out: &mut Vec<Route>,
) {
    for rule in &vs.http {
        let here = |m: Option<&HttpMatch>| http_bound_here(vs, m, port, None);
        for (m, route) in route_rule::matched_routes(ctx, rule, port, here) {
            if let Some(source) = Source::of_vs_http(vs, m) {
                sources.add(vhost, out.len(), source);
            }
            out.push(route);
        }
    }
}

/// A service port's routes: `CONNECT` first, tunnelled to the port's
/// cluster whatever the VirtualService says (its rules match requests, a
/// tunnel has none); then, on an HTTP port, the VirtualService's `http`
/// rules that apply on sidecars, or the default route when none does (no
/// VirtualService, or only tcp/tls or gateway rules), as in Istio.
fn port_routes(
    ctx: Ctx<'_>,
    host: &Host,
    port: u16,
    http: bool,
    vhost: &str,
    sources: &mut SourceRoutes,
) -> Vec<Route> {
    let connect = passthrough::connect_route(&cluster_name(port, None, host.as_str()));
    let mut routes = vec![connect];
    if !http {
        return routes;
    }
    let vs = ctx.mesh.virtual_services.get(host);
    if let Some(vs) = vs {
        sidecar_routes(ctx, vs, port, (vhost, sources), &mut routes);
    }
    if routes.len() == 1 {
        routes.push(default_route(ctx, host, port));
    } else if let Some(outside) = vs.and_then(|vs| Source::not_exported(vs)) {
        // Where the VirtualService is not exported, its host routes as
        // if it had none.
        sources.add(vhost, routes.len(), outside);
        routes.push(default_route(ctx, host, port));
    }
    routes
}

/// One service port's routes (its virtual host's), as in the shared
/// route configuration.
pub(super) fn vhost_routes(ctx: Ctx<'_>, host: &Host, port: &ServicePort) -> Vec<Route> {
    let name = format!("{host}:{}", port.number);
    let mut scratch = SourceRoutes::default();
    let http = port.protocol.is_http();
    port_routes(ctx, host, port.number, http, &name, &mut scratch)
}

/// The hosts whose rules a virtual host of `host` reads: its own and every
/// host its VirtualService routes or mirrors to.
pub(super) fn hosts_read(ctx: Ctx<'_>, host: &Host) -> Vec<Host> {
    let vs = ctx.mesh.virtual_services.get(host);
    let routed = vs.into_iter().flat_map(|vs| reuse::routed_hosts(vs));
    std::iter::once(host).chain(routed).cloned().collect()
}

/// The port a bare `Host` (no `:port`) means: 80 if the service has it,
/// else its first HTTP port.
fn default_port(view: &ServiceView) -> Option<u16> {
    let http = || view.ports.iter().filter(|p| p.protocol.is_http());
    http()
        .find(|p| p.number == 80)
        .or_else(|| http().next())
        .map(|p| p.number)
}

/// Route with no VirtualService: everything to the port's cluster, with
/// Istio's default retries and no timeout (`BuildDefaultHTTPOutboundRoute`).
fn default_route(ctx: Ctx<'_>, host: &Host, port: u16) -> Route {
    let dest = Destination {
        host: host.clone(),
        subset: None,
        port: Some(port),
    };
    let hash = ctx.hash_key(&dest, port);
    let timeout = retry::route_timeout(None);
    Route {
        name: "default".to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                ctx.cluster(&dest, port),
            )),
            timeout: Some(timeout),
            retry_policy: retry::policy(None, hash.is_some()),
            hash_policy: hash.map(route_rule::hash_policy).into_iter().collect(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A domain and its claim strength: lower wins when two virtual hosts
/// would share it (Envoy rejects duplicate domains in one route config).
type Candidate = (String, u8);

/// Domains for one service port: the FQDN, `name.ns.svc`, `name.ns` and
/// the short name (cluster-local hosts), each with `:PORT`, and bare on
/// the default port. Short names are only unique per namespace, so they
/// rank below full names, and `default`'s win over other namespaces'.
/// The `:PORT` forms stay although Envoy could strip the port before
/// choosing a virtual host (`strip_any_host_port`): every port shares the
/// one outbound route configuration, so the port in `Host` (and in
/// `CONNECT HOST:PORT`, which Envoy 1.40 strips too) is what picks a
/// multi-port service's port; and the four extra names cost Envoy no
/// measurable apply time and about 0.6 KB of heap per service
/// (bench/route-shape.py).
fn domains(host: &Host, port: u16, bare: bool) -> Vec<Candidate> {
    let mut names: Vec<Candidate> = vec![(host.0.clone(), 0)];
    if let Some((name, ns)) = host.cluster_local_parts() {
        names.push((format!("{name}.{ns}.svc"), 0));
        names.push((format!("{name}.{ns}"), 0));
        names.push((name.to_string(), if ns == "default" { 1 } else { 2 }));
    }
    let mut out = Vec::new();
    for (name, rank) in names {
        out.push((format!("{name}:{port}"), rank));
        if bare {
            out.push((name, rank));
        }
    }
    out
}

/// The service's single `addresses` (VIPs) as `Host` names of an HTTP
/// port, as istiod adds a service's VIP to its virtual host: an app that
/// calls the VIP (`Host: 10.0.0.5:8080`) reaches the service. Blocks are
/// refused on HTTP ports when the config is read.
fn address_domains(ctx: Ctx<'_>, host: &Host, port: u16, bare: bool) -> Vec<Candidate> {
    let Some(service) = ctx.mesh.services.get(host) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for cidr in &service.addresses {
        let name = match cidr.addr {
            std::net::IpAddr::V4(a) => a.to_string(),
            std::net::IpAddr::V6(a) => format!("[{a}]"),
        };
        out.push((format!("{name}:{port}"), 0));
        if bare {
            out.push((name, 0));
        }
    }
    out
}

fn assign_domains(vhosts: &mut [Arc<VirtualHost>], candidates: &[Vec<Candidate>]) {
    let mut owner: BTreeMap<&str, (u8, usize)> = BTreeMap::new();
    for (idx, list) in candidates.iter().enumerate() {
        for (domain, rank) in list {
            let claim = (*rank, idx);
            owner
                .entry(domain.as_str())
                .and_modify(|cur| *cur = (*cur).min(claim))
                .or_insert(claim);
        }
    }
    for (idx, list) in candidates.iter().enumerate() {
        let domains: Vec<String> = list
            .iter()
            .filter(|(d, _)| owner.get(d.as_str()).map(|o| o.1) == Some(idx))
            .map(|(d, _)| d.clone())
            .collect();
        // A virtual host taken from the last translation stays shared
        // when its domains are the same.
        if vhosts[idx].domains != domains {
            Arc::make_mut(&mut vhosts[idx]).domains = domains;
        }
    }
}

pub(super) mod reuse;
#[cfg(test)]
mod tests;

pub use reuse::Previous;
