//! A request client → frontend → payment → ledger through
//! sidecars is one trace, with spans from every sidecar hop and parent
//! links across hops, received by a Zipkin (JSON v2) collector started by
//! the test; with 0% sampling no span is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use trellis_integration_tests::fixture::EDS_TIMEOUT;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

const POLL: Duration = Duration::from_millis(200);

/// An in-process Zipkin collector: `POST /api/v2/spans` with a JSON list
/// of spans; keeps every span it receives.
struct Zipkin {
    port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Zipkin {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = spans.clone();
        let app = axum::Router::new().route(
            "/api/v2/spans",
            axum::routing::post(move |body: bytes::Bytes| async move {
                if let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&body) {
                    sink.lock().unwrap().extend(list);
                }
                axum::http::StatusCode::ACCEPTED
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Zipkin { port, spans, task }
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Zipkin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(zipkin_port: u16, sampling: u32) -> Vec<(&'static str, String)> {
    let mesh = format!(
        "apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata:
  name: mesh
spec:
  extensionProviders:
  - name: zipkin
    zipkin:
      service: 127.0.0.1
      port: {zipkin_port}
  defaultProviders:
    tracing: [zipkin]
    accessLogging: [envoy]
"
    );
    let telemetry = format!(
        "apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  tracing:
  - randomSamplingPercentage: {sampling}
"
    );
    vec![("mesh.yaml", mesh), ("telemetry.yaml", telemetry)]
}

/// The chain: a client sidecar, and frontend → payment → ledger, each app
/// calling the next through its own sidecar.
struct Chain {
    _config: ConfigDir,
    _trellis: Trellis,
    client: MeshClient,
    services: Vec<Instance>,
}

async fn chain(zipkin_port: u16, sampling: u32) -> Chain {
    let files = config(zipkin_port, sampling);
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let config = ConfigDir::with(&files).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let mut services = Vec::new();
    for name in ["frontend", "payment", "ledger"] {
        let inst = Instance::start(&trellis, name, "v1", Behavior::Ok)
            .await
            .unwrap();
        services.push(inst);
    }
    for (i, next) in ["payment", "ledger"].iter().enumerate() {
        let caller = &services[i];
        caller
            .backend
            .call_upstream(caller.sidecar.outbound_port(), next);
        let cluster = format!("|{next}.default.svc.cluster.local");
        caller
            .sidecar
            .wait_healthy_endpoints(&cluster, 1, EDS_TIMEOUT)
            .await
            .unwrap();
    }
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints("|frontend.default.svc.cluster.local", 1)
        .await
        .unwrap();
    Chain {
        _config: config,
        _trellis: trellis,
        client,
        services,
    }
}

fn text<'a>(span: &'a Value, key: &str) -> &'a str {
    span.get(key).and_then(Value::as_str).unwrap_or("")
}

fn service(span: &Value) -> &str {
    span.pointer("/localEndpoint/serviceName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// True when the spans form one tree: one root, every other span's parent
/// among them.
fn linked(spans: &[Value]) -> bool {
    let ids: BTreeSet<&str> = spans.iter().map(|s| text(s, "id")).collect();
    let roots = spans
        .iter()
        .filter(|s| text(s, "parentId").is_empty())
        .count();
    let dangling = spans
        .iter()
        .filter(|s| !text(s, "parentId").is_empty())
        .any(|s| !ids.contains(text(s, "parentId")));
    roots == 1 && !dangling
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_with_spans_from_every_hop() {
    let zipkin = Zipkin::start().await;
    let chain = chain(zipkin.port, 100).await;
    let reply = chain.client.get("frontend", &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "frontend v1 > payment v1 > ledger v1");
    let every = ["client", "frontend", "payment", "ledger"];
    // Envoy's Zipkin tracer flushes every 5 s (or every 5 spans).
    let complete = wait_for(Duration::from_secs(30), POLL, || {
        let spans = zipkin.spans();
        let seen: BTreeSet<&str> = spans.iter().map(service).collect();
        let ok = every.iter().all(|s| seen.contains(s)) && linked(&spans);
        std::future::ready(ok)
    })
    .await;
    let spans = zipkin.spans();
    let dump = serde_json::to_string_pretty(&spans).unwrap();
    assert!(complete.is_ok(), "spans incomplete or unlinked:\n{dump}");
    let trace_ids: BTreeSet<&str> = spans.iter().map(|s| text(s, "traceId")).collect();
    assert_eq!(trace_ids.len(), 1, "one trace id:\n{dump}");
    // Each sidecar reports its inbound (SERVER) span; the callers' sidecars
    // also their outbound spans, with a CLIENT upstream span per call.
    let by_id: BTreeMap<&str, &Value> = spans.iter().map(|s| (text(s, "id"), s)).collect();
    for (caller, callee) in [
        ("client", "frontend"),
        ("frontend", "payment"),
        ("payment", "ledger"),
    ] {
        let hop = spans.iter().any(|s| {
            service(s) == callee
                && text(s, "kind") == "SERVER"
                && by_id
                    .get(text(s, "parentId"))
                    .is_some_and(|p| service(p) == caller && text(p, "kind") == "CLIENT")
        });
        assert!(
            hop,
            "no {callee} SERVER span whose parent is a {caller} CLIENT span:\n{dump}"
        );
    }
    // The access logs name the same trace.
    let trace_id = *trace_ids.iter().next().unwrap();
    for inst in &chain.services {
        let log = inst.sidecar.log();
        assert!(
            log.contains(trace_id),
            "trace id {trace_id} not in the access log:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_sampling_reports_no_spans() {
    let zipkin = Zipkin::start().await;
    let chain = chain(zipkin.port, 0).await;
    for _ in 0..20 {
        let reply = chain.client.get("frontend", &[]).await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // Wait for two flush periods of every sidecar's tracer after the
    // requests: whatever was sampled would have been sent by then.
    let sidecars: Vec<&Sidecar> = std::iter::once(&chain.client.sidecar)
        .chain(chain.services.iter().map(|i| &i.sidecar))
        .collect();
    for s in &sidecars {
        let start = s.stat("tracing.zipkin.timer_flushed").await.unwrap_or(0);
        let flushed = wait_for(Duration::from_secs(20), POLL, || async {
            s.stat("tracing.zipkin.timer_flushed").await.unwrap_or(0) >= start + 2
        })
        .await;
        assert!(flushed.is_ok(), "the Zipkin tracer never flushed");
    }
    assert_eq!(zipkin.spans(), Vec::<Value>::new());
    for s in &sidecars {
        assert_eq!(s.stat("tracing.zipkin.spans_sent").await.unwrap_or(0), 0);
    }
}
