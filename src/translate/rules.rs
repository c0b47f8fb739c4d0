//! Per-proxy `DestinationRule`s (`exportTo`, `workloadSelector`): most
//! proxies see each host's default rule and share the clusters and routes
//! of [`super::shared`]; for the few hosts where some proxy may see
//! another rule (or none), each other rule's clusters are translated once
//! per change, and the outbound virtual hosts that depend on them once
//! per combination of rules. A proxy's [`Profile`] picks among them, and
//! is part of its [`super::scope::ScopeKey`].

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::Route;

use super::clusters::{service_memo, ServiceClusters};
use super::gateway::{self, GatewayKey, GatewayRoutes};
use super::routes::reuse::routed_hosts;
use super::routes::{self, Ctx};
use super::source::Source;
use crate::config::model::{DestinationRule, Host, HostRules, MeshConfig, RuleClient};
use crate::registry::{Proxy, ServiceInstances};

/// Which rule a proxy sees where it is not the default: `(host, rule)`
/// indexes into [`RuleVariants::hosts`] and that host's `variants`,
/// sorted. Empty for most proxies.
pub type Profile = Vec<(u32, u32)>;

/// One host some proxy may see another rule for than the default.
#[derive(Debug, Clone, PartialEq)]
pub struct ContestedHost {
    /// The service's host.
    pub host: Host,
    /// Its rules.
    rules: HostRules,
    /// The rule most proxies see (the shared clusters' rule).
    default: Option<Arc<DestinationRule>>,
    /// Every other rule a proxy may see (`None`: no rule), with the
    /// service's clusters under it.
    pub variants: Vec<(Option<Arc<DestinationRule>>, Arc<ServiceClusters>)>,
}

/// The outbound routes of one virtual host under other rules than the
/// default: `(the profile restricted to the hosts it depends on, routes)`.
type VhostAlternatives = Vec<(Profile, Vec<Route>)>;

/// Every contested host's translations, and the virtual hosts whose routes
/// change with them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleVariants {
    /// The mesh's root namespace (the lookup's last step).
    root: String,
    /// The contested hosts that are services, by host.
    pub hosts: Vec<ContestedHost>,
    /// Virtual host name → the contested hosts (indexes) its routes read.
    deps: BTreeMap<String, Vec<u32>>,
    /// Virtual host name → its routes under other rules, when they differ.
    alternatives: BTreeMap<String, VhostAlternatives>,
    /// A gateway binding → the contested hosts its routes read, and its
    /// routes under other rules where they differ (a gateway proxy's
    /// profile picks among them as a sidecar's picks its virtual hosts).
    gateways: BTreeMap<GatewayKey, (Vec<u32>, GatewayAlternatives)>,
}

/// A gateway binding's routes under other rules than the default.
type GatewayAlternatives = Vec<(Profile, Vec<(Route, Option<Source>)>)>;

