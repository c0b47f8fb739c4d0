//! What replicas of `trellis serve` share, behind one interface with two
//! backends.
//!
//! - [`Store::Local`]: the state directory of one process (the default):
//!   the registry saved in `STATE_DIR/registry.json` for restarts, token
//!   revocations in `STATE_DIR/revoked-tokens`, the root-rotation state in
//!   `STATE_DIR/ca`.
//! - [`Store::Etcd`]: an etcd cluster (`--store etcd://…`) shared by every
//!   replica: the registry of every replica's sidecars (on one lease per
//!   replica), token revocations, each replica's proxies' xDS status, the
//!   shared root rotation, and the fingerprints of the mesh root and token
//!   key every replica must share, and the staged config rollout (with the
//!   files of the generations it serves). Never a private key or a token
//!   key. Keys carry a schema version: `PREFIX/v1/…`.
//!
//! Each replica loads its own copy of the config directory; during a staged
//! rollout every replica serves the generations the store names.

pub mod etcd;
pub mod local;
mod metrics;
mod record;
pub mod rotation;
pub mod status;

use std::path::PathBuf;

pub use etcd::{
    Election, EtcdFeed, EtcdOptions, EtcdStore, EtcdTls, StoreEvent, StoreHealth, TrustOp,
};
pub use metrics::StoreMetrics;
pub use record::Record;
pub use rotation::{RotationRecord, SharedPhase};
pub use status::StatusRecord;

use crate::registry::{Proxy, Registry};

/// Why a store could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `--store` is neither `local` nor `etcd://HOST:PORT[,HOST:PORT…]`.
    #[error("--store {0:?}: expected `local` or `etcd://HOST:PORT[,HOST:PORT...]`")]
    BadUrl(String),
    /// `--store-prefix` is empty or does not start with `/`.
    #[error("--store-prefix {0:?}: expected an absolute key prefix such as /trellis")]
    BadPrefix(String),
    /// A TLS file for the etcd client could not be read.
    #[error("reading {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The etcd client failed (connection, request, lease).
    #[error("etcd: {0}")]
    Etcd(#[from] etcd::ClientError),
    /// An etcd request did not answer in time.
    #[error("etcd did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// This replica's lease ran out while etcd could not be reached.
    #[error("this replica's lease expired")]
    LeaseExpired,
    /// A store request could not be made now (etcd unreachable).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// This replica's trust material differs from the other replicas'.
    #[error("{0}")]
    Mismatch(String),
}

/// The store a control plane uses.
#[derive(Debug)]
pub enum Store {
    /// One process's state directory.
    Local {
        /// `--state-dir`.
        state_dir: PathBuf,
    },
    /// An etcd cluster shared by every replica.
    Etcd(EtcdStore),
}

impl Store {
    /// True when other replicas share this state.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Etcd(_))
    }

    /// The sidecars the last run of this process saved (local only: with
    /// etcd the shared registry arrives as a [`StoreEvent::Snapshot`]).
    pub fn restore(&self) -> Vec<Proxy> {
        match self {
            Store::Local { state_dir } => local::load(state_dir),
            Store::Etcd(_) => Vec::new(),
        }
    }

    /// Records the whole registry (local only: etcd is written per sidecar).
    pub fn save(&self, registry: &Registry) {
        if let Store::Local { state_dir } = self {
            local::save(state_dir, registry);
        }
    }

    /// A proxy's stream opened on this replica: it is this replica's now.
    /// Gateways are published too: other replicas route to a gateway that
    /// is an endpoint, and other clusters find their east-west gateways
    /// there ([`crate::registry::GatewayNode::network_port`]).
    pub fn registered(&self, proxy: &Proxy) {
        if let Store::Etcd(etcd) = self {
            etcd.put(proxy);
        }
    }

    /// This replica's sidecar is gone (grace period over, token refused).
    pub fn deregistered(&self, id: &str) {
        if let Store::Etcd(etcd) = self {
            etcd.delete_own(id);
        }
    }

    /// Publishes the xDS status of a proxy this replica serves (etcd only:
    /// a single replica's own table is all there is).
    pub fn status_changed(&self, record: &StatusRecord) {
        if let Store::Etcd(etcd) = self {
            etcd.put_status(record);
        }
    }

    /// A proxy's status left this replica's table.
    pub fn status_removed(&self, node: &str) {
        if let Store::Etcd(etcd) = self {
            etcd.delete_status(node);
        }
    }

    /// A token `jti` is revoked; other replicas must refuse it too.
    pub fn revoked(&self, jti: &str) {
        if let Store::Etcd(etcd) = self {
            etcd.revoke(jti);
        }
    }
}
