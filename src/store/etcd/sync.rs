//! The one task that talks to etcd for a replica.
//!
//! Its state is what this replica must have in etcd (`own`, `unput`,
//! `gone`, `unrevoked`); every etcd request is bounded by [`OP_TIMEOUT`].
//! A failure marks the store down and drops the lease keeper and the
//! watch; the next tick reconciles: the lease (kept if it still lives,
//! otherwise a new one), the trust marks, every own sidecar written again,
//! pending deletes and revocations, then the whole prefix read again and
//! watched from the revision read.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::client::{Client, ClientError, LeaseKeeper, WatchStream};
use super::keys::{KeyKind, Keys};
use super::proto::{
    DeleteRangeRequest, EventType, KeyValue, PutRequest, Request, RequestOp, TargetUnion,
    TxnRequest, WatchResponse,
};
use super::status::{self as shared_status, OwnStatus};
use super::trust::{self, TrustCommand, TrustOp};
use super::{Command, EtcdOptions, StoreEvent, StoreHealth, TrustMarks, OP_TIMEOUT};
use crate::registry::Proxy;
use crate::store::{Record, RotationRecord, StoreError, StoreMetrics};

/// How often the lease is kept alive, and how often a down store is tried
/// again.
const TICK: Duration = Duration::from_secs(1);

/// Keys per page when the whole prefix is read (about 1 MB of sidecars).
pub(super) const RANGE_PAGE: i64 = 1_000;

pub(super) struct Sync {
    client: Client,
    keys: Keys,
    replica: String,
    ttl: i64,
    marks: TrustMarks,
    lease: Option<i64>,
    keeper: Option<LeaseKeeper>,
    watch: Option<WatchStream>,
    /// This replica's sidecars, and those not written since they changed.
    own: BTreeMap<String, Proxy>,
    unput: BTreeSet<String>,
    /// Own keys to delete, with the value written, which the delete compares
    /// so that a key another replica took over stays.
    gone: BTreeMap<String, Vec<u8>>,
    unrevoked: BTreeSet<String>,
    revoked: HashSet<String>,
    /// This replica's proxies' xDS status, for the other replicas.
    status: OwnStatus,
    /// Rotation writes waiting for their turn.
    trust: Vec<TrustCommand>,
    /// The rotation tag all own proxies ACKed, and whether it is unwritten
    /// (it is written even when empty: the key tells the driver this
    /// replica is there).
    settled: (String, bool),
    /// Every replica's settled tag, as read and watched.
    all_settled: BTreeMap<String, String>,
    events: mpsc::UnboundedSender<StoreEvent>,
    health: watch::Sender<StoreHealth>,
    metrics: StoreMetrics,
}

/// Runs until the store handle is dropped.
pub(super) async fn run(mut sync: Sync, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                sync.apply(command);
                // A burst of connects becomes one pass of writes.
                while let Ok(command) = commands.try_recv() {
                    sync.apply(command);
                }
                if sync.is_up() {
                    sync.guard(Sync::flush).await;
                }
                sync.run_trust().await;
            }
            message = next_message(&mut sync.watch) => sync.on_watch(message),
            _ = tick.tick() => {
                if sync.is_up() {
                    sync.guard(Sync::keep_alive).await;
                } else {
                    sync.guard(Sync::reconcile).await;
                }
            }
        }
        sync.metrics.pending.set(
            (sync.unput.len() + sync.gone.len() + sync.unrevoked.len() + sync.status.pending())
                as i64,
        );
    }
}

/// The next watch response; pending forever without a watch.
async fn next_message(
    watch: &mut Option<WatchStream>,
) -> Result<Option<WatchResponse>, ClientError> {
    match watch {
        Some(w) => w.message().await,
        None => std::future::pending().await,
    }
}

/// Bounds an etcd request by [`OP_TIMEOUT`].
pub(super) async fn timed<T>(
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(r) => r.map_err(StoreError::from),
        Err(_) => Err(StoreError::Timeout(OP_TIMEOUT)),
    }
}

