//! Where a VirtualService `match` applies: its `gateways`, `port`,
//! `sourceLabels` and `sourceNamespace` (istiod: `sourceMatchHTTP` and
//! `sourceMatchTCP` in `route/route.go`, `tcp_route.go`). Unlike istiod,
//! which ignores the source conditions of a match that names gateways,
//! every condition given must hold, as the API reference describes.
//!
//! On sidecars the gateway and port are known when the shared `outbound`
//! routes are built (the port is the virtual host's), but the source is
//! each client proxy: routes with source conditions are kept in the
//! shared configuration and listed in [`SourceRoutes`], which removes
//! them from the copy of each proxy they do not apply to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};

use crate::config::model::{HttpMatch, L4Match, Labels, VirtualService};
use crate::registry::Proxy;

/// Where rules are being applied: the listener's port, the labels and
/// namespace of the proxy, and the gateway (`NAMESPACE/NAME`), `None` for
/// a sidecar (`mesh`).
pub struct Place<'a> {
    /// The port the connection arrived on (`match.port`).
    pub port: u16,
    /// The proxy's labels.
    pub labels: &'a Labels,
    /// The proxy's namespace.
    pub namespace: &'a str,
    /// The gateway being translated, `None` on a sidecar.
    pub gateway: Option<&'a str>,
}

impl Place<'_> {
    /// True when `m` holds here: its port, source and gateways agree.
    pub fn admits(&self, vs: &VirtualService, m: &L4Match) -> bool {
        let source = Source::new(&m.source_labels, m.source_namespace.as_deref());
        bound_here(vs, m.gateways.as_deref(), self.gateway)
            && vs.export_to.admits(self.namespace)
            && m.port.is_none_or(|p| p == self.port)
            && source.is_none_or(|s| s.holds(self.labels, self.namespace))
    }
}

/// True when a match with `gateways` (`None`: the VirtualService's own)
/// applies on `gateway` (`None`: sidecars, Istio's `mesh`).
pub fn bound_here(vs: &VirtualService, gateways: Option<&[String]>, gateway: Option<&str>) -> bool {
    let name = gateway.unwrap_or("mesh");
    match gateways {
        Some(list) => list.iter().any(|g| g == name),
        None if gateway.is_none() => vs.mesh,
        None => vs.gateways.iter().any(|g| g == name),
    }
}

/// True when the HTTP match `m` (`None`: a rule without matches) applies
/// on `gateway` at listener `port`, whatever the client.
pub fn http_bound_here(
    vs: &VirtualService,
    m: Option<&HttpMatch>,
    port: u16,
    gateway: Option<&str>,
) -> bool {
    let gateways = m.and_then(|m| m.gateways.as_deref());
    bound_here(vs, gateways, gateway) && m.and_then(|m| m.port).is_none_or(|p| p == port)
}

/// The client conditions of a match: `sourceLabels` and `sourceNamespace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    /// Labels the client proxy must carry.
    pub labels: Labels,
    /// The namespace it must be in.
    pub namespace: Option<String>,
    /// Namespaces it must not be in (they have consumer routes of their
    /// own for the host).
    pub excluded: BTreeSet<String>,
    /// The VirtualService's `exportTo`: the client's namespace must be
    /// in it (`true`) or, for the route that stands in for the
    /// VirtualService where it is not exported, not in it (`false`).
    pub exported: Option<(BTreeSet<String>, bool)>,
}

impl Source {
    /// The conditions, or `None` when there are none (every client).
    pub fn new(labels: &Labels, namespace: Option<&str>) -> Option<Self> {
        (!labels.is_empty() || namespace.is_some()).then(|| Source {
            labels: labels.clone(),
            namespace: namespace.map(str::to_string),
            excluded: BTreeSet::new(),
            exported: None,
        })
    }

    /// The conditions of an HTTP match of `vs`, with its `exportTo`.
    pub fn of_vs_http(vs: &VirtualService, m: Option<&HttpMatch>) -> Option<Self> {
        let Some(namespaces) = &vs.export_to.namespaces else {
            return Source::of_http(m);
        };
        let mut s = Source::of_http(m).unwrap_or(Source {
            labels: Labels::new(),
            namespace: None,
            excluded: BTreeSet::new(),
            exported: None,
        });
        s.exported = Some((namespaces.clone(), true));
        Some(s)
    }

