//! The churn ledger: when each churning sidecar was opened and closed, and
//! when each observer first ACKed an EDS response with its endpoint and
//! then one without it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use crate::client::EdsWatch;

/// One churning sidecar's endpoint. Times are since the ledger's epoch.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// When its connect started.
    pub opened: Duration,
    /// Its stream closed plus the grace period: when it should leave.
    pub leaves: Option<Duration>,
    /// Observers that ACKed an EDS holding it, and the latest such ACK.
    seen: BTreeSet<usize>,
    seen_last: Duration,
    /// Observers that ACKed an EDS without it after it had been seen,
    /// and the latest such ACK.
    gone: BTreeSet<usize>,
    gone_last: Duration,
}

/// What became of one registration or deregistration.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// When it happened (connect, or close + grace), since the epoch.
    pub at: Duration,
    /// Until every observer ACKed it; `None` if some never did.
    pub lag: Option<Duration>,
}

/// Every churning endpoint by address, shared by the observers.
#[derive(Debug)]
pub struct Ledger {
    epoch: Instant,
    observers: usize,
    entries: Mutex<HashMap<String, Entry>>,
    /// Endpoints that left an observer's EDS before their sidecar closed.
    flaps: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ledger {
    /// A ledger for `observers` observers, timing from now.
    pub fn new(observers: usize) -> Ledger {
        Ledger {
            epoch: Instant::now(),
            observers,
            entries: Mutex::new(HashMap::new()),
            flaps: Mutex::new(0),
        }
    }

    /// Time since the epoch.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// A sidecar with endpoint address `addr` starts connecting.
    pub fn opened(&self, addr: &str) {
        let entry = Entry {
            opened: self.now(),
            ..Default::default()
        };
        lock(&self.entries).insert(addr.to_string(), entry);
    }

    /// Its stream was closed; it should leave after `grace`.
    pub fn closed(&self, addr: &str, grace: Duration) {
        let leaves = self.now() + grace;
        if let Some(e) = lock(&self.entries).get_mut(addr) {
            e.leaves = Some(leaves);
        }
    }

    fn seen(&self, observer: usize, addr: &str, at: Duration) {
        if let Some(e) = lock(&self.entries).get_mut(addr) {
            if e.seen.insert(observer) {
                e.seen_last = e.seen_last.max(at);
            }
        }
    }

    fn gone(&self, observer: usize, addr: &str, at: Duration) {
        let mut entries = lock(&self.entries);
        let Some(e) = entries.get_mut(addr) else {
            return;
        };
        if e.leaves.is_none() {
            *lock(&self.flaps) += 1;
        }
        if e.gone.insert(observer) {
            e.gone_last = e.gone_last.max(at);
        }
    }

    /// Endpoints that left some observer's EDS while still connected.
    pub fn flaps(&self) -> u64 {
        *lock(&self.flaps)
    }

    /// The registration of `addr`, if the ledger knows it.
    pub fn registration(&self, addr: &str) -> Option<Outcome> {
        let entries = lock(&self.entries);
        let e = entries.get(addr)?;
        let done = e.seen.len() >= self.observers;
        Some(Outcome {
            at: e.opened,
            lag: done.then(|| e.seen_last.saturating_sub(e.opened)),
        })
    }

    /// The deregistration of `addr`, if it was closed.
    pub fn deregistration(&self, addr: &str) -> Option<Outcome> {
        let entries = lock(&self.entries);
        let e = entries.get(addr)?;
        let leaves = e.leaves?;
        let done = e.gone.len() >= self.observers;
        Some(Outcome {
            at: leaves,
            lag: done.then(|| e.gone_last.saturating_sub(leaves)),
        })
    }
}

/// One observer's view: the endpoint addresses of every load assignment
/// it holds, diffed on each ACK into the ledger.
pub struct Observer {
    id: usize,
    ledger: Arc<Ledger>,
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_cluster: HashMap<String, Vec<String>>,
    present: HashSet<String>,
}

impl Observer {
    /// Observer number `id` of `ledger`.
    pub fn new(id: usize, ledger: Arc<Ledger>) -> Observer {
        Observer {
            id,
            ledger,
            state: Mutex::new(Held::default()),
        }
    }
}

/// The socket addresses of a load assignment's endpoints.
fn addresses(cla: &ClusterLoadAssignment) -> Vec<String> {
    let eps = cla.endpoints.iter().flat_map(|l| l.lb_endpoints.iter());
    eps.filter_map(|lb| match &lb.host_identifier {
        Some(HostIdentifier::Endpoint(ep)) => ep.address.as_ref(),
        _ => None,
    })
    .filter_map(|a| match &a.address {
        Some(AddressKind::SocketAddress(sa)) => Some(sa.address.clone()),
        _ => None,
    })
    .collect()
}

impl EdsWatch for Observer {
    fn acked(&self, updated: &[ClusterLoadAssignment], removed: &[String]) {
        let at = self.ledger.now();
        let mut held = lock(&self.state);
        for cla in updated {
            held.by_cluster
                .insert(cla.cluster_name.clone(), addresses(cla));
        }
        for name in removed {
            held.by_cluster.remove(name);
        }
        let now: HashSet<String> = held.by_cluster.values().flatten().cloned().collect();
        for addr in now.difference(&held.present) {
            self.ledger.seen(self.id, addr, at);
        }
        for addr in held.present.difference(&now) {
            self.ledger.gone(self.id, addr, at);
        }
        held.present = now;
    }
}

#[cfg(test)]
mod tests;
