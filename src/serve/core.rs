//! The control plane's shared state and the events that change it: config
//! accepted or rejected, sidecar connected or gone.
//!
//! Every change ends in one "dirty" signal; the rebuild loop
//! (`serve::snapshots`) is the only writer of the snapshot cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::{watch, Notify};
use tonic::metadata::MetadataMap;

use super::auth::StreamAuth;
use super::certs::Certs;
use super::metrics::ServeMetrics;
use crate::admin::{now, AdminState, ConfigStatus, Rejected};
use crate::ca::Ca;
use crate::config::model::MeshConfig;
use crate::config::{LoadError, SourceIndex};
use crate::registry::{Proxy, Registry};
use crate::store::Store;
use crate::translate::provenance::{PatchIndex, Rejecter};
use crate::xds::{ProxyStatusTable, Refusal, SnapshotCache, StreamCut, StreamHooks};

mod clusters;
mod network;
mod replicas;

/// Open streams of one node id, and a counter that changes on every open
/// and close so a pending deregistration can tell it is stale.
#[derive(Debug, Default)]
struct Presence {
    streams: usize,
    epoch: u64,
}

/// State shared by the streams, the reload loop and the rebuild loop.
pub(crate) struct Core {
    pub(crate) config_dir: PathBuf,
    pub(crate) config: ArcSwap<MeshConfig>,
    /// Where the config's Envoy resources come from, to trace NACKs.
    pub(crate) provenance: ArcSwap<super::reload::LazyProvenance>,
    /// Which resources `EnvoyFilter` patches changed at the last build, to
    /// blame a NACK of one on its patch.
    pub(crate) patches: ArcSwap<PatchIndex>,
    /// The generation of the config in force; watchers follow reloads
    /// (`serve::clusters`).
    generation: watch::Sender<u64>,
    /// Shared with the rebuild in progress and the last save; a change
    /// copies it first only while one of them holds it ([`Core::register`]).
    pub(crate) registry: Mutex<Arc<Registry>>,
    presence: Mutex<HashMap<String, Presence>>,
    pub(crate) dirty: Notify,
    pub(crate) cache: SnapshotCache,
    pub(crate) status: ProxyStatusTable,
    /// Other replicas' proxies' status (`serve::status_share`).
    pub(crate) peers: super::status_share::PeerStatus,
    pub(crate) metrics: ServeMetrics,
    pub(crate) admin: AdminState,
    grace: Duration,
    /// How long sidecars restored from the last run stay endpoints without
    /// reconnecting ([`Core::restore`]).
    restart_grace: Duration,
    /// Restored sidecars that have not reconnected yet, with the presence
    /// epoch they were restored at.
    restored: Mutex<HashMap<String, u64>>,
    /// Fires when the last restored sidecar reconnects.
    all_restored_back: Notify,
    pub(crate) auth: StreamAuth,
    pub(crate) certs: Certs,
    /// Bumped when the token revocation list changed, to wake open streams
    /// (`serve::token_watch`).
    pub(crate) revocations: watch::Sender<u64>,
    /// Rebuilds asked for by [`Core::request_rebuild`], and the highest of
    /// those a finished rebuild covered (root rotation waits on it).
    requested: AtomicU64,
    pub(crate) rebuilt: AtomicU64,
    /// What replicas share: the registry saved for restarts (local), or
    /// every replica's registrations (etcd).
    pub(crate) store: Store,
    /// The registry as last saved, to write only on changes.
    saved: Mutex<Arc<Registry>>,
    /// What the snapshot builder keeps from one rebuild to the next.
    pub(crate) build: Mutex<super::snapshots::BuildState>,
    /// The root rotation replicas share (etcd only).
    pub(crate) shared_rotation: super::rotation::shared::Shared,
    /// The staged rollout of config generations (`serve::rollout`).
    pub(crate) rollout: super::rollout::Rollout,
    /// What the snapshot builder keeps for the last good generation while
    /// a newer one bakes on the canary set.
    pub(crate) held_build: Mutex<super::snapshots::BuildState>,
    /// Remote clusters' sidecar ids in the registry, by cluster name.
    remote_clusters: Mutex<HashMap<String, std::collections::HashSet<String>>>,
    /// The sidecars' scraped stats (`serve::graph` writes them): the
    /// service graph, and what a staged rollout compares.
    pub(crate) samples: crate::graph::SampleStore,
}

