//! ADS protocol tests: the server on 127.0.0.1:0, driven by a real tonic ADS
//! client (what Envoy speaks), with a fake `StreamHooks`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use envoy_types::util::pack_any;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Code, Status, Streaming};
use trellis::xds::{
    AdsServer, ProxyStatusTable, Snapshot, SnapshotCache, StreamHooks, XdsMetrics, CLUSTER_TYPE,
    ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};

const WAIT: Duration = Duration::from_secs(5);

/// Records opens and closes; refuses node ids starting with "refuse".
#[derive(Default)]
struct FakeHooks {
    opened: Mutex<Vec<String>>,
    closed: Mutex<Vec<String>>,
}

impl StreamHooks for FakeHooks {
    fn stream_opened(&self, node: &Node) -> Result<(), Status> {
        if node.id.starts_with("refuse") {
            return Err(Status::permission_denied("node not allowed"));
        }
        self.opened.lock().unwrap().push(node.id.clone());
        Ok(())
    }
    fn stream_closed(&self, node_id: &str) {
        self.closed.lock().unwrap().push(node_id.to_string());
    }
}

impl FakeHooks {
    fn closed_count(&self, node_id: &str) -> usize {
        self.closed
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == node_id)
            .count()
    }
}

/// A running server; aborted on drop.
struct Harness {
    addr: std::net::SocketAddr,
    cache: SnapshotCache,
    status: ProxyStatusTable,
    hooks: Arc<FakeHooks>,
    registry: Registry,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start() -> Harness {
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
    fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }

    /// Opens a stream whose first request is a wildcard CDS request.
    async fn open(&self, node_id: &str) -> Result<Ads, Status> {
        let first = DiscoveryRequest {
            node: Some(Node {
                id: node_id.to_string(),
                ..Default::default()
            }),
            ..req(&CLUSTER_TYPE, &[], "")
        };
        self.open_with(first).await
    }

