//! The etcd backend: the state every replica shares, in etcd's v3 API.
//!
//! Layout (all under `PREFIX/v1/`, the schema version):
//! - `sidecars/NODE_ID`: a [`Record`] (JSON) of a sidecar whose stream is
//!   open on some replica, or was until its grace period. Every key of one
//!   replica hangs on that replica's single lease (TTL = the restart grace
//!   period, kept alive by the replica): 10,000 sidecars cost one keepalive
//!   per second, not thousands, and a dead replica's keys go when its lease
//!   runs out, by when its sidecars have reconnected elsewhere and been
//!   re-put on another lease.
//! - `revoked/JTI`: a revoked token (no lease: revocations stay).
//! - `status/REPLICA/NODE_ID`: the xDS status of a proxy whose stream
//!   `REPLICA` holds (a [`StatusRecord`], JSON), on that replica's lease,
//!   written at most once a second per proxy and in batched transactions.
//! - `trust/roots`, `trust/token-key`: the mesh root fingerprints and a
//!   check value of the token key (an HMAC of a fixed string, which tells
//!   nothing of the key), written by the first replica and compared by every
//!   later one, so a replica with other trust material refuses to register
//!   sidecars instead of splitting the mesh. A finished root rotation
//!   replaces `trust/roots`.
//! - `trust/rotation`: the root rotation every replica follows (a
//!   [`RotationRecord`], no lease); `trust/lock`: the replica driving it (on
//!   its lease); `trust/settled/REPLICA`: the rotation phase all of that
//!   replica's proxies ACKed (on its lease; written at start too, so the
//!   driver knows every live replica). See `serve::rotation`.
//! - `rollout/state`: the staged config rollout every replica serves (the
//!   good generation and the one baking, with their files, and the
//!   history; JSON, no lease, replaced only by compare-and-swap);
//!   `rollout/lock`: the replica driving it (on its lease). See
//!   `serve::rollout`.
//!
//! One task ([`sync::run`]) owns the client: it writes this replica's
//! registrations, keeps the lease alive, watches the prefix and reports what
//! other replicas did as [`StoreEvent`]s. When etcd does not answer, it
//! keeps what it must write and reports [`StoreHealth::Down`]; once etcd
//! answers again it reconciles (new lease if the old one ran out, every own
//! sidecar written again, the whole registry read again).

mod client;
mod keys;
mod proto;
mod remote;
mod status;
mod sync;
mod trust;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::{RotationRecord, StatusRecord, StoreError, StoreMetrics};
use crate::registry::Proxy;

pub use client::ClientError;
pub use keys::Keys;
pub use remote::{remote_id, watch_remote, RemoteEvent};
pub use trust::{Election, TrustOp};

/// How long one etcd request may take before etcd counts as unreachable.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// `--store etcd://…` and the flags around it.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `HOST:PORT` of each etcd member.
    pub endpoints: Vec<String>,
    /// `--store-prefix`, e.g. `/trellis`.
    pub prefix: String,
    /// Client TLS (`--store-ca`, `--store-cert`, `--store-key`).
    pub tls: Option<EtcdTls>,
    /// The lease TTL: how long this replica's sidecars outlive it.
    pub lease_ttl: Duration,
    /// This replica's name in the records it writes (its xDS address).
    pub replica: String,
}

/// TLS to etcd: the CA that signed etcd's certificate, and optionally a
/// client certificate and key (etcd's `--client-cert-auth`).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// `--store-ca`.
    pub ca: PathBuf,
    /// `--store-cert` and `--store-key`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// Parses `--store`: `Ok(None)` for `local`, the endpoints for
/// `etcd://HOST:PORT[,HOST:PORT…]`.
pub fn parse_store_url(url: &str) -> Result<Option<Vec<String>>, StoreError> {
    if url == "local" {
        return Ok(None);
    }
    let bad = || StoreError::BadUrl(url.to_string());
    let list = url.strip_prefix("etcd://").ok_or_else(bad)?;
    let endpoints: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
    let valid = |e: &String| {
        e.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && !h.contains('/') && p.parse::<u16>().is_ok())
    };
    if endpoints.iter().all(valid) {
        Ok(Some(endpoints))
    } else {
        Err(bad())
    }
}

