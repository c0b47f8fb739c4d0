//! Building every sidecar's snapshot with work that follows the change.
//!
//! - Each resource is encoded once per rebuild and interned by content: a
//!   resource whose bytes did not change keeps its `Arc` across rebuilds,
//!   so streams tell it is unchanged by pointer and never re-hash it.
//! - Proxies with the same outbound view ([`ScopeKey`]) share one set per
//!   type (`Arc<TypeResources>`) for endpoints and routes, and for clusters
//!   too when their inbound cluster is the same: the per-proxy cost is a
//!   handful of map lookups, not a copy of the mesh.
//! - A proxy's own resources (listeners, inbound cluster, secrets) are
//!   re-translated only when the proxy, its certificate or the policy
//!   inputs they depend on changed.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener as XdsListener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret as XdsSecret;
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use super::route_bytes::VhostBytes;
use crate::registry::Proxy;
use crate::translate::scope::{outbound_view, scope_key, RouteView, ScopeKey};
use crate::translate::{self, ProxySecurity, Shared};
use crate::xds::{
    Resources, Snapshot, TypeResources, Versioned, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE,
    ROUTE_TYPE, SECRET_TYPE,
};

/// Encoded resources by content, from one rebuild to the next.
#[derive(Default)]
struct Interner {
    /// By version digest ([`Versioned::digest`]).
    previous: HashMap<u128, Arc<Versioned>>,
    current: HashMap<u128, Arc<Versioned>>,
    /// Each shared virtual host's bytes, for the route configurations.
    vhost_bytes: VhostBytes,
}

impl Interner {
    /// Encodes `msg` canonically (every map in key order, see
    /// [`crate::canonical`]), so the same message always has the same bytes
    /// and version; the same bytes as in this or the previous rebuild give
    /// the same `Arc`.
    fn encode<M: prost::Message + prost::Name>(&mut self, msg: &M) -> Arc<Versioned> {
        self.intern(Any {
            type_url: M::type_url(),
            value: canonical_bytes(msg),
        })
    }

    /// [`Interner::encode`] of a route configuration view, written from
    /// the virtual hosts it borrows (the same bytes as the whole message).
    fn encode_view(&mut self, view: &RouteView<'_>) -> Arc<Versioned> {
        match self.vhost_bytes.route_view_bytes(view) {
            Ok(value) => self.intern(Any {
                type_url: RouteConfiguration::type_url(),
                value,
            }),
            Err(_) => self.encode(&view.to_config()),
        }
    }

    /// The interned `Arc` of `any`'s bytes.
    fn intern(&mut self, any: Any) -> Arc<Versioned> {
        // One pass over the bytes: the version's digest is also the key
        // (equal digests are then checked by comparing bytes).
        let new = Versioned::new(any);
        let key = new.digest();
        if let Some(found) = self.current.get(&key).or_else(|| self.previous.get(&key)) {
            if found.any() == new.any() {
                let found = Arc::clone(found);
                self.current.insert(key, Arc::clone(&found));
                return found;
            }
        }
        let new = Arc::new(new);
        self.current.insert(key, Arc::clone(&new));
        new
    }

    /// Starts a rebuild with room for as many encodings as the last one
    /// used: a rebuild mostly uses the same number again, and growing the
    /// map from empty would hash every key once per doubling. Reserved here,
    /// not kept from the last rebuild, so the room costs nothing between
    /// rebuilds.
    fn start(&mut self) {
        self.current.reserve(self.previous.len());
        self.vhost_bytes.start();
    }

    /// Ends a rebuild: what it did not use is forgotten.
    fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.current);
        self.vhost_bytes.finish();
    }
}

/// `msg` in canonical form. Failing that (a type missing from the
/// descriptor set: a bug), prost's bytes: still the right config, but its
/// version may change without a change, so it is logged as an error.
fn canonical_bytes<M: prost::Message + prost::Name>(msg: &M) -> Vec<u8> {
    crate::canonical::encode(msg).unwrap_or_else(|e| {
        tracing::error!(
            r#type = %M::full_name(),
            "resource not encoded deterministically; it may be re-pushed unchanged: {e}"
        );
        msg.encode_to_vec()
    })
}