impl Core {
    /// What a blame may know of `node_id`: its namespace and the
    /// `EnvoyFilter` patches that changed its resources.
    fn rejecter(&self, node_id: &str) -> Rejecter {
        let registry = Arc::clone(&lock(&self.registry));
        let Some(proxy) = registry.sidecars().get(node_id) else {
            return Rejecter::default();
        };
        let mesh = self.config.load();
        (self.patches.load()).rejecter(&mesh, proxy)
    }
}

/// Locks a std mutex; a panic elsewhere must not wedge the control plane,
/// and every critical section here leaves the data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What `Core::new` needs besides the first config.
pub(crate) struct CoreParts {
    pub(crate) config_dir: PathBuf,
    pub(crate) cache: SnapshotCache,
    pub(crate) status: ProxyStatusTable,
    pub(crate) peers: super::status_share::PeerStatus,
    pub(crate) metrics: ServeMetrics,
    pub(crate) admin: AdminState,
    pub(crate) grace: Duration,
    pub(crate) restart_grace: Duration,
    pub(crate) auth: StreamAuth,
    pub(crate) ca: Arc<Ca>,
    pub(crate) store: Store,
    pub(crate) rollout: super::rollout::Rollout,
    pub(crate) samples: crate::graph::SampleStore,
}

impl Core {
    /// A core serving `mesh` (with its field positions) as generation 1.
    pub(crate) fn new((mesh, source): super::reload::Loaded, parts: CoreParts) -> Arc<Self> {
        let before = parts.rollout.number_before(&mesh, &parts.config_dir);
        let core = Arc::new(Core {
            config_dir: parts.config_dir,
            config: ArcSwap::from_pointee(MeshConfig::default()),
            provenance: ArcSwap::default(),
            patches: ArcSwap::from_pointee(PatchIndex::default()),
            // Generation numbers go on from a previous run's rollout.
            generation: watch::Sender::new(before),
            registry: Mutex::new(Arc::new(Registry::new())),
            presence: Mutex::new(HashMap::new()),
            dirty: Notify::new(),
            cache: parts.cache,
            status: parts.status,
            peers: parts.peers,
            metrics: parts.metrics,
            admin: parts.admin,
            grace: parts.grace,
            restart_grace: parts.restart_grace,
            restored: Mutex::new(HashMap::new()),
            all_restored_back: Notify::new(),
            certs: Certs::new(parts.ca, Some(Arc::clone(parts.auth.tokens()))),
            auth: parts.auth,
            revocations: watch::Sender::new(0),
            requested: AtomicU64::new(0),
            rebuilt: AtomicU64::new(0),
            store: parts.store,
            saved: Mutex::new(Arc::new(Registry::new())),
            build: Mutex::default(),
            shared_rotation: Default::default(),
            remote_clusters: Mutex::default(),
            rollout: parts.rollout,
            held_build: Mutex::default(),
            samples: parts.samples,
        });
        core.install(mesh, source);
        core.admin.set_config_loaded(true);
        core
    }

    /// Asks for a rebuild; the returned ticket is covered once
    /// `rebuilt >= ticket`.
    pub(crate) fn request_rebuild(&self) -> u64 {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.dirty.notify_one();
        ticket
    }

    /// The newest rebuild ticket (read when a rebuild starts).
    pub(crate) fn rebuild_ticket(&self) -> u64 {
        self.requested.load(Ordering::SeqCst)
    }