/// What trust material this replica holds, as values safe to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustMarks {
    /// The SHA-256 fingerprints of the mesh roots, sorted, comma-joined.
    pub roots: String,
    /// A check value of the token key.
    pub token_key: String,
    /// The roots mark of a plug-in CA staged to rotate to (`CA_DIR/next/`):
    /// accepted too, since a replica that starts after the others finished
    /// a rotation to it moves to it at once.
    pub next_roots: Option<String>,
}

/// What other replicas did, as this replica's watch saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    /// Another replica registered or updated a sidecar.
    Registered(Box<Proxy>),
    /// A sidecar left the shared registry: deregistered by its replica, or
    /// its replica's lease ran out.
    Removed(String),
    /// The whole shared registry, after (re)connecting; the watch goes on
    /// from here.
    Snapshot(Vec<Proxy>),
    /// A token was revoked through some replica.
    Revoked(String),
    /// Another replica published a proxy's xDS status.
    Status(Box<StatusRecord>),
    /// Another replica's proxy left it (or that replica's lease ran out).
    StatusRemoved {
        /// The replica (as in its status keys).
        replica: String,
        /// The proxy's node id.
        node: String,
    },
    /// Every other replica's proxy status, after (re)connecting; replaces
    /// what was known.
    StatusSnapshot(Vec<StatusRecord>),
    /// The shared root rotation (`trust/rotation`) as now stored, with its
    /// raw value (what a write that replaces it compares); `None` when
    /// there is none. Sent after (re)connecting and on every change.
    Rotation(Option<Box<(RotationRecord, Vec<u8>)>>),
    /// The replica driving the rotation (`trust/lock`), if any.
    Driver(Option<String>),
    /// Every live replica (by its name in keys) with the rotation tag all
    /// its proxies have ACKed (empty: none yet).
    Settled(std::collections::BTreeMap<String, String>),
    /// The staged rollout record (`rollout/state`) as now stored, raw;
    /// `None` when there is none. Sent after (re)connecting and on every
    /// change.
    Rollout(Option<Vec<u8>>),
    /// The replica driving the rollout (`rollout/lock`), if any.
    RolloutDriver(Option<String>),
}

/// Whether the store answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Not connected yet.
    Connecting,
    /// Connected, registrations written, registry watched.
    Up,
    /// Unreachable or refusing this replica, and why.
    Down(String),
}

/// What [`EtcdStore::start`] hands to the replica: events and health.
#[derive(Debug)]
pub struct EtcdFeed {
    /// Changes made by other replicas.
    pub events: mpsc::UnboundedReceiver<StoreEvent>,
    /// The store's health, for `/readyz`.
    pub health: watch::Receiver<StoreHealth>,
    /// This replica's name in what it writes ([`EtcdOptions::replica`]).
    pub replica: String,
}

/// A write this replica asks for.
#[derive(Debug)]
enum Command {
    Put(Box<Proxy>),
    DeleteOwn(String),
    Revoke(String),
    PutStatus(String, Vec<u8>),
    DeleteStatus(String),
    Trust(trust::TrustCommand),
    RootsMark(String),
    Settled(String),
}

/// The handle the control plane holds: asks for writes; the sync task
/// does them in order and retries them until etcd answers.
#[derive(Debug)]
pub struct EtcdStore {
    commands: mpsc::UnboundedSender<Command>,
}

