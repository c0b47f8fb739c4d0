//! Sidecars with the built-in access log turned on (a mesh-wide
//! `Telemetry` naming `envoy`; it is off by default) write JSON lines
//! to stdout (captured in the Envoy log file) with the listed fields and
//! the right values for a known request, including the response flag of a
//! request whose retries ran out (`URX`).

use std::time::Duration;

use serde_json::Value;
use trellis_integration_tests::mesh::ACCESS_LOGS_ON;
use trellis_integration_tests::wait::wait_for;
use trellis_integration_tests::*;

const POLL: Duration = Duration::from_millis(250);
/// Envoy flushes access log files every 10 s by default.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

const ROUTES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ledger
spec:
  hosts:
  - ledger
  http:
  - route:
    - destination:
        host: ledger
    retries:
      attempts: 2
      retryOn: 5xx
";

const FIELDS: &[&str] = &[
    "start_time",
    "method",
    "path",
    "authority",
    "response_code",
    "response_flags",
    "duration",
    "upstream_cluster",
    "upstream_host",
    "bytes_received",
    "bytes_sent",
    "request_id",
    "trace_id",
    "source_identity",
    "destination_identity",
];

/// The JSON access log lines of a sidecar for `request_id` and direction.
fn lines(log: &str, request_id: &str, direction: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["request_id"] == request_id && v["direction"] == direction)
        .collect()
}

async fn line(sidecar: &Sidecar, request_id: &str, direction: &str) -> Value {
    let found = wait_for(LOG_TIMEOUT, POLL, || {
        std::future::ready(!lines(&sidecar.log(), request_id, direction).is_empty())
    })
    .await;
    let log = sidecar.log();
    assert!(
        found.is_ok(),
        "no {direction} line for {request_id}:\n{log}"
    );
    lines(&log, request_id, direction).remove(0)
}

fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_logs_with_fields_values_and_retry_flag() {
    let config =
        ConfigDir::with(&[("routes.yaml", ROUTES), ("logs.yaml", ACCESS_LOGS_ON)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let payment = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let ledger = Instance::start(&trellis, "ledger", "v1", Behavior::Always(503))
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    for host in ["payment", "ledger"] {
        let cluster = format!("|{host}.default.svc.cluster.local");
        client.wait_endpoints(&cluster, 1).await.unwrap();
    }
    let port = client.sidecar.outbound_port();
    let ok_id = "3b0e5c9e-access-log-ok";
    let reply = client
        .http
        .get(
            port,
            "payment",
            "/orders/42?x=1",
            &[("x-request-id", ok_id)],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");

    let out = line(&client.sidecar, ok_id, "outbound").await;
    for f in FIELDS {
        assert!(out.get(f).is_some(), "field {f} missing: {out}");
    }
    assert_eq!(out["method"], "GET");
    assert_eq!(out["path"], "/orders/42?x=1");
    assert_eq!(out["authority"], "payment");
    assert_eq!(number(&out["response_code"]), 200);
    assert_eq!(out["response_flags"], "-");
    assert_eq!(number(&out["bytes_sent"]), reply.body.len() as u64);
    assert_eq!(number(&out["bytes_received"]), 0);
    assert!(number(&out["duration"]) < 10_000);
    let cluster = out["upstream_cluster"].as_str().unwrap_or_default();
    assert!(
        cluster.starts_with("outbound|") && cluster.ends_with("|payment.default.svc.cluster.local"),
        "{out}"
    );
    let upstream = format!("127.0.0.1:{}", payment.sidecar.spec.inbound_port);
    assert_eq!(out["upstream_host"], upstream.as_str());
    assert_eq!(
        out["source_identity"],
        "spiffe://cluster.local/ns/default/sa/client"
    );
    assert_eq!(
        out["destination_identity"],
        "spiffe://cluster.local/ns/default/sa/payment"
    );
    assert!(
        out["start_time"].as_str().is_some_and(|t| t.contains('T')),
        "{out}"
    );

    let inb = line(&payment.sidecar, ok_id, "inbound").await;
    assert_eq!(number(&inb["response_code"]), 200);
    assert_eq!(inb["path"], "/orders/42?x=1");
    assert_eq!(
        inb["source_identity"],
        "spiffe://cluster.local/ns/default/sa/client"
    );
    assert_eq!(
        inb["destination_identity"],
        "spiffe://cluster.local/ns/default/sa/payment"
    );
    assert_eq!(
        inb["upstream_host"],
        format!("127.0.0.1:{}", payment.backend.port()).as_str()
    );

    // Three attempts, all 503: the retry limit is exceeded (URX).
    let retry_id = "3b0e5c9e-access-log-retry";
    let reply = client
        .http
        .get(port, "ledger", "/", &[("x-request-id", retry_id)])
        .await
        .unwrap();
    assert_eq!(reply.status, 503, "{reply:?}");
    let out = line(&client.sidecar, retry_id, "outbound").await;
    assert_eq!(number(&out["response_code"]), 503);
    assert_eq!(out["response_flags"], "URX", "{out}");
    let inbound = wait_for(LOG_TIMEOUT, POLL, || {
        std::future::ready(lines(&ledger.sidecar.log(), retry_id, "inbound").len() == 3)
    })
    .await;
    assert!(
        inbound.is_ok(),
        "3 attempts logged by the ledger sidecar:\n{}",
        ledger.sidecar.log()
    );
}

const SLOW_POOL: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: slow
spec:
  host: slow
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRetries: 0
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowed_request_is_logged_with_uo() {
    let config =
        ConfigDir::with(&[("pool.yaml", SLOW_POOL), ("logs.yaml", ACCESS_LOGS_ON)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let delay = Behavior::Delay(Duration::from_millis(500));
    let _slow = Instance::start(&trellis, "slow", "v1", delay)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints("|slow.default.svc.cluster.local", 1)
        .await
        .unwrap();
    let tally = client.tally("slow", &[], 10, 10).await;
    assert!(
        tally.get("HTTP 503") > 0,
        "the pool must overflow: {tally:?}"
    );
    let overflowed = |log: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| {
                v["authority"] == "slow"
                    && v["response_flags"] == "UO"
                    && number(&v["response_code"]) == 503
            })
    };
    let found = wait_for(LOG_TIMEOUT, POLL, || {
        std::future::ready(overflowed(&client.sidecar.log()))
    })
    .await;
    assert!(found.is_ok(), "no UO line:\n{}", client.sidecar.log());
}