/// The encoded resources of one proxy that are its own.
#[derive(Clone)]
struct Own {
    /// The registry's own `Arc` (one per connected proxy, kept until the
    /// next build): a copy cost every proxy its strings and a
    /// few hundred bytes more in this map's slot.
    proxy: Arc<Proxy>,
    security: ProxySecurity,
    /// `None` for a gateway (no app).
    inbound_cluster: Option<(String, Arc<Versioned>)>,
    /// A gateway's AUTO_PASSTHROUGH clusters, or a sidecar's inbound
    /// clusters past the first (Sidecar ingress ports).
    gateway_clusters: Vec<(String, Arc<Versioned>)>,
    listeners: Option<Arc<TypeResources>>,
    /// A gateway's own route configurations; `None` for a sidecar.
    routes: Option<Arc<TypeResources>>,
    secrets: Option<Arc<TypeResources>>,
    /// Gateway servers left out (their credential is missing or unusable).
    skipped: usize,
    /// What `EnvoyFilter` patches did to these resources.
    envoy_filters: translate::envoy_filter::Report,
}

/// The shared sets of one outbound view.
struct Group {
    outbound_clusters: Resources,
    endpoints: Option<Arc<TypeResources>>,
    routes: Option<Arc<TypeResources>>,
    /// Full CDS sets by the inbound cluster they add (its `Arc` address:
    /// interned, so equal clusters have equal addresses).
    clusters: HashMap<usize, Arc<TypeResources>>,
    /// The last build's `clusters` when the outbound clusters are the same:
    /// taken from as proxies ask, so sets no proxy uses any more are dropped.
    last_clusters: HashMap<usize, Arc<TypeResources>>,
    /// What `EnvoyFilter` patches did to the shared sets.
    envoy_filters: translate::envoy_filter::Report,
}

/// Encoded resources by name.
type Encoded = HashMap<String, Arc<Versioned>>;

/// One service's encoded clusters and load assignments, and the
/// translation they came from.
struct EncodedService {
    memo: Arc<translate::ServiceClusters>,
    clusters: Vec<(String, Arc<Versioned>)>,
    endpoints: Vec<(String, Arc<Versioned>)>,
}

/// What the snapshot builder keeps between rebuilds.
#[derive(Default)]
pub(crate) struct BuildState {
    interner: Interner,
    services: HashMap<crate::config::model::Host, EncodedService>,
    /// Each proxy's own resources and snapshot of the last build, by node id.
    proxies: HashMap<String, Kept>,
    previous: Option<Shared>,
    /// The last build's groups: a group whose sets did not change keeps
    /// their `Arc`s, so its proxies' snapshots can be kept whole.
    groups: HashMap<ScopeKey, Group>,
    /// Gateway TLS credentials in force (`--credentials-dir`).
    pub(crate) credentials: translate::gateway::Credentials,
    /// Keys fetched from `jwksUri`s (see `serve::jwks`).
    pub(crate) jwks: translate::jwt::FetchedJwks,
    /// Gateways that selected no gateway proxy at the last build.
    pub(crate) unselected_gateways: std::collections::BTreeSet<String>,
    /// What `EnvoyFilter` patches did at the last build, over every proxy
    /// (`patched` says which filter changed which resource).
    pub(crate) envoy_filters: translate::envoy_filter::Report,
    /// The `EnvoyFilter` problems logged at the last build.
    envoy_filter_logged: Vec<String>,
}

/// What a build leaves of one proxy for the next.
struct Kept {
    own: Own,
    snapshot: Arc<Snapshot>,
}

