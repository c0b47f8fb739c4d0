//! The call graph: who calls whom, from the `Sidecar` egress hosts users
//! declare. An exact egress host (`./payment`, `prod/ledger.prod.svc.cluster.local`)
//! is a call; a wildcard (`./*`) says nothing about calls, except in the
//! root namespace, where Istio's own pattern (`istio-system/*`) admits
//! infrastructure. A service whose `Sidecar` names no exact host, or that
//! has none, cannot be placed: the paths through it are unknown.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::model::{
    effective_scope, EgressNamespace, Host, Labels, Location, MeshConfig, Origin, Service,
    DEFAULT_SCOPE_NAME,
};
use crate::registry::ServiceInstances;

use super::{short, Check, Finding, Input, Severity};

/// Longest path searched, in services: deeper call chains are cut here so
/// a dense graph cannot make the search explode.
pub const MAX_DEPTH: usize = 8;
/// Paths searched at most.
const MAX_PATHS: usize = 10_000;

/// Why a service's calls are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplaced {
    /// No `Sidecar` applies to its workloads (the default scope).
    NoSidecar,
    /// Its `Sidecar` admits services by wildcard only.
    WildcardOnly(Origin),
}

/// Calls between services.
#[derive(Debug, Clone, Default)]
pub struct CallGraph {
    /// Callees of each service that declares some.
    pub calls: BTreeMap<Host, BTreeSet<Host>>,
    /// The `Sidecar` that declared each caller's calls.
    pub declared_by: BTreeMap<Host, Origin>,
    /// Mesh services whose calls are unknown.
    pub unplaced: BTreeMap<Host, Unplaced>,
}

/// A service whose instances run sidecars: what lint reasons about.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its host.
    pub host: Host,
    /// Its namespace.
    pub namespace: String,
    /// The labels its workloads are assumed to carry, to find the
    /// `Sidecar` that selects them: its `workloadSelector`, else its first
    /// static endpoint's labels, plus `app: NAME` (Istio's convention)
    /// unless set.
    pub labels: Labels,
    /// Where it is declared: its `ServiceEntry`, else (a service known only
    /// from sidecars) the `VirtualService` or `DestinationRule` naming it.
    pub origin: Origin,
    /// The field of `origin` that names it.
    pub field: &'static str,
}

fn labels_of(svc: Option<&Service>, host: &Host) -> Labels {
    let mut labels = (svc.and_then(|s| s.workload_selector.clone()))
        .or_else(|| {
            svc.and_then(|s| s.endpoints.first())
                .map(|e| e.labels.clone())
        })
        .unwrap_or_default();
    labels
        .entry("app".to_string())
        .or_insert_with(|| short(host).to_string());
    labels
}

/// The mesh-internal services: those of `ServiceEntry`s and the
/// cluster-local hosts only sidecars serve (named by a `VirtualService`
/// or `DestinationRule`).
pub fn workloads(mesh: &MeshConfig, instances: &ServiceInstances) -> Vec<Workload> {
    let internal = (instances.services.values()).filter(|v| v.location == Location::MeshInternal);
    internal
        .filter_map(|v| {
            let svc = mesh.services.get(&v.host);
            let (origin, field) = match svc {
                Some(s) => (s.origin.clone(), "spec.hosts"),
                None => match (
                    mesh.virtual_services.get(&v.host),
                    (mesh.destination_rule_set.by_host.get(&v.host)).and_then(|r| r.rules.first()),
                ) {
                    (Some(vs), _) => (vs.origin.clone(), "spec.hosts"),
                    (None, Some(dr)) => (dr.origin.clone(), "spec.host"),
                    (None, None) => return None,
                },
            };
            Some(Workload {
                host: v.host.clone(),
                namespace: v.namespace.clone(),
                labels: labels_of(svc, &v.host),
                origin,
                field,
            })
        })
        .collect()
}