/// Same rule (both none, or the same resource).
fn same(a: Option<&Arc<DestinationRule>>, b: Option<&Arc<DestinationRule>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl RuleVariants {
    /// Translates each contested service's clusters under each of its
    /// non-default rules, reusing `previous`'s translations whose inputs
    /// did not change.
    pub fn new(mesh: &MeshConfig, services: &ServiceInstances, previous: &RuleVariants) -> Self {
        let root = mesh.mesh.root_namespace.clone();
        let set = &mesh.destination_rule_set.by_host;
        let hosts = (set.iter())
            .filter(|(_, rules)| rules.varies(&root))
            .filter_map(|(host, rules)| {
                let view = services.services.get(host)?;
                let default = mesh.destination_rules.get(host).cloned();
                let before = previous.hosts.iter().find(|c| c.host == *host);
                let variants = candidates(rules, default.as_ref())
                    .map(|rule| {
                        let last = before.and_then(|b| b.variants.iter().find(|v| v.0 == rule));
                        let memo = service_memo(mesh, view, rule.as_ref(), last.map(|v| &v.1));
                        (rule, memo)
                    })
                    .collect();
                Some(ContestedHost {
                    host: host.clone(),
                    rules: rules.clone(),
                    default,
                    variants,
                })
            })
            .collect();
        let mut out = RuleVariants {
            root,
            hosts,
            ..Default::default()
        };
        out.route_alternatives(Ctx::new(mesh, services));
        out
    }

    /// `proxy`'s profile: for each contested host where it sees another
    /// rule than the default, which one.
    pub fn profile(&self, proxy: &Proxy) -> Profile {
        let client = RuleClient {
            namespace: &proxy.namespace,
            labels: &proxy.labels,
        };
        let mut out = Profile::new();
        for (i, c) in self.hosts.iter().enumerate() {
            let seen = c.rules.visible(client, &self.root);
            if same(seen, c.default.as_ref()) {
                continue;
            }
            if let Some(j) = c.variants.iter().position(|v| same(seen, v.0.as_ref())) {
                out.push((i as u32, j as u32));
            }
        }
        out
    }

    /// The translation a profile entry names.
    pub fn clusters(&self, (host, variant): (u32, u32)) -> Option<&ContestedHost> {
        let c = self.hosts.get(host as usize)?;
        c.variants.get(variant as usize).map(|_| c)
    }

    /// True when some variant's endpoints depend on the client's locality.
    pub fn has_localities(&self) -> bool {
        (self.hosts.iter())
            .flat_map(|c| &c.variants)
            .any(|v| !v.1.localities().is_empty())
    }

    /// Every rule of the contested hosts.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<DestinationRule>> {
        self.hosts.iter().flat_map(|c| c.rules.rules.iter())
    }

    /// Applies `f` to every variant's clusters.
    pub(super) fn map_clusters(
        &mut self,
        f: impl Fn(&mut envoy_types::pb::envoy::config::cluster::v3::Cluster) + Copy,
    ) {
        for v in self.hosts.iter_mut().flat_map(|c| &mut c.variants) {
            v.1 = Arc::new(v.1.map_clusters(f));
        }
    }

    /// The routes of virtual host `name` for a proxy of `profile`, when
    /// they differ from the shared ones.
    pub fn vhost_routes(&self, name: &str, profile: &Profile) -> Option<&[Route]> {
        let found = pick(self.deps.get(name)?, self.alternatives.get(name)?, profile);
        found.map(Vec::as_slice)
    }

    /// The routes of gateway binding `key` for a gateway proxy of
    /// `profile`, when they differ from the shared ones.
    pub fn gateway_routes(
        &self,
        key: &GatewayKey,
        profile: &Profile,
    ) -> Option<&[(Route, Option<Source>)]> {
        let (deps, alternatives) = self.gateways.get(key)?;
        pick(deps, alternatives, profile).map(Vec::as_slice)
    }

    /// True when `other`'s gateway routes under other rules are these.
    pub fn same_gateway_routes(&self, other: &RuleVariants) -> bool {
        self.gateways == other.gateways
    }

    /// Translates, for each gateway binding whose routes read a contested
    /// host, its routes under every combination of those hosts' rules,
    /// keeping those that differ from `shared` (the default rules').
    pub fn gateway_alternatives(&mut self, ctx: Ctx<'_>, shared: &GatewayRoutes) {
        self.gateways.clear();
        if self.hosts.is_empty() {
            return;
        }
        let index = self.index();
        let mut gateways = BTreeMap::new();
        for (key, vs) in gateway::bindings(ctx.mesh) {
            let on = indexes(&index, routed_hosts(vs));
            if on.is_empty() {
                continue;
            }
            let default = shared.get(&key).map_or(&[][..], Vec::as_slice);
            let mut found = GatewayAlternatives::new();
            for profile in combinations(&self.hosts, &on) {
                let overrides = self.overrides(&profile);
                let routes = gateway::binding_routes(ctx.with(&overrides), &key, vs);
                if routes != default {
                    found.push((profile, routes));
                }
            }
            if !found.is_empty() {
                gateways.insert(key, (on, found));
            }
        }
        self.gateways = gateways;
    }

    /// Each contested host's index in `hosts`.
    fn index(&self) -> BTreeMap<&Host, u32> {
        (self.hosts.iter().enumerate())
            .map(|(i, c)| (&c.host, i as u32))
            .collect()
    }

    /// Translates, for each virtual host that reads a contested host, its
    /// routes under every combination of those hosts' rules, keeping the
    /// ones that differ from the shared routes (only a consistent hash
    /// changes routes).
    fn route_alternatives(&mut self, ctx: Ctx<'_>) {
        let index = self.index();
        let mut deps = BTreeMap::new();
        let mut alternatives = BTreeMap::new();
        for view in ctx.services.services.values() {
            for port in &view.ports {
                let on = indexes(&index, routes::hosts_read(ctx, &view.host).iter());
                if on.is_empty() {
                    continue;
                }
                let name = format!("{}:{}", view.host, port.number);
                let shared = routes::vhost_routes(ctx, &view.host, port);
                let mut found = VhostAlternatives::new();
                for profile in combinations(&self.hosts, &on) {
                    let overrides = self.overrides(&profile);
                    let routes = routes::vhost_routes(ctx.with(&overrides), &view.host, port);
                    if routes != shared {
                        found.push((profile, routes));
                    }
                }
                deps.insert(name.clone(), on);
                if !found.is_empty() {
                    alternatives.insert(name, found);
                }
            }
        }
        self.deps = deps;
        self.alternatives = alternatives;
    }

    /// The rules a profile names, by host.
    fn overrides(&self, profile: &Profile) -> BTreeMap<Host, Option<Arc<DestinationRule>>> {
        (profile.iter())
            .map(|&(h, v)| {
                let c = &self.hosts[h as usize];
                (c.host.clone(), c.variants[v as usize].0.clone())
            })
            .collect()
    }
}

