//! Proxy status shared across replicas: each replica publishes the xDS
//! status of the proxies whose streams it holds (`PREFIX/v1/status/REPLICA/
//! NODE`, on its lease) and keeps the others' ([`PeerStatus`]), so
//! `/debug/proxies` and `trellis proxy-status` on any replica show every
//! replica's proxies, each with the replica serving it.
//!
//! Writes are coalesced: every [`PUBLISH_EVERY`] the proxies whose state
//! changed are written once each, and only when their record differs from
//! the one last written, at most [`MAX_WRITES_PER_PERIOD`] per period. A
//! config change that makes 10,000 proxies send and ACK twice costs one
//! write per proxy, in batched transactions, spread over 20 s.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::core::Core;
use crate::store::status::{cut_message, NackRecord, TypeRecord};
use crate::store::StatusRecord;
use crate::xds::{
    known_types, short_type_name, NackStatus, ProxyStatus, ProxyStatusTable, TypeStatus,
};

/// How often changed statuses are published: at most one write per proxy
/// per period, however often its state changes.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Other replicas' proxies, by (replica as in its keys, node id).
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerStatus {
    inner: Arc<RwLock<BTreeMap<(String, String), StatusRecord>>>,
}

impl PeerStatus {
    /// A status published or changed by another replica.
    pub(crate) fn set(&self, record: StatusRecord) {
        let key = (record.replica.replace('/', "_"), record.node.clone());
        self.write().insert(key, record);
    }

    /// Another replica withdrew a proxy's status.
    pub(crate) fn remove(&self, replica: &str, node: &str) {
        self.write()
            .remove(&(replica.to_string(), node.to_string()));
    }

    /// Every other replica's statuses, read again after (re)connecting.
    pub(crate) fn replace(&self, records: Vec<StatusRecord>) {
        let mut map = self.write();
        map.clear();
        drop(map);
        records.into_iter().for_each(|r| self.set(r));
    }

