//! Constant traffic through a client sidecar while something else happens
//! (a rotation, a control-plane restart), with every failure kept for the
//! report.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::fixture::MeshClient;
use crate::wait_until;

/// Requests sent in loops until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    /// Two concurrent request loops to `host` through the client's sidecar,
    /// each pausing 5 ms between requests. Every loop sends until
    /// [`Load::finish`].
    pub fn start(client: &MeshClient, host: &str) -> Self {
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let port = client.sidecar.outbound_port();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (stop, sent, http) = (stop.clone(), sent.clone(), Client::new());
                let host = host.to_string();
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        match http.get(port, &host, "/", &[]).await {
                            Ok(r) if r.status == 200 => {}
                            Ok(r) => failures.push(format!("HTTP {}: {}", r.status, r.body)),
                            Err(e) => failures.push(format!("{e:#}")),
                        }
                        sent.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    failures
                })
            })
            .collect();
        let task = tokio::spawn(async move {
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.await.unwrap_or_default());
            }
            all
        });
        Load { stop, sent, task }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Waits until `n` more requests than `from` were sent and at least
    /// `at_least` has passed since `since`: a fault's window holds enough
    /// traffic for "no failed request" to mean something.
    pub async fn keep_until(&self, from: usize, n: usize, since: Instant, at_least: Duration) {
        let enough =
            || async { (self.sent() >= from + n && since.elapsed() >= at_least).then_some(()) };
        wait_until(Duration::from_secs(120), Duration::from_millis(50), enough)
            .await
            .expect("the load stalled");
    }

    /// Stops the loops: (requests sent, failures).
    pub async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let failures = self.task.await.unwrap_or_default();
        (self.sent.load(Ordering::SeqCst), failures)
    }
}

/// Panics with the first failures unless `failures` is empty.
pub fn assert_no_failures(sent: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