/// The contested hosts among `hosts` (by [`RuleVariants::index`]), as
/// sorted unique indexes.
fn indexes<'a>(index: &BTreeMap<&Host, u32>, hosts: impl Iterator<Item = &'a Host>) -> Vec<u32> {
    let mut on: Vec<u32> = hosts.filter_map(|h| index.get(h).copied()).collect();
    on.sort_unstable();
    on.dedup();
    on
}

/// The alternative of `profile` restricted to the contested hosts `deps`
/// reads; `None` when the proxy sees their default rules, or when those
/// rules give the shared translation.
fn pick<'a, T>(deps: &[u32], alternatives: &'a [(Profile, T)], profile: &Profile) -> Option<&'a T> {
    let key: Profile = (profile.iter())
        .filter(|(h, _)| deps.contains(h))
        .copied()
        .collect();
    if key.is_empty() {
        return None;
    }
    (alternatives.iter())
        .find(|(p, _)| *p == key)
        .map(|(_, r)| r)
}

/// The rules other than `default` a proxy may see: every rule of the
/// host, and none when there is a default.
fn candidates<'a>(
    rules: &'a HostRules,
    default: Option<&'a Arc<DestinationRule>>,
) -> impl Iterator<Item = Option<Arc<DestinationRule>>> + 'a {
    let others = (rules.rules.iter())
        .filter(move |r| !same(Some(r), default))
        .map(|r| Some(Arc::clone(r)));
    others.chain(default.is_some().then_some(None))
}

/// Every non-empty profile over the hosts `on` (each default or one of
/// its variants).
fn combinations(hosts: &[ContestedHost], on: &[u32]) -> Vec<Profile> {
    let mut out: Vec<Profile> = vec![Vec::new()];
    for &h in on {
        let n = hosts[h as usize].variants.len() as u32;
        let mut next = Vec::with_capacity(out.len() * (n as usize + 1));
        for p in &out {
            next.push(p.clone());
            for v in 0..n {
                let mut q = p.clone();
                q.push((h, v));
                next.push(q);
            }
        }
        out = next;
    }
    out.retain(|p| !p.is_empty());
    out
}

#[cfg(test)]
mod tests;
