//! Per-sidecar scope: which outbound clusters, endpoints and virtual hosts
//! one sidecar gets, from the `Sidecar` resource that applies to it, else
//! the mesh's default scope (`config::model::effective_scope`). Pure
//! filtering of the shared resources: the kept resources are equal to the
//! shared ones, so their encoding is still shared.

use foldhash::HashSet;
use std::borrow::Cow;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};

use crate::config::model::{
    effective_scope, sidecar_for, Host, Locality, OutboundTrafficPolicy, SidecarScope,
};
use crate::registry::Proxy;

use super::locality::{self, Client};
use super::passthrough::{self, PASSTHROUGH_CLUSTER};
use super::telemetry::collector_cluster_name;
use super::{Shared, OUTBOUND_ROUTE};

/// The scope of `proxy`: the `Sidecar` that applies or the mesh default;
/// `None` when it reaches every service.
pub fn scope_of<'a>(shared: &'a Shared, proxy: &Proxy) -> Option<Cow<'a, SidecarScope>> {
    effective_scope(
        &shared.sidecars,
        &shared.mesh,
        &proxy.namespace,
        &proxy.labels,
    )
}

/// Which outbound view a proxy gets. Proxies with equal keys get the same
/// clusters, endpoints and routes, so a runtime builds and encodes them
/// once per key rather than once per proxy. A gateway's view differs from
/// a sidecar's of the same scope: it has no outbound traffic policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    /// The services it reaches.
    pub scope: ScopeKind,
    /// Which client conditions of routes hold ([`super::source::SourceRoutes::key`]).
    pub sources: Vec<bool>,
    /// What its locality balancing reads of it; `None` when no cluster
    /// balances by locality, so every proxy shares one view per scope.
    pub client: Option<ClientKey>,
    /// The `EnvoyFilter`s that patch its shared resources
    /// ([`super::envoy_filter::shared_key`]); empty for most proxies, so
    /// they keep sharing.
    pub envoy_filters: Vec<(String, String)>,
    /// Where it sees another `DestinationRule` than a host's default
    /// ([`super::rules::RuleVariants::profile`]); empty for most proxies.
    pub rules: super::rules::Profile,
}

/// The scope part of a [`ScopeKey`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// Every service (exported to its namespace).
    All {
        /// True for a gateway proxy.
        gateway: bool,
        /// The proxy's namespace when some service is exported to some
        /// namespaces only (then the view depends on it); else `None`.
        namespace: Option<String>,
    },
    /// A scope: the effective scope is a function of the `Sidecar` that
    /// applies (its index in `Shared::sidecars`, `None` for the mesh
    /// default) and the proxy's namespace (`.` and the default depend on it).
    Scoped {
        /// Index of the applying `Sidecar`.
        sidecar: Option<usize>,
        /// The proxy's namespace.
        namespace: String,
        /// True for a gateway proxy.
        gateway: bool,
    },
}

/// The parts of a proxy that its per-locality endpoints depend on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Its locality.
    pub locality: Locality,
    /// Its network ([`network_of`]).
    pub network: String,
    /// Its values of the `failoverPriority` label keys in use, in key order.
    pub labels: Vec<Option<String>>,
}

/// The key of `proxy`'s outbound view.
pub fn scope_key(shared: &Shared, proxy: &Proxy) -> ScopeKey {
    ScopeKey {
        scope: scope_kind(shared, proxy),
        sources: shared.source_routes.key(proxy),
        client: client_key(shared, proxy),
        envoy_filters: super::envoy_filter::shared_key(&super::envoy_filter::applicable(
            &shared.envoy_filters,
            &shared.mesh.root_namespace,
            proxy,
        )),
        rules: shared.rule_variants.profile(proxy),
    }
}

fn scope_kind(shared: &Shared, proxy: &Proxy) -> ScopeKind {
    let gateway = proxy.gateway.is_some();
    if scope_of(shared, proxy).is_none() {
        let namespace = (!shared.service_exports.is_empty()).then(|| proxy.namespace.clone());
        return ScopeKind::All { gateway, namespace };
    }
    let root = &shared.mesh.root_namespace;
    let applying = sidecar_for(&shared.sidecars, &proxy.namespace, &proxy.labels, root);
    ScopeKind::Scoped {
        sidecar: applying.and_then(|s| shared.sidecars.iter().position(|x| std::ptr::eq(x, s))),
        namespace: proxy.namespace.clone(),
        gateway,
    }
}

