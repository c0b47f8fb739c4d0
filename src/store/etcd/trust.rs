//! The shared root rotation in etcd: `trust/rotation` (the record every
//! replica follows) and `trust/lock` (the replica driving it, on that
//! replica's lease, so a dead driver's lock goes with its lease and another
//! replica takes over from the stored phase).
//!
//! Every write is one transaction whose compare makes it safe against the
//! other replicas: a request only replaces the record it saw, the lock is
//! taken only if absent (`create_revision == 0`), and a driver's step
//! happens only while it still holds the lock.

use tokio::sync::oneshot;

use super::keys::Keys;
use super::proto::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, Request, TargetUnion,
    TxnRequest,
};
use super::sync::op;
use crate::store::StoreError;

/// A rotation write asked of the sync task; answers whether its compare
/// held.
#[derive(Debug)]
pub(super) struct TrustCommand {
    pub(super) op: TrustOp,
    pub(super) reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// A role one replica at a time holds: a key on that replica's lease, so
/// a dead holder's key goes with its lease and another replica takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The driver of the shared root rotation (`trust/lock`).
    Rotation,
    /// The driver of the staged config rollout (`rollout/lock`): its bake
    /// timer and regression check.
    Rollout,
}

impl Election {
    /// The key the holder's name is written under.
    pub(super) fn key(self, keys: &Keys) -> String {
        match self {
            Election::Rotation => keys.trust("lock"),
            Election::Rollout => keys.rollout("lock"),
        }
    }
}

/// The compare-and-swap writes of the shared root rotation and rollout,
/// and the elections of their drivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustOp {
    /// Writes `record` if the key holds `expected` (`None`: no record yet).
    Propose {
        /// The value the requester saw.
        expected: Option<Vec<u8>>,
        /// The new record (JSON).
        record: Vec<u8>,
    },
    /// Takes a driver lock on this replica's lease if nobody holds it.
    Lock(Election),
    /// A driver's step: writes `record` while this replica holds the lock
    /// and the key holds `expected`; `roots` also replaces the roots mark
    /// (the rotation finished); `release` drops the lock.
    Advance {
        /// The record the driver last wrote or read.
        expected: Vec<u8>,
        /// The new record (JSON).
        record: Vec<u8>,
        /// The new `trust/roots` mark.
        roots: Option<String>,
        /// Drop the lock in the same transaction.
        release: bool,
    },
    /// Writes the rollout record `record` if `rollout/state` holds
    /// `expected` (`None`: no record yet). Any replica may: every rollout
    /// step is a pure function of the record it replaces.
    Rollout {
        /// The value the writer saw.
        expected: Option<Vec<u8>>,
        /// The new record (JSON).
        record: Vec<u8>,
    },
}

/// The transaction of `op` for `replica` on `lease`.
pub(super) fn txn(keys: &Keys, replica: &str, lease: i64, op_: &TrustOp) -> TxnRequest {
    let rotation = keys.trust("rotation").into_bytes();
    let lock = keys.trust("lock").into_bytes();
    let (compare, success) = match op_ {
        TrustOp::Propose { expected, record } => {
            let seen = match expected {
                None => equal(&rotation, TargetUnion::CreateRevision(0)),
                Some(v) => equal(&rotation, TargetUnion::Value(v.clone())),
            };
            (vec![seen], vec![put(&rotation, record.clone(), 0)])
        }
        TrustOp::Lock(which) => {
            let lock = which.key(keys).into_bytes();
            let free = equal(&lock, TargetUnion::CreateRevision(0));
            let mine = put(&lock, replica.as_bytes().to_vec(), lease);
            (vec![free], vec![mine])
        }
        TrustOp::Rollout { expected, record } => {
            let state = keys.rollout("state").into_bytes();
            let seen = match expected {
                None => equal(&state, TargetUnion::CreateRevision(0)),
                Some(v) => equal(&state, TargetUnion::Value(v.clone())),
            };
            (vec![seen], vec![put(&state, record.clone(), 0)])
        }
        TrustOp::Advance {
            expected,
            record,
            roots,
            release,
        } => {
            let held = equal(&lock, TargetUnion::Value(replica.as_bytes().to_vec()));
            let seen = equal(&rotation, TargetUnion::Value(expected.clone()));
            let ops = step_ops(keys, (&rotation, record), roots.as_deref(), *release);
            (vec![held, seen], ops)
        }
    };
    TxnRequest {
        compare,
        success,
        failure: Vec::new(),
    }
}

