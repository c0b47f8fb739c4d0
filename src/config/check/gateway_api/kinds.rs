//! HTTPRoutes and GRPCRoutes do not merge. Where both kinds reach the same
//! traffic, one is accepted and the other left out, with a warning in
//! place of the `Accepted: False` status a Kubernetes implementation
//! would write:
//!
//! - on a Gateway listener, of an HTTPRoute and a GRPCRoute serving one
//!   hostname, the older route by `creationTimestamp` (then the first by
//!   `NAMESPACE/NAME`) is accepted (GRPCRoute's `hostnames`);
//! - on a Service and port (GAMMA), the GRPCRoute is (GEP-1294, "Route
//!   types").
//!
//! Hostnames intersect when they are equal or a wildcard of one covers
//! the other.

use std::collections::{BTreeMap, BTreeSet};

use super::merge::Part;
use crate::config::diag::Diagnostic;
use crate::config::model::{host_matches, Host, Service};

const HTTP: &str = "HTTPRoute";
const GRPC: &str = "GRPCRoute";

/// A route: `(kind, NAMESPACE/NAME)`.
type RouteKey = (String, String);
/// Where a rule applies: a Gateway (`NAMESPACE/NAME`, `None` on a
/// Service) and a port (`None`: every port).
type Target = (Option<String>, Option<u16>);

fn key(p: &Part) -> RouteKey {
    (p.doc.kind.clone(), p.doc.qualified())
}

/// Every target the part's rules apply at.
fn targets(p: &Part) -> BTreeSet<Target> {
    (p.rules.iter().flat_map(|(_, r)| &r.matches))
        .map(|m| {
            let gw = m.gateways.as_ref().and_then(|g| g.first().cloned());
            (gw, m.port)
        })
        .collect()
}

/// Same Gateway (or both on a Service), and ports that meet (`None` is
/// every port).
fn overlap(a: &Target, b: &Target) -> bool {
    a.0 == b.0 && (a.1.is_none() || b.1.is_none() || a.1 == b.1)
}

/// Leaves out, on Gateway listeners, the later of an HTTPRoute and a
/// GRPCRoute whose hostnames there intersect (the same, or one a wildcard
/// of the other covers): the loser is left out on that listener for every
/// hostname, as the spec rejects the whole route there.
pub(super) fn on_gateways(
    on: &mut BTreeMap<String, (BTreeSet<String>, Vec<Part>)>,
    warnings: &mut Vec<Diagnostic>,
) {
    let mut lost: BTreeMap<RouteKey, BTreeSet<Target>> = BTreeMap::new();
    let parts = |kind: &'static str| {
        (on.iter()).flat_map(move |(host, (_, ps))| {
            ps.iter()
                .filter(move |p| p.doc.kind == kind)
                .map(move |p| (host, p))
        })
    };
    for (ha, a) in parts(HTTP) {
        for (hb, b) in parts(GRPC).filter(|(hb, _)| intersect(ha, hb)) {
            let (winner, loser, host) = if a.age() <= b.age() {
                (a, b, ha)
            } else {
                (b, a, hb)
            };
            let (wt, lt) = (targets(winner), targets(loser));
            let shared: Vec<&Target> = lt
                .iter()
                .filter(|l| wt.iter().any(|w| overlap(l, w)))
                .collect();
            let listeners = lost.entry(key(loser)).or_default();
            if shared.iter().all(|t| listeners.contains(*t)) {
                continue;
            }
            listeners.extend(shared.iter().map(|t| (*t).clone()));
            let msg = format!(
                "not accepted on Gateway {}: {} {} also serves hostname {host} there and is older \
                 (an HTTPRoute and a GRPCRoute do not share a hostname on a listener; the older \
                 route, then the first by namespace/name, is accepted)",
                gateways(&shared),
                winner.doc.kind,
                winner.doc.qualified()
            );
            warnings.push(loser.doc.diagnostic("spec.hostnames", msg));
        }
    }
    for (_, parts) in on.values_mut() {
        drop_targets(parts, &lost);
    }
}

/// Two hostnames some request may carry both of: equal, or one a
/// wildcard (`*.example.com`, `*`) of the other covers.
fn intersect(a: &str, b: &str) -> bool {
    host_matches(a, b) || host_matches(b, a)
}