fn client_key(shared: &Shared, proxy: &Proxy) -> Option<ClientKey> {
    if shared.locality_clusters.is_empty() && !shared.rule_variants.has_localities() {
        return None;
    }
    let topo = &proxy.topology;
    Some(ClientKey {
        locality: topo.locality.clone(),
        network: network_of(shared, proxy).to_string(),
        labels: (shared.locality_keys.iter())
            .map(|k| topo.label(&proxy.labels, k).map(str::to_string))
            .collect(),
    })
}

/// The network `proxy` is on: its own (`trellis bootstrap --network`),
/// else its cluster's (`multiCluster.network`, as Istio gives a cluster's
/// proxies the network of its installation), else the default `""`.
pub fn network_of<'a>(shared: &'a Shared, proxy: &'a Proxy) -> &'a str {
    match proxy.topology.network.as_str() {
        "" => &shared.mesh.multi_cluster.network,
        own => own,
    }
}

/// The shared outbound resources one proxy may use: references to the
/// shared clusters and endpoints in scope, and the route configurations
/// without the virtual hosts of services out of scope.
pub struct OutboundView<'a> {
    /// Outbound clusters in scope (and every non-outbound shared cluster).
    pub clusters: Vec<&'a Cluster>,
    /// Their endpoints, but for those of [`OutboundView::localized`].
    pub load_assignments: Vec<&'a ClusterLoadAssignment>,
    /// The endpoints of the clusters in scope that balance by locality,
    /// as this proxy sees them (see `translate::locality`).
    pub localized: Vec<ClusterLoadAssignment>,
    /// `(cluster, network)`: endpoints this proxy cannot reach, left out
    /// of `localized` (no east-west gateway known for their network).
    pub unreachable: Vec<(String, String)>,
    /// The `outbound` route configuration, filtered.
    pub routes: Vec<RouteView<'a>>,
    /// Outbound clusters translated under another `DestinationRule` than
    /// their host's default, for this proxy's [`ScopeKey::rules`]: named
    /// like shared ones, but not equal to them.
    pub varied_clusters: Vec<&'a Cluster>,
    /// Their endpoints (but for those in `localized`).
    pub varied_assignments: Vec<&'a ClusterLoadAssignment>,
}

/// One route configuration of a view: the shared configuration's fields
/// and the virtual hosts the view keeps. A view costs no copy of the
/// mesh's virtual hosts, and an encoder can keep each one's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteView<'a> {
    /// The shared configuration without its virtual hosts.
    pub shell: &'a RouteConfiguration,
    /// The virtual hosts, in the shared configuration's order: the shared
    /// ones, unless this view changed them.
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
}

impl RouteView<'_> {
    /// The configuration's name.
    pub fn name(&self) -> &str {
        &self.shell.name
    }

    /// The whole configuration as a message.
    pub fn to_config(&self) -> RouteConfiguration {
        super::routes::assemble(self.shell, &self.virtual_hosts)
    }
}

/// `proxy`'s outbound view (the same for every proxy of its [`ScopeKey`]).
/// A scoped view picks the resources of the hosts in scope through
/// [`ClusterIndex`]: its cost follows the scope, not the mesh.
pub fn outbound_view<'a>(shared: &'a Shared, proxy: &Proxy) -> OutboundView<'a> {
    let mut view = scoped_view(shared, proxy);
    apply_rules(shared, proxy, &mut view);
    let vhosts = view.routes.iter_mut().flat_map(|r| &mut r.virtual_hosts);
    shared.source_routes.filter_views(vhosts, proxy);
    // A sidecar's outbound policy is its Sidecar's or the mesh's, a
    // function of its scope key too. A gateway routes only what its
    // Gateways bind, with routes of its own.
    if proxy.gateway.is_some() {
        view.clusters.retain(|c| c.name != PASSTHROUGH_CLUSTER);
        return view;
    }
    let policy = passthrough::policy_of(shared, proxy);
    if policy == OutboundTrafficPolicy::RegistryOnly {
        view.clusters.retain(|c| c.name != PASSTHROUGH_CLUSTER);
    }
    let egress = passthrough::egress_cluster_of(shared, proxy);
    if let Some(name) = &egress {
        keep_cluster(shared, &mut view, name);
    }
    for rc in view
        .routes
        .iter_mut()
        .filter(|r| r.name() == OUTBOUND_ROUTE)
    {
        let catch_all = passthrough::catch_all(policy, egress.as_deref());
        rc.virtual_hosts.push(Arc::new(catch_all));
    }
    view
}

