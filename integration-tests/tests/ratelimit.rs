//! Local `RateLimit`s against real Envoy: a limit of 10/s on one
//! `payment` instance under ~50 requests/s lets about 10/s through and
//! answers the rest 429 with the `x-ratelimit-*` headers; the rule holds
//! for its path only; a shadow rule counts (its `rate_limited` stat
//! moves) and refuses nothing.

use std::time::Duration;

use trellis_integration_tests::ratelimit::{count, paced};
use trellis_integration_tests::*;

const CONFIG: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment}
spec:
  hosts: [payment]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: trellis.dev/v1alpha1
kind: RateLimit
metadata: {name: payment}
spec:
  target: {host: payment}
  rules:
  - name: api
    match: {path: {prefix: /api}}
    limit: {requests: 10, unit: second}
  - name: reports
    match: {path: {prefix: /reports}}
    limit: {requests: 2, unit: minute}
    shadow: true
";

/// The load: 50 requests/s for 4 s.
const RATE: u32 = 50;
const LOAD: Duration = Duration::from_secs(4);

/// Trellis, one payment instance with the limits, and a client.
async fn mesh() -> (ConfigDir, Trellis, Instance, MeshClient) {
    let config = ConfigDir::with(&[("mesh.yaml", CONFIG)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let server = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("", "payment"), 1)
        .await
        .unwrap();
    (config, trellis, server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_per_second_pass_and_the_rest_get_429_with_headers() {
    let (_c, _t, server, client) = mesh().await;
    let port = client.sidecar.outbound_port();
    let replies = paced(&client.http, port, "payment", "/api/pay", RATE, LOAD).await;
    let (ok, limited) = (count(&replies, 200), count(&replies, 429));
    let mut took: Vec<Duration> = replies.iter().flatten().map(|r| r.elapsed).collect();
    took.sort();
    eprintln!(
        "{} requests over {LOAD:?}: {ok} passed, {limited} got 429; latency p50 {:?} p99 {:?}",
        replies.len(),
        took.get(took.len() / 2),
        took.get(took.len() * 99 / 100)
    );
    assert_eq!(ok + limited, replies.len(), "only 200 and 429: {replies:?}");
    // A full bucket (10) plus one refill of 10 per second: over 4 s the
    // refills number 3 or 4, so 40 to 50 pass; a tolerance of 10 below
    // allows for a slow start of the load on a busy machine.
    assert!((30..=50).contains(&ok), "{ok} passed of {}", replies.len());
    let refused = (replies.iter().flatten())
        .find(|r| r.status == 429)
        .expect("a 429");
    assert_eq!(
        refused.headers.get("x-ratelimit-limit").map(String::as_str),
        Some("10")
    );
    assert_eq!(
        refused
            .headers
            .get("x-ratelimit-remaining")
            .map(String::as_str),
        Some("0")
    );
    assert!(
        refused.headers.contains_key("x-ratelimit-reset"),
        "{refused:?}"
    );
    let stats = server.sidecar.stats().await.unwrap();
    let limited_stat = stat(&stats, "ratelimit_default_payment_api", "rate_limited");
    assert_eq!(limited_stat, limited as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_config_shows_the_limits_in_force() {
    let (_c, trellis, server, _client) = mesh().await;
    let id = &server.sidecar.spec.node_id;
    let body = trellis
        .admin(&format!("/debug/proxies/{id}/config?type=ratelimits"))
        .await
        .unwrap();
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let limits = view["configs"]["ratelimits"].as_array().unwrap();
    assert_eq!(limits.len(), 2, "{view:#}");
    let api = &limits[0];
    assert_eq!(api["mode"], "local", "{view:#}");
    assert_eq!(api["rule"], "ratelimit_default_payment_api");
    assert_eq!(api["max_tokens"], 10);
    assert_eq!(api["shadow"], false);
    assert_eq!(limits[1]["shadow"], true, "{view:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_holds_for_its_path_only() {
    let (_c, _t, _s, client) = mesh().await;
    let port = client.sidecar.outbound_port();
    let replies = paced(&client.http, port, "payment", "/other", RATE, LOAD / 2).await;
    assert_eq!(count(&replies, 200), replies.len(), "{replies:?}");
    let first = replies[0].as_ref().unwrap();
    assert!(
        !first.headers.contains_key("x-ratelimit-limit"),
        "no rule, no headers: {first:?}"
    );
    // The same client still meets the limit on the rule's path.
    let api = paced(&client.http, port, "payment", "/api", RATE, LOAD / 2).await;
    assert!(count(&api, 429) > 0, "{api:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_rule_counts_and_refuses_nothing() {
    let (_c, _t, server, client) = mesh().await;
    let port = client.sidecar.outbound_port();
    let replies = paced(
        &client.http,
        port,
        "payment",
        "/reports/daily",
        20,
        LOAD / 4,
    )
    .await;
    assert_eq!(count(&replies, 200), replies.len(), "{replies:?}");
    // 2 per minute: every request after the second is over the limit.
    let stats = server.sidecar.stats().await.unwrap();
    let prefix = "ratelimit_default_payment_reports";
    assert_eq!(
        stat(&stats, prefix, "rate_limited"),
        replies.len() as u64 - 2,
        "{stats:?}"
    );
    assert_eq!(stat(&stats, prefix, "enforced"), 0, "{stats:?}");
}

/// The local rate-limit stat `NAME` under `prefix`.
fn stat(stats: &std::collections::BTreeMap<String, u64>, prefix: &str, name: &str) -> u64 {
    let key = format!("{prefix}.http_local_rate_limit.{name}");
    *stats.get(&key).unwrap_or(&0)
}