    /// The generation of the config in force.
    pub(crate) fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Wakes on every config put in force.
    pub(crate) fn config_installed(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Puts `mesh` in force and asks for a rebuild; `source` locates its
    /// fields for NACK provenance.
    fn install(&self, mesh: MeshConfig, source: SourceIndex) {
        for w in &mesh.warnings {
            tracing::warn!("config: {}", w.warning());
        }
        let files = mesh.files.clone();
        let mesh = Arc::new(mesh);
        // Before the push, so that a NACK of it finds its origin.
        let provenance = super::reload::LazyProvenance::new(Arc::clone(&mesh), source);
        self.provenance.store(Arc::new(provenance));
        self.config.store(Arc::clone(&mesh));
        self.restamp_gateways();
        let mut generation = 0;
        self.generation.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        self.metrics.set_generation(generation);
        self.rollout.offer(generation, mesh, &self.config_dir);
        let previous = self.admin.config_status();
        self.admin.set_config_status(ConfigStatus {
            generation,
            config_dir: self.config_dir.clone(),
            files,
            loaded_at: Some(now().0),
            last_rejected: previous.last_rejected.clone(),
        });
        self.dirty.notify_one();
    }

    /// A reload produced a valid config.
    pub(crate) fn accept_config(&self, mesh: MeshConfig, source: SourceIndex) {
        let files = mesh.files.len();
        self.install(mesh, source);
        self.metrics.reload(true);
        tracing::info!(generation = self.generation(), files, "config reloaded");
    }

    /// A reload failed: keep the last good config, say why everywhere.
    pub(crate) fn reject_config(&self, err: &LoadError) {
        let rejected = Rejected::from_load_error(err);
        for line in &rejected.diagnostics {
            tracing::warn!(generation = self.generation(), "config rejected: {line}");
        }
        self.metrics.reload(false);
        let mut status = self.admin.config_status().as_ref().clone();
        status.last_rejected = Some(rejected);
        self.admin.set_config_status(status);
    }

    /// A stream opened: register the sidecar (again) and build its snapshot.
    pub(crate) fn sidecar_connected(&self, mut proxy: Proxy) {
        proxy.default_topology(&self.config.load().mesh.multi_cluster);
        let proxy = self.with_network_port(proxy);
        let id = proxy.id.clone();
        {
            let mut presence = lock(&self.presence);
            let p = presence.entry(id.clone()).or_default();
            p.streams += 1;
            p.epoch += 1;
        }
        self.status
            .set_identity(&id, &proxy.service, &proxy.namespace, &proxy.labels);
        self.restored_back(&id);
        self.store.registered(&proxy);
        let changed = self.register(proxy);
        tracing::info!(node = %id, changed, "sidecar connected");
        // Even when nothing changed the snapshot may be missing (first
        // stream after a deregistration raced with a rebuild): rebuilding is
        // cheap and the cache ignores identical versions.
        self.dirty.notify_one();
    }

    /// Registers the sidecars a previous run saved. Their Envoys most likely
    /// still run and serve traffic, but reconnect only when their ADS retry
    /// backoff allows, so each stays an endpoint until it reconnects or the
    /// restart grace period ends, whichever comes first; the period ends
    /// early once every one of them is back.
    pub(crate) fn restore(self: &Arc<Self>) {
        let proxies = self.store.restore();
        if proxies.is_empty() {
            return;
        }
        tracing::info!(sidecars = proxies.len(), restart_grace = ?self.restart_grace, "restored the registry of the previous run");
        for proxy in proxies {
            let id = proxy.id.clone();
            let epoch = {
                let mut presence = lock(&self.presence);
                let p = presence.entry(id.clone()).or_default();
                p.epoch += 1;
                p.epoch
            };
            lock(&self.restored).insert(id, epoch);
            self.register(proxy);
        }
        self.metrics
            .set_restored_pending(lock(&self.restored).len());
        let core = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(core.restart_grace) => core.end_restart_grace(),
                _ = core.all_restored_back.notified() => {
                    tracing::info!("every restored sidecar reconnected; restart grace period over");
                }
            }
        });
        self.dirty.notify_one();
    }

    /// A restored sidecar's stream opened: it no longer needs the restart
    /// grace period.
    fn restored_back(&self, id: &str) {
        let mut restored = lock(&self.restored);
        if restored.remove(id).is_none() {
            return;
        }
        self.metrics.set_restored_pending(restored.len());
        if restored.is_empty() {
            // `notify_one` keeps the permit if the waiter is not polled yet.
            self.all_restored_back.notify_one();
        }
    }

    /// The restart grace period ran out: restored sidecars that never
    /// reconnected are gone.
    fn end_restart_grace(&self) {
        let gone: Vec<(String, u64)> = lock(&self.restored).drain().collect();
        self.metrics.set_restored_pending(0);
        tracing::info!(
            missing = gone.len(),
            "restart grace period over; deregistering restored sidecars that did not reconnect"
        );
        for (id, epoch) in gone {
            self.deregister_if_gone(&id, epoch);
        }
    }

    /// A node id registered (connected, or within its grace period) for
    /// another identity is refused: the stream would otherwise be handed
    /// that identity's current snapshot, key included.
    fn check_node_id(&self, proxy: &Proxy) -> Result<(), Refusal> {
        let registry = lock(&self.registry);
        let Some(known) = registry.sidecars().get(&proxy.id) else {
            return Ok(());
        };
        let identity = |p: &Proxy| {
            (
                p.namespace.clone(),
                p.service.clone(),
                p.service_account.clone(),
            )
        };
        if identity(known) == identity(proxy) {
            return Ok(());
        }
        Err(Refusal {
            status: tonic::Status::permission_denied(format!(
                "node id {:?} is registered for another workload identity; \
                 use a node id of your own",
                proxy.id
            )),
            reason: "node_id_conflict",
        })
    }

    /// Saves the registry if it changed since the last save.
    pub(crate) fn save_registry(&self, registry: &Arc<Registry>) {
        let mut saved = lock(&self.saved);
        // The same `Arc` cannot have changed: a change copies a shared one.
        if !Arc::ptr_eq(&saved, registry) && saved.sidecars() != registry.sidecars() {
            self.store.save(&self.own_cluster_only(registry));
        }
        *saved = Arc::clone(registry);
    }

    /// Registers (or updates) a sidecar; true if anything changed.
    fn register(&self, proxy: Proxy) -> bool {
        let mut registry = lock(&self.registry);
        let same = registry
            .sidecars()
            .get(&proxy.id)
            .is_some_and(|known| **known == proxy);
        !same && Arc::make_mut(&mut registry).register(proxy)
    }

    /// Deregisters a sidecar; true if it was registered.
    fn deregister(&self, id: &str) -> bool {
        let mut registry = lock(&self.registry);
        registry.sidecars().contains_key(id) && Arc::make_mut(&mut registry).deregister(id)
    }

    /// A stream closed: deregister after the grace period unless it is back.
    pub(crate) fn sidecar_disconnected(self: &Arc<Self>, id: &str) {
        let epoch = {
            let mut presence = lock(&self.presence);
            let Some(p) = presence.get_mut(id) else {
                return;
            };
            p.streams = p.streams.saturating_sub(1);
            p.epoch += 1;
            if p.streams > 0 {
                return;
            }
            p.epoch
        };
        tracing::info!(node = %id, grace = ?self.grace, "sidecar disconnected");
        let core = Arc::clone(self);
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(core.grace).await;
            core.deregister_if_gone(&id, epoch);
        });
    }

    fn deregister_if_gone(&self, id: &str, epoch: u64) {
        {
            let mut presence = lock(&self.presence);
            match presence.get(id) {
                Some(p) if p.streams == 0 && p.epoch == epoch => presence.remove(id),
                _ => return,
            };
        }
        // Also when a refused token deregistered it already.
        self.status.remove(id);
        self.store.deregistered(id);
        if self.deregister(id) {
            tracing::info!(node = %id, "sidecar deregistered after its grace period");
            self.dirty.notify_one();
        }
    }

    /// The token (`jti`) an open stream of `id` presented was revoked or
    /// expired, and the stream is being cut: unless a newer stream presented
    /// another token, the sidecar leaves the endpoints at once (no grace
    /// period) and its leaf is dropped, so nothing more is issued or pushed
    /// for it.
    pub(crate) fn token_refused(&self, id: &str, jti: &str) {
        if !self.certs.presented_jti(id, jti) {
            return;
        }
        self.certs.drop_leaf(id);
        self.store.deregistered(id);
        if self.deregister(id) {
            tracing::warn!(node = %id, "sidecar deregistered: its workload token is no longer valid");
            self.dirty.notify_one();
        }
    }
}

