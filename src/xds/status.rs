//! What each proxy was sent, ACKed and NACKed, for `/debug/proxies`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};

use self::convergence::Convergence;
use super::type_map::TypeMap;
use super::types::{type_key, TypeKey};
use super::Snapshot;

mod convergence;

/// Per node id: connection state and per-type xDS state. Cheap to clone
/// (shared inside); the lock is held only for a map update, never across an
/// await. Serializes as a JSON object keyed by node id.
#[derive(Debug, Clone, Default)]
pub struct ProxyStatusTable {
    inner: Arc<RwLock<BTreeMap<String, Entry>>>,
    convergence: Convergence,
    /// Node ids changed since the last [`ProxyStatusTable::take_changed`],
    /// once [`ProxyStatusTable::track_changes`] asked for them (`None`: not
    /// tracked, so a table nobody drains does not grow).
    changed: Arc<Mutex<Option<BTreeSet<String>>>>,
    /// Responses sent on every stream since the start: readers tell from it
    /// whether the streams are still busy (e.g. before freeing memory).
    sent_total: Arc<AtomicU64>,
}

/// One proxy's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyStatus {
    /// True while at least one ADS stream of this node is open.
    pub connected: bool,
    /// Open ADS streams (more than one only briefly, while Envoy reconnects).
    pub streams: u32,
    /// When the latest stream opened (seconds since the Unix epoch).
    pub connected_at: Option<u64>,
    /// When the latest stream closed (seconds since the Unix epoch).
    pub disconnected_at: Option<u64>,
    /// Per type URL.
    pub types: BTreeMap<String, TypeStatus>,
    /// Service the proxy registered as (from its node metadata).
    pub service: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its workload labels (`version`, ...).
    pub labels: BTreeMap<String, String>,
}

/// One resource type's state for one proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeStatus {
    /// `version_info` of the last response sent.
    pub last_sent_version: Option<String>,
    /// Nonce of the last response sent.
    pub last_sent_nonce: Option<String>,
    /// Version of the last response the proxy ACKed.
    pub last_acked_version: Option<String>,
    /// The last response the proxy rejected.
    pub last_nack: Option<NackStatus>,
}

/// A rejected response, with Envoy's reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NackStatus {
    /// Version of the rejected response.
    pub version: String,
    /// Nonce of the rejected response.
    pub nonce: String,
    /// Envoy's `error_detail.message`.
    pub message: String,
    /// When the NACK arrived (seconds since the Unix epoch).
    pub at: u64,
    /// What the control plane found responsible for the rejected content
    /// ([`StreamHooks::nacked`](super::StreamHooks::nacked)); opaque to
    /// xds. `null` when nothing was found.
    #[serde(default)]
    pub origin: Option<serde_json::Value>,
}

/// How the table keeps one proxy: a [`ProxyStatus`], with its types in a
/// [`TypeMap`] under the shared type URL (no copy of the URL per proxy) and
/// a NACK boxed (rare; unboxed it took 112 bytes in every type's slot). A
/// `BTreeMap<String, TypeStatus>` per proxy cost a 2.5 KB node for four or
/// five types, times every connected proxy.
#[derive(Debug, Clone, Default)]
struct Entry {
    connected: bool,
    streams: u32,
    connected_at: Option<u64>,
    disconnected_at: Option<u64>,
    types: TypeMap<TypeKey, TypeEntry>,
    service: Option<String>,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
}

/// [`TypeStatus`] as the table keeps it.
#[derive(Debug, Clone, Default)]
struct TypeEntry {
    last_sent_version: Option<String>,
    last_sent_nonce: Option<String>,
    last_acked_version: Option<String>,
    last_nack: Option<Box<NackStatus>>,
}

impl Entry {
    fn status(&self) -> ProxyStatus {
        let types = (self.types.iter())
            .map(|(url, t)| (url.to_string(), t.status()))
            .collect();
        ProxyStatus {
            connected: self.connected,
            streams: self.streams,
            connected_at: self.connected_at,
            disconnected_at: self.disconnected_at,
            types,
            service: self.service.clone(),
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
        }
    }
}

