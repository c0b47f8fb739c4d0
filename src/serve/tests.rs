//! `serve` end to end in-process: a real gRPC ADS client and real HTTP on
//! loopback; Envoy itself is exercised by `integration-tests/`.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value as PbValue};
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::*;

mod revocation;
use crate::bootstrap::{bootstrap_value, SidecarSpec};
use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};

const CANARY: &str = include_str!("../../config-examples/canary/payment.yaml");

/// A served control plane on free ports, stopped on drop.
struct Running {
    xds: SocketAddr,
    admin: SocketAddr,
    config: tempfile::TempDir,
    _state: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(config: &str) -> Running {
    serve_with(
        config,
        tempfile::tempdir().unwrap(),
        Duration::from_millis(200),
    )
    .await
}

/// A control plane on `state` (a previous run's, to test restarts).
async fn serve_with(config: &str, state: tempfile::TempDir, restart_grace: Duration) -> Running {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), config).unwrap();
    let opts = ServeOptions {
        config_dir: dir.path().to_path_buf(),
        xds_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        state_dir: state.path().join("state"),
        grace_period: Duration::from_millis(200),
        restart_grace_period: restart_grace,
        insecure_xds: true,
        plugin_ca: None,
        xds_tls: false,
        xds_tls_names: Vec::new(),
        credentials_dir: None,
        jwks: Default::default(),
        store: None,
        graph: Default::default(),
        release_memory: None,
        xds_tls_ttl: Duration::from_secs(24 * 3600),
        xds_per_peer: PerPeerLimits::default(),
    };
    let server = start(opts).await.unwrap();
    let (xds, admin) = (server.xds_addr().unwrap(), server.admin_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        xds,
        admin,
        config: dir,
        _state: state,
        stop: Some(tx),
        task,
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let resp = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn json(addr: SocketAddr, path: &str) -> Value {
    serde_json::from_str(&http_get(addr, path).await.1).unwrap()
}

/// Polls `f` every 20 ms for up to 5 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // Generous: CI machines are busy, and a pass returns as soon as it holds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pb(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(pb).collect(),
        }),
        Value::Object(o) => Kind::StructValue(Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), pb(v))).collect(),
        }),
    };
    PbValue { kind: Some(kind) }
}

