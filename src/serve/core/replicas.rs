//! What other replicas did, applied to this replica's registry, which is
//! the union of its own sidecars (those with a stream here, or in their
//! grace period) and every other replica's.
//!
//! A sidecar with an open stream here stays as this replica knows it
//! whatever the store says: its stream is the freshest evidence.

use std::collections::HashSet;

use super::{lock, Core};
use crate::registry::Proxy;

impl Core {
    /// True while a stream of `id` is open on this replica.
    pub(super) fn streams_here(&self, id: &str) -> bool {
        lock(&self.presence).get(id).is_some_and(|p| p.streams > 0)
    }

    /// The sidecars this replica serves: a stream open here, in its grace
    /// period here, or restored here and awaited.
    pub(crate) fn served_ids(&self) -> HashSet<String> {
        lock(&self.presence).keys().cloned().collect()
    }

    /// Another replica registered `proxy`. If it was this replica's and its
    /// stream is closed, it moved: this replica forgets its own pending
    /// deregistration (the entry stays, so no endpoint flaps).
    pub(crate) fn remote_registered(&self, proxy: Proxy) {
        let id = proxy.id.clone();
        {
            let mut presence = lock(&self.presence);
            match presence.get(&id) {
                Some(p) if p.streams > 0 => return,
                Some(_) => {
                    presence.remove(&id);
                    self.status.remove(&id);
                    tracing::info!(node = %id, "sidecar moved to another replica");
                }
                None => {}
            }
        }
        if self.register(proxy) {
            self.dirty.notify_one();
        }
    }

    /// A sidecar left the shared registry. One whose stream is open here is
    /// written again (its key went with a lease that ran out while this
    /// replica could not reach the store); one in its grace period here
    /// waits for it.
    pub(crate) fn remote_removed(&self, id: &str) {
        if self.streams_here(id) {
            let known = lock(&self.registry).sidecars().get(id).cloned();
            if let Some(proxy) = known {
                self.store.registered(&proxy);
            }
            return;
        }
        if lock(&self.presence).contains_key(id) {
            return;
        }
        if self.deregister(id) {
            tracing::info!(node = %id, "sidecar deregistered by its replica");
            self.dirty.notify_one();
        }
    }

    /// The whole shared registry after (re)connecting to the store: it
    /// replaces what this replica knew of other replicas' sidecars.
    pub(crate) fn remote_snapshot(&self, proxies: Vec<Proxy>) {
        let ids: HashSet<String> = proxies.iter().map(|p| p.id.clone()).collect();
        let mut changed = false;
        for proxy in proxies {
            if !self.streams_here(&proxy.id) {
                changed |= self.register(proxy);
            }
        }
        let stale: Vec<String> = {
            let registry = lock(&self.registry);
            let presence = lock(&self.presence);
            (registry.sidecars().keys())
                .filter(|id| !ids.contains(*id) && !presence.contains_key(*id))
                // Remote clusters' sidecars come from their own watches.
                .filter(|id| !self.is_remote_cluster_id(id))
                .cloned()
                .collect()
        };
        for id in stale {
            changed |= self.deregister(&id);
        }
        if changed {
            self.dirty.notify_one();
        }
    }
}