/// Replaces, for each host where `proxy` sees another `DestinationRule`
/// than the default, that host's clusters, endpoints and the virtual hosts
/// that read its rule with their translation under the rule it sees.
/// Routes keep their order and number, so route indexes (`source`) hold.
fn apply_rules<'a>(shared: &'a Shared, proxy: &Proxy, view: &mut OutboundView<'a>) {
    let variants = &shared.rule_variants;
    let profile = variants.profile(proxy);
    for &entry in &profile {
        let Some(contested) = variants.clusters(entry) else {
            continue;
        };
        let host = contested.host.as_str();
        let on_host = |name: &str| outbound_host(name) == Some(host);
        let before = view.clusters.len();
        view.clusters.retain(|c| !on_host(&c.name));
        if view.clusters.len() == before {
            continue; // out of scope
        }
        view.load_assignments.retain(|c| !on_host(&c.cluster_name));
        view.localized.retain(|c| !on_host(&c.cluster_name));
        let memo = &contested.variants[entry.1 as usize].1;
        view.varied_clusters.extend(memo.clusters());
        for cla in memo.assignments() {
            match memo
                .localities()
                .iter()
                .find(|l| l.name == cla.cluster_name)
            {
                Some(lc) => {
                    let client = client_of(shared, proxy);
                    let (mine, lost) = locality::localize(lc, client, &shared.network_gateways);
                    (view.unreachable).extend(lost.into_iter().map(|n| (lc.name.clone(), n)));
                    view.localized.push(mine);
                }
                None => view.varied_assignments.push(cla),
            }
        }
    }
    if profile.is_empty() {
        return;
    }
    for vh in view.routes.iter_mut().flat_map(|rc| &mut rc.virtual_hosts) {
        if let Some(routes) = variants.vhost_routes(&vh.name, &profile) {
            Arc::make_mut(vh).routes = routes.to_vec();
        }
    }
}

/// `proxy` as locality balancing sees it.
fn client_of<'a>(shared: &'a Shared, proxy: &'a Proxy) -> Client<'a> {
    Client {
        topology: &proxy.topology,
        labels: &proxy.labels,
        network: network_of(shared, proxy),
        via_gateways: proxy.gateway.is_none(),
    }
}

/// Adds the shared cluster `name` and its endpoints to `view` when its
/// scope left them out: the `egressProxy`'s cluster is reached whatever
/// the scope, as the routes name it.
fn keep_cluster<'a>(shared: &'a Shared, view: &mut OutboundView<'a>, name: &str) {
    if view.clusters.iter().any(|c| c.name == name) {
        return;
    }
    view.clusters
        .extend(shared.clusters.iter().find(|c| c.name == name));
    (view.load_assignments).extend(
        shared
            .load_assignments
            .iter()
            .find(|c| c.cluster_name == name),
    );
}