/// The Node Envoy sends for `spec`, straight from the bootstrap we write.
fn node(spec: &SidecarSpec) -> Node {
    let v = bootstrap_value(spec).unwrap();
    let Some(Kind::StructValue(metadata)) = pb(&v["node"]["metadata"]).kind else {
        panic!("metadata is not a struct");
    };
    Node {
        id: v["node"]["id"].as_str().unwrap().into(),
        cluster: v["node"]["cluster"].as_str().unwrap().into(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

type Ads = (
    mpsc::Sender<DiscoveryRequest>,
    tonic::Streaming<DiscoveryResponse>,
);

/// An ADS stream: the request sender and the response stream.
async fn ads(addr: SocketAddr, node: Node) -> Ads {
    try_ads(addr, node).await.unwrap()
}

async fn try_ads(addr: SocketAddr, node: Node) -> Result<Ads, tonic::Status> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(8);
    tx.send(DiscoveryRequest {
        node: Some(node),
        type_url: CLUSTER_TYPE.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    // The server refuses a node at its first request; surface that here.
    let first = responses.message().await?;
    assert!(first.is_some(), "stream ended without a response");
    Ok((tx, responses))
}

#[tokio::test]
async fn serves_a_sidecar_and_reloads() {
    let mut cp = serve(CANARY).await;
    assert_eq!(http_get(cp.admin, "/readyz").await.0, 200);
    let mut spec = SidecarSpec::new("payment-service", 9000);
    spec.labels.insert("version".into(), "v2".into());
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.xds))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(8);
    tx.send(DiscoveryRequest {
        node: Some(node(&spec)),
        type_url: CLUSTER_TYPE.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = responses.message().await.unwrap().unwrap();
    assert_eq!(first.type_url, *CLUSTER_TYPE);
    let names: Vec<String> = first
        .resources
        .iter()
        .map(|any| {
            use prost::Message;
            envoy_types::pb::envoy::config::cluster::v3::Cluster::decode(any.value.as_slice())
                .unwrap()
                .name
        })
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("inbound|9000")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.contains("|canary|payment-service")),
        "{names:?}"
    );

    // The response can leave before the registration is counted: both
    // views are polled, not read once.
    let admin = cp.admin;
    eventually("the sidecar in /debug/proxies", || async move {
        json(admin, "/debug/proxies")
            .await
            .get("payment-service-15006")
            .is_some()
    })
    .await;
    eventually("trellis_registered_sidecars 1", || async move {
        http_get(admin, "/metrics")
            .await
            .1
            .contains("trellis_registered_sidecars 1")
    })
    .await;
    let metrics = http_get(cp.admin, "/metrics").await.1;
    assert!(metrics.contains("trellis_config_generation 1"), "{metrics}");

    // An invalid change is rejected and shown; the config in force stays.
    let file = cp.config.path().join("mesh.yaml");
    std::fs::write(&file, CANARY.replace("weight: 10", "weight: 11")).unwrap();
    eventually("the rejection", || async move {
        !json(admin, "/debug/config").await["last_rejected"].is_null()
    })
    .await;
    let cfg = json(cp.admin, "/debug/config").await;
    assert_eq!(cfg["generation"], 1);
    let line = cfg["last_rejected"]["diagnostics"][0].as_str().unwrap();
    assert!(line.contains("mesh.yaml:"), "{line}");
    assert!(http_get(cp.admin, "/metrics")
        .await
        .1
        .contains("trellis_config_reloads_total{result=\"failed\"} 1"));

    // A valid change bumps the generation.
    std::fs::write(
        &file,
        CANARY
            .replace("weight: 90", "weight: 50")
            .replace("weight: 10", "weight: 50"),
    )
    .unwrap();
    eventually("generation 2", || async move {
        json(admin, "/debug/config").await["generation"] == 2
    })
    .await;

    // The sidecar leaves after the grace period once its stream is gone.
    drop(tx);
    drop(responses);
    eventually("deregistration", || async move {
        http_get(admin, "/metrics")
            .await
            .1
            .contains("trellis_registered_sidecars 0")
    })
    .await;
    assert!(json(cp.admin, "/debug/proxies")
        .await
        .get("payment-service-15006")
        .is_none());

    let _ = cp.stop.take().unwrap().send(());
    let stopped = tokio::time::timeout(Duration::from_secs(5), &mut cp.task).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

#[tokio::test]
async fn a_loader_panic_fails_one_reload_and_hot_reload_goes_on() {
    let cp = serve(CANARY).await;
    let admin = cp.admin;
    let extra = cp.config.path().join("extra.yaml");
    crate::config::tests::inject_panic(&extra);
    std::fs::write(&extra, "# loading this file panics\n").unwrap();
    // The file's creation and its write may each start a reload (both
    // fail), so at least one failed reload is counted, not exactly one.
    eventually("the failed reload", || async move {
        let failed = metric(admin, "trellis_config_reloads_total{result=\"failed\"}").await;
        failed.and_then(|v| v.parse::<u64>().ok()) >= Some(1)
    })
    .await;
    let cfg = json(admin, "/debug/config").await;
    assert_eq!(cfg["generation"], 1);
    let line = cfg["last_rejected"]["diagnostics"][0].as_str().unwrap();
    assert!(
        line.contains("extra.yaml: internal error while loading"),
        "{line}"
    );
    // The watcher still runs: the next change is loaded.
    std::fs::remove_file(&extra).unwrap();
    let changed = CANARY
        .replace("weight: 90", "weight: 50")
        .replace("weight: 10", "weight: 50");
    std::fs::write(cp.config.path().join("mesh.yaml"), changed).unwrap();
    eventually("a new generation", || async move {
        json(admin, "/debug/config").await["generation"].as_u64() >= Some(2)
    })
    .await;
}

/// The value of the first `/metrics` line of `admin` starting with
/// `line_start`.
async fn metric(admin: SocketAddr, line_start: &str) -> Option<String> {
    let text = http_get(admin, "/metrics").await.1;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_node_without_metadata_is_refused() {
    let cp = serve(CANARY).await;
    let bad = Node {
        id: "stranger".into(),
        ..Default::default()
    };
    let err = try_ads(cp.xds, bad).await.err().unwrap();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
}

#[tokio::test]
async fn reconnect_within_grace_keeps_the_sidecar() {
    let cp = serve(CANARY).await;
    let spec = SidecarSpec::new("ledger", 9100);
    let first = ads(cp.xds, node(&spec)).await;
    drop(first);
    let _again = ads(cp.xds, node(&spec)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let metrics = http_get(cp.admin, "/metrics").await.1;
    assert!(
        metrics.contains("trellis_registered_sidecars 1"),
        "{metrics}"
    );
}

/// Stops `cp` and hands back its state dir for the next run.
async fn stop(mut cp: Running) -> tempfile::TempDir {
    let _ = cp.stop.take().unwrap().send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut cp.task).await;
    let state = tempfile::tempdir().unwrap();
    std::mem::replace(&mut cp._state, state)
}

async fn metric_is(admin: SocketAddr, line: &'static str) -> bool {
    http_get(admin, "/metrics")
        .await
        .1
        .lines()
        .any(|l| l == line)
}

/// A control plane that had one sidecar (`ledger`), stopped with it
/// registered and started again on the same state with `restart_grace`.
async fn restarted_with_one_sidecar(restart_grace: Duration) -> (Running, SidecarSpec) {
    let cp = serve(CANARY).await;
    let spec = SidecarSpec::new("ledger", 9100);
    let stream = ads(cp.xds, node(&spec)).await;
    let admin = cp.admin;
    eventually("registered", || {
        metric_is(admin, "trellis_registered_sidecars 1")
    })
    .await;
    let state = stop(cp).await;
    drop(stream);
    (serve_with(CANARY, state, restart_grace).await, spec)
}

/// A restart keeps the last run's sidecars as endpoints past the normal
/// grace period, until their restart grace period ends.
#[tokio::test]
async fn restored_sidecars_outlast_the_grace_period_until_the_restart_grace() {
    let (cp, _) = restarted_with_one_sidecar(Duration::from_secs(3)).await;
    let admin = cp.admin;
    let restored = Instant::now();
    assert!(metric_is(admin, "trellis_restored_sidecars_pending 1").await);
    // Well past the 200 ms grace period, still an endpoint.
    tokio::time::sleep(Duration::from_millis(800)).await;
    if restored.elapsed() < Duration::from_secs(3) {
        assert!(metric_is(admin, "trellis_registered_sidecars 1").await);
    }
    eventually("deregistered after the restart grace", || {
        metric_is(admin, "trellis_registered_sidecars 0")
    })
    .await;
    assert!(restored.elapsed() >= Duration::from_secs(3));
    assert!(metric_is(admin, "trellis_restored_sidecars_pending 0").await);
}

/// A restored sidecar that reconnects is no longer pending, and stays after
/// the restart grace period.
#[tokio::test]
async fn a_reconnected_sidecar_ends_the_restart_grace() {
    let (cp, spec) = restarted_with_one_sidecar(Duration::from_millis(500)).await;
    let admin = cp.admin;
    let _back = ads(cp.xds, node(&spec)).await;
    eventually("not pending", || {
        metric_is(admin, "trellis_restored_sidecars_pending 0")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(metric_is(admin, "trellis_registered_sidecars 1").await);
}

#[test]
fn shared_resources_are_encoded_once() {
    let mesh = crate::config::MeshConfig::default();
    let mut registry = crate::registry::Registry::new();
    for (service, port) in [("a", 9001), ("b", 9002)] {
        let mut spec = SidecarSpec::new(service, port);
        spec.inbound_port = port + 100;
        registry.register(crate::registry::Proxy::from_node(&node(&spec)).unwrap());
    }
    let snaps = snapshots::build_all(&mesh, &registry, None);
    assert_eq!(snaps.len(), 2);
    let (a, b) = (&snaps[0].1, &snaps[1].1);
    let route = |s: &crate::xds::Snapshot| s.resources(&ROUTE_TYPE).items()["outbound"].clone();
    assert!(Arc::ptr_eq(&route(a), &route(b)));
    let cluster =
        |s: &crate::xds::Snapshot, name: &str| s.resources(&CLUSTER_TYPE).items()[name].clone();
    let shared = "outbound|80||a.default.svc.cluster.local";
    assert!(Arc::ptr_eq(&cluster(a, shared), &cluster(b, shared)));
    assert_eq!(a.resources(&LISTENER_TYPE).items().len(), 2);
}

#[test]
fn proxies_of_one_view_share_sets_and_rebuilds_reuse_what_did_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let load = |yaml: &str| {
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        crate::config::load_dir(dir.path()).unwrap()
    };
    let mesh = load(CANARY);
    let mut registry = crate::registry::Registry::new();
    // Two sidecars of one service on the same app port: same view and the
    // same inbound cluster, so every set but their listeners is shared.
    for i in 0..2u16 {
        let mut spec = SidecarSpec::new("frontend", 8080);
        spec.node_id = Some(format!("frontend-{i}"));
        spec.inbound_port = 15006 + i;
        spec.outbound_port = 15001 + 10 * i;
        registry.register(crate::registry::Proxy::from_node(&node(&spec)).unwrap());
    }
    let mut state = snapshots::BuildState::default();
    let first = snapshots::build_with(&mut state, &mesh, &registry, None).snapshots;
    let (a, b) = (&first[0].1, &first[1].1);
    for t in [&*CLUSTER_TYPE, &*ENDPOINT_TYPE, &*ROUTE_TYPE] {
        assert!(Arc::ptr_eq(a.shared(t), b.shared(t)), "{t} shared");
    }
    assert!(!Arc::ptr_eq(
        a.shared(&LISTENER_TYPE),
        b.shared(&LISTENER_TYPE)
    ));

    // Same inputs again: the proxies' own sets are reused, every resource
    // keeps its encoding (same Arc), every version is the same.
    let again = snapshots::build_with(&mut state, &mesh, &registry, None).snapshots;
    assert!(Arc::ptr_eq(
        first[0].1.shared(&LISTENER_TYPE),
        again[0].1.shared(&LISTENER_TYPE)
    ));
    assert!(first[0].1.same_versions(&again[0].1));
    // Nothing changed: each proxy keeps its very snapshot, not to be published.
    for (f, a) in first.iter().zip(&again) {
        assert!(Arc::ptr_eq(&f.1, &a.1) && f.2 && !a.2, "{} kept", a.0);
    }
    let items = |s: &crate::xds::Snapshot| s.resources(&CLUSTER_TYPE).items().clone();
    for (name, r) in items(&again[0].1) {
        assert!(
            Arc::ptr_eq(&r, &items(&first[0].1)[&name]),
            "{name} re-encoded"
        );
    }

    // A route change changes RDS only.
    let mesh = load(
        &CANARY
            .replace("weight: 90", "weight: 55")
            .replace("weight: 10", "weight: 45"),
    );
    let changed = snapshots::build_with(&mut state, &mesh, &registry, None).snapshots;
    assert!(changed.iter().all(|c| c.2), "a route change reaches both");
    let (old, new) = (&again[0].1, &changed[0].1);
    assert_ne!(old.version(&ROUTE_TYPE), new.version(&ROUTE_TYPE));
    for t in [&*CLUSTER_TYPE, &*ENDPOINT_TYPE, &*LISTENER_TYPE] {
        assert_eq!(old.version(t), new.version(t), "{t} unchanged");
    }
}

#[tokio::test]
async fn invalid_config_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "kind: Nope\n").unwrap();
    let opts = ServeOptions {
        config_dir: dir.path().to_path_buf(),
        xds_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.path().join("state"),
        grace_period: Duration::from_secs(1),
        restart_grace_period: Duration::from_secs(1),
        insecure_xds: true,
        plugin_ca: None,
        xds_tls: false,
        xds_tls_names: Vec::new(),
        credentials_dir: None,
        jwks: Default::default(),
        store: None,
        graph: Default::default(),
        release_memory: None,
        xds_tls_ttl: Duration::from_secs(24 * 3600),
        xds_per_peer: PerPeerLimits::default(),
    };
    let err = start(opts).await.err().unwrap();
    assert!(
        matches!(err, ServeError::Config(LoadError::Invalid(_))),
        "{err}"
    );
}

#[test]
fn state_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("a/b");
    listen::create_state_dir(&state).unwrap();
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn each_proxy_gets_its_own_secrets() {
    let state = tempfile::tempdir().unwrap();
    let ca = crate::ca::Ca::load_or_create(&crate::ca::CaConfig {
        state_dir: state.path().to_path_buf(),
        plugin: None,
    })
    .unwrap();
    let certs = certs::Certs::new(Arc::new(ca), None);
    let mesh = crate::config::MeshConfig::default();
    let mut registry = crate::registry::Registry::new();
    for (service, port) in [("a", 9001), ("b", 9002)] {
        let mut spec = SidecarSpec::new(service, port);
        spec.inbound_port = port + 100;
        registry.register(crate::registry::Proxy::from_node(&node(&spec)).unwrap());
    }
    let snaps = snapshots::build_all(&mesh, &registry, Some(&certs));
    let secrets = |s: &crate::xds::Snapshot| s.resources(&crate::xds::SECRET_TYPE).items().clone();
    let (a, b) = (secrets(&snaps[0].1), secrets(&snaps[1].1));
    assert_eq!(a.keys().collect::<Vec<_>>(), ["ROOTCA", "default"]);
    assert_ne!(a["default"], b["default"], "each proxy has its own key");
    assert_eq!(a["ROOTCA"], b["ROOTCA"]);
    // Cached: the next rebuild sends the same leaf.
    let again = snapshots::build_all(&mesh, &registry, Some(&certs));
    assert_eq!(secrets(&again[0].1)["default"], a["default"]);
}

#[tokio::test]
async fn debug_ca_shows_roots_and_leaves_but_no_keys() {
    let cp = serve(CANARY).await;
    let spec = SidecarSpec::new("ledger", 9100);
    let _stream = ads(cp.xds, node(&spec)).await;
    let id = spec.node_id();
    eventually("a leaf for ledger", || async {
        json(cp.admin, "/debug/ca").await["leaves"][&id]["spiffe_id"]
            == "spiffe://cluster.local/ns/default/sa/ledger"
    })
    .await;
    let (status, text) = http_get(cp.admin, "/debug/ca").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["phase"], "idle");
    assert_eq!(v["roots"].as_array().unwrap().len(), 1);
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("BEGIN"),
        "{text}"
    );
}
