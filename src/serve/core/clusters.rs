//! Remote clusters' sidecars in this replica's registry: what their
//! read-only watches report (`serve::clusters`), kept apart from this
//! cluster's own sidecars so that neither side's snapshot removes the
//! other's.

use std::collections::HashSet;

use super::{lock, Core};
use crate::registry::{Proxy, Registry};
use crate::store::StoreEvent;

impl Core {
    /// True when `id` is a remote cluster's sidecar.
    pub(crate) fn is_remote_cluster_id(&self, id: &str) -> bool {
        lock(&self.remote_clusters)
            .values()
            .any(|ids| ids.contains(id))
    }

    /// `registry` without the remote clusters' sidecars: what this cluster
    /// saves for a restart (a restart reads the remote registries again).
    pub(crate) fn own_cluster_only(&self, registry: &Registry) -> Registry {
        let clusters = lock(&self.remote_clusters);
        let mut own = registry.clone();
        for id in clusters.values().flatten() {
            own.deregister(id);
        }
        own
    }

    /// Applies one event of remote `cluster`'s watch.
    pub(crate) fn remote_cluster_event(&self, cluster: &str, event: StoreEvent) {
        let changed = match event {
            StoreEvent::Registered(proxy) => self.remote_cluster_put(cluster, *proxy),
            StoreEvent::Removed(id) => self.remote_cluster_remove(cluster, &id),
            StoreEvent::Snapshot(proxies) => self.remote_cluster_snapshot(cluster, proxies),
            // A remote cluster's revocations, proxy status, root rotation
            // and rollout are its own: its watch reads only its sidecars.
            StoreEvent::Revoked(_)
            | StoreEvent::Status(_)
            | StoreEvent::StatusRemoved { .. }
            | StoreEvent::StatusSnapshot(_)
            | StoreEvent::Rotation(_)
            | StoreEvent::Driver(_)
            | StoreEvent::Settled(_)
            | StoreEvent::Rollout(_)
            | StoreEvent::RolloutDriver(_) => false,
        };
        if changed {
            self.dirty.notify_one();
        }
    }

    fn remote_cluster_put(&self, cluster: &str, proxy: Proxy) -> bool {
        let mut clusters = lock(&self.remote_clusters);
        clusters
            .entry(cluster.to_string())
            .or_default()
            .insert(proxy.id.clone());
        drop(clusters);
        self.register(proxy)
    }

    fn remote_cluster_remove(&self, cluster: &str, id: &str) -> bool {
        let known =
            (lock(&self.remote_clusters).get_mut(cluster)).is_some_and(|ids| ids.remove(id));
        known && self.deregister(id)
    }

    /// The remote registry read whole: it replaces what was known of it.
    fn remote_cluster_snapshot(&self, cluster: &str, proxies: Vec<Proxy>) -> bool {
        let fresh: HashSet<String> = proxies.iter().map(|p| p.id.clone()).collect();
        let stale: Vec<String> = {
            let mut clusters = lock(&self.remote_clusters);
            let ids = clusters.entry(cluster.to_string()).or_default();
            let stale = ids.difference(&fresh).cloned().collect();
            *ids = fresh;
            stale
        };
        let mut changed = false;
        for id in stale {
            changed |= self.deregister(&id);
        }
        for proxy in proxies {
            changed |= self.register(proxy);
        }
        changed
    }

    /// A remote cluster left the `Mesh` setting: its sidecars leave.
    pub(crate) fn forget_remote_cluster(&self, cluster: &str) {
        let ids = lock(&self.remote_clusters).remove(cluster);
        let mut changed = false;
        for id in ids.into_iter().flatten() {
            changed |= self.deregister(&id);
        }
        if changed {
            tracing::info!(cluster, "remote cluster removed from the Mesh setting");
            self.dirty.notify_one();
        }
    }
}