fn scoped_view<'a>(shared: &'a Shared, proxy: &Proxy) -> OutboundView<'a> {
    let Some(scope) = Scope::of(shared, proxy) else {
        let (load_assignments, localized, unreachable) =
            localize(shared, proxy, &shared.load_assignments);
        return OutboundView {
            clusters: shared.clusters.iter().collect(),
            load_assignments,
            localized,
            unreachable,
            routes: Scope::all_routes(shared),
            varied_clusters: Vec::new(),
            varied_assignments: Vec::new(),
        };
    };
    let index = &shared.cluster_index;
    let (mut clusters, mut endpoints) = (index.other.0.clone(), index.other.1.clone());
    for host in &scope.admitted {
        if let Some((c, e)) = index.by_host.get(*host) {
            clusters.extend(c);
            endpoints.extend(e);
        }
    }
    // Collectors are named like outbound clusters of hosts that may be out
    // of scope.
    for name in &scope.collectors {
        let host = outbound_host(name).filter(|h| !scope.admitted.contains(h));
        if let Some((c, e)) = host.and_then(|h| index.by_host.get(h)) {
            clusters.extend(c.iter().filter(|i| shared.clusters[**i].name == *name));
            let named = |i: &&usize| shared.load_assignments[**i].cluster_name == *name;
            endpoints.extend(e.iter().filter(named));
        }
    }
    // Shared order, so that a scoped view lists resources as an unscoped one.
    clusters.sort_unstable();
    endpoints.sort_unstable();
    let in_scope = endpoints.into_iter().map(|i| &shared.load_assignments[i]);
    let (load_assignments, localized, unreachable) = localize(shared, proxy, in_scope);
    OutboundView {
        clusters: clusters.into_iter().map(|i| &shared.clusters[i]).collect(),
        load_assignments,
        localized,
        unreachable,
        routes: scope.routes(shared),
        varied_clusters: Vec::new(),
        varied_assignments: Vec::new(),
    }
}

/// The shared assignments, `proxy`'s own for the clusters that vary by
/// client locality or network, and the networks it cannot reach.
type Localized<'a> = (
    Vec<&'a ClusterLoadAssignment>,
    Vec<ClusterLoadAssignment>,
    Vec<(String, String)>,
);

/// Splits `all` into the shared assignments and, for the clusters that
/// balance by locality or span networks, `proxy`'s own.
fn localize<'a>(
    shared: &'a Shared,
    proxy: &Proxy,
    all: impl IntoIterator<Item = &'a ClusterLoadAssignment>,
) -> Localized<'a> {
    let client = client_of(shared, proxy);
    let (mut kept, mut own, mut unreachable) = (Vec::new(), Vec::new(), Vec::new());
    for cla in all {
        let Some(lc) = shared.locality_clusters.get(&cla.cluster_name) else {
            kept.push(cla);
            continue;
        };
        let (mine, lost) = locality::localize(lc, client, &shared.network_gateways);
        unreachable.extend(lost.into_iter().map(|n| (lc.name.clone(), n)));
        own.push(mine);
    }
    (kept, own, unreachable)
}

/// The host of an outbound cluster name (`outbound|PORT|SUBSET|HOST`).
fn outbound_host(name: &str) -> Option<&str> {
    name.strip_prefix("outbound|")?.splitn(3, '|').nth(2)
}

/// The shared clusters and load assignments by outbound host, built once
/// per change so that each scope picks its hosts' resources directly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterIndex {
    /// Indexes into `Shared::clusters` and `Shared::load_assignments` of
    /// each host's outbound resources.
    by_host: std::collections::BTreeMap<String, (Vec<usize>, Vec<usize>)>,
    /// Indexes of the resources that are not outbound (kept in every scope).
    other: (Vec<usize>, Vec<usize>),
}

impl ClusterIndex {
    /// Indexes `clusters` and `load_assignments` (named like their cluster).
    pub fn new<'a>(
        clusters: impl IntoIterator<Item = &'a Cluster>,
        load_assignments: impl IntoIterator<Item = &'a ClusterLoadAssignment>,
    ) -> Self {
        let mut index = ClusterIndex::default();
        for (i, c) in clusters.into_iter().enumerate() {
            match outbound_host(&c.name) {
                Some(h) => index.by_host.entry(h.to_string()).or_default().0.push(i),
                None => index.other.0.push(i),
            }
        }
        for (i, c) in load_assignments.into_iter().enumerate() {
            match outbound_host(&c.cluster_name) {
                Some(h) => index.by_host.entry(h.to_string()).or_default().1.push(i),
                None => index.other.1.push(i),
            }
        }
        index
    }
}

/// Scope checks by host, decided once per service when the scope is made
/// (a runtime makes one per [`ScopeKey`], then checks every resource).
pub(crate) struct Scope<'a> {
    /// Hosts of the services in scope.
    admitted: HashSet<&'a str>,
    /// Hosts of every service.
    known: HashSet<&'a str>,
    /// The tracing collectors' clusters, which the listeners name whatever
    /// the scope.
    collectors: Vec<String>,
}