impl EtcdStore {
    /// Builds the client (it connects lazily) and starts the sync task.
    pub async fn start(
        opts: EtcdOptions,
        marks: TrustMarks,
        metrics: StoreMetrics,
    ) -> Result<(EtcdStore, EtcdFeed), StoreError> {
        if !opts.prefix.starts_with('/') || opts.prefix.len() < 2 {
            return Err(StoreError::BadPrefix(opts.prefix));
        }
        let client = client::Client::connect(&connect_options(&opts)?)?;
        let (commands, rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (health_tx, health) = watch::channel(StoreHealth::Connecting);
        let state = sync::Sync::new(client, &opts, marks, events_tx, health_tx, metrics);
        tokio::spawn(sync::run(state, rx));
        let replica = opts.replica;
        let feed = EtcdFeed {
            events,
            health,
            replica,
        };
        Ok((EtcdStore { commands }, feed))
    }

    /// Writes (or takes over) a sidecar's key on this replica's lease.
    pub fn put(&self, proxy: &Proxy) {
        let _ = self.commands.send(Command::Put(Box::new(proxy.clone())));
    }

    /// Deletes a sidecar's key if this replica still holds it.
    pub fn delete_own(&self, id: &str) {
        let _ = self.commands.send(Command::DeleteOwn(id.to_string()));
    }

    /// Records a revoked token.
    pub fn revoke(&self, jti: &str) {
        let _ = self.commands.send(Command::Revoke(jti.to_string()));
    }

    /// Publishes the xDS status of a proxy this replica serves, on its
    /// lease (callers coalesce: one call per proxy per second at most).
    pub fn put_status(&self, record: &StatusRecord) {
        match serde_json::to_vec(record) {
            Ok(value) => {
                let _ = self
                    .commands
                    .send(Command::PutStatus(record.node.clone(), value));
            }
            Err(e) => tracing::warn!(node = %record.node, "encoding a proxy status: {e}"),
        }
    }

    /// Runs a rotation write (see [`TrustOp`]); `Ok(false)` when its
    /// compare did not hold (another replica got there first).
    pub async fn trust(&self, op: TrustOp) -> Result<bool, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let command = trust::TrustCommand { op, reply };
        (self.commands.send(Command::Trust(command)))
            .map_err(|_| StoreError::Unavailable("the store task stopped".into()))?;
        (answer.await).map_err(|_| StoreError::Unavailable("the store task stopped".into()))?
    }

    /// This replica's roots changed (a rotation finished): later
    /// reconnections compare the new mark.
    pub fn set_roots_mark(&self, roots: String) {
        let _ = self.commands.send(Command::RootsMark(roots));
    }

    /// Every proxy of this replica has ACKed SDS of rotation tag `tag`
    /// (written on this replica's lease, so a dead replica leaves the set).
    pub fn set_settled(&self, tag: &str) {
        let _ = self.commands.send(Command::Settled(tag.to_string()));
    }

    /// Withdraws a proxy's status: it left this replica.
    pub fn delete_status(&self, node: &str) {
        let _ = self.commands.send(Command::DeleteStatus(node.to_string()));
    }
}

/// The client options: HTTP/2 pings every second so that a dead or frozen
/// member is noticed in seconds, not at the next request.
fn connect_options(opts: &EtcdOptions) -> Result<client::ConnectOptions, StoreError> {
    connect_options_for(&opts.endpoints, opts.tls.as_ref())
}

/// The client options for `endpoints` (this cluster's or a remote one's).
fn connect_options_for(
    endpoints: &[String],
    tls: Option<&EtcdTls>,
) -> Result<client::ConnectOptions, StoreError> {
    let tls = tls.map(tls_options).transpose()?;
    Ok(client::ConnectOptions {
        endpoints: endpoints.to_vec(),
        tls,
        connect_timeout: OP_TIMEOUT,
        ping_interval: Duration::from_secs(1),
        ping_timeout: OP_TIMEOUT,
    })
}

/// etcd's CA and, for `--client-cert-auth`, this replica's certificate.
fn tls_options(tls: &EtcdTls) -> Result<ClientTlsConfig, StoreError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| StoreError::TlsFile {
            path: path.clone(),
            source,
        })
    };
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(parse_store_url("local").unwrap(), None);
        assert_eq!(
            parse_store_url("etcd://127.0.0.1:2379,etcd-2:2379").unwrap(),
            Some(vec![
                "127.0.0.1:2379".to_string(),
                "etcd-2:2379".to_string()
            ])
        );
        for bad in [
            "etcd://",
            "etcd://host",
            "http://h:1",
            "etcd://h:1,",
            "etcd://h:x",
        ] {
            assert!(parse_store_url(bad).is_err(), "{bad}");
        }
    }
}
