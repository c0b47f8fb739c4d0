//! Helpers for the ADS protocol tests: server harness, client, resources.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::metadata::MetadataMap;
use tonic::{Status, Streaming};
use trellis::xds::{
    AdsServer, ProxyStatusTable, Refusal, Snapshot, SnapshotCache, StreamCut, StreamHooks,
    Versioned, XdsMetrics, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};

pub const WAIT: Duration = Duration::from_secs(15);

/// Records opens and closes; refuses node ids starting with "refuse".
#[derive(Default)]
pub struct FakeHooks {
    pub opened: Mutex<Vec<String>>,
    pub closed: Mutex<Vec<String>>,
}

impl StreamHooks for FakeHooks {
    fn stream_opened(&self, node: &Node, _metadata: &MetadataMap) -> Result<StreamCut, Refusal> {
        if node.id.starts_with("refuse") {
            return Err(Status::permission_denied("node not allowed").into());
        }
        self.opened.lock().unwrap().push(node.id.clone());
        Ok(StreamCut::never())
    }
    fn stream_closed(&self, node_id: &str) {
        self.closed.lock().unwrap().push(node_id.to_string());
    }
}

impl FakeHooks {
    pub fn closed_count(&self, node_id: &str) -> usize {
        self.closed
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == node_id)
            .count()
    }
}

/// A running server; aborted on drop.
pub struct Harness {
    pub addr: std::net::SocketAddr,
    pub cache: SnapshotCache,
    pub status: ProxyStatusTable,
    pub hooks: Arc<FakeHooks>,
    pub registry: Registry,
    pub server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn start() -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cache, status, hooks) = (
        SnapshotCache::new(),
        ProxyStatusTable::new(),
        Arc::default(),
    );
    let mut registry = Registry::default();
    let metrics = XdsMetrics::register(&mut registry);
    let ads = AdsServer::new(
        cache.clone(),
        Arc::clone(&hooks) as _,
        status.clone(),
        metrics,
    );
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ads.into_service())
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    Harness {
        addr,
        cache,
        status,
        hooks,
        registry,
        server,
    }
}

impl Harness {
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }

    /// Opens a stream whose first request is a wildcard CDS request.
    pub async fn open(&self, node_id: &str) -> Result<Ads, Status> {
        let first = DiscoveryRequest {
            node: Some(Node {
                id: node_id.to_string(),
                ..Default::default()
            }),
            ..req(&CLUSTER_TYPE, &[], "")
        };
        self.open_with(first).await
    }

    pub async fn open_with(&self, first: DiscoveryRequest) -> Result<Ads, Status> {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        tx.send(first).await.unwrap();
        let rx = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Ads { tx, rx })
    }
}

/// One client stream.
pub struct Ads {
    pub tx: mpsc::Sender<DiscoveryRequest>,
    pub rx: Streaming<DiscoveryResponse>,
}

impl Ads {
    pub async fn send(&self, request: DiscoveryRequest) {
        self.tx.send(request).await.unwrap();
    }
    pub async fn recv(&mut self) -> DiscoveryResponse {
        let next = tokio::time::timeout(WAIT, self.rx.message()).await;
        next.expect("no response in time")
            .unwrap()
            .expect("stream ended")
    }
    /// ACKs a response.
    pub async fn ack(&self, resp: &DiscoveryResponse, names: &[&str]) {
        let mut r = req(&resp.type_url, names, &resp.nonce);
        r.version_info = resp.version_info.clone();
        self.send(r).await;
    }
    /// Subscribes to a type and ACKs the answer.
    pub async fn subscribe(&mut self, type_url: &str, names: &[&str]) -> DiscoveryResponse {
        self.send(req(type_url, names, "")).await;
        let resp = self.recv().await;
        assert_eq!(resp.type_url, type_url);
        self.ack(&resp, names).await;
        resp
    }
}

pub fn req(type_url: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

/// A real Envoy resource of `type_url` named `name`, whose content is `mark`.
pub fn resource(type_url: &str, name: &str, mark: &str) -> Arc<Versioned> {
    Arc::new(Versioned::new(any(type_url, name, mark)))
}

fn any(type_url: &str, name: &str, mark: &str) -> Any {
    let (name, mark) = (name.to_string(), mark.to_string());
    match type_url {
        t if t == *CLUSTER_TYPE => pack_any(Cluster {
            name,
            alt_stat_name: mark,
            ..Default::default()
        }),
        t if t == *ENDPOINT_TYPE => {
            let zone = Locality {
                zone: mark,
                ..Default::default()
            };
            let endpoints = vec![LocalityLbEndpoints {
                locality: Some(zone),
                ..Default::default()
            }];
            pack_any(ClusterLoadAssignment {
                cluster_name: name,
                endpoints,
                ..Default::default()
            })
        }
        t if t == *LISTENER_TYPE => pack_any(Listener {
            name,
            stat_prefix: mark,
            ..Default::default()
        }),
        _ => {
            let vhost = VirtualHost {
                name: mark,
                ..Default::default()
            };
            pack_any(RouteConfiguration {
                name,
                virtual_hosts: vec![vhost],
                ..Default::default()
            })
        }
    }
}

/// (name, mark) of each resource in a response.
pub fn entries(resp: &DiscoveryResponse) -> Vec<(String, String)> {
    let decode = |any: &Any| -> (String, String) {
        let bytes = any.value.as_slice();
        match any.type_url.as_str() {
            t if t == *CLUSTER_TYPE => Cluster::decode(bytes)
                .map(|c| (c.name, c.alt_stat_name))
                .unwrap(),
            t if t == *ENDPOINT_TYPE => ClusterLoadAssignment::decode(bytes)
                .map(|c| {
                    (
                        c.cluster_name,
                        c.endpoints[0].locality.clone().unwrap().zone,
                    )
                })
                .unwrap(),
            t if t == *LISTENER_TYPE => Listener::decode(bytes)
                .map(|l| (l.name, l.stat_prefix))
                .unwrap(),
            _ => RouteConfiguration::decode(bytes)
                .map(|r| (r.name, r.virtual_hosts[0].name.clone()))
                .unwrap(),
        }
    };
    resp.resources.iter().map(decode).collect()
}

pub fn names(resp: &DiscoveryResponse) -> Vec<String> {
    entries(resp).into_iter().map(|(n, _)| n).collect()
}

/// A snapshot: clusters with endpoints, listener `l`, route config `r`;
/// `mark` is the content of every resource.
pub fn snapshot(clusters: &[&str], mark: &str) -> Arc<Snapshot> {
    let mut b = Snapshot::builder();
    for c in clusters {
        b.insert(*c, resource(&CLUSTER_TYPE, c, mark));
        b.insert(*c, resource(&ENDPOINT_TYPE, c, mark));
    }
    b.insert("l", resource(&LISTENER_TYPE, "l", mark));
    b.insert("r", resource(&ROUTE_TYPE, "r", mark));
    Arc::new(b.build())
}

/// Polls `cond` until it holds (never a fixed sleep).
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A stream for `node` subscribed to all four types, all ACKed.
pub async fn settled(h: &Harness, node: &str) -> Ads {
    let mut ads = h.open(node).await.unwrap();
    let cds = ads.recv().await;
    ads.ack(&cds, &[]).await;
    ads.subscribe(&ENDPOINT_TYPE, &["a", "b"]).await;
    ads.subscribe(&LISTENER_TYPE, &[]).await;
    ads.subscribe(&ROUTE_TYPE, &["r"]).await;
    ads
}
