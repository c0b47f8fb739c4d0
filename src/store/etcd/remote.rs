//! A read-only watch of another mesh cluster's registry: its replicas'
//! `PREFIX/v1/sidecars/` on its own etcd. Nothing is written there (no
//! lease, no trust marks: the clusters share a root, not a token key).
//!
//! Each sidecar arrives with its id made `CLUSTER/ID` (node ids are only
//! unique within a cluster) and its topology tagged with the remote
//! cluster's name, and its network unless the sidecar named one. When the
//! remote etcd does not answer, nothing is removed: the entries stay as
//! last seen (the remote sidecars most likely still run) and the outage is
//! counted; on reconnection a fresh snapshot replaces them.

use std::time::Duration;

use tokio::sync::mpsc;

use super::client::{Client, ClientError, WatchStream};
use super::keys::{KeyKind, Keys};
use super::proto::{EventType, KeyValue, WatchResponse};
use super::sync::{key_str, timed, RANGE_PAGE};
use super::OP_TIMEOUT;
use super::{connect_options_for, EtcdTls, StoreEvent};
use crate::config::model::RemoteCluster;
use crate::registry::Proxy;
use crate::store::{Record, StoreError, StoreMetrics};

/// How often an unreachable remote store is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What a remote cluster's watch reports: the cluster's name and an event
/// whose ids are already `CLUSTER/ID`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEvent {
    /// The remote cluster's name.
    pub cluster: String,
    /// What changed there.
    pub event: StoreEvent,
}

/// The id a remote cluster's sidecar has in this cluster's registry.
pub fn remote_id(cluster: &str, id: &str) -> String {
    format!("{cluster}/{id}")
}

struct Watcher {
    remote: RemoteCluster,
    client: Client,
    keys: Keys,
    events: mpsc::UnboundedSender<RemoteEvent>,
    metrics: StoreMetrics,
    up: bool,
}

/// Starts watching `remote`; the task ends when `events` is closed or the
/// handle is aborted.
pub fn watch_remote(
    remote: RemoteCluster,
    tls: Option<&EtcdTls>,
    events: mpsc::UnboundedSender<RemoteEvent>,
    metrics: StoreMetrics,
) -> Result<tokio::task::JoinHandle<()>, StoreError> {
    let client = Client::connect(&connect_options_for(&remote.endpoints, tls)?)?;
    let watcher = Watcher {
        keys: Keys::new(&remote.prefix),
        remote,
        client,
        events,
        metrics,
        up: false,
    };
    Ok(tokio::spawn(watcher.run()))
}

impl Watcher {
    async fn run(mut self) {
        let mut watch: Option<WatchStream> = None;
        loop {
            if self.events.is_closed() {
                return;
            }
            let Some(stream) = watch.as_mut() else {
                match self.connect().await {
                    Ok(stream) => watch = Some(stream),
                    Err(e) => {
                        self.down(format!("{e}"));
                        tokio::time::sleep(RETRY).await;
                    }
                }
                continue;
            };
            if let Err(why) = self.on_message(stream.message().await) {
                watch = None;
                self.down(why);
            }
        }
    }

    /// Reads the remote registry whole, reports it, and watches from there.
    async fn connect(&mut self) -> Result<WatchStream, StoreError> {
        let prefix = format!("{}sidecars/", self.keys.all());
        let response = (self
            .client
            .range_paged(&prefix, RANGE_PAGE, OP_TIMEOUT)
            .await)
            .map_err(StoreError::from)?;
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        let proxies: Vec<Proxy> = (response.kvs.iter())
            .filter_map(|kv| self.decode(kv))
            .collect();
        let stream = timed(self.client.watch_prefix(&prefix, revision + 1)).await?;
        self.label("sidecars").set(proxies.len() as i64);
        self.send(StoreEvent::Snapshot(proxies));
        self.label("up").set(1);
        self.up = true;
        tracing::info!(cluster = %self.remote.name, revision, "remote cluster's registry read and watched");
        Ok(stream)
    }

    fn on_message(
        &mut self,
        message: Result<Option<WatchResponse>, ClientError>,
    ) -> Result<(), String> {
        let response = match message {
            Ok(Some(r)) if !r.canceled => r,
            Ok(Some(r)) => return Err(format!("watch cancelled: {}", r.cancel_reason)),
            Ok(None) => return Err("watch ended".into()),
            Err(e) => return Err(format!("watch: {e}")),
        };
        for event in &response.events {
            let Some(kv) = &event.kv else { continue };
            let Ok(kind) = EventType::try_from(event.r#type) else {
                continue;
            };
            let Some(KeyKind::Sidecar(id)) = self.keys.parse(key_str(kv)) else {
                continue;
            };
            match kind {
                EventType::Put => {
                    if let Some(proxy) = self.decode(kv) {
                        self.send(StoreEvent::Registered(Box::new(proxy)));
                    }
                }
                EventType::Delete => {
                    let id = remote_id(&self.remote.name, id);
                    self.send(StoreEvent::Removed(id));
                }
            }
        }
        Ok(())
    }

    /// A remote record as this cluster's entry: id and topology tagged.
    fn decode(&self, kv: &KeyValue) -> Option<Proxy> {
        let record = match serde_json::from_slice::<Record>(&kv.value) {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(cluster = %self.remote.name, "ignoring an unreadable remote registry entry: {e}");
                return None;
            }
        };
        let mut proxy = Proxy::from(record);
        proxy.id = remote_id(&self.remote.name, &proxy.id);
        proxy.topology.cluster = self.remote.name.clone();
        if proxy.topology.network.is_empty() {
            proxy.topology.network = self.remote.network.clone();
        }
        Some(proxy)
    }

    fn send(&self, event: StoreEvent) {
        let cluster = self.remote.name.clone();
        let _ = self.events.send(RemoteEvent { cluster, event });
    }

    /// The remote store stopped answering: its entries stay as they were.
    fn down(&mut self, why: String) {
        self.label("up").set(0);
        self.metrics
            .remote_failures
            .get_or_create(&vec![("cluster".to_string(), self.remote.name.clone())])
            .inc();
        if std::mem::take(&mut self.up) {
            tracing::warn!(cluster = %self.remote.name, "remote cluster's store unreachable ({why}); keeping its endpoints as last seen, retrying every {RETRY:?}");
        } else {
            tracing::debug!(cluster = %self.remote.name, "remote cluster's store: {why}");
        }
    }

    fn label(&self, which: &str) -> prometheus_client::metrics::gauge::Gauge {
        let family = match which {
            "up" => &self.metrics.remote_up,
            _ => &self.metrics.remote_sidecars,
        };
        family
            .get_or_create(&vec![("cluster".to_string(), self.remote.name.clone())])
            .clone()
    }
}