/// The result of one build.
pub(crate) struct Built {
    /// Every proxy's snapshot by node id, and whether it is new: `false`
    /// means the very snapshot of the last build (nothing to publish).
    pub(crate) snapshots: Vec<(String, Arc<Snapshot>, bool)>,
    /// Node ids built last time and not this time (proxies that left).
    pub(crate) gone: Vec<String>,
    /// The last build's translation, replaced by this one, and this one's
    /// cluster and endpoint lists (see [`flat_lists`]). Freeing them is
    /// work no proxy should wait for: drop them after publishing.
    pub(crate) retired: Vec<Shared>,
    /// Gateway servers left out over all proxies.
    pub(crate) skipped_servers: usize,
}

/// Takes the lists of every cluster and load assignment and their index by
/// host out of `shared`, which keeps it as the next build's `previous`:
/// this build picks each view's resources through them, but neither
/// `translate::shared_from` nor `Shared::same_proxy_inputs` reads them.
/// The lists share `per_service`'s translations; the index holds a name
/// per host, not worth keeping between rebuilds.
fn flat_lists(shared: &mut Shared) -> Shared {
    Shared {
        clusters: std::mem::take(&mut shared.clusters),
        load_assignments: std::mem::take(&mut shared.load_assignments),
        cluster_index: std::mem::take(&mut shared.cluster_index),
        ..Shared::default()
    }
}

/// A set, or `None` when empty (a snapshot has no empty types).
fn set(items: Resources) -> Option<Arc<TypeResources>> {
    (!items.is_empty()).then(|| Arc::new(TypeResources::new(items)))
}

impl BuildState {
    /// The shared resources of the last build, for `translate::shared_from`.
    pub(crate) fn previous(&self) -> Option<&Shared> {
        self.previous.as_ref()
    }

