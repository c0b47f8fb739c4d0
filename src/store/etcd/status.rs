//! This replica's share of the proxy status: what it must write under
//! `status/REPLICA/NODE` (on its lease), in batches.
//!
//! The caller already coalesces (one write per proxy per second at most,
//! `serve::status_share`); here a pass of writes goes out as transactions
//! of [`BATCH`] operations, so 10,000 changed proxies cost about a hundred
//! requests instead of 10,000.

use std::collections::{BTreeMap, BTreeSet};

use super::client::Client;
use super::keys::Keys;
use super::proto::{DeleteRangeRequest, PutRequest, Request, RequestOp, TxnRequest};
use super::sync::{op, timed};
use crate::store::{StatusRecord, StoreError};

/// Operations per transaction: under etcd's default `--max-txn-ops` (128).
pub(super) const BATCH: usize = 100;

/// Own status values, and which are not written or deleted yet.
#[derive(Debug, Default)]
pub(super) struct OwnStatus {
    values: BTreeMap<String, Vec<u8>>,
    unput: BTreeSet<String>,
    gone: BTreeSet<String>,
}

impl OwnStatus {
    /// A new value for `node`.
    pub(super) fn put(&mut self, node: String, value: Vec<u8>) {
        self.gone.remove(&node);
        self.unput.insert(node.clone());
        self.values.insert(node, value);
    }

    /// `node` left this replica.
    pub(super) fn delete(&mut self, node: String) {
        self.unput.remove(&node);
        if self.values.remove(&node).is_some() {
            self.gone.insert(node);
        }
    }

    /// Everything to write again (a new lease, or after an outage).
    pub(super) fn rewrite_all(&mut self) {
        self.unput.extend(self.values.keys().cloned());
    }

    /// Writes and deletes still to do.
    pub(super) fn pending(&self) -> usize {
        self.unput.len() + self.gone.len()
    }

    /// Writes what changed, [`BATCH`] keys per transaction; what a failed
    /// transaction held stays to do.
    pub(super) async fn flush(
        &mut self,
        client: &Client,
        keys: &Keys,
        replica: &str,
        lease: i64,
    ) -> Result<(), StoreError> {
        while !self.unput.is_empty() || !self.gone.is_empty() {
            let puts: Vec<String> = self.unput.iter().take(BATCH).cloned().collect();
            let room = BATCH - puts.len();
            let dels: Vec<String> = self.gone.iter().take(room).cloned().collect();
            let mut ops = Vec::with_capacity(puts.len() + dels.len());
            for node in &puts {
                let value = self.values.get(node).cloned().unwrap_or_default();
                ops.push(put_op(keys.status(replica, node), value, lease));
            }
            for node in &dels {
                ops.push(delete_op(keys.status(replica, node)));
            }
            let txn = TxnRequest {
                compare: Vec::new(),
                success: ops,
                failure: Vec::new(),
            };
            timed(client.txn(txn)).await?;
            puts.iter().for_each(|n| {
                self.unput.remove(n);
            });
            dels.iter().for_each(|n| {
                self.gone.remove(n);
            });
        }
        Ok(())
    }
}

fn put_op(key: String, value: Vec<u8>, lease: i64) -> RequestOp {
    op(Request::RequestPut(PutRequest {
        key: key.into_bytes(),
        value,
        lease,
    }))
}

fn delete_op(key: String) -> RequestOp {
    op(Request::RequestDeleteRange(DeleteRangeRequest {
        key: key.into_bytes(),
        range_end: Vec::new(),
    }))
}

/// Another replica's status value; `None` (and a warning) if unreadable.
pub(super) fn decode(key: &str, value: &[u8]) -> Option<StatusRecord> {
    match serde_json::from_slice::<StatusRecord>(value) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(key, "ignoring an unreadable proxy status in etcd: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_cancels_an_unwritten_put_and_a_put_a_delete() {
        let mut own = OwnStatus::default();
        own.put("a".into(), b"1".to_vec());
        own.delete("a".into());
        assert_eq!(own.pending(), 1, "a delete of a key maybe written");
        own.put("a".into(), b"2".to_vec());
        assert!(own.gone.is_empty());
        assert_eq!(own.pending(), 1);
        own.delete("never-put".into());
        assert_eq!(own.pending(), 1, "nothing to delete");
        own.unput.clear();
        own.rewrite_all();
        assert_eq!(own.pending(), 1);
    }
}
