//! The service graph from real sidecars: a client's Envoy calls `payment`
//! (slow, healthy) and `ledger` (always 500); the control plane scrapes
//! both ends' stats ports and `/debug/graph` and `trellis graph` show the
//! edges with their counts, success rates and latencies.

use trellis_integration_tests::observed::{edge, ObservedMesh, CLIENT, LEDGER, PAYMENT};
use trellis_integration_tests::trellis::run_trellis;

const PAYMENT_CALLS: usize = 60;
const LEDGER_CALLS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_edges_carry_rate_success_and_latency() {
    let mesh = ObservedMesh::start().await.unwrap();
    let ok = mesh.client.tally("payment", &[], PAYMENT_CALLS, 4).await;
    assert_eq!(ok.ok(), PAYMENT_CALLS, "{ok:?}");
    let failed = mesh.client.tally("ledger", &[], LEDGER_CALLS, 4).await;
    assert_eq!(failed.get("HTTP 500"), LEDGER_CALLS, "{failed:?}");

    let pay = mesh.wait_edge(PAYMENT, PAYMENT_CALLS as u64).await.unwrap();
    // Each call is one upstream request: the mesh retries no 2xx.
    assert_eq!(pay["requests"], PAYMENT_CALLS as u64, "{pay}");
    assert_eq!(pay["errors"], 0, "{pay}");
    assert_eq!(pay["success_rate"], 1.0, "{pay}");
    assert!(pay["rps"].as_f64().unwrap() > 0.0, "{pay}");
    // Every call took at least the backend's 30 ms, in Envoy's (25, 50] ms
    // bucket unless the machine stalled.
    let p50 = pay["p50_ms"].as_f64().unwrap();
    let p99 = pay["p99_ms"].as_f64().unwrap();
    assert!((25.0..=100.0).contains(&p50), "p50 {p50}: {pay}");
    assert!(p99 >= p50 && p99 <= 1000.0, "p99 {p99}: {pay}");

    let ledger = mesh.wait_edge(LEDGER, LEDGER_CALLS as u64).await.unwrap();
    assert_eq!(ledger["errors"], ledger["requests"], "{ledger}");
    assert_eq!(ledger["success_rate"], 0.0, "{ledger}");
    eprintln!("payment edge: {pay}\nledger edge: {ledger}");
    let graph = mesh.graph().await.unwrap();
    let nodes: Vec<&str> = (graph["nodes"].as_array().unwrap().iter())
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(nodes, [CLIENT, LEDGER, PAYMENT], "{graph}");
    assert!(
        edge(&graph, PAYMENT, CLIENT).is_none(),
        "inbound is no edge"
    );

    let admin = format!("127.0.0.1:{}", mesh.trellis.admin_port());
    let (code, text, err) = run_trellis(&["graph", "--admin-addr", &admin]).unwrap();
    assert_eq!(code, 0, "{err}");
    let line = (text.lines())
        .find(|l| l.starts_with(&format!("{CLIENT} -> {PAYMENT}")))
        .unwrap_or_else(|| panic!("no payment edge in:\n{text}"));
    assert!(line.contains("100.0%"), "{line}");
    let (code, dot, err) =
        run_trellis(&["graph", "--admin-addr", &admin, "--format", "dot"]).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        dot.contains(&format!("\"{CLIENT}\" -> \"{LEDGER}\"")),
        "{dot}"
    );
    assert!(dot.contains("0.0% ok"), "{dot}");
    let (code, json, err) =
        run_trellis(&["graph", "--admin-addr", &admin, "--format", "json"]).unwrap();
    assert_eq!(code, 0, "{err}");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(edge(&parsed, CLIENT, PAYMENT).is_some(), "{json}");
}
