//! Waiting for the clients: in sync, converged after a change, quiet; and
//! the statistics of what they saw.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{ClientStats, Global};

/// Every client's stats, indexed by client number.
pub type Clients = Vec<Arc<ClientStats>>;

const POLL: Duration = Duration::from_millis(20);

/// Waits until every client ACKed every type once; false at the deadline.
pub async fn wait_synced(clients: &Clients, deadline: Instant) -> bool {
    wait(deadline, || clients.iter().all(|c| c.synced())).await
}

/// Waits until every client ACKed type `t` after its `baseline` count.
pub async fn converge(clients: &Clients, baseline: &[u64], t: usize, deadline: Instant) -> bool {
    wait(deadline, || {
        clients.iter().zip(baseline).all(|(c, b)| c.acks(t) > *b)
    })
    .await
}

/// Waits until no client received anything for a second (or the deadline).
pub async fn quiesce(global: &Global, deadline: Instant) {
    let mut last = global.responses.load(Ordering::Acquire);
    let mut since = Instant::now();
    while Instant::now() < deadline && since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(POLL).await;
        let now = global.responses.load(Ordering::Acquire);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// Polls `done` until it holds (true) or the deadline passes (false).
pub async fn wait(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// p50, p99 and max (nearest rank) of `v`; zeros when empty.
pub fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    (round(rank(0.50)), round(rank(0.99)), round(v[v.len() - 1]))
}

/// True when the clients of each service hold identical versions of
/// clusters, endpoints and routes, and every client holds some listeners
/// (listeners bind each sidecar's own inbound address and secrets are its
/// own, so those differ per sidecar).
pub fn consistent(clients: &Clients, services: usize) -> bool {
    let mut seen: HashMap<(usize, usize), String> = HashMap::new();
    for (i, c) in clients.iter().enumerate() {
        if c.versions(2).is_empty() {
            return false;
        }
        for t in [0, 1, 3] {
            let v = c.versions(t);
            let first = seen.entry((i % services, t)).or_insert_with(|| v.clone());
            if *first != v || v.is_empty() {
                eprintln!(
                    "client {i} (service {}): type {t} holds {v:?}, another {first:?}",
                    i % services
                );
                return false;
            }
        }
    }
    true
}
