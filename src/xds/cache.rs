//! The latest snapshot per node id, with change notification.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;

use super::Snapshot;

type Slot = watch::Sender<Option<Arc<Snapshot>>>;

/// The latest [`Snapshot`] per node id. Cheap to clone (shared inside).
///
/// Each node has a `watch` channel: a stream subscribes before the first
/// snapshot exists and then always sees the newest one, so a slow stream
/// skips intermediate snapshots instead of queueing them. The lock is held
/// only for map access, never across an await.
#[derive(Debug, Clone, Default)]
pub struct SnapshotCache {
    nodes: Arc<RwLock<HashMap<String, Slot>>>,
}

impl SnapshotCache {
    /// An empty cache.
    pub fn new() -> Self {
        SnapshotCache::default()
    }

    /// Sets the snapshot of a node and wakes its streams.
    pub fn set(&self, node_id: &str, snapshot: Arc<Snapshot>) {
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        nodes
            .entry(node_id.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .send_replace(Some(snapshot));
    }

    /// Forgets a node's snapshot. Connected streams keep what they have and
    /// see the next snapshot set for the node.
    pub fn remove(&self, node_id: &str) {
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = nodes.get(node_id) {
            slot.send_replace(None);
            if slot.receiver_count() == 0 {
                nodes.remove(node_id);
            }
        }
    }

    /// The current snapshot of a node.
    pub fn get(&self, node_id: &str) -> Option<Arc<Snapshot>> {
        let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
        nodes.get(node_id).and_then(|slot| slot.borrow().clone())
    }

    /// Node ids that have a snapshot.
    pub fn node_ids(&self) -> Vec<String> {
        let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<String> = nodes
            .iter()
            .filter(|(_, slot)| slot.borrow().is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Subscribes to a node's snapshots, also before the first one is set.
    /// The receiver's current value is the current snapshot.
    pub fn subscribe(&self, node_id: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        nodes
            .entry(node_id.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Drops a node's empty slot once no stream watches it (called after a
    /// stream's receiver is dropped), so ids that never got a snapshot do
    /// not accumulate.
    pub(crate) fn release(&self, node_id: &str) {
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        let unused = nodes
            .get(node_id)
            .is_some_and(|slot| slot.receiver_count() == 0 && slot.borrow().is_none());
        if unused {
            nodes.remove(node_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscriber_before_first_snapshot_sees_it() {
        let cache = SnapshotCache::new();
        let mut rx = cache.subscribe("n1");
        assert!(rx.borrow().is_none());
        cache.set("n1", Arc::new(Snapshot::default()));
        rx.changed().await.unwrap();
        assert!(rx.borrow_and_update().is_some());
        assert!(cache.get("n1").is_some());
        assert_eq!(cache.node_ids(), vec!["n1".to_string()]);
    }

    #[test]
    fn remove_and_release_forget_the_node() {
        let cache = SnapshotCache::new();
        cache.set("n1", Arc::new(Snapshot::default()));
        let rx = cache.subscribe("n1");
        cache.remove("n1");
        assert!(cache.get("n1").is_none());
        assert!(rx.borrow().is_none());
        drop(rx);
        cache.release("n1");
        assert!(cache.nodes.read().unwrap().is_empty());
    }
}