/// The ADS server's view of [`Core`].
pub(crate) struct Hooks(pub(crate) Arc<Core>);

impl StreamHooks for Hooks {
    /// Checks the token in the stream's headers before any request body
    /// is decoded; the node's identity is matched in [`Self::stream_opened`].
    fn stream_requested(&self, metadata: &MetadataMap) -> Result<(), Refusal> {
        self.0.auth.check_metadata(metadata).inspect_err(|refusal| {
            tracing::warn!(
                reason = refusal.reason,
                "refusing ADS stream before its first request: {}",
                refusal.status.message()
            );
        })
    }

    /// Registers the sidecar only after its token proved the identity its
    /// node claims; a refusal is logged with the node id and the reason
    /// (never the token) and counted by xds. The stream is cut once its
    /// token is revoked or expires (`serve::token_watch`).
    fn stream_opened(&self, node: &Node, metadata: &MetadataMap) -> Result<StreamCut, Refusal> {
        let proxy = Proxy::from_node(node).map_err(|e| Refusal {
            status: tonic::Status::invalid_argument(e.to_string()),
            reason: "bad_node",
        });
        let accepted = proxy
            .and_then(|p| self.0.auth.check(&p, metadata).map(|c| (p, c)))
            .and_then(|(p, c)| self.0.check_node_id(&p).map(|()| (p, c)));
        match accepted {
            Ok((proxy, claims)) => {
                let id = proxy.id.clone();
                // Before the connect's rebuild, which may issue its leaf.
                self.0.certs.presented(&id, claims.clone());
                self.0.sidecar_connected(proxy);
                Ok(claims.map_or_else(StreamCut::never, |c| {
                    super::token_watch::cut(Arc::clone(&self.0), id, c)
                }))
            }
            Err(refusal) => {
                tracing::warn!(
                    node = %node.id,
                    reason = refusal.reason,
                    "refusing ADS stream: {}",
                    refusal.status.message()
                );
                Err(refusal)
            }
        }
    }

    fn stream_closed(&self, node_id: &str) {
        self.0.sidecar_disconnected(node_id);
    }

    /// Traces a rejection to the config object responsible: logged in
    /// `trellis validate`'s format, counted per object, and kept with the
    /// NACK for `/debug/proxies` and `trellis proxy-status`.
    /// A canary proxy's NACK also fails the generation rolling out.
    fn nacked(&self, node_id: &str, type_url: &str, message: &str) -> Option<serde_json::Value> {
        self.0.rollout_nacked(node_id, type_url, message);
        let who = self.0.rejecter(node_id);
        let provenance = self.0.provenance.load();
        let Some(blame) = provenance.get().blame_for(type_url, message, &who) else {
            tracing::warn!(node = %node_id, type_url, "rejected content not traced to a config object");
            return None;
        };
        tracing::error!("{}", blame.report(node_id, message));
        self.0.metrics.rejected(&blame);
        serde_json::to_value(&blame).ok()
    }
}