impl Sync {
    pub(super) fn new(
        client: Client,
        opts: &EtcdOptions,
        marks: TrustMarks,
        events: mpsc::UnboundedSender<StoreEvent>,
        health: watch::Sender<StoreHealth>,
        metrics: StoreMetrics,
    ) -> Self {
        Sync {
            client,
            keys: super::Keys::new(&opts.prefix),
            replica: opts.replica.clone(),
            // etcd counts whole seconds; a lease shorter than the keepalive
            // tick would run out between two keepalives.
            ttl: opts.lease_ttl.as_secs().max(3) as i64,
            marks,
            lease: None,
            keeper: None,
            watch: None,
            own: BTreeMap::new(),
            unput: BTreeSet::new(),
            gone: BTreeMap::new(),
            unrevoked: BTreeSet::new(),
            revoked: HashSet::new(),
            status: OwnStatus::default(),
            trust: Vec::new(),
            settled: (String::new(), true),
            all_settled: BTreeMap::new(),
            events,
            health,
            metrics,
        }
    }

    fn is_up(&self) -> bool {
        *self.health.borrow() == StoreHealth::Up
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Put(proxy) => {
                self.gone.remove(&proxy.id);
                self.unput.insert(proxy.id.clone());
                self.own.insert(proxy.id.clone(), *proxy);
            }
            Command::DeleteOwn(id) => {
                self.unput.remove(&id);
                if let Some(proxy) = self.own.remove(&id) {
                    self.gone.insert(id, self.value(&proxy));
                }
            }
            Command::Revoke(jti) => {
                if self.revoked.insert(jti.clone()) {
                    self.unrevoked.insert(jti);
                }
            }
            Command::PutStatus(node, value) => self.status.put(node, value),
            Command::DeleteStatus(node) => self.status.delete(node),
            Command::Trust(command) => self.trust.push(command),
            Command::Settled(tag) => self.settled = (tag, true),
            Command::RootsMark(roots) => {
                self.marks.next_roots = None;
                self.marks.roots = roots;
            }
        }
    }

    /// What this replica writes for `proxy`.
    fn value(&self, proxy: &Proxy) -> Vec<u8> {
        let mut record = Record::from(proxy);
        record.owner = Some(self.replica.clone());
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// Runs one step; a failure marks the store down until a reconcile.
    async fn guard<F>(&mut self, step: F)
    where
        F: AsyncFnOnce(&mut Sync) -> Result<(), StoreError>,
    {
        match step(self).await {
            Ok(()) => {}
            Err(e @ StoreError::Mismatch(_)) => self.fail(format!("store refused: {e}")),
            Err(e) => self.fail(format!("store unreachable: {e}")),
        }
    }

    fn fail(&mut self, reason: String) {
        self.keeper = None;
        self.watch = None;
        self.metrics.up.set(0);
        self.metrics.failures.inc();
        if matches!(*self.health.borrow(), StoreHealth::Down(_)) {
            tracing::debug!("{reason}");
        } else {
            tracing::warn!("{reason}; serving the last registry known, retrying every {TICK:?}");
        }
        self.health.send_replace(StoreHealth::Down(reason));
    }

    /// Writes what changed: puts, then deletes, then revocations.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let lease = self.lease.unwrap_or_default();
        self.flush_puts(lease).await?;
        while let Some((id, value)) = self.gone.first_key_value() {
            let key = self.keys.sidecar(id).into_bytes();
            let txn = TxnRequest {
                compare: vec![trust::equal(&key, TargetUnion::Value(value.clone()))],
                success: vec![op(Request::RequestDeleteRange(DeleteRangeRequest {
                    key: key.clone(),
                    range_end: Vec::new(),
                }))],
                failure: Vec::new(),
            };
            timed(self.client.txn(txn)).await?;
            self.gone.pop_first();
        }
        while let Some(jti) = self.unrevoked.first().cloned() {
            timed(self.client.put(&self.keys.revoked(&jti), Vec::new(), 0)).await?;
            self.unrevoked.remove(&jti);
        }
        if self.settled.1 {
            let key = self.keys.settled(&self.replica);
            let value = self.settled.0.clone().into_bytes();
            timed(self.client.put(&key, value, lease)).await?;
            self.settled.1 = false;
        }
        let (client, keys) = (&self.client, &self.keys);
        self.status
            .flush(client, keys, &self.replica, lease)
            .await?;
        Ok(())
    }

    /// Writes the own sidecars not written since they changed, up to
    /// [`shared_status::BATCH`] per transaction: a burst of 5,000 connects
    /// costs 50 round trips to etcd, not 5,000 one after the other while
    /// this task reads no watch event.
    async fn flush_puts(&mut self, lease: i64) -> Result<(), StoreError> {
        while !self.unput.is_empty() {
            let ids: Vec<String> = (self.unput.iter().take(shared_status::BATCH))
                .cloned()
                .collect();
            let puts = (ids.iter())
                .filter_map(|id| Some((id, self.own.get(id)?)))
                .map(|(id, proxy)| {
                    op(Request::RequestPut(PutRequest {
                        key: self.keys.sidecar(id).into_bytes(),
                        value: self.value(proxy),
                        lease,
                    }))
                })
                .collect();
            let txn = TxnRequest {
                compare: Vec::new(),
                success: puts,
                failure: Vec::new(),
            };
            timed(self.client.txn(txn)).await?;
            ids.iter().for_each(|id| {
                self.unput.remove(id);
            });
        }
        Ok(())
    }

    async fn keep_alive(&mut self) -> Result<(), StoreError> {
        let Some(keeper) = self.keeper.as_mut() else {
            return Err(StoreError::Timeout(OP_TIMEOUT));
        };
        match timed(keeper.renew()).await? {
            ttl if ttl > 0 => Ok(()),
            _ => {
                // The next reconcile grants a new one and writes every
                // own sidecar on it.
                self.lease = None;
                Err(StoreError::LeaseExpired)
            }
        }
    }

    /// Gets back in step with etcd after a start or a failure.
    async fn reconcile(&mut self) -> Result<(), StoreError> {
        self.ensure_lease().await?;
        self.check_marks().await?;
        self.unput.extend(self.own.keys().cloned());
        self.unrevoked.extend(self.revoked.iter().cloned());
        self.status.rewrite_all();
        self.settled.1 = true;
        self.flush().await?;
        let revision = self.read_all().await?;
        let prefix = self.keys.all();
        self.watch = Some(timed(self.client.watch_prefix(&prefix, revision + 1)).await?);
        self.metrics.up.set(1);
        self.metrics.reconciles.inc();
        tracing::info!(
            own = self.own.len(),
            lease = self.lease.unwrap_or_default(),
            revision,
            "store connected: own sidecars written, shared registry read"
        );
        self.health.send_replace(StoreHealth::Up);
        Ok(())
    }

    /// Keeps the lease if it still lives, else grants a new one.
    async fn ensure_lease(&mut self) -> Result<(), StoreError> {
        if let Some(id) = self.lease {
            let (keeper, ttl) = timed(self.client.lease_keep_alive(id)).await?;
            if ttl > 0 {
                self.keeper = Some(keeper);
                return Ok(());
            }
            tracing::warn!(
                lease = id,
                "this replica's lease expired; granting a new one"
            );
        }
        let id = timed(self.client.lease_grant(self.ttl)).await?;
        self.lease = Some(id);
        let (keeper, _ttl) = timed(self.client.lease_keep_alive(id)).await?;
        self.keeper = Some(keeper);
        Ok(())
    }

    /// Writes each trust mark if absent, else compares it.
    async fn check_marks(&mut self) -> Result<(), StoreError> {
        let marks = [
            ("roots", self.marks.roots.clone(), "mesh root"),
            ("token-key", self.marks.token_key.clone(), "token key"),
        ];
        for (name, mine, what) in marks {
            let key = self.keys.trust(name);
            let response = timed(self.client.txn(put_if_absent(&key, &mine))).await?;
            if response.succeeded {
                continue;
            }
            let theirs = timed(self.client.range(&key, false)).await?;
            let theirs = theirs.kvs.first().map(|kv| kv.value.as_slice());
            let staged = (name == "roots")
                .then(|| self.marks.next_roots.clone())
                .flatten();
            let theirs = theirs.unwrap_or_default();
            if theirs != mine.as_bytes() && staged.as_deref().map(str::as_bytes) != Some(theirs) {
                return Err(StoreError::Mismatch(format!(
                    "this replica's {what} differs from the one in {key}: every replica \
                     needs the same CA files and token key"
                )));
            }
        }
        Ok(())
    }

    /// Reads the whole prefix and reports it; returns its revision.
    async fn read_all(&mut self) -> Result<i64, StoreError> {
        let prefix = self.keys.all();
        let response = (self
            .client
            .range_paged(&prefix, RANGE_PAGE, OP_TIMEOUT)
            .await)
            .map_err(StoreError::from)?;
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        let mut sidecars = Vec::new();
        let mut statuses = Vec::new();
        let (mut rotation, mut driver) = (None, None);
        let (mut rollout, mut rollout_driver) = (None, None);
        self.all_settled.clear();
        for kv in &response.kvs {
            match self.keys.parse(key_str(kv)) {
                Some(KeyKind::Settled(replica)) => {
                    self.all_settled
                        .insert(replica.to_string(), lossy(&kv.value));
                }
                Some(KeyKind::Rotation) => rotation = decode_rotation(kv),
                Some(KeyKind::Lock) => driver = Some(lossy(&kv.value)),
                Some(KeyKind::Rollout) => rollout = Some(kv.value.clone()),
                Some(KeyKind::RolloutLock) => rollout_driver = Some(lossy(&kv.value)),
                Some(KeyKind::Sidecar(id)) => sidecars.extend(self.decode(id, kv)),
                Some(KeyKind::Revoked(jti)) => self.learn_revoked(jti),
                Some(KeyKind::Status { replica, .. }) if !self.is_me(replica) => {
                    statuses.extend(shared_status::decode(key_str(kv), &kv.value));
                }
                Some(KeyKind::Status { .. }) | None => {}
            }
        }
        // Another replica took these over while this one could not see it.
        let mine = self.lease;
        for kv in &response.kvs {
            if let Some(KeyKind::Sidecar(id)) = self.keys.parse(key_str(kv)) {
                if Some(kv.lease) != mine {
                    self.own.remove(id);
                }
            }
        }
        let _ = self.events.send(StoreEvent::Snapshot(sidecars));
        let _ = self.events.send(StoreEvent::StatusSnapshot(statuses));
        let _ = self.events.send(StoreEvent::Rotation(rotation));
        let _ = self.events.send(StoreEvent::Driver(driver));
        let _ = (self.events).send(StoreEvent::Settled(self.all_settled.clone()));
        let _ = self.events.send(StoreEvent::Rollout(rollout));
        let _ = self.events.send(StoreEvent::RolloutDriver(rollout_driver));
        Ok(revision)
    }

    /// Whether a status key's replica is this one (whose own statuses come
    /// from its own table, not from etcd).
    fn is_me(&self, replica: &str) -> bool {
        replica == self.replica.replace('/', "_")
    }

    /// Another replica's proxy status changed or went.
    fn on_status(&mut self, replica: &str, node: &str, kv: &KeyValue, kind: EventType) {
        if self.is_me(replica) {
            return;
        }
        let event = match kind {
            EventType::Put => match shared_status::decode(key_str(kv), &kv.value) {
                Some(record) => StoreEvent::Status(Box::new(record)),
                None => return,
            },
            EventType::Delete => StoreEvent::StatusRemoved {
                replica: replica.to_string(),
                node: node.to_string(),
            },
        };
        let _ = self.events.send(event);
    }

    fn decode(&self, id: &str, kv: &KeyValue) -> Option<Proxy> {
        match serde_json::from_slice::<Record>(&kv.value) {
            Ok(record) => Some(Proxy::from(record)),
            Err(e) => {
                tracing::warn!(node = %id, "ignoring an unreadable registry entry in etcd: {e}");
                None
            }
        }
    }

    fn learn_revoked(&mut self, jti: &str) {
        if self.revoked.insert(jti.to_string()) {
            let _ = self.events.send(StoreEvent::Revoked(jti.to_string()));
        }
    }

    fn on_watch(&mut self, message: Result<Option<WatchResponse>, ClientError>) {
        let response = match message {
            Ok(Some(r)) if !r.canceled => r,
            Ok(Some(r)) => return self.fail(format!("store watch cancelled: {}", r.cancel_reason)),
            Ok(None) => return self.fail("store unreachable: watch ended".into()),
            Err(e) => return self.fail(format!("store unreachable: watch: {e}")),
        };
        for event in &response.events {
            let Some(kv) = &event.kv else { continue };
            // An event type this client does not know is skipped, not
            // taken for a put.
            let Ok(kind) = EventType::try_from(event.r#type) else {
                continue;
            };
            match (self.keys.parse(key_str(kv)), kind) {
                (Some(KeyKind::Sidecar(id)), EventType::Put) => self.on_put(id, kv),
                (Some(KeyKind::Sidecar(id)), EventType::Delete) => {
                    let _ = self.events.send(StoreEvent::Removed(id.to_string()));
                }
                (Some(KeyKind::Revoked(jti)), EventType::Put) => self.learn_revoked(jti),
                (Some(KeyKind::Status { replica, node }), kind) => {
                    self.on_status(replica, node, kv, kind)
                }
                (Some(KeyKind::Rotation), kind) => {
                    let record = (kind == EventType::Put).then(|| decode_rotation(kv));
                    let _ = self.events.send(StoreEvent::Rotation(record.flatten()));
                }
                (Some(KeyKind::Settled(replica)), kind) => {
                    match kind {
                        EventType::Put => self.all_settled.insert(replica.into(), lossy(&kv.value)),
                        EventType::Delete => self.all_settled.remove(replica),
                    };
                    let _ = (self.events).send(StoreEvent::Settled(self.all_settled.clone()));
                }
                (Some(KeyKind::Lock), kind) => {
                    let holder = (kind == EventType::Put).then(|| lossy(&kv.value));
                    let _ = self.events.send(StoreEvent::Driver(holder));
                }
                (Some(KeyKind::Rollout), kind) => {
                    let value = (kind == EventType::Put).then(|| kv.value.clone());
                    let _ = self.events.send(StoreEvent::Rollout(value));
                }
                (Some(KeyKind::RolloutLock), kind) => {
                    let holder = (kind == EventType::Put).then(|| lossy(&kv.value));
                    let _ = self.events.send(StoreEvent::RolloutDriver(holder));
                }
                _ => {}
            }
        }
    }

    /// Runs the rotation writes asked for; while the store is down they
    /// fail at once (the caller retries), never queue behind an outage.
    async fn run_trust(&mut self) {
        for command in std::mem::take(&mut self.trust) {
            let result = match self.is_up() {
                true => self.trust_op(&command.op).await,
                false => Err(StoreError::Unavailable("etcd is unreachable".into())),
            };
            let failed = match &result {
                Err(StoreError::Unavailable(_)) | Ok(_) => None,
                Err(e) => Some(format!("store unreachable: {e}")),
            };
            let _ = command.reply.send(result);
            if let Some(reason) = failed {
                self.fail(reason);
            }
        }
    }

    async fn trust_op(&mut self, op: &TrustOp) -> Result<bool, StoreError> {
        let lease = self.lease.unwrap_or_default();
        let txn = trust::txn(&self.keys, &self.replica, lease, op);
        if timed(self.client.txn(txn)).await?.succeeded {
            return Ok(true);
        }
        let TrustOp::Lock(which) = op else {
            return Ok(false);
        };
        // Taken already: by this replica on this lease (an earlier attempt
        // whose answer was lost) counts as taken now.
        let held = timed(self.client.range(&which.key(&self.keys), false)).await?;
        let mine = |kv: &KeyValue| kv.value == self.replica.as_bytes() && kv.lease == lease;
        Ok(held.kvs.first().is_some_and(mine))
    }

    /// A put on another lease is another replica's: the sidecar moved there
    /// (or registered there), and this replica no longer writes it.
    fn on_put(&mut self, id: &str, kv: &KeyValue) {
        if Some(kv.lease) == self.lease {
            return;
        }
        self.own.remove(id);
        self.unput.remove(id);
        if let Some(proxy) = self.decode(id, kv) {
            let _ = self.events.send(StoreEvent::Registered(Box::new(proxy)));
        }
    }
}