impl TypeEntry {
    fn status(&self) -> TypeStatus {
        TypeStatus {
            last_sent_version: self.last_sent_version.clone(),
            last_sent_nonce: self.last_sent_nonce.clone(),
            last_acked_version: self.last_acked_version.clone(),
            last_nack: self.last_nack.as_deref().cloned(),
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ProxyStatusTable {
    /// An empty table.
    pub fn new() -> Self {
        ProxyStatusTable::default()
    }

    fn update<R>(&self, node_id: &str, f: impl FnOnce(&mut Entry) -> R) -> R {
        let result = {
            let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
            f(map.entry(node_id.to_string()).or_default())
        };
        self.mark_changed(node_id);
        result
    }

    fn mark_changed(&self, node_id: &str) {
        let mut changed = self.changed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = changed.as_mut() {
            set.insert(node_id.to_string());
        }
    }

    /// Starts recording which nodes change, for one consumer that drains
    /// them with [`ProxyStatusTable::take_changed`] (replicas publishing
    /// their proxies' status).
    pub fn track_changes(&self) {
        let mut changed = self.changed.lock().unwrap_or_else(PoisonError::into_inner);
        changed.get_or_insert_with(BTreeSet::new);
    }

    /// The node ids changed (or removed) since the last call; empty when
    /// changes are not tracked.
    pub fn take_changed(&self) -> BTreeSet<String> {
        let mut changed = self.changed.lock().unwrap_or_else(PoisonError::into_inner);
        changed.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn update_type(&self, node_id: &str, type_url: &str, f: impl FnOnce(&mut TypeEntry)) {
        self.update(node_id, |p| {
            f(p.types
                .get_or_insert_with(type_url, || type_key(type_url), TypeEntry::default))
        });
    }

    /// Records that a stream of `node_id` opened.
    pub fn stream_opened(&self, node_id: &str) {
        self.update(node_id, |p| {
            p.streams += 1;
            p.connected = true;
            p.connected_at = Some(unix_now());
        });
    }

    /// Records that a stream of `node_id` ended.
    pub fn stream_closed(&self, node_id: &str) {
        self.update(node_id, |p| {
            p.streams = p.streams.saturating_sub(1);
            p.connected = p.streams > 0;
            p.disconnected_at = Some(unix_now());
        });
    }

    /// Records who a node is (for `trellis proxy-status`).
    pub fn set_identity(
        &self,
        node_id: &str,
        service: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) {
        self.update(node_id, |p| {
            p.service = Some(service.to_string());
            p.namespace = Some(namespace.to_string());
            p.labels = labels.clone();
        });
    }

    /// Records a response sent.
    pub fn sent(&self, node_id: &str, type_url: &str, version: &str, nonce: &str) {
        self.sent_total.fetch_add(1, Ordering::Relaxed);
        self.update_type(node_id, type_url, |t| {
            t.last_sent_version = Some(version.to_string());
            t.last_sent_nonce = Some(nonce.to_string());
        });
    }

    /// How many responses were sent on all streams so far; unchanged over
    /// an interval means no stream pushed anything in it.
    pub fn responses_sent(&self) -> u64 {
        self.sent_total.load(Ordering::Relaxed)
    }

    /// Records an ACK of `version`.
    pub fn acked(&self, node_id: &str, type_url: &str, version: &str) {
        self.update_type(node_id, type_url, |t| {
            t.last_acked_version = Some(version.to_string());
        });
        self.convergence.acked(node_id, type_url, version);
    }

    /// Registers `trellis_proxy_convergence_seconds` (once per registry).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.convergence.register(registry);
    }

    /// A new snapshot for `node_id` made for a change that began at
    /// `since`: the convergence histogram observes the time until the proxy
    /// has ACKed every type of it (types it already holds are not waited for).
    pub fn expect_snapshot(&self, node_id: &str, snapshot: &Snapshot, since: std::time::Instant) {
        // Only the ACKed versions, not a copy of the proxy's whole entry:
        // this runs for every proxy a rebuild changes.
        let acked: Vec<(TypeKey, String)> = {
            let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            let types = map
                .get(node_id)
                .map(|e| e.types.iter())
                .into_iter()
                .flatten();
            (types.filter_map(|(url, t)| Some((url.clone(), t.last_acked_version.clone()?))))
                .collect()
        };
        self.convergence
            .expect(node_id, snapshot, since, |type_url| {
                let (_, version) = acked.iter().find(|(url, _)| url == type_url)?;
                Some(version.clone())
            });
    }

    /// Records a NACK.
    pub fn nacked(&self, node_id: &str, type_url: &str, nack: NackStatus) {
        self.update_type(node_id, type_url, |t| t.last_nack = Some(Box::new(nack)));
    }

    /// Forgets a node (e.g. after it left the mesh).
    pub fn remove(&self, node_id: &str) {
        self.convergence.forget(node_id);
        {
            let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
            map.remove(node_id);
        }
        self.mark_changed(node_id);
    }

    /// One node's state.
    pub fn get(&self, node_id: &str) -> Option<ProxyStatus> {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        map.get(node_id).map(Entry::status)
    }

    /// Every node's state, by node id.
    pub fn all(&self) -> BTreeMap<String, ProxyStatus> {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        (map.iter())
            .map(|(id, entry)| (id.clone(), entry.status()))
            .collect()
    }
}

impl Serialize for ProxyStatusTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.all().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_streams_and_types() {
        let table = ProxyStatusTable::new();
        table.stream_opened("a");
        table.stream_opened("a");
        table.sent("a", "t", "v1", "1");
        table.acked("a", "t", "v1");
        table.nacked(
            "a",
            "t",
            NackStatus {
                version: "v2".into(),
                nonce: "2".into(),
                message: "bad".into(),
                at: 1,
                origin: None,
            },
        );
        table.stream_closed("a");
        let a = table.get("a").unwrap();
        assert!(a.connected, "one stream is still open");
        let t = &a.types["t"];
        assert_eq!(t.last_acked_version.as_deref(), Some("v1"));
        assert_eq!(t.last_nack.as_ref().unwrap().message, "bad");
        table.stream_closed("a");
        assert!(!table.get("a").unwrap().connected);

        assert_eq!(table.responses_sent(), 1);
        let json = serde_json::to_value(&table).unwrap();
        assert_eq!(json["a"]["types"]["t"]["last_sent_nonce"], "1");
        table.remove("a");
        assert!(table.all().is_empty());
    }

    #[test]
    fn changes_are_tracked_only_when_asked() {
        let table = ProxyStatusTable::new();
        table.stream_opened("a");
        assert!(table.take_changed().is_empty(), "not tracked yet");
        table.track_changes();
        table.stream_opened("a");
        table.acked("b", "t", "v1");
        let changed: Vec<String> = table.take_changed().into_iter().collect();
        assert_eq!(changed, ["a", "b"]);
        assert!(table.take_changed().is_empty(), "drained");
        table.remove("a");
        assert!(table.take_changed().contains("a"), "a removal is a change");
    }

    #[test]
    fn convergence_is_observed_once_every_type_is_acked() {
        use crate::xds::{CLUSTER_TYPE, LISTENER_TYPE};
        use envoy_types::pb::envoy::config::cluster::v3::Cluster;
        use envoy_types::pb::envoy::config::listener::v3::Listener;
        use envoy_types::pb::google::protobuf::Any;
        use prost::Message;
        let any = |type_url: &str, bytes: Vec<u8>| {
            std::sync::Arc::new(crate::xds::Versioned::new(Any {
                type_url: type_url.to_string(),
                value: bytes,
            }))
        };
        let snap = |name: &str| {
            Snapshot::builder()
                .add(
                    name,
                    any(
                        &CLUSTER_TYPE,
                        Cluster {
                            name: name.into(),
                            ..Default::default()
                        }
                        .encode_to_vec(),
                    ),
                )
                .add(
                    "l",
                    any(&LISTENER_TYPE, Listener::default().encode_to_vec()),
                )
                .build()
        };
        let table = ProxyStatusTable::new();
        let s1 = snap("c1");
        table.expect_snapshot("a", &s1, std::time::Instant::now());
        let cds = s1.version(&CLUSTER_TYPE).unwrap().to_string();
        let lds = s1.version(&LISTENER_TYPE).unwrap().to_string();
        table.acked("a", &CLUSTER_TYPE, &cds);
        assert_eq!(table.convergence.count(), 0, "LDS not ACKed yet");
        table.acked("a", &LISTENER_TYPE, "other");
        assert_eq!(
            table.convergence.count(),
            0,
            "an old version is no ACK of the new one"
        );
        table.acked("a", &LISTENER_TYPE, &lds);
        assert_eq!(table.convergence.count(), 1);
        // Only CDS changes: one ACK converges.
        let s2 = snap("c2");
        table.expect_snapshot("a", &s2, std::time::Instant::now());
        table.acked("a", &CLUSTER_TYPE, s2.version(&CLUSTER_TYPE).unwrap());
        assert_eq!(table.convergence.count(), 2);
        // The same snapshot again is no change.
        table.expect_snapshot("a", &s2, std::time::Instant::now());
        table.acked("a", &CLUSTER_TYPE, s2.version(&CLUSTER_TYPE).unwrap());
        assert_eq!(table.convergence.count(), 2);
    }

    #[test]
    fn a_change_left_unacked_makes_the_proxy_stale() {
        use crate::xds::CLUSTER_TYPE;
        let any = std::sync::Arc::new(crate::xds::Versioned::new(
            envoy_types::pb::google::protobuf::Any {
                type_url: CLUSTER_TYPE.to_string(),
                value: Vec::new(),
            },
        ));
        let snap = Snapshot::builder().add("c", any).build();
        let table = ProxyStatusTable::new();
        let long_ago = std::time::Instant::now() - std::time::Duration::from_secs(60);
        table.expect_snapshot("a", &snap, long_ago);
        let stale = |t: &ProxyStatusTable| t.convergence.stale_after(convergence::STALE_AFTER);
        assert_eq!(stale(&table), 1);
        let mut registry = prometheus_client::registry::Registry::default();
        table.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("trellis_proxies_stale 1"), "{text}");
        table.acked("a", &CLUSTER_TYPE, snap.version(&CLUSTER_TYPE).unwrap());
        assert_eq!(stale(&table), 0);
    }
}
