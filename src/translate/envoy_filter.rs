//! `EnvoyFilter` patches over the resources translation made, with
//! Istio's semantics (pilot/pkg/networking/core/envoyfilter): a pure step
//! after translation, per proxy.
//!
//! Which filters apply to a proxy and in which order ([`applicable`]):
//! the root namespace's, then the proxy's namespace's, each selected by
//! `workloadSelector` (none: every workload of its namespace, of every
//! namespace in the root namespace) or by `targetRefs` (a Kubernetes
//! Gateway's proxies), sorted by `priority`, root namespace first on a
//! tie, then by name (Istio's next key, the creation time, is not known
//! from files). Patches apply in that order, each filter's in its order.
//!
//! Contexts: the `inbound` listener, its inline routes and the
//! `inbound|PORT||` cluster are SIDECAR_INBOUND; a sidecar's other
//! listeners, the `outbound` routes and outbound clusters are
//! SIDECAR_OUTBOUND; everything of a gateway proxy is GATEWAY.

mod cluster;
mod filters;
mod listener;
mod listener_filters;
mod merge;
mod names;
mod route;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::model::{ApplyTo, ConfigPatch, EnvoyFilter, Host, PatchContext};
use crate::config::Diagnostic;
use crate::registry::Proxy;

pub use cluster::patch_clusters;
pub use listener::patch_listeners;
pub use route::patch_route_configurations;

/// Label Istio gives the proxies of a Kubernetes Gateway.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The `EnvoyFilter`s that apply to `proxy`, in the order their patches
/// apply.
pub fn applicable(
    filters: &[Arc<EnvoyFilter>],
    root_namespace: &str,
    proxy: &Proxy,
) -> Vec<Arc<EnvoyFilter>> {
    let mut out: Vec<Arc<EnvoyFilter>> = (filters.iter())
        .filter(|f| {
            let ns = &f.origin.namespace;
            (ns == root_namespace || *ns == proxy.namespace) && attaches(f, proxy)
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| {
        let root = |f: &EnvoyFilter| f.origin.namespace != root_namespace;
        (a.priority, root(a), &a.origin.name, &a.origin.namespace).cmp(&(
            b.priority,
            root(b),
            &b.origin.name,
            &b.origin.namespace,
        ))
    });
    out
}

/// Istio's policy attachment (`WorkloadPolicyMatcher.ShouldAttachPolicy`)
/// without waypoints: a proxy of a Kubernetes Gateway takes the filters
/// that target its Gateway (in its namespace) or select it by labels;
/// any other proxy only those that select it by labels.
fn attaches(f: &EnvoyFilter, proxy: &Proxy) -> bool {
    let selected =
        || (f.selector.iter().flatten()).all(|(k, v)| proxy.labels.get(k).is_some_and(|x| x == v));
    match proxy.labels.get(GATEWAY_NAME_LABEL) {
        None => f.target_gateways.is_empty() && selected(),
        Some(_) if f.target_gateways.is_empty() => selected(),
        Some(gw) => f.origin.namespace == proxy.namespace && f.target_gateways.contains(gw),
    }
}

/// The filters of `applicable` that change what a proxy shares with
/// others (outbound clusters and routes): part of its `ScopeKey`, so
/// proxies without such a filter keep sharing one set.
pub fn shared_key(applicable: &[Arc<EnvoyFilter>]) -> Vec<(String, String)> {
    (applicable.iter())
        .filter(|f| f.patches.iter().any(patches_shared))
        .map(|f| (f.origin.namespace.clone(), f.origin.name.clone()))
        .collect()
}

fn patches_shared(p: &ConfigPatch) -> bool {
    let kind = matches!(
        p.apply_to,
        ApplyTo::Cluster | ApplyTo::RouteConfiguration | ApplyTo::VirtualHost | ApplyTo::HttpRoute
    );
    kind && p.context != PatchContext::SidecarInbound
}

/// One patch that changed one resource: which `EnvoyFilter` (and where)
/// changed what, so a NACK of that resource can point at the patch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Patched {
    /// Type URL of the patched (or added) resource.
    pub type_url: String,
    /// Its name.
    pub resource: String,
    /// `NAMESPACE/NAME` of the `EnvoyFilter`.
    pub envoy_filter: String,
    /// Index in its `configPatches`.
    pub patch: usize,
    /// Its file.
    pub file: PathBuf,
    /// The patch's line.
    pub line: usize,
}

