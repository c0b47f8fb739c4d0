//! Check 3: retries and timeouts as Envoy applies them.

use std::time::Duration;

use trellis_integration_tests::payment::{payment_routes, start_payment};
use trellis_integration_tests::*;

/// A control plane, one `payment` instance with `behavior`, and a client.
async fn setup(policy: &str, behavior: Behavior) -> (ConfigDir, Trellis, Instance, MeshClient) {
    start_payment(&payment_routes(policy), behavior)
        .await
        .unwrap()
}

fn assert_near(took: Duration, expected: Duration) {
    let (lo, hi) = (expected.mul_f64(0.8), expected.mul_f64(1.2));
    assert!(
        (lo..=hi).contains(&took),
        "took {took:?}, expected {expected:?} ± 20%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_retries_on_5xx_hide_every_second_failure() {
    let policy = "    retries:\n      attempts: 3\n      retryOn: 5xx\n";
    let (_c, _t, server, client) = setup(policy, Behavior::FailEveryNth(2)).await;
    let tally = client.tally("payment", &[], 100, 1).await;
    assert_eq!(tally.get("payment v1"), 100, "{tally:?}");
    assert!(
        server.backend.hits() >= 150,
        "retries must reach the backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_attempts_let_half_fail() {
    let policy = "    retries:\n      attempts: 0\n";
    let (_c, _t, server, client) = setup(policy, Behavior::FailEveryNth(2)).await;
    let tally = client.tally("payment", &[], 100, 1).await;
    let failed = tally.get("HTTP 503");
    assert!(
        (40..=60).contains(&failed),
        "about half must fail: {tally:?}"
    );
    assert_eq!(server.backend.hits(), 100, "no retries: {tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_gives_504_at_the_set_time() {
    let policy = "    timeout: 1s\n";
    let (_c, _t, _s, client) = setup(policy, Behavior::Delay(Duration::from_secs(4))).await;
    for _ in 0..2 {
        let reply = client.get("payment", &[]).await.unwrap();
        let routes = client.routes_dump().await;
        assert_eq!(reply.status, 504, "{reply:?}\nroutes: {routes}");
        assert_near(reply.elapsed, Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_gives_504_after_each_try() {
    // Istio's `attempts` counts retries: 2 retries = 3 tries of 400 ms each.
    let policy =
        "    retries:\n      attempts: 2\n      perTryTimeout: 400ms\n      retryOn: 5xx\n";
    let (_c, _t, server, client) = setup(policy, Behavior::Delay(Duration::from_secs(4))).await;
    let reply = client.get("payment", &[]).await.unwrap();
    assert_eq!(reply.status, 504, "{reply:?}");
    assert_near(reply.elapsed, Duration::from_millis(1200));
    assert_eq!(server.backend.hits(), 3, "1 try + 2 retries");
}
