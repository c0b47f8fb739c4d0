//! Gateway API attachment: the HTTPRoutes and GRPCRoutes become one
//! VirtualService per host they serve on Gateways (hosts: their hostnames
//! within the listeners'), bound to those Gateways, and one mesh
//! VirtualService per Service parent (GAMMA); several routes for one host
//! merge (`merge`). References into other namespaces need a
//! ReferenceGrant there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod kinds;
mod merge;

use merge::Part;

use crate::config::convert::gateway_api::{
    KubeGateway, KubeRoute, ListenerInfo, ParentTarget, Rank,
};
use crate::config::convert::{DestRef, DocInfo};
use crate::config::diag::Diagnostic;
use crate::config::load::GatewayApi;
use crate::config::model::{host_matches, Host, HttpRoute, Protocol, Service, VirtualService};

/// VirtualServices with their documents and host paths, as the loader
/// keeps them.
pub(super) type Routed = Vec<(Arc<DocInfo>, Vec<String>, VirtualService)>;
/// Gateways routes attach to: document, path, `NAMESPACE/NAME`.
pub(super) type GatewayRefs = Vec<(Arc<DocInfo>, String, String)>;

/// Attaches every route; errors for what cannot attach or is not granted.
pub(super) fn attach(
    api: GatewayApi,
    services: &BTreeMap<Host, Service>,
    refs: &[DestRef],
    diags: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> (Routed, GatewayRefs) {
    for (doc, r) in &api.cross {
        if !api.grants.iter().any(|g| g.allows(&doc.namespace, r)) {
            let msg = format!(
                "{} {} may not refer to {} {}/{} in another namespace: no ReferenceGrant in namespace {} allows {}s of namespace {} to",
                doc.kind, doc.qualified(), r.to_kind, r.to_namespace, r.to_name,
                r.to_namespace, r.from_kind, doc.namespace
            );
            diags.push(doc.diagnostic(&r.path, msg));
        }
    }
    grpc_backends(refs, services, diags);
    route_all(&api, services, diags, warnings)
}

/// Every route attached and merged per host: the VirtualServices, and
/// the Gateways the routes refer to.
fn route_all(
    api: &GatewayApi,
    services: &BTreeMap<Host, Service>,
    diags: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> (Routed, GatewayRefs) {
    let gateways: BTreeMap<&str, &KubeGateway> = (api.gateways.iter())
        .map(|(_, g)| (g.qualified.as_str(), g))
        .collect();
    let mut gateway_refs = Vec::new();
    let mut on_gateways: BTreeMap<String, (BTreeSet<String>, Vec<Part>)> = BTreeMap::new();
    let mut on_services: BTreeMap<Host, (String, Vec<Part>)> = BTreeMap::new();
    for (doc, route) in &api.routes {
        let bound = to_gateways(doc, route, &gateways, diags);
        gateway_refs
            .extend((bound.iter()).map(|b| (doc.clone(), b.path.clone(), b.gateway.clone())));
        for (host, (gws, part)) in gateway_parts(doc, route, &bound) {
            let entry = on_gateways.entry(host).or_default();
            entry.0.extend(gws);
            entry.1.push(part);
        }
        for (host, ns, part) in to_services(doc, route, services, diags) {
            let entry = on_services.entry(host).or_insert_with(|| (ns, Vec::new()));
            entry.1.push(part);
        }
    }
    kinds::on_gateways(&mut on_gateways, warnings);
    kinds::on_services(&mut on_services, services, warnings);
    let mut routed: Routed = (on_gateways.into_iter())
        .filter_map(|(host, (gws, parts))| merge::gateway_vs(&host, gws, parts))
        .collect();
    routed.extend(
        (on_services.into_iter())
            .filter_map(|(host, (ns, parts))| merge::mesh_vs(&host, &ns, parts)),
    );
    (routed, gateway_refs)
}

/// A GRPCRoute's backends must speak HTTP/2: Envoy talks to a Service
/// port as its protocol says.
fn grpc_backends(
    refs: &[DestRef],
    services: &BTreeMap<Host, Service>,
    diags: &mut Vec<Diagnostic>,
) {
    for r in refs.iter().filter(|r| r.doc.kind == "GRPCRoute") {
        let d = &r.destination;
        let port = services
            .get(&d.host)
            .and_then(|s| s.ports.iter().find(|p| Some(p.number) == d.port));
        if let Some(p) = port.filter(|p| !matches!(p.protocol, Protocol::Grpc | Protocol::Http2)) {
            let msg = format!("port {} of {} is not gRPC or HTTP/2 (name it `grpc-…` or set appProtocol: grpc): a GRPCRoute backend must speak HTTP/2", p.number, d.host);
            diags.push(r.doc.diagnostic(&r.path, msg));
        }
    }
}

/// One Gateway parent, attached.
struct Bound {
    path: String,
    gateway: String,
    /// The hosts the route serves there.
    hosts: BTreeSet<String>,
    /// The listener ports, when the parentRef chose some of them.
    ports: Option<BTreeSet<u16>>,
}

fn to_gateways(
    doc: &Arc<DocInfo>,
    route: &KubeRoute,
    gateways: &BTreeMap<&str, &KubeGateway>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Bound> {
    let mut out = Vec::new();
    for p in &route.parents {
        let ParentTarget::Gateway {
            qualified,
            section,
            port,
        } = &p.target
        else {
            continue;
        };
        let Some(gw) = gateways.get(qualified.as_str()) else {
            let msg = format!("unknown Gateway {qualified}: no gateway.networking.k8s.io Gateway of that namespace and name");
            diags.push(doc.diagnostic(&p.path, msg));
            continue;
        };
        let chosen: Vec<&ListenerInfo> = (gw.listeners.iter())
            .filter(|l| {
                section.as_ref().is_none_or(|s| *s == l.name) && port.is_none_or(|n| n == l.port)
            })
            .collect();
        if chosen.is_empty() {
            let msg =
                format!("Gateway {qualified} has no listener named {section:?} on port {port:?}");
            diags.push(doc.diagnostic(&p.path, msg));
            continue;
        }
        let admitted: Vec<&ListenerInfo> = (chosen.iter().copied())
            .filter(|l| {
                l.kinds.contains(&doc.kind)
                    && (l.all_namespaces
                        || gw.qualified.starts_with(&format!("{}/", doc.namespace)))
            })
            .collect();
        if admitted.is_empty() {
            let names: Vec<&str> = chosen.iter().map(|l| l.name.as_str()).collect();
            let msg = format!("no listener of Gateway {qualified} ({}) admits a {} of namespace {} (see their allowedRoutes: kinds, namespaces)", names.join(", "), doc.kind, doc.namespace);
            diags.push(doc.diagnostic(&p.path, msg));
            continue;
        }
        let hosts = hosts(&route.hostnames, &admitted);
        if hosts.is_empty() {
            let msg = format!(
                "no hostname of this route falls under a listener hostname of Gateway {qualified}"
            );
            diags.push(doc.diagnostic("spec.hostnames", msg));
            continue;
        }
        // The route applies only on the listeners that admit it: name
        // their ports unless it is every listener of the Gateway.
        let every = admitted.len() == gw.listeners.len();
        let ports = (section.is_some() || port.is_some() || !every)
            .then(|| admitted.iter().map(|l| l.port).collect());
        out.push(Bound {
            path: p.path.clone(),
            gateway: qualified.clone(),
            hosts,
            ports,
        });
    }
    out
}

/// The route's hostnames within the listeners' (the more specific of two
/// that overlap); with none, the listeners' own (`*` for any).
fn hosts(hostnames: &[(String, String)], listeners: &[&ListenerInfo]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in listeners {
        let Some(lh) = &l.hostname else {
            if hostnames.is_empty() {
                out.insert("*".to_string());
            }
            out.extend(hostnames.iter().map(|(_, h)| h.clone()));
            continue;
        };
        if hostnames.is_empty() {
            out.insert(lh.clone());
        }
        for (_, h) in hostnames {
            if host_matches(lh, h) {
                out.insert(h.clone());
            } else if host_matches(h, lh) {
                out.insert(lh.clone());
            }
        }
    }
    out
}

/// A route's rules for each host it serves on gateways, each match
/// naming the gateway (and listener ports) it applies on, so the rules of
/// routes on other gateways can share the host's VirtualService.
fn gateway_parts(
    doc: &Arc<DocInfo>,
    route: &KubeRoute,
    bound: &[Bound],
) -> BTreeMap<String, (BTreeSet<String>, Part)> {
    let mut targets: BTreeMap<&String, Vec<(String, Option<u16>)>> = BTreeMap::new();
    for b in bound {
        let ports: Vec<Option<u16>> = match &b.ports {
            None => vec![None],
            Some(ports) => ports.iter().copied().map(Some).collect(),
        };
        for host in &b.hosts {
            let t = targets.entry(host).or_default();
            t.extend(ports.iter().map(|p| (b.gateway.clone(), *p)));
        }
    }
    (targets.into_iter())
        .map(|(host, t)| {
            let gws = t.iter().map(|(g, _)| g.clone()).collect();
            let part = Part {
                doc: doc.clone(),
                path: "spec.hostnames".to_string(),
                created: route.created.clone(),
                rules: restrict(&route.http, &t),
            };
            (host.clone(), (gws, part))
        })
        .collect()
}

/// Each rule's matches repeated for each `(gateway, port)`.
fn restrict(
    http: &[(Rank, HttpRoute)],
    targets: &[(String, Option<u16>)],
) -> Vec<(Rank, HttpRoute)> {
    let mut out = http.to_vec();
    for (_, rule) in &mut out {
        rule.matches = (rule.matches.iter())
            .flat_map(|m| {
                targets.iter().map(move |(g, port)| {
                    let mut m = m.clone();
                    m.gateways = Some(vec![g.clone()]);
                    m.port = *port;
                    m
                })
            })
            .collect();
    }
    out
}

/// The route's part of each Service parent's routing (GAMMA), with the
/// Service's namespace: the route routes that Service's sidecar traffic,
/// on its `port` if given.
fn to_services(
    doc: &Arc<DocInfo>,
    route: &KubeRoute,
    services: &BTreeMap<Host, Service>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(Host, String, Part)> {
    let mut out = Vec::new();
    for p in &route.parents {
        let ParentTarget::Service {
            host,
            namespace,
            port,
        } = &p.target
        else {
            continue;
        };
        let Some(service) = services.get(host) else {
            let msg = format!("unknown Service {host}: no Service or ServiceEntry declares it");
            diags.push(doc.diagnostic(&p.path, msg));
            continue;
        };
        if let Some(n) = port.filter(|n| !service.ports.iter().any(|sp| sp.number == *n)) {
            diags.push(doc.diagnostic(
                &format!("{}.port", p.path),
                format!("port {n} is not a port of {host}"),
            ));
            continue;
        }
        let mut rules = route.http.clone();
        if let Some(n) = port {
            (rules.iter_mut().flat_map(|(_, r)| &mut r.matches)).for_each(|m| m.port = Some(*n));
        }
        let part = Part {
            doc: doc.clone(),
            path: p.path.clone(),
            created: route.created.clone(),
            rules,
        };
        out.push((host.clone(), namespace.clone(), part));
    }
    out
}