impl<'a> Scope<'a> {
    /// The scope of `proxy`; `None` when it reaches every service: no
    /// `Sidecar` scope limits it and every service is exported to its
    /// namespace (`exportTo`).
    pub(crate) fn of(shared: &'a Shared, proxy: &Proxy) -> Option<Self> {
        let sidecar = scope_of(shared, proxy);
        let exports = &shared.service_exports;
        let hidden = |host: &Host| {
            exports
                .get(host)
                .is_some_and(|e| !e.admits(&proxy.namespace))
        };
        if sidecar.is_none() && !shared.service_namespaces.keys().any(hidden) {
            return None;
        }
        let services = shared.service_namespaces.iter();
        let admitted = services
            .clone()
            .filter(|(host, ns)| sidecar.as_ref().is_none_or(|s| s.admits(host, ns)))
            .filter(|(host, _)| !hidden(host))
            .map(|(host, _)| host.as_str())
            .collect();
        let providers = &shared.mesh.telemetry.extension_providers;
        Some(Scope {
            admitted,
            known: services.map(|(host, _)| host.as_str()).collect(),
            collectors: providers
                .iter()
                .filter_map(|p| p.kind.collector())
                .map(|(service, port)| collector_cluster_name(service, port))
                .collect(),
        })
    }

    /// True when the service `host` is in scope.
    pub(crate) fn admits_host(&self, host: &str) -> bool {
        self.admitted.contains(host)
    }