/// A driver's step: the new record, the roots mark once finished, and the
/// lock released when it stops driving.
fn step_ops(
    keys: &Keys,
    (rotation, record): (&[u8], &[u8]),
    roots: Option<&str>,
    release: bool,
) -> Vec<super::proto::RequestOp> {
    let mut ops = vec![put(rotation, record.to_vec(), 0)];
    if let Some(roots) = roots {
        ops.push(put(&keys.trust("roots").into_bytes(), roots.into(), 0));
    }
    if release {
        ops.push(op(Request::RequestDeleteRange(DeleteRangeRequest {
            key: keys.trust("lock").into_bytes(),
            range_end: Vec::new(),
        })));
    }
    ops
}

fn put(key: &[u8], value: Vec<u8>, lease: i64) -> super::proto::RequestOp {
    op(Request::RequestPut(PutRequest {
        key: key.to_vec(),
        value,
        lease,
    }))
}

/// `key`'s property named by `target` equals the value given.
pub(super) fn equal(key: &[u8], target: TargetUnion) -> Compare {
    let kind = match target {
        TargetUnion::CreateRevision(_) => CompareTarget::Create,
        TargetUnion::Value(_) => CompareTarget::Value,
    };
    Compare {
        result: CompareResult::Equal as i32,
        target: kind as i32,
        key: key.to_vec(),
        target_union: Some(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_taken_only_if_absent_and_on_the_lease() {
        let keys = Keys::new("/t");
        let t = txn(&keys, "r1", 7, &TrustOp::Lock(Election::Rotation));
        assert_eq!(t.compare.len(), 1);
        assert_eq!(t.compare[0].key, b"/t/v1/trust/lock");
        assert_eq!(
            t.compare[0].target_union,
            Some(TargetUnion::CreateRevision(0))
        );
        let Some(Request::RequestPut(p)) = &t.success[0].request else {
            panic!("a put");
        };
        assert_eq!((p.value.as_slice(), p.lease), (&b"r1"[..], 7));
    }

    #[test]
    fn a_step_needs_the_lock_and_the_record_seen_and_may_finish() {
        let keys = Keys::new("/t");
        let step = TrustOp::Advance {
            expected: b"old".to_vec(),
            record: b"new".to_vec(),
            roots: Some("fp".into()),
            release: true,
        };
        let t = txn(&keys, "r1", 7, &step);
        let targets: Vec<_> = t.compare.iter().map(|c| c.target_union.clone()).collect();
        assert_eq!(
            targets,
            vec![
                Some(TargetUnion::Value(b"r1".to_vec())),
                Some(TargetUnion::Value(b"old".to_vec()))
            ]
        );
        assert_eq!(t.success.len(), 3, "record, roots mark, lock released");
        let Some(Request::RequestPut(p)) = &t.success[0].request else {
            panic!("a put");
        };
        assert_eq!(p.lease, 0, "the record outlives every replica");
        let propose = TrustOp::Propose {
            expected: None,
            record: b"r".to_vec(),
        };
        let t = txn(&keys, "r1", 7, &propose);
        assert_eq!(
            t.compare[0].target_union,
            Some(TargetUnion::CreateRevision(0))
        );
    }

    #[test]
    fn the_rollout_has_its_own_lock_and_a_compared_record() {
        let keys = Keys::new("/t");
        let t = txn(&keys, "r1", 7, &TrustOp::Lock(Election::Rollout));
        assert_eq!(t.compare[0].key, b"/t/v1/rollout/lock");
        let swap = TrustOp::Rollout {
            expected: Some(b"seen".to_vec()),
            record: b"next".to_vec(),
        };
        let t = txn(&keys, "r1", 7, &swap);
        assert_eq!(t.compare[0].key, b"/t/v1/rollout/state");
        assert_eq!(
            t.compare[0].target_union,
            Some(TargetUnion::Value(b"seen".to_vec()))
        );
        let Some(Request::RequestPut(p)) = &t.success[0].request else {
            panic!("a put");
        };
        assert_eq!((p.value.as_slice(), p.lease), (&b"next"[..], 0));
    }
}