impl CallGraph {
    /// The graph the `Sidecar` resources of `mesh` declare for `workloads`.
    pub fn declared(mesh: &MeshConfig, workloads: &[Workload]) -> CallGraph {
        let mut graph = CallGraph::default();
        for svc in workloads {
            let scope = effective_scope(&mesh.sidecars, &mesh.mesh, &svc.namespace, &svc.labels);
            let scope = match scope {
                Some(s) if s.origin.name != DEFAULT_SCOPE_NAME => s,
                _ => {
                    graph.unplaced.insert(svc.host.clone(), Unplaced::NoSidecar);
                    continue;
                }
            };
            let root = &mesh.mesh.root_namespace;
            let mut calls = BTreeSet::new();
            let mut wildcard = false;
            for e in &scope.egress {
                if e.namespace == EgressNamespace::None {
                    continue;
                }
                if e.host.starts_with('*') {
                    wildcard |= e.namespace != EgressNamespace::Named(root.clone());
                } else if e.host != svc.host.as_str() {
                    calls.insert(Host(e.host.clone()));
                }
            }
            if calls.is_empty() && wildcard {
                let why = Unplaced::WildcardOnly(scope.origin.clone());
                graph.unplaced.insert(svc.host.clone(), why);
                continue;
            }
            graph
                .declared_by
                .insert(svc.host.clone(), scope.origin.clone());
            graph.calls.insert(svc.host.clone(), calls);
        }
        graph
    }

    /// Adds the calls a running mesh was seen making (`observed`'s edges
    /// between known workloads): an observed caller is placed even without
    /// a `Sidecar`, and findings on paths from it point at its own
    /// declaration.
    pub fn observe(&mut self, observed: &crate::graph::Graph, workloads: &[Workload]) {
        for edge in &observed.edges {
            let (from, to) = (Host(edge.source.clone()), Host(edge.destination.clone()));
            let Some(caller) = workloads.iter().find(|w| w.host == from) else {
                continue;
            };
            if from == to {
                continue;
            }
            self.unplaced.remove(&from);
            (self.declared_by)
                .entry(from.clone())
                .or_insert_with(|| caller.origin.clone());
            self.calls.entry(from).or_default().insert(to);
        }
    }

    /// Services that call but that no known service calls: where user
    /// requests enter.
    pub fn roots(&self) -> Vec<&Host> {
        let called: BTreeSet<&Host> = self.calls.values().flatten().collect();
        (self.calls.keys())
            .filter(|h| !called.contains(h))
            .collect()
    }

    /// Every maximal call path from a root (at least two services, no
    /// service twice, at most [`MAX_DEPTH`] long, [`MAX_PATHS`] in all).
    pub fn paths(&self) -> Vec<Vec<Host>> {
        let mut out = Vec::new();
        for root in self.roots() {
            let mut path = vec![root.clone()];
            self.walk(&mut path, &mut out);
        }
        out
    }

    fn walk(&self, path: &mut Vec<Host>, out: &mut Vec<Vec<Host>>) {
        if out.len() >= MAX_PATHS {
            return;
        }
        let Some(last) = path.last() else { return };
        let next: Vec<&Host> = (self.calls.get(last).into_iter().flatten())
            .filter(|h| !path.contains(h))
            .collect();
        if next.is_empty() || path.len() >= MAX_DEPTH {
            if path.len() >= 2 {
                out.push(path.clone());
            }
            return;
        }
        for h in next {
            path.push(h.clone());
            self.walk(path, out);
            path.pop();
        }
    }
}

/// `a→b→c` with short names.
pub fn show_path(path: &[Host]) -> String {
    let names: Vec<&str> = path.iter().map(short).collect();
    names.join("→")
}

/// One info finding naming the services whose calls are unknown, so no
/// retry or timeout path through them was checked.
pub fn unplaced(input: &Input<'_>, graph: &CallGraph, workloads: &[Workload]) -> Option<Finding> {
    let first = graph.unplaced.keys().next()?;
    let svc = workloads.iter().find(|w| w.host == *first)?;
    let names: Vec<String> = (graph.unplaced.iter())
        .map(|(h, why)| match why {
            Unplaced::NoSidecar => format!("{} (no Sidecar)", short(h)),
            Unplaced::WildcardOnly(o) => {
                format!("{} (Sidecar {} admits only wildcards)", short(h), o.name)
            }
        })
        .collect();
    let msg = format!(
        "{} service(s) could not be placed in the call graph: {}",
        names.len(),
        names.join(", ")
    );
    let why = "Retry amplification and timeout paths are only checked where calls are known: \
               from Sidecar egress hosts, or from a running control plane's observed service \
               graph (`trellis lint --admin-addr`).";
    let fix = format!(
        "Declare each service's calls: a Sidecar with `workloadSelector: {{labels: {{app: {}}}}}` \
         and `egress: [{{hosts: [\"./CALLEE\", ...]}}]` (which also shrinks its Envoy config); \
         `egress: [{{hosts: [\"~/*\"]}}]` for a service that calls nothing.",
        short(first)
    );
    let f = input.finding(Check::CallGraph, Severity::Info, &svc.origin, svc.field);
    Some(f.says(msg, why, fix))
}