    /// Route configurations without the virtual hosts (`HOST:PORT`) of
    /// services out of scope.
    pub(crate) fn routes<'s>(&self, shared: &'s Shared) -> Vec<RouteView<'s>> {
        let keep = |vh: &VirtualHost| match vh.name.rsplit_once(':') {
            Some((host, _)) if self.known.contains(host) => self.admitted.contains(host),
            _ => true,
        };
        Self::views(shared, keep)
    }

    /// Every shared route configuration, whole.
    fn all_routes(shared: &Shared) -> Vec<RouteView<'_>> {
        Self::views(shared, |_| true)
    }

    fn views(shared: &Shared, keep: impl Fn(&VirtualHost) -> bool) -> Vec<RouteView<'_>> {
        (shared.routes.iter())
            .map(|rc| RouteView {
                shell: &rc.shell,
                virtual_hosts: (rc.virtual_hosts.iter())
                    .filter(|v| keep(v))
                    .cloned()
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{for_proxy, shared, ProxySecurity};
    use crate::config::model::{
        DefaultSidecarScope, EgressHost, EgressNamespace, ExtensionProvider, ProviderKind,
        SidecarScope,
    };
    use crate::registry::instances;
    use crate::translate::fixtures::*;

    fn outbound_hosts(names: impl Iterator<Item = String>) -> Vec<String> {
        let mut hosts: Vec<String> = names
            .filter_map(|n| {
                Some(
                    n.strip_prefix("outbound|")?
                        .splitn(3, '|')
                        .nth(2)?
                        .to_string(),
                )
            })
            .collect();
        hosts.dedup();
        hosts
    }

    #[test]
    fn a_sidecar_scoped_to_one_service_gets_only_its_resources() {
        let mut mesh = canary_mesh();
        let si = instances(
            &mesh,
            &two_versions(&["payment-service", "frontend", "ledger"]),
        );
        let proxy = sidecar("frontend", "frontend-v1", "v1", 16000);
        let all = for_proxy(&shared(&mesh, &si), &proxy, &ProxySecurity::default());
        let all_hosts = outbound_hosts(all.clusters.iter().map(|c| c.name.clone()));
        assert!(
            all_hosts.len() >= 3,
            "default scope is every service: {all_hosts:?}"
        );

        let payment = "payment-service.default.svc.cluster.local";
        mesh.sidecars.push(SidecarScope {
            namespace: "default".into(),
            selector: None,
            egress: vec![EgressHost {
                namespace: EgressNamespace::Named("default".into()),
                host: payment.into(),
            }],
            ports: Vec::new(),
            ingress: Vec::new(),
            inbound_pool: None,
            outbound_policy: None,
            egress_proxy: None,
            origin: origin("Sidecar", "frontend"),
        });
        let scoped = for_proxy(&shared(&mesh, &si), &proxy, &ProxySecurity::default());
        let hosts = outbound_hosts(scoped.clusters.iter().map(|c| c.name.clone()));
        assert_eq!(hosts, [payment]);
        let eds = outbound_hosts(
            scoped
                .load_assignments
                .iter()
                .map(|c| c.cluster_name.clone()),
        );
        assert_eq!(eds, [payment]);
        assert!(scoped
            .clusters
            .iter()
            .any(|c| c.name.starts_with("inbound|")));
        let vhosts: Vec<&str> = scoped.routes[0]
            .virtual_hosts
            .iter()
            .map(|v| v.name.as_str())
            .filter(|v| *v != "allow_any")
            .collect();
        assert!(vhosts.iter().all(|v| v.starts_with(payment)), "{vhosts:?}");
        assert!(!vhosts.is_empty());
    }

    #[test]
    fn without_a_sidecar_the_mesh_default_decides() {
        let mut mesh = canary_mesh();
        let mut reg = two_versions(&["frontend"]);
        for (svc, ns, port) in [("istiod", "istio-system", 16100), ("web", "other", 16101)] {
            let mut p = sidecar(svc, &format!("{svc}-v1"), "v1", port);
            p.namespace = ns.into();
            reg.register(p);
        }
        let si = instances(&mesh, &reg);
        let proxy = sidecar("frontend", "frontend-v1", "v1", 16000);
        let hosts = |mesh: &crate::config::model::MeshConfig| {
            let r = for_proxy(&shared(mesh, &si), &proxy, &ProxySecurity::default());
            outbound_hosts(r.clusters.iter().map(|c| c.name.clone()))
        };
        let scoped = hosts(&mesh);
        let has = |hosts: &[String], h: &str| hosts.iter().any(|x| x == h);
        assert!(
            has(&scoped, "frontend.default.svc.cluster.local"),
            "{scoped:?}"
        );
        assert!(has(&scoped, "istiod.istio-system.svc.cluster.local"));
        assert!(!has(&scoped, "web.other.svc.cluster.local"), "{scoped:?}");

        mesh.mesh.default_sidecar_scope = DefaultSidecarScope::AllServices;
        let all = hosts(&mesh);
        assert!(has(&all, "web.other.svc.cluster.local"), "{all:?}");
        assert!(has(&all, "istiod.istio-system.svc.cluster.local"));
    }

    #[test]
    fn tracing_collectors_stay_whatever_the_scope() {
        let mut mesh = canary_mesh();
        let mut reg = two_versions(&["frontend"]);
        let mut web = sidecar("web", "web-v1", "v1", 16100);
        web.namespace = "other".into();
        reg.register(web);
        let si = instances(&mesh, &reg);
        let proxy = sidecar("frontend", "frontend-v1", "v1", 16000);
        let web_cluster = shared(&mesh, &si)
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .find(|n| n.ends_with("||web.other.svc.cluster.local"))
            .expect("web's cluster");
        let web_port: u16 = web_cluster.split('|').nth(1).unwrap().parse().unwrap();
        let zipkin = |service: &str, port: u16| ExtensionProvider {
            name: format!("z-{service}"),
            kind: ProviderKind::Zipkin {
                service: service.into(),
                port,
                path: "/api/v2/spans".into(),
            },
        };
        mesh.mesh.telemetry.extension_providers = vec![
            zipkin("127.0.0.1", 9411),
            zipkin("web.other.svc.cluster.local", web_port),
        ];
        let r = for_proxy(&shared(&mesh, &si), &proxy, &ProxySecurity::default());
        let names: Vec<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"outbound|9411||127.0.0.1"), "{names:?}");
        assert!(names.contains(&web_cluster.as_str()), "{names:?}");
        let other = names
            .iter()
            .filter(|n| n.ends_with("web.other.svc.cluster.local"));
        assert_eq!(other.count(), 1, "only the collector's cluster: {names:?}");
    }
}