/// A key as text; a key that is not UTF-8 is none of Trellis's.
pub(super) fn key_str(kv: &KeyValue) -> &str {
    std::str::from_utf8(&kv.key).unwrap_or_default()
}

/// A transaction operation.
pub(super) fn op(request: Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

/// The shared rotation record of a `trust/rotation` value, with the
/// value; `None` (and a warning) if unreadable.
fn decode_rotation(kv: &KeyValue) -> Option<Box<(RotationRecord, Vec<u8>)>> {
    match serde_json::from_slice::<RotationRecord>(&kv.value) {
        Ok(record) => Some(Box::new((record, kv.value.clone()))),
        Err(e) => {
            tracing::warn!("ignoring an unreadable root rotation record in etcd: {e}");
            None
        }
    }
}

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Writes `key` if it does not exist (creation revision 0); the caller
/// reads it when the transaction did not succeed.
fn put_if_absent(key: &str, value: &str) -> TxnRequest {
    let key = key.as_bytes().to_vec();
    let put = PutRequest {
        key: key.clone(),
        value: value.as_bytes().to_vec(),
        lease: 0,
    };
    TxnRequest {
        compare: vec![trust::equal(&key, TargetUnion::CreateRevision(0))],
        success: vec![op(Request::RequestPut(put))],
        failure: Vec::new(),
    }
}
