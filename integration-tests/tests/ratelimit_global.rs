//! Global `RateLimit`s against real Envoy, Redis and `trellis ratelimit`
//! (system tests: they need Debian's `redis-server`; `make test-system`
//! runs them with `--ignored --test-threads 1`, and they fail, never
//! skip, when it is missing).
//!
//! Two `payment` instances share one limit of 10/s: under ~50 requests/s
//! their sum stays within it. With Redis killed the sidecars fail open:
//! every request passes and `failure_mode_allowed` moves.

use std::time::Duration;

use trellis_integration_tests::ratelimit::{count, paced, RatelimitService, Redis};
use trellis_integration_tests::*;

const RATE: u32 = 50;
const LOAD: Duration = Duration::from_secs(4);

fn config(service_port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment}}
spec:
  hosts: [payment]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
---
apiVersion: trellis.dev/v1alpha1
kind: RateLimit
metadata: {{name: payment}}
spec:
  target: {{host: payment}}
  mode: global
  service:
    address: 127.0.0.1:{service_port}
    namespace: trellis-system
    serviceAccount: ratelimit
  rules:
  - name: all
    limit: {{requests: 10, unit: second}}
"
    )
}

struct Global {
    _config: ConfigDir,
    _trellis: Trellis,
    redis: Redis,
    service: RatelimitService,
    instances: [Instance; 2],
    client: MeshClient,
}

async fn global_mesh() -> Global {
    let redis = Redis::start().await.unwrap();
    let port = free_port();
    let config = ConfigDir::with(&[("mesh.yaml", &config(port))]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let service = RatelimitService::start(&trellis, &redis, port)
        .await
        .unwrap();
    let a = Instance::start_named(&trellis, "payment", "payment-a", "v1", Behavior::Ok);
    let b = Instance::start_named(&trellis, "payment", "payment-b", "v1", Behavior::Ok);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("", "payment"), 2)
        .await
        .unwrap();
    Global {
        _config: config,
        _trellis: trellis,
        redis,
        service,
        instances: [a, b],
        client,
    }
}

/// The sum over both instances' sidecars of the global rate-limit
/// filter's stat `NAME` (Envoy keeps it under the route's cluster:
/// `cluster.inbound|PORT||.ratelimit.NAME`).
async fn stat_sum(mesh: &Global, name: &str) -> u64 {
    let mut sum = 0;
    for i in &mesh.instances {
        let stats = i.sidecar.stats().await.unwrap();
        sum += (stats.iter())
            .filter(|(k, _)| k.contains("ratelimit") && k.ends_with(&format!(".{name}")))
            .map(|(_, v)| v)
            .sum::<u64>();
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (needs redis-server): make test-system"]
async fn two_instances_share_one_limit() {
    let mesh = global_mesh().await;
    let port = mesh.client.sidecar.outbound_port();
    let replies = paced(&mesh.client.http, port, "payment", "/", RATE, LOAD).await;
    let (ok, limited) = (count(&replies, 200), count(&replies, 429));
    let hits: Vec<u64> = mesh.instances.iter().map(|i| i.backend.hits()).collect();
    let mut took: Vec<Duration> = replies.iter().flatten().map(|r| r.elapsed).collect();
    took.sort();
    eprintln!(
        "{} requests over {LOAD:?}: {ok} passed ({hits:?} per instance), {limited} got 429; \
         latency p50 {:?} p99 {:?}; errors {}, failure_mode_allowed {}",
        replies.len(),
        took.get(took.len() / 2),
        took.get(took.len() * 99 / 100),
        stat_sum(&mesh, "error").await,
        stat_sum(&mesh, "failure_mode_allowed").await,
    );
    assert_eq!(
        ok + limited,
        replies.len(),
        "{replies:?}\n{}",
        mesh.service.log()
    );
    // GCRA of 10/s with no burst: a bucket of 10, then one every 100 ms,
    // so at most 10 + 10/s × 4 s = 50 over the load; 2 more allow for
    // requests in flight at its edges. Local limits would pass twice that.
    assert!(ok <= 52, "{ok} passed: the sum exceeds the limit");
    assert!(ok >= 30, "{ok} passed: far below the limit");
    assert!(
        hits.iter().all(|h| *h > 0),
        "both instances served: {hits:?}"
    );
    let refused = (replies.iter().flatten())
        .find(|r| r.status == 429)
        .expect("a 429");
    assert!(
        refused.headers.contains_key("x-ratelimit-limit"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (needs redis-server): make test-system"]
async fn without_redis_requests_fail_open_and_are_counted() {
    let mut mesh = global_mesh().await;
    let port = mesh.client.sidecar.outbound_port();
    let before = paced(&mesh.client.http, port, "payment", "/", RATE, LOAD / 2).await;
    assert!(count(&before, 429) > 0, "the limit holds while Redis runs");
    assert_eq!(stat_sum(&mesh, "failure_mode_allowed").await, 0);
    mesh.redis.kill();
    let after = paced(&mesh.client.http, port, "payment", "/", RATE, LOAD / 2).await;
    assert_eq!(count(&after, 200), after.len(), "fail open: {after:?}");
    let allowed = stat_sum(&mesh, "failure_mode_allowed").await;
    eprintln!(
        "Redis down: {} requests, all passed; failure_mode_allowed {allowed}",
        after.len()
    );
    assert_eq!(allowed, after.len() as u64, "every request counted");
}