    /// One snapshot per proxy (with its security) for the resources of
    /// `shared`, by node id.
    pub(crate) fn build(
        &mut self,
        mut shared: Shared,
        proxies: Vec<(&Arc<Proxy>, ProxySecurity)>,
    ) -> Built {
        let same_inputs = self
            .previous
            .as_ref()
            .is_some_and(|p| p.same_proxy_inputs(&shared));
        self.interner.start();
        let (clusters, endpoints) = self.encode_shared(&shared);
        let mut last_groups = std::mem::take(&mut self.groups);
        let mut last = std::mem::take(&mut self.proxies);
        let mut groups: HashMap<ScopeKey, Group> = HashMap::new();
        let mut kept = HashMap::with_capacity(proxies.len());
        let mut out = Vec::with_capacity(proxies.len());
        let mut skipped_servers = 0;
        for (proxy, security) in proxies {
            let key = scope_key(&shared, proxy);
            let group = match groups.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let mut group = self.group(&shared, proxy, &clusters, &endpoints);
                    if let Some(last) = last_groups.remove(e.key()) {
                        group.keep_unchanged(last);
                    }
                    e.insert(group)
                }
            };
            let (last_own, last_snapshot) = match last.remove(&proxy.id) {
                Some(k) => (Some(k.own), Some(k.snapshot)),
                None => (None, None),
            };
            let own = match last_own {
                Some(o) if same_inputs && o.proxy == *proxy && o.security == security => o,
                _ => self.own(&shared, proxy, security),
            };
            skipped_servers += own.skipped;
            let (snapshot, fresh) = keep_or_make(last_snapshot, parts(group, &own));
            out.push((proxy.id.clone(), Arc::clone(&snapshot), fresh));
            kept.insert(proxy.id.clone(), Kept { own, snapshot });
        }
        self.note_envoy_filters(&shared, &kept, &groups);
        self.proxies = kept;
        self.groups = groups;
        let flat = flat_lists(&mut shared);
        let retired = self.previous.replace(shared).into_iter().chain([flat]);
        self.interner.finish();
        Built {
            snapshots: out,
            gone: last.into_keys().collect(),
            retired: retired.collect(),
            skipped_servers,
        }
    }

    /// Every shared cluster and load assignment, encoded, by name. A
    /// service whose translation was reused (`translate::shared_from`)
    /// reuses its encodings too: the work follows the change.
    fn encode_shared(&mut self, shared: &Shared) -> (Encoded, Encoded) {
        let mut services = HashMap::with_capacity(shared.per_service.len());
        // Sized at once: growing them would hash every name again.
        let mut cds = Encoded::with_capacity(shared.clusters.len());
        let mut eds = Encoded::with_capacity(shared.load_assignments.len());
        for (host, memo) in &shared.per_service {
            let done = match self.services.remove(host) {
                Some(e) if Arc::ptr_eq(&e.memo, memo) => e,
                // Only the endpoints changed: the clusters keep their bytes.
                Some(e) if e.memo.same_clusters(memo) => EncodedService {
                    memo: Arc::clone(memo),
                    clusters: e.clusters,
                    endpoints: self.encode_all(memo.assignments(), |c: &ClusterLoadAssignment| {
                        &c.cluster_name
                    }),
                },
                _ => EncodedService {
                    memo: Arc::clone(memo),
                    clusters: self.encode_all(memo.clusters(), |c: &XdsCluster| &c.name),
                    endpoints: self.encode_all(memo.assignments(), |c: &ClusterLoadAssignment| {
                        &c.cluster_name
                    }),
                },
            };
            cds.extend(
                done.clusters
                    .iter()
                    .map(|(n, a)| (n.clone(), Arc::clone(a))),
            );
            eds.extend(
                done.endpoints
                    .iter()
                    .map(|(n, a)| (n.clone(), Arc::clone(a))),
            );
            services.insert(host.clone(), done);
        }
        self.services = services;
        // What no service produced (tracing collectors), encoded each time.
        for c in &shared.clusters {
            if !cds.contains_key(&c.name) {
                let any = self.interner.encode(c);
                cds.insert(c.name.clone(), any);
            }
        }
        for c in &shared.load_assignments {
            if !eds.contains_key(&c.cluster_name) {
                let any = self.interner.encode(c);
                eds.insert(c.cluster_name.clone(), any);
            }
        }
        (cds, eds)
    }

    fn encode_all<M: prost::Message + prost::Name>(
        &mut self,
        items: &[M],
        name: impl Fn(&M) -> &String,
    ) -> Vec<(String, Arc<Versioned>)> {
        items
            .iter()
            .map(|m| (name(m).clone(), self.interner.encode(m)))
            .collect()
    }

    fn group(
        &mut self,
        shared: &Shared,
        proxy: &Proxy,
        clusters: &Encoded,
        endpoints: &Encoded,
    ) -> Group {
        let view = outbound_view(shared, proxy);
        for (cluster, network) in &view.unreachable {
            tracing::debug!(proxy = %proxy.id, %cluster, %network, "endpoints on another network left out: no east-west gateway known for it");
        }
        let pick = |names: &mut dyn Iterator<Item = &String>,
                    from: &HashMap<String, Arc<Versioned>>| {
            names
                .filter_map(|n| Some((n.clone(), Arc::clone(from.get(n)?))))
                .collect::<Resources>()
        };
        let key = crate::translate::scope::scope_key(shared, proxy);
        let (outbound_clusters, routes, envoy_filters) = if key.envoy_filters.is_empty() {
            let mut picked = pick(&mut view.clusters.iter().map(|c| &c.name), clusters);
            // Translated under another rule than the shared clusters.
            for c in &view.varied_clusters {
                picked.insert(c.name.clone(), self.interner.encode(*c));
            }
            let routes = (view.routes.iter())
                .map(|r| (r.name().to_string(), self.interner.encode_view(r)))
                .collect();
            (picked, routes, Default::default())
        } else {
            // Patched for this group alone: encoded here, not shared.
            let all = view.clusters.iter().chain(&view.varied_clusters);
            let mut own: Vec<XdsCluster> = all.map(|c| (*c).clone()).collect();
            let mut routes: Vec<RouteConfiguration> =
                view.routes.iter().map(RouteView::to_config).collect();
            let report = translate::patch_shared_view(shared, proxy, &mut own, &mut routes);
            let encoded = (own.iter())
                .map(|c| (c.name.clone(), self.interner.encode(c)))
                .collect();
            let routes = (routes.iter())
                .map(|r| (r.name.clone(), self.interner.encode(r)))
                .collect();
            (encoded, routes, report)
        };
        let mut eds = pick(
            &mut view.load_assignments.iter().map(|c| &c.cluster_name),
            endpoints,
        );
        // Endpoints balanced by the group's locality (`ScopeKey::client`),
        // and those of clusters under another rule than the shared ones.
        for cla in view
            .varied_assignments
            .iter()
            .copied()
            .chain(&view.localized)
        {
            eds.insert(cla.cluster_name.clone(), self.interner.encode(cla));
        }
        Group {
            outbound_clusters,
            endpoints: set(eds),
            routes: set(routes),
            clusters: HashMap::new(),
            last_clusters: HashMap::new(),
            envoy_filters,
        }
    }

    fn own(&mut self, shared: &Shared, proxy: &Arc<Proxy>, security: ProxySecurity) -> Own {
        let res = translate::proxy_own(shared, proxy, &security);
        // `of`: the Gateway or Sidecar; `entry`: the server's or port's index.
        for (of, entry, why) in &res.skipped {
            tracing::warn!(proxy = %proxy.id, %of, entry, %why, "gateway server or Sidecar port left out");
        }
        let inbound =
            (res.inbound_cluster.as_ref()).map(|c| (c.name.clone(), self.interner.encode(c)));
        let routes = (res.routes.iter())
            .map(|r: &RouteConfiguration| (r.name.clone(), self.interner.encode(r)))
            .collect();
        let gateway_clusters = (res.gateway_clusters.iter())
            .map(|c| (c.name.clone(), self.interner.encode(c)))
            .collect();
        let listeners = res
            .listeners
            .iter()
            .map(|l: &XdsListener| (l.name.clone(), self.interner.encode(l)))
            .collect();
        let secrets = res
            .secrets
            .iter()
            .map(|s: &XdsSecret| (s.name.clone(), self.interner.encode(s)))
            .collect();
        Own {
            proxy: Arc::clone(proxy),
            security,
            inbound_cluster: inbound,
            gateway_clusters,
            listeners: set(listeners),
            routes: proxy.gateway.is_some().then(|| set(routes)).flatten(),
            secrets: set(secrets),
            skipped: res.skipped.len(),
            envoy_filters: res.envoy_filters,
        }
    }

    /// Gathers what `EnvoyFilter` patches did over every proxy and logs
    /// the problems that are new since the last build: patches that could
    /// not be applied, and patches that matched nothing on any proxy.
    fn note_envoy_filters(
        &mut self,
        shared: &Shared,
        kept: &HashMap<String, Kept>,
        groups: &HashMap<ScopeKey, Group>,
    ) {
        let mut report = translate::envoy_filter::Report::default();
        for k in kept.values() {
            report.extend(k.own.envoy_filters.clone());
        }
        for g in groups.values() {
            report.extend(g.envoy_filters.clone());
        }
        let mut problems: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
        if !kept.is_empty() {
            let unmatched = report.unmatched(&shared.envoy_filters);
            problems.extend(unmatched.iter().map(|d| d.warning()));
        }
        problems.sort();
        problems.dedup();
        for p in problems
            .iter()
            .filter(|p| !self.envoy_filter_logged.contains(p))
        {
            tracing::warn!("EnvoyFilter: {p}");
        }
        self.envoy_filter_logged = problems;
        self.envoy_filters = report;
    }
}