    async fn open_with(&self, first: DiscoveryRequest) -> Result<Ads, Status> {
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
struct Ads {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Ads {
    async fn send(&self, request: DiscoveryRequest) {
        self.tx.send(request).await.unwrap();
    }
    async fn recv(&mut self) -> DiscoveryResponse {
        let next = tokio::time::timeout(WAIT, self.rx.message()).await;
        next.expect("no response in time")
            .unwrap()
            .expect("stream ended")
    }
    /// ACKs a response.
    async fn ack(&self, resp: &DiscoveryResponse, names: &[&str]) {
        let mut r = req(&resp.type_url, names, &resp.nonce);
        r.version_info = resp.version_info.clone();
        self.send(r).await;
    }
    /// Subscribes to a type and ACKs the answer.
    async fn subscribe(&mut self, type_url: &str, names: &[&str]) -> DiscoveryResponse {
        self.send(req(type_url, names, "")).await;
        let resp = self.recv().await;
        assert_eq!(resp.type_url, type_url);
        self.ack(&resp, names).await;
        resp
    }
}

fn req(type_url: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

/// A real Envoy resource of `type_url` named `name`, whose content is `mark`.
fn resource(type_url: &str, name: &str, mark: &str) -> Arc<Any> {
    let (name, mark) = (name.to_string(), mark.to_string());
    Arc::new(match type_url {
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
    })
}

/// (name, mark) of each resource in a response.
fn entries(resp: &DiscoveryResponse) -> Vec<(String, String)> {
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

fn names(resp: &DiscoveryResponse) -> Vec<String> {
    entries(resp).into_iter().map(|(n, _)| n).collect()
}

/// A snapshot: clusters with endpoints, listener `l`, route config `r`;
/// `mark` is the content of every resource.
fn snapshot(clusters: &[&str], mark: &str) -> Arc<Snapshot> {
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
async fn eventually(what: &str, cond: impl Fn() -> bool) {
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
async fn settled(h: &Harness, node: &str) -> Ads {
    let mut ads = h.open(node).await.unwrap();
    let cds = ads.recv().await;
    ads.ack(&cds, &[]).await;
    ads.subscribe(&ENDPOINT_TYPE, &["a", "b"]).await;
    ads.subscribe(&LISTENER_TYPE, &[]).await;
    ads.subscribe(&ROUTE_TYPE, &["r"]).await;
    ads
}

#[tokio::test]
async fn initial_wildcard_and_by_name_requests() {
    let h = start().await;
    let snap = snapshot(&["a", "b"], "1");
    h.cache.set("n1", snap.clone());
    let mut ads = h.open("n1").await.unwrap();
    let cds = ads.recv().await;
    assert_eq!(names(&cds), vec!["a", "b"]);
    assert_eq!(cds.version_info, snap.version(&CLUSTER_TYPE).unwrap());
    ads.ack(&cds, &[]).await;
    let eds = ads.subscribe(&ENDPOINT_TYPE, &["b"]).await;
    assert_eq!(names(&eds), vec!["b"]);
    assert_eq!(names(&ads.subscribe(&LISTENER_TYPE, &[]).await), vec!["l"]);
    assert_eq!(names(&ads.subscribe(&ROUTE_TYPE, &["r"]).await), vec!["r"]);
    assert_eq!(h.hooks.opened.lock().unwrap().as_slice(), ["n1"]);
}

#[tokio::test]
async fn ack_records_version_and_subscription_before_snapshot_waits() {
    let h = start().await;
    let mut ads = h.open("n1").await.unwrap();
    let snap = snapshot(&["a"], "1");
    h.cache.set("n1", snap.clone());
    let cds = ads.recv().await;
    ads.ack(&cds, &[]).await;
    let version = snap.version(&CLUSTER_TYPE).unwrap().to_string();
    eventually("ACK recorded", || {
        let p = h.status.get("n1").unwrap();
        p.connected
            && p.types[CLUSTER_TYPE.as_str()].last_acked_version.as_deref() == Some(&version)
    })
    .await;
    assert!(h
        .metrics_text()
        .contains("trellis_xds_acks_total{type=\"cds\"} 1"));
}

#[tokio::test]
async fn nack_is_recorded_and_not_resent() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a"], "1"));
    let mut ads = settled(&h, "n1").await;
    // A new CDS that the client rejects.
    h.cache.set("n1", snapshot(&["a"], "2"));
    let cds = ads.recv().await;
    assert_eq!(cds.type_url, *CLUSTER_TYPE);
    let mut nack = req(&CLUSTER_TYPE, &[], &cds.nonce);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "bad cluster a".into(),
        ..Default::default()
    });
    ads.send(nack).await;
    // The rest of the push (EDS, LDS, RDS) still arrives; CDS never again.
    for t in [&*ENDPOINT_TYPE, &*LISTENER_TYPE, &*ROUTE_TYPE] {
        assert_eq!(ads.recv().await.type_url, *t);
    }
    eventually("NACK recorded", || {
        let p = h.status.get("n1").unwrap();
        let nack = p.types[CLUSTER_TYPE.as_str()].last_nack.clone();
        nack.is_some_and(|n| n.message == "bad cluster a" && n.version == cds.version_info)
    })
    .await;
    // Same content again: nothing. Then only the listener changes: LDS only.
    h.cache.set("n1", snapshot(&["a"], "2"));
    let mut b = Snapshot::builder();
    for (t, n, m) in [
        (&*CLUSTER_TYPE, "a", "2"),
        (&*ENDPOINT_TYPE, "a", "2"),
        (&*ROUTE_TYPE, "r", "2"),
    ] {
        b.insert(n, resource(t, n, m));
    }
    b.insert("l", resource(&LISTENER_TYPE, "l", "3"));
    h.cache.set("n1", Arc::new(b.build()));
    assert_eq!(ads.recv().await.type_url, *LISTENER_TYPE);
    assert!(h
        .metrics_text()
        .contains("trellis_xds_nacks_total{type=\"cds\"} 1"));
}

#[tokio::test]
async fn new_snapshot_is_pushed_in_cds_eds_lds_rds_order() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = settled(&h, "n1").await;
    h.cache.set("n1", snapshot(&["a", "b"], "2"));
    let order = [
        &*CLUSTER_TYPE,
        &*ENDPOINT_TYPE,
        &*LISTENER_TYPE,
        &*ROUTE_TYPE,
    ];
    for t in order {
        let resp = ads.recv().await;
        assert_eq!(resp.type_url, *t);
        assert!(entries(&resp).iter().all(|(_, mark)| mark == "2"));
    }
}

#[tokio::test]
async fn stale_nonce_is_ignored() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = h.open("n1").await.unwrap();
    let cds = ads.recv().await;
    ads.ack(&cds, &[]).await;
    let old = ads.subscribe(&ENDPOINT_TYPE, &["a"]).await;
    h.cache.set("n1", snapshot(&["a", "b"], "2"));
    assert_eq!(ads.recv().await.type_url, *CLUSTER_TYPE);
    let fresh = ads.recv().await;
    assert_eq!(fresh.type_url, *ENDPOINT_TYPE);
    // Answers the older EDS response with new names: must be ignored.
    ads.send(req(&ENDPOINT_TYPE, &["a", "b"], &old.nonce)).await;
    // A request with the current nonce and new names is answered.
    ads.send(req(&ENDPOINT_TYPE, &["b"], &fresh.nonce)).await;
    let answer = ads.recv().await;
    assert_eq!(
        names(&answer),
        vec!["b"],
        "the stale request was not answered"
    );
}

#[tokio::test]
async fn reconnect_gets_current_state_and_close_is_reported_once() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a"], "1"));
    let ads = settled(&h, "n1").await;
    drop(ads);
    eventually("stream closed", || h.hooks.closed_count("n1") == 1).await;
    eventually("disconnected", || !h.status.get("n1").unwrap().connected).await;
    h.cache.set("n1", snapshot(&["a", "c"], "2"));
    let mut ads = h.open("n1").await.unwrap();
    let cds = ads.recv().await;
    assert_eq!(
        entries(&cds),
        vec![("a".into(), "2".into()), ("c".into(), "2".into())]
    );
    assert!(h.status.get("n1").unwrap().connected);
    assert_eq!(h.hooks.closed_count("n1"), 1);
    assert!(h.metrics_text().contains("trellis_xds_connected_proxies 1"));
}

#[tokio::test]
async fn hooks_refuse_a_stream_and_node_is_required() {
    let h = start().await;
    let err = h.open("refuse-me").await.err().expect("refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = h
        .open_with(req(&CLUSTER_TYPE, &[], ""))
        .await
        .err()
        .expect("no node");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        h.hooks.closed.lock().unwrap().is_empty(),
        "refused streams never opened"
    );
    assert!(h
        .metrics_text()
        .contains("trellis_xds_streams_refused_total 2"));
}

#[tokio::test]
async fn dropped_clusters_are_kept_until_routes_are_acked() {
    let h = start().await;
    h.cache.set("n1", snapshot(&["a", "b"], "1"));
    let mut ads = settled(&h, "n1").await;
    // b goes, c comes, everything else changes too.
    let next = snapshot(&["a", "c"], "2");
    h.cache.set("n1", next.clone());
    let superset = ads.recv().await;
    assert_eq!(names(&superset), vec!["a", "b", "c"]);
    let version = next.version(&CLUSTER_TYPE).unwrap();
    assert_eq!(superset.version_info, format!("{version}+kept"));
    ads.ack(&superset, &[]).await;
    let eds = ads.recv().await;
    assert_eq!(
        names(&eds),
        vec!["a"],
        "EDS stays by name: b still subscribed, c not yet"
    );
    ads.ack(&eds, &["a", "b"]).await;
    let lds = ads.recv().await;
    let rds = ads.recv().await;
    assert_eq!(
        (lds.type_url.as_str(), rds.type_url.as_str()),
        (LISTENER_TYPE.as_str(), ROUTE_TYPE.as_str())
    );
    ads.ack(&lds, &[]).await;
    ads.ack(&rds, &["r"]).await;
    let pruned = ads.recv().await;
    assert_eq!(pruned.type_url, *CLUSTER_TYPE);
    assert_eq!(names(&pruned), vec!["a", "c"]);
    assert_eq!(pruned.version_info, version);
}

#[tokio::test]
async fn delta_ads_is_unimplemented() {
    let h = start().await;
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", h.addr))
        .await
        .unwrap();
    let requests = tokio_stream::iter(vec![DeltaDiscoveryRequest::default()]);
    let err = client
        .delta_aggregated_resources(requests)
        .await
        .expect_err("unimplemented");
    assert_eq!(err.code(), Code::Unimplemented);
}