/// What applying patches did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Every resource a patch changed, added or removed.
    pub patched: Vec<Patched>,
    /// Patches that could not be applied, each blaming its patch.
    pub errors: Vec<Diagnostic>,
    /// The patches (`NAMESPACE/NAME`, index) that applied somewhere.
    pub applied: BTreeSet<(String, usize)>,
}

impl Report {
    /// Adds `other`'s findings.
    pub fn extend(&mut self, other: Report) {
        self.patched.extend(other.patched);
        self.errors.extend(other.errors);
        self.applied.extend(other.applied);
    }

    /// The patches of `filters` that applied nowhere, as warnings.
    pub fn unmatched(&self, filters: &[Arc<EnvoyFilter>]) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for f in filters {
            let key = format!("{}/{}", f.origin.namespace, f.origin.name);
            for (i, p) in f.patches.iter().enumerate() {
                if !self.applied.contains(&(key.clone(), i)) {
                    let mut d = p.site.clone();
                    d.message = "patch matched nothing".to_string();
                    out.push(d);
                }
            }
        }
        out
    }
}

/// The ordered patches of one `applyTo` kind for one proxy, and the
/// report they write to.
pub struct Patcher<'a> {
    filters: &'a [Arc<EnvoyFilter>],
    names: names::IstioNames,
    gateway: bool,
    /// What was done so far.
    pub report: Report,
}

impl<'a> Patcher<'a> {
    /// Patches of `filters` (from [`applicable`]) for `proxy`, whose
    /// service's ports are `service_ports` (Istio's inbound names use them).
    pub fn new(filters: &'a [Arc<EnvoyFilter>], proxy: &Proxy, service_ports: &[u16]) -> Self {
        Patcher {
            filters,
            names: names::IstioNames::new(proxy, service_ports),
            gateway: proxy.gateway.is_some(),
            report: Report::default(),
        }
    }

    /// True when no filter applies.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Every patch of `apply_to` whose context matches `context`, with
    /// its filter.
    fn patches(
        &self,
        apply_to: ApplyTo,
        context: PatchContext,
    ) -> impl Iterator<Item = Step<'a>> + 'a {
        (self.filters.iter())
            .flat_map(|f| f.patches.iter().enumerate().map(move |(i, p)| (f, i, p)))
            .filter(move |(_, _, p)| {
                p.apply_to == apply_to && (p.context == PatchContext::Any || p.context == context)
            })
            .map(|(f, index, patch)| Step {
                filter: f,
                index,
                patch,
            })
    }

    /// The context ADD patches of listeners and clusters are applied in:
    /// Istio adds them once, on the outbound (or gateway) side.
    fn add_context(&self) -> PatchContext {
        if self.gateway {
            PatchContext::Gateway
        } else {
            PatchContext::SidecarOutbound
        }
    }

    /// Records that `step` changed `resource` of `type_url`.
    fn record(&mut self, step: &Step<'_>, type_url: &str, resource: &str) {
        let key = step.key();
        self.report.applied.insert((key.clone(), step.index));
        self.report.patched.push(Patched {
            type_url: type_url.to_string(),
            resource: resource.to_string(),
            envoy_filter: key,
            patch: step.index,
            file: step.patch.site.file.clone(),
            line: step.patch.site.line,
        });
    }

    /// Records that `step` could not be applied to `resource`.
    fn error(&mut self, step: &Step<'_>, resource: &str, why: impl std::fmt::Display) {
        let mut d = step.patch.site.clone();
        d.message = format!("patch cannot be applied to {resource}: {why}");
        self.report.errors.push(d);
    }
}

/// One patch with the filter it belongs to.
#[derive(Clone, Copy)]
struct Step<'a> {
    filter: &'a Arc<EnvoyFilter>,
    index: usize,
    patch: &'a ConfigPatch,
}

impl Step<'_> {
    fn key(&self) -> String {
        format!(
            "{}/{}",
            self.filter.origin.namespace, self.filter.origin.name
        )
    }
}

/// The ports of `proxy`'s service (Istio names inbound resources by them).
pub fn service_ports(shared: &super::Shared, proxy: &Proxy) -> Vec<u16> {
    let host = Host::canonical(&proxy.service, &proxy.namespace);
    (shared.service_ports.get(&host).into_iter().flatten())
        .map(|p| p.number)
        .collect()
}