/// Each type's set of one proxy (`None`: the type is empty), from its
/// group's sets and its own.
type Parts = [(&'static str, Option<Arc<TypeResources>>); 5];

fn parts(group: &mut Group, own: &Own) -> Parts {
    if !own.gateway_clusters.is_empty() {
        return gateway_parts(group, own);
    }
    // Key 0: no inbound cluster (a gateway), the outbound clusters alone.
    let key = own
        .inbound_cluster
        .as_ref()
        .map_or(0, |(_, c)| Arc::as_ptr(c) as usize);
    let clusters = group.clusters.entry(key).or_insert_with(|| {
        group.last_clusters.remove(&key).unwrap_or_else(|| {
            let mut all = group.outbound_clusters.clone();
            if let Some((name, cluster)) = &own.inbound_cluster {
                all.insert(name.clone(), Arc::clone(cluster));
            }
            Arc::new(TypeResources::new(all))
        })
    });
    // A gateway routes with its own configurations only.
    let routes = match &own.routes {
        Some(_) => own.routes.clone(),
        None if own.inbound_cluster.is_none() => None,
        None => group.routes.clone(),
    };
    [
        (CLUSTER_TYPE.as_str(), Some(Arc::clone(clusters))),
        (ENDPOINT_TYPE.as_str(), group.endpoints.clone()),
        (ROUTE_TYPE.as_str(), routes),
        (LISTENER_TYPE.as_str(), own.listeners.clone()),
        (SECRET_TYPE.as_str(), own.secrets.clone()),
    ]
}

/// A gateway with AUTO_PASSTHROUGH clusters of its own, or a sidecar
/// with several inbound clusters: its cluster set is made for it alone
/// (such proxies are few), not shared through the group.
fn gateway_parts(group: &Group, own: &Own) -> Parts {
    let mut all = group.outbound_clusters.clone();
    for (name, cluster) in own.inbound_cluster.iter().chain(&own.gateway_clusters) {
        all.insert(name.clone(), Arc::clone(cluster));
    }
    // A sidecar routes with the shared `outbound` configuration.
    let routes = match own.proxy.gateway {
        Some(_) => own.routes.clone(),
        None => group.routes.clone(),
    };
    [
        (
            CLUSTER_TYPE.as_str(),
            Some(Arc::new(TypeResources::new(all))),
        ),
        (ENDPOINT_TYPE.as_str(), group.endpoints.clone()),
        (ROUTE_TYPE.as_str(), routes),
        (LISTENER_TYPE.as_str(), own.listeners.clone()),
        (SECRET_TYPE.as_str(), own.secrets.clone()),
    ]
}

/// `last` when it holds every one of `parts` (the same `Arc`s): the proxy
/// then is not even compared at publish time; else a new snapshot. True
/// when new.
fn keep_or_make(last: Option<Arc<Snapshot>>, parts: Parts) -> (Arc<Snapshot>, bool) {
    match last {
        Some(last) if parts.iter().all(|(url, set)| last.holds(url, set.as_ref())) => (last, false),
        _ => (Arc::new(snapshot(parts)), true),
    }
}

/// A proxy's snapshot from its sets.
fn snapshot(parts: Parts) -> Snapshot {
    let mut b = Snapshot::builder();
    for (url, set) in parts {
        if let Some(set) = set {
            b.set_type(url, set);
        }
    }
    b.build()
}

impl Group {
    /// Takes `last`'s sets where they hold the same resources (each the
    /// same `Arc`: the interner gives unchanged bytes their old `Arc`), so
    /// the proxies of an unchanged group keep their snapshots.
    fn keep_unchanged(&mut self, last: Group) {
        keep_if_same(&mut self.endpoints, last.endpoints);
        keep_if_same(&mut self.routes, last.routes);
        if same_items(&self.outbound_clusters, &last.outbound_clusters) {
            // Keyed by inbound cluster `Arc`s that these sets keep alive,
            // so no key can stand for another cluster.
            self.last_clusters = last.clusters;
        }
    }
}

fn keep_if_same(set: &mut Option<Arc<TypeResources>>, last: Option<Arc<TypeResources>>) {
    if let (Some(new), Some(last)) = (set.as_ref(), last) {
        if same_items(new.items(), last.items()) {
            *set = Some(last);
        }
    }
}

/// Same names, each with the very same encoded resource.
fn same_items(a: &Resources, b: &Resources) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((na, ra), (nb, rb))| na == nb && Arc::ptr_eq(ra, rb))
}