    /// Every record.
    pub(crate) fn all(&self) -> Vec<StatusRecord> {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        map.values().cloned().collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<(String, String), StatusRecord>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// At most this many records one replica writes per [`PUBLISH_EVERY`];
/// the other changed proxies wait their turn (oldest change first) and are
/// written with their state at that time. Every push changes the status of
/// every proxy it reaches, and without a bound 10,000 proxies per replica
/// meant 10,000 etcd writes a second during a registration storm, each
/// also read back by every replica's watch: etcd fell behind, every other
/// request with it, and its history grew by megabytes a second. With the
/// bound, another replica's view of a proxy lags by at most
/// proxies / `MAX_WRITES_PER_PERIOD` periods (20 s at 10,000 proxies).
pub(crate) const MAX_WRITES_PER_PERIOD: usize = 500;

/// Proxies whose status changed and is not written yet, oldest first.
#[derive(Debug, Default)]
struct Backlog {
    queue: VecDeque<String>,
    queued: HashSet<String>,
}

impl Backlog {
    fn extend(&mut self, nodes: impl IntoIterator<Item = String>) {
        for node in nodes {
            if self.queued.insert(node.clone()) {
                self.queue.push_back(node);
            }
        }
    }

    fn pop(&mut self) -> Option<String> {
        let node = self.queue.pop_front()?;
        self.queued.remove(&node);
        Some(node)
    }
}

/// A pass over every proxy (until one finds all at the rotation tag); it
/// may span several periods when the write budget runs out.
struct Pass {
    tag: Option<String>,
    all_at_tag: bool,
}

/// Publishes this replica's changed statuses until `stop` fires.
pub(super) async fn publish_loop(
    core: Arc<Core>,
    replica: String,
    mut stop: watch::Receiver<bool>,
) {
    core.status.track_changes();
    let mut publisher = Publisher {
        replica,
        published: HashMap::new(),
        backlog: Backlog::default(),
        // Everything already in the table counts as changed once.
        first: true,
        covered: None,
        pass: None,
    };
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        publisher.period(&core);
    }
}

/// What [`publish_loop`] keeps between periods.
struct Publisher {
    replica: String,
    /// The record last written per proxy.
    published: HashMap<String, StatusRecord>,
    backlog: Backlog,
    first: bool,
    /// The rotation tag a full pass found every proxy at.
    covered: Option<String>,
    pass: Option<Pass>,
}

impl Publisher {
    /// One period: queue what changed, write up to the budget.
    fn period(&mut self, core: &Core) {
        // Until one pass found every proxy at the current root rotation
        // tag, every proxy is looked at each period: a proxy's tag can
        // change without a change of its xDS state (the phase's rebuild
        // finishing after its ACK).
        let tag = core.shared_rotation.tag();
        let everyone = std::mem::take(&mut self.first) || (tag.is_some() && tag != self.covered);
        self.backlog.extend(core.status.take_changed());
        if everyone {
            self.backlog.extend(core.status.all().into_keys());
            self.pass.get_or_insert(Pass {
                tag: tag.clone(),
                all_at_tag: true,
            });
        }
        let mut writes = 0;
        while writes < MAX_WRITES_PER_PERIOD {
            let Some(node) = self.backlog.pop() else {
                break;
            };
            let (at_tag, wrote) = publish(core, &self.replica, &mut self.published, node);
            writes += usize::from(wrote);
            if let Some(p) = self.pass.as_mut() {
                p.all_at_tag &= at_tag;
            }
        }
        let backlog = self.backlog.queue.len();
        // How far publishing lags behind, for profiling at scale.
        if writes > 0 || backlog > 0 {
            tracing::debug!(writes, backlog, "proxy statuses published");
        }
        if backlog == 0 {
            let finished = self.pass.take().filter(|p| p.all_at_tag && p.tag == tag);
            if let Some(p) = finished {
                self.covered = p.tag;
            }
        }
    }
}

/// Writes one proxy's record if it differs from the one last written
/// (the `seen` time aside), or withdraws it if the proxy left. Returns
/// whether the proxy is at the current rotation tag (or not connected),
/// and whether anything was written.
fn publish(
    core: &Core,
    replica: &str,
    published: &mut HashMap<String, StatusRecord>,
    node: String,
) -> (bool, bool) {
    let Some(status) = core.status.get(&node) else {
        let wrote = published.remove(&node).is_some();
        if wrote {
            core.store.status_removed(&node);
        }
        return (true, wrote);
    };
    let mut record = record(&node, replica, &status, unix_now());
    record.trust = core.shared_rotation.proxy_tag(core, &node, &status);
    let at_tag = !record.connected || record.trust == core.shared_rotation.tag();
    let same = published.get(&node).is_some_and(|old| {
        StatusRecord {
            seen: record.seen,
            ..old.clone()
        } == record
    });
    if !same {
        core.store.status_changed(&record);
        published.insert(node, record);
    }
    (at_tag, !same)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The compact record of one proxy's status.
pub(crate) fn record(node: &str, replica: &str, s: &ProxyStatus, seen: u64) -> StatusRecord {
    let types = (s.types.iter())
        .map(|(url, t)| (short_type_name(url), type_record(t)))
        .collect();
    StatusRecord {
        node: node.to_string(),
        replica: replica.to_string(),
        connected: s.connected,
        connected_at: s.connected_at,
        disconnected_at: s.disconnected_at,
        service: s.service.clone(),
        namespace: s.namespace.clone(),
        labels: s.labels.clone(),
        types,
        trust: None,
        seen,
    }
}

fn type_record(t: &TypeStatus) -> TypeRecord {
    TypeRecord {
        sent: t.last_sent_version.clone(),
        nonce: t.last_sent_nonce.clone(),
        acked: t.last_acked_version.clone(),
        nack: t.last_nack.as_ref().map(|n| NackRecord {
            version: n.version.clone(),
            nonce: n.nonce.clone(),
            message: cut_message(&n.message),
            at: n.at,
            origin: n.origin.clone(),
        }),
    }
}

/// A record back as the status `/debug/proxies` shows (type URLs again).
fn status_of(r: &StatusRecord) -> ProxyStatus {
    let types = (r.types.iter())
        .map(|(short, t)| (type_url(short), type_status(t)))
        .collect();
    ProxyStatus {
        connected: r.connected,
        streams: u32::from(r.connected),
        connected_at: r.connected_at,
        disconnected_at: r.disconnected_at,
        types,
        service: r.service.clone(),
        namespace: r.namespace.clone(),
        labels: r.labels.clone(),
    }
}

fn type_status(t: &TypeRecord) -> TypeStatus {
    TypeStatus {
        last_sent_version: t.sent.clone(),
        last_sent_nonce: t.nonce.clone(),
        last_acked_version: t.acked.clone(),
        last_nack: t.nack.as_ref().map(|n| NackStatus {
            version: n.version.clone(),
            nonce: n.nonce.clone(),
            message: n.message.clone(),
            at: n.at,
            origin: n.origin.clone(),
        }),
    }
}

/// The type URL of a short name; an unknown name stays as it is.
fn type_url(short: &str) -> String {
    (known_types().into_iter())
        .find(|url| short_type_name(url) == short)
        .map_or_else(|| short.to_string(), |url| url.clone())
}

/// `/debug/proxies`: this replica's proxies and every other replica's, by
/// node id, each with `replica` (who serves it). A proxy known to several
/// replicas (it moved, and the old one keeps it for its grace period) is
/// shown once: connected before disconnected, then this replica's own,
/// then the most recently seen.
pub(crate) fn view(local: &ProxyStatusTable, peers: &PeerStatus, me: Option<&str>) -> Value {
    // (connected, own, seen) ranks the candidates for one node id.
    let mut chosen: BTreeMap<String, ((bool, bool, u64), Value)> = BTreeMap::new();
    let mut offer = |node: String, rank: (bool, bool, u64), value: Value| {
        if chosen.get(&node).is_none_or(|(r, _)| rank > *r) {
            chosen.insert(node, (rank, value));
        }
    };
    for (node, status) in local.all() {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        value["replica"] = me.map_or(Value::Null, Value::from);
        offer(node, (status.connected, true, 0), value);
    }
    for record in peers.all() {
        let mut value = serde_json::to_value(status_of(&record)).unwrap_or_default();
        value["replica"] = Value::from(record.replica.clone());
        value["seen"] = Value::from(record.seen);
        offer(record.node, (record.connected, false, record.seen), value);
    }
    let map = chosen.into_iter().map(|(node, (_, v))| (node, v)).collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::{CLUSTER_TYPE, SECRET_TYPE};

    fn table() -> ProxyStatusTable {
        let table = ProxyStatusTable::new();
        table.stream_opened("a");
        table.set_identity("a", "payment", "default", &BTreeMap::new());
        table.sent("a", &SECRET_TYPE, "v1", "1");
        table.acked("a", &SECRET_TYPE, "v1");
        table.nacked(
            "a",
            &CLUSTER_TYPE,
            NackStatus {
                version: "v2".into(),
                nonce: "2".into(),
                message: "y".repeat(1000),
                at: 7,
                origin: None,
            },
        );
        table
    }

    #[test]
    fn the_backlog_keeps_one_entry_per_proxy_oldest_first() {
        let mut backlog = Backlog::default();
        backlog.extend(["b".to_string(), "a".to_string()]);
        backlog.extend(["b".to_string(), "c".to_string()]);
        assert_eq!(backlog.pop().as_deref(), Some("b"));
        // Queued again after its turn: at the back.
        backlog.extend(["b".to_string()]);
        let rest: Vec<String> = std::iter::from_fn(|| backlog.pop()).collect();
        assert_eq!(rest, ["a", "c", "b"]);
        assert!(backlog.queued.is_empty());
    }

    #[test]
    fn a_record_round_trips_with_short_type_names() {
        let status = table().get("a").unwrap();
        let record = record("a", "r1", &status, 9);
        assert_eq!(record.types["sds"].acked.as_deref(), Some("v1"));
        let nack = record.types["cds"].nack.as_ref().unwrap();
        assert!(nack.message.chars().count() < 300, "cut");
        let back = status_of(&record);
        assert_eq!(
            back.types[SECRET_TYPE.as_str()],
            status.types[SECRET_TYPE.as_str()]
        );
        assert_eq!(back.service.as_deref(), Some("payment"));
        assert!(back.connected);
    }

    #[test]
    fn the_view_names_the_replica_and_prefers_the_connected_one() {
        let local = table();
        local.stream_closed("a");
        let peers = PeerStatus::default();
        let mut moved = record("a", "r2", &table().get("a").unwrap(), 5);
        peers.set(moved.clone());
        peers.set(record("b", "r2", &table().get("a").unwrap(), 5));
        let view = view(&local, &peers, Some("r1"));
        assert_eq!(view["a"]["replica"], "r2", "connected on r2: {view}");
        assert_eq!(view["b"]["replica"], "r2");
        assert_eq!(
            view["b"]["types"][SECRET_TYPE.as_str()]["last_acked_version"],
            "v1"
        );
        // Disconnected everywhere: this replica's own entry is shown.
        moved.connected = false;
        peers.set(moved);
        assert_eq!(
            super::view(&local, &peers, Some("r1"))["a"]["replica"],
            "r1"
        );
        peers.remove("r2", "b");
        peers.replace(Vec::new());
        assert_eq!(
            super::view(&local, &peers, None).as_object().unwrap().len(),
            1
        );
    }
}