    /// Clients outside `vs`'s `exportTo` (`None`: it is exported to all).
    pub fn not_exported(vs: &VirtualService) -> Option<Self> {
        let namespaces = vs.export_to.namespaces.as_ref()?;
        Some(Source {
            labels: Labels::new(),
            namespace: None,
            excluded: BTreeSet::new(),
            exported: Some((namespaces.clone(), false)),
        })
    }

    /// The conditions of an HTTP match.
    pub fn of_http(m: Option<&HttpMatch>) -> Option<Self> {
        let m = m?;
        let mut s = Source::new(&m.source_labels, m.source_namespace.as_deref());
        if !m.excluded_source_namespaces.is_empty() {
            let s = s.get_or_insert_with(|| Source {
                labels: Labels::new(),
                namespace: None,
                excluded: BTreeSet::new(),
                exported: None,
            });
            s.excluded = m.excluded_source_namespaces.clone();
        }
        s
    }

    /// True for a client with `labels` in `namespace`.
    pub fn holds(&self, labels: &Labels, namespace: &str) -> bool {
        (self.labels.iter()).all(|(k, v)| labels.get(k) == Some(v))
            && self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && !self.excluded.contains(namespace)
            && (self.exported.as_ref())
                .is_none_or(|(set, inside)| set.contains(namespace) == *inside)
    }
}

/// The routes of the shared route configurations that only some clients
/// get: by virtual host name, each route's index and its condition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceRoutes {
    /// Distinct conditions.
    conditions: Vec<Source>,
    /// Virtual host name → (route index, index into `conditions`).
    routes: BTreeMap<String, Vec<(usize, usize)>>,
}

impl SourceRoutes {
    /// Records that route `index` of virtual host `vhost` needs `source`.
    pub fn add(&mut self, vhost: &str, index: usize, source: Source) {
        let c = match self.conditions.iter().position(|c| *c == source) {
            Some(c) => c,
            None => {
                self.conditions.push(source);
                self.conditions.len() - 1
            }
        };
        self.routes
            .entry(vhost.to_string())
            .or_default()
            .push((index, c));
    }

    /// The routes of virtual host `vhost` that only some clients get: each
    /// route's index and its condition, in index order.
    pub fn of_vhost<'a>(&'a self, vhost: &str) -> impl Iterator<Item = (usize, &'a Source)> + 'a {
        let listed = self.routes.get(vhost).map_or(&[][..], Vec::as_slice);
        listed.iter().map(|(i, c)| (*i, &self.conditions[*c]))
    }

    /// Which conditions hold for `proxy`: proxies with equal keys get the
    /// same routes.
    pub fn key(&self, proxy: &Proxy) -> Vec<bool> {
        (self.conditions.iter())
            .map(|c| c.holds(&proxy.labels, &proxy.namespace))
            .collect()
    }

    /// Removes from `configs` the routes whose condition fails for `proxy`.
    pub fn filter(&self, configs: &mut [RouteConfiguration], proxy: &Proxy) {
        if self.routes.is_empty() {
            return;
        }
        let holds = self.key(proxy);
        for vh in configs.iter_mut().flat_map(|c| c.virtual_hosts.iter_mut()) {
            if let Some(conditional) = self.routes.get(&vh.name) {
                retain_holding(&mut vh.routes, conditional, &holds);
            }
        }
    }

    /// [`SourceRoutes::filter`] over a view's virtual hosts: only those
    /// with conditional routes are copied (to be filtered).
    pub fn filter_views<'v>(
        &self,
        vhosts: impl Iterator<Item = &'v mut Arc<VirtualHost>>,
        proxy: &Proxy,
    ) {
        if self.routes.is_empty() {
            return;
        }
        let holds = self.key(proxy);
        for vh in vhosts {
            if let Some(conditional) = self.routes.get(&vh.name) {
                retain_holding(&mut Arc::make_mut(vh).routes, conditional, &holds);
            }
        }
    }
}

/// Keeps the routes whose condition holds (`holds`, by condition index)
/// or that have none (`conditional`: route index, condition index).
fn retain_holding(routes: &mut Vec<Route>, conditional: &[(usize, usize)], holds: &[bool]) {
    let mut index = 0;
    routes.retain(|_| {
        let keep = (conditional.iter())
            .find(|(i, _)| *i == index)
            .is_none_or(|(_, c)| holds[*c]);
        index += 1;
        keep
    });
}

#[cfg(test)]
mod tests;
