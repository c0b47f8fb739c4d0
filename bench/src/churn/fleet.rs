//! The simulated sidecars of a churn run: observers that stay, and
//! churning sidecars opened and closed by the run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tonic::transport::Endpoint;

use super::ledger::{Ledger, Observer};
use crate::client::{self, ClientStats, Global};
use crate::mesh::service_name;

/// Starts the streams and remembers the live churning sidecars, oldest
/// first.
pub struct Fleet {
    /// The ADS URL.
    pub url: String,
    /// Delta instead of state of the world.
    pub delta: bool,
    /// Churned services: `svc-0` … (the observers are of the next one).
    pub services: usize,
    /// Observers (their client numbers come first).
    pub observers: usize,
    /// The control plane's grace period.
    pub grace: Duration,
    /// Where registrations are timed.
    pub ledger: Arc<Ledger>,
    /// Shared counters (stream errors).
    pub global: Arc<Global>,
    live: VecDeque<(String, JoinHandle<()>)>,
    watching: Vec<JoinHandle<()>>,
    next: usize,
}

/// Runs one simulated sidecar until it ends or is aborted.
fn spawn_client(
    fleet: &Fleet,
    i: usize,
    service: usize,
    stats: Arc<ClientStats>,
) -> anyhow::Result<JoinHandle<()>> {
    let node = client::node(i, &service_name(service));
    let endpoint = Endpoint::from_shared(fleet.url.clone())?;
    let (delta, global) = (fleet.delta, fleet.global.clone());
    let shared = (stats, global.clone());
    Ok(tokio::spawn(async move {
        let result = async {
            let ch = endpoint.connect().await?;
            if delta {
                client::run_delta(ch, node, None, shared).await
            } else {
                client::run_sotw(ch, node, None, shared).await
            }
        }
        .await;
        client::record_end(&global, result);
    }))
}

impl Fleet {
    /// A fleet with no sidecars yet.
    pub fn new(
        url: String,
        delta: bool,
        services: usize,
        observers: usize,
        grace: Duration,
    ) -> Fleet {
        Fleet {
            url,
            delta,
            services: services.max(1),
            observers,
            grace,
            ledger: Arc::new(Ledger::new(observers)),
            global: Arc::new(Global::new()),
            live: VecDeque::new(),
            watching: Vec::new(),
            next: 0,
        }
    }

    /// Starts the observers (service `svc-SERVICES`); their stats, to wait
    /// for their first sync.
    pub fn start_observers(&mut self) -> anyhow::Result<Vec<Arc<ClientStats>>> {
        let mut all = Vec::new();
        for i in 0..self.observers {
            let watch = Arc::new(Observer::new(i, self.ledger.clone()));
            let stats = Arc::new(ClientStats::watched(watch));
            let task = spawn_client(self, i, self.services, stats.clone())?;
            self.watching.push(task);
            all.push(stats);
        }
        Ok(all)
    }

    /// Connects the next churning sidecar; returns its endpoint address.
    pub fn open(&mut self) -> anyhow::Result<String> {
        let i = self.observers + self.next;
        let service = self.next % self.services;
        self.next += 1;
        let addr = client::inbound_address(i);
        self.ledger.opened(&addr);
        let task = spawn_client(self, i, service, Arc::new(ClientStats::default()))?;
        self.live.push_back((addr.clone(), task));
        Ok(addr)
    }

    /// Closes the oldest churning sidecar (its stream and connection go
    /// with the aborted task); returns its endpoint address.
    pub fn close_oldest(&mut self) -> Option<String> {
        let (addr, task) = self.live.pop_front()?;
        task.abort();
        self.ledger.closed(&addr, self.grace);
        Some(addr)
    }

    /// Churning sidecars alive.
    pub fn live(&self) -> usize {
        self.live.len()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let live = self.live.iter().map(|(_, t)| t);
        for task in live.chain(&self.watching) {
            task.abort();
        }
    }
}