/// Leaves out, on each Service, an HTTPRoute's rules at the ports a
/// GRPCRoute of the same namespace routes.
pub(super) fn on_services(
    on: &mut BTreeMap<Host, (String, Vec<Part>)>,
    services: &BTreeMap<Host, Service>,
    warnings: &mut Vec<Diagnostic>,
) {
    for (host, (_, parts)) in on.iter_mut() {
        let mut lost: BTreeMap<RouteKey, BTreeSet<Target>> = BTreeMap::new();
        for (a, b) in clashing_pairs(parts) {
            let (grpc, http) = if a.doc.kind == GRPC { (a, b) } else { (b, a) };
            let ports = ports_of(&targets(grpc), services.get(host));
            let mut shared: Vec<Target> = Vec::new();
            for t in targets(http) {
                // A rule of every port gives up the GRPCRoute's ports only.
                let here = ports.iter().filter(|p| t.1.is_none_or(|q| q == **p));
                shared.extend(here.map(|p| (None, Some(*p))));
            }
            if shared.is_empty() {
                continue;
            }
            let list: Vec<String> = shared
                .iter()
                .filter_map(|t| t.1)
                .map(|p| p.to_string())
                .collect();
            let msg = format!(
                "ignored for Service {host} port {}: GRPCRoute {} routes it there, and a GRPCRoute \
                 takes precedence over an HTTPRoute on one Service and port (GEP-1294)",
                list.join(", "),
                grpc.doc.qualified()
            );
            warnings.push(http.doc.diagnostic(&http.path, msg));
            lost.entry(key(http)).or_default().extend(shared);
        }
        split_all_ports(parts, &lost, services.get(host));
        drop_targets(parts, &lost);
    }
}

/// Each pair of an HTTPRoute part and a GRPCRoute part of one namespace
/// (routes of other namespaces route other clients of a Service; on a
/// Gateway, any namespace) whose targets meet.
fn clashing_pairs(parts: &[Part]) -> Vec<(&Part, &Part)> {
    let mut out = Vec::new();
    for a in parts.iter().filter(|p| p.doc.kind == HTTP) {
        for b in parts.iter().filter(|p| p.doc.kind == GRPC) {
            let (ta, tb) = (targets(a), targets(b));
            let on_service = ta.iter().chain(&tb).all(|t| t.0.is_none());
            if on_service && a.doc.namespace != b.doc.namespace {
                continue;
            }
            if ta.iter().any(|x| tb.iter().any(|y| overlap(x, y))) {
                out.push((a, b));
            }
        }
    }
    out
}

/// The Service ports `targets` route: theirs, or all of the Service's for
/// a target of every port.
fn ports_of(targets: &BTreeSet<Target>, service: Option<&Service>) -> BTreeSet<u16> {
    let all = || {
        service
            .into_iter()
            .flat_map(|s| s.ports.iter().map(|p| p.number))
    };
    (targets.iter())
        .flat_map(|t| match t.1 {
            Some(p) => vec![p],
            None => all().collect(),
        })
        .collect()
}

/// A losing route's matches of every port become one match per Service
/// port, so that it can give up some ports and keep the others.
fn split_all_ports(
    parts: &mut [Part],
    lost: &BTreeMap<RouteKey, BTreeSet<Target>>,
    service: Option<&Service>,
) {
    let ports: Vec<u16> = service
        .into_iter()
        .flat_map(|s| s.ports.iter().map(|p| p.number))
        .collect();
    for p in parts.iter_mut().filter(|p| lost.contains_key(&key(p))) {
        for (_, rule) in &mut p.rules {
            rule.matches = (rule.matches.iter())
                .flat_map(|m| match m.port {
                    Some(_) => vec![m.clone()],
                    None => (ports.iter())
                        .map(|port| {
                            let mut m = m.clone();
                            m.port = Some(*port);
                            m
                        })
                        .collect(),
                })
                .collect();
        }
    }
}

/// Removes each losing route's matches at the targets it lost, then the
/// rules left without a match (a rule without matches matches everything)
/// and the parts left without a rule.
fn drop_targets(parts: &mut Vec<Part>, lost: &BTreeMap<RouteKey, BTreeSet<Target>>) {
    for p in parts.iter_mut() {
        let Some(gone) = lost.get(&key(p)) else {
            continue;
        };
        for (_, rule) in &mut p.rules {
            rule.matches.retain(|m| {
                let t = (m.gateways.as_ref().and_then(|g| g.first().cloned()), m.port);
                !gone.iter().any(|g| overlap(g, &t))
            });
        }
        p.rules.retain(|(_, r)| !r.matches.is_empty());
    }
    parts.retain(|p| !p.rules.is_empty());
}

/// `ns/gw` or `ns/gw port N`, for the listeners of `targets`.
fn gateways(targets: &[&Target]) -> String {
    let names: BTreeSet<String> = (targets.iter())
        .map(|(g, port)| {
            let g = g.clone().unwrap_or_default();
            port.map_or(g.clone(), |p| format!("{g} port {p}"))
        })
        .collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}
