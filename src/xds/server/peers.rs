//! Per-peer limits: how many connections or streams one client address may
//! hold open at once, so one misbehaving host cannot exhaust the server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts what each peer address holds open, up to `limit` each.
#[derive(Debug, Clone)]
pub struct PeerLimit {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PeerLimit {
    /// At most `limit` open at once per peer address.
    pub fn new(limit: usize) -> Self {
        PeerLimit {
            limit,
            open: Arc::default(),
        }
    }

    /// The limit per peer.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// One more for `peer`, held until the permit is dropped; `None` when
    /// `peer` is at the limit.
    pub fn acquire(&self, peer: IpAddr) -> Option<PeerPermit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(peer).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(PeerPermit {
            limit: self.clone(),
            peer,
        })
    }

    /// How many `peer` holds open.
    pub fn open(&self, peer: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&peer).copied().unwrap_or(0)
    }
}

/// One open connection or stream of a peer; released on drop.
#[derive(Debug)]
pub struct PeerPermit {
    limit: PeerLimit,
    peer: IpAddr,
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut open = self
            .limit
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            // Peers come and go; only those holding something are kept.
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_beyond_the_limit_per_peer_and_releases_on_drop() {
        let limit = PeerLimit::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limit.acquire(a).unwrap();
        let _second = limit.acquire(a).unwrap();
        assert!(limit.acquire(a).is_none());
        let _other = limit.acquire(b).unwrap();
        drop(first);
        assert_eq!(limit.open(a), 1);
        assert!(limit.acquire(a).is_some());
        assert_eq!(limit.open(a), 1, "the temporary permit was released");
    }
}
