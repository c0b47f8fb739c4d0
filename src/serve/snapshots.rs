//! From config + registry to one xDS snapshot per registered sidecar.
//!
//! Resources every proxy shares (`translate::shared`) are encoded once per
//! change and the same `Arc<Any>` goes into every snapshot that carries
//! them; only the per-proxy pieces are encoded per proxy (DESIGN.md,
//! "Performance stance").

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener as XdsListener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret as XdsSecret;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use super::certs::Certs;
use super::core::{lock, Core};
use crate::config::model::MeshConfig;
use crate::registry::{instances, Registry};
use crate::translate::{self, ProxyResources, ProxySecurity, Shared};
use crate::xds::{Snapshot, SnapshotBuilder};

/// A resource with a name that keys it in a snapshot.
trait Named: prost::Message + prost::Name + PartialEq + Clone {
    fn resource_name(&self) -> &str;
}

impl Named for XdsCluster {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Named for ClusterLoadAssignment {
    fn resource_name(&self) -> &str {
        &self.cluster_name
    }
}

impl Named for RouteConfiguration {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Named for XdsListener {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Named for XdsSecret {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

/// Shared resources of one type, each encoded once, by name.
struct Packed<'a, T> {
    by_name: HashMap<&'a str, (&'a T, Arc<Any>)>,
}

impl<'a, T: Named> Packed<'a, T> {
    fn new(items: &'a [T]) -> Self {
        let by_name = items
            .iter()
            .map(|r| (r.resource_name(), (r, Arc::new(pack_any(r.clone())))))
            .collect();
        Packed { by_name }
    }

    /// Adds `items` to `builder`, reusing the shared encoding of every
    /// resource `for_proxy` passed through unchanged.
    fn add_to(&self, items: &[T], builder: &mut SnapshotBuilder) {
        for r in items {
            let any = match self.by_name.get(r.resource_name()) {
                Some((shared, any)) if *shared == r => Arc::clone(any),
                _ => Arc::new(pack_any(r.clone())),
            };
            builder.insert(r.resource_name(), any);
        }
    }
}

/// The shared resources of one change, encoded.
pub(crate) struct PackedShared<'a> {
    clusters: Packed<'a, XdsCluster>,
    load_assignments: Packed<'a, ClusterLoadAssignment>,
    routes: Packed<'a, RouteConfiguration>,
    listeners: Packed<'a, XdsListener>,
    secrets: Packed<'a, XdsSecret>,
}

impl<'a> PackedShared<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        PackedShared {
            clusters: Packed::new(&shared.clusters),
            load_assignments: Packed::new(&shared.load_assignments),
            routes: Packed::new(&shared.routes),
            listeners: Packed::new(&[]),
            secrets: Packed::new(&[]),
        }
    }

    /// One proxy's snapshot.
    pub(crate) fn snapshot(&self, res: &ProxyResources) -> Snapshot {
        let mut b = Snapshot::builder();
        self.clusters.add_to(&res.clusters, &mut b);
        self.load_assignments.add_to(&res.load_assignments, &mut b);
        self.routes.add_to(&res.routes, &mut b);
        self.listeners.add_to(&res.listeners, &mut b);
        // Secrets are the proxy's own: they go into its snapshot only.
        self.secrets.add_to(&res.secrets, &mut b);
        b.build()
    }
}

/// Snapshots for every sidecar in `registry`, by node id. With `certs`,
/// each proxy gets its own certificate and mTLS per policy; a proxy whose
/// certificate cannot be issued gets plaintext resources (and an error log).
pub(crate) fn build_all(
    mesh: &MeshConfig,
    registry: &Registry,
    certs: Option<&Certs>,
) -> Vec<(String, Snapshot)> {
    let services = instances(mesh, registry);
    let shared = translate::shared(mesh, &services);
    let packed = PackedShared::new(&shared);
    let now = SystemTime::now();
    registry
        .sidecars()
        .values()
        .map(|proxy| {
            let security = certs.map_or_else(ProxySecurity::default, |c| {
                match c.for_proxy(proxy, &mesh.mesh, now) {
                    Ok(certs) => ProxySecurity {
                        mtls: true,
                        certs: Some(certs),
                    },
                    Err(e) => {
                        tracing::error!(node = %proxy.id, "cannot issue a workload certificate: {e}");
                        ProxySecurity::default()
                    }
                }
            });
            let res = translate::for_proxy(&shared, proxy, &security);
            (proxy.id.clone(), packed.snapshot(&res))
        })
        .collect()
}

impl Core {
    /// Rebuilds every sidecar's snapshot from the config and registry in
    /// force, and drops the snapshots of sidecars that left.
    pub(crate) fn rebuild(&self) {
        let started = std::time::Instant::now();
        let ticket = self.rebuild_ticket();
        let mesh = self.config.load_full();
        let registry = lock(&self.registry).clone();
        self.save_registry(&registry);
        let snapshots = build_all(&mesh, &registry, Some(&self.certs));
        let live: BTreeSet<&str> = registry.sidecars().keys().map(String::as_str).collect();
        self.certs.retain(&live);
        for (id, snap) in snapshots {
            // Convergence is timed from the start of the rebuild.
            self.status.expect_snapshot(&id, &snap, started);
            self.cache.set(&id, Arc::new(snap));
        }
        for id in self.cache.node_ids() {
            if !live.contains(id.as_str()) {
                self.cache.remove(&id);
            }
        }
        self.metrics.set_sidecars(live.len());
        self.rebuilt
            .fetch_max(ticket, std::sync::atomic::Ordering::SeqCst);
        tracing::debug!(
            proxies = live.len(),
            generation = self.generation(),
            elapsed = ?started.elapsed(),
            "snapshots rebuilt"
        );
    }
}

/// Rebuilds on every dirty signal until `stop` fires. `Notify` keeps at
/// most one pending permit: the first signal is acted on at once (leading
/// edge) and any burst during a rebuild collapses into one more rebuild.
pub(crate) async fn rebuild_loop(core: Arc<Core>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = core.dirty.notified() => {}
            _ = stop.changed() => return,
        }
        // Translation and encoding are CPU work that grows with the mesh:
        // keep it off the threads that serve the streams.
        let c = Arc::clone(&core);
        if let Err(e) = tokio::task::spawn_blocking(move || c.rebuild()).await {
            tracing::error!("snapshot rebuild panicked: {e}");
        }
    }
}
