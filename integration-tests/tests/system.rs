//! System tests: long faults that do not fit `make test`'s time budget. They
//! run in `make test-system` (`cargo test --test system -- --ignored`),
//! which `.ci/run` runs; each fails, never skips, when something it needs is
//! missing.
//!
//! Control-plane crashes under constant traffic: `kill -9`, the control
//! plane down for a while, then started again with the same state
//! directory. Envoy keeps its last config while the control plane is down;
//! the restarted control plane must not take away the endpoints of sidecars
//! that are alive but have not reconnected yet.

use std::time::{Duration, Instant};

use trellis_integration_tests::*;

const CLUSTER: &str = "outbound|80||inventory.default.svc.cluster.local";

/// Outlier detection that ejects a host after one failure: a sidecar that
/// died is out of the load balancer after its first refused connection.
const RULE: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: inventory
spec:
  host: inventory
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 120s
      maxEjectionPercent: 100
"#;

/// A route change made after the restart: a response header.
const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: inventory
spec:
  hosts:
  - inventory
  http:
  - headers:
      response:
        add:
          x-after-restart: "yes"
    route:
    - destination:
        host: inventory
"#;

/// The fewest requests that must fall inside the window from the kill to
/// the end of the check for "no failed request" to count.
const MIN_REQUESTS: usize = 300;

struct Mesh {
    config: ConfigDir,
    trellis: Trellis,
    v1: Instance,
    v2: Option<Instance>,
    client: MeshClient,
}

/// Two auto-registered `inventory` sidecars (no static endpoints) and a
/// client that sees both.
async fn mesh(extra_args: &[&str]) -> Mesh {
    let config = ConfigDir::with(&[("rule.yaml", RULE)]).unwrap();
    let opts = TrellisOptions {
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    let v1 = Instance::start(&trellis, "inventory", "v1", Behavior::Ok);
    let v1 = v1.await.unwrap();
    let v2 = Instance::start(&trellis, "inventory", "v2", Behavior::Ok);
    let v2 = Some(v2.await.unwrap());
    let client = MeshClient::start(&trellis).await.unwrap();
    client.wait_endpoints(CLUSTER, 2).await.unwrap();
    Mesh {
        config,
        trellis,
        v1,
        v2,
        client,
    }
}

impl Mesh {
    fn node_ids(&self) -> Vec<String> {
        let mut ids = vec![
            self.v1.sidecar.spec.node_id.clone(),
            self.client.sidecar.spec.node_id.clone(),
        ];
        ids.extend(self.v2.iter().map(|v| v.sidecar.spec.node_id.clone()));
        ids
    }

    /// Waits until every live sidecar has a stream to the control plane.
    async fn wait_reconnected(&self) -> Duration {
        let ids = self.node_ids();
        let (_, took) = wait_until(
            Duration::from_secs(60),
            Duration::from_millis(50),
            || async {
                let proxies = self.trellis.debug_proxies().await.ok()?;
                ids.iter()
                    .all(|id| proxies[id]["connected"] == true)
                    .then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("sidecars did not reconnect: {e}\n{}", self.trellis.log()));
        took
    }

    /// A route change reaches the client's Envoy, and every live sidecar
    /// ACKs all it was sent.
    async fn change_routes_and_wait(&self) {
        self.config.write("routes.yaml", ROUTES).unwrap();
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async {
                let reply = self.client.get("inventory", &[]).await.ok()?;
                reply.headers.contains_key("x-after-restart").then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("the route change never reached the client: {e}"));
        for id in self.node_ids() {
            let (acked, status) = self.trellis.wait_all_acked(&id).await;
            assert!(acked, "{id} did not ACK everything: {status}");
        }
    }
}

/// kill -9, `outage` down, restart: no request fails, the sidecars are
/// back, and a change made afterwards reaches all of them.
async fn restart_after(outage: Duration) {
    let mut mesh = mesh(&[]).await;
    let load = Load::start(&mesh.client, "inventory");
    let start = load.sent();
    mesh.trellis.kill();
    // The outage itself: the control plane stays down this long.
    tokio::time::sleep(outage).await;
    mesh.trellis.start_again().await.unwrap();
    let restarted = Instant::now();
    let reconnected = mesh.wait_reconnected().await;
    // Past the 3 s grace period that once deregistered the restored
    // sidecars, with traffic all along.
    load.keep_until(start, MIN_REQUESTS, restarted, Duration::from_secs(8))
        .await;
    mesh.change_routes_and_wait().await;
    let (sent, failures) = load.finish().await;
    eprintln!(
        "outage {outage:?}: {} requests from the kill on, {} failed; every sidecar back {reconnected:?} after the restart",
        sent - start,
        failures.len()
    );
    assert_no_failures(sent - start, &failures);
    assert!(
        sent - start >= MIN_REQUESTS,
        "only {} requests",
        sent - start
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (long fault): make test-system"]
async fn restart_after_a_10s_outage_fails_no_request() {
    restart_after(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (long fault): make test-system"]
async fn restart_after_a_30s_outage_fails_no_request() {
    restart_after(Duration::from_secs(30)).await;
}

/// A sidecar that died while the control plane was down: requests avoid it
/// once outlier detection has ejected it, it leaves the endpoints when the
/// restart grace period ends (not at the shorter grace period), and no
/// request fails along the way (the default retry policy retries a refused
/// connection on another host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (long fault): make test-system"]
async fn a_sidecar_that_died_in_the_outage_leaves_after_the_restart_grace() {
    let restart_grace = Duration::from_secs(10);
    let mut mesh = mesh(&["--restart-grace-period", "10s"]).await;
    mesh.trellis.kill();
    if let Some(v2) = mesh.v2.take() {
        v2.kill();
    }
    // Traffic starts once v2 is dead: a request in flight on a connection
    // to it when it dies fails whatever the control plane does (a crash,
    // not a restart); every later one must not.
    let load = Load::start(&mesh.client, "inventory");
    let start = load.sent();
    let ejected = format!("cluster.{CLUSTER}.outlier_detection.ejections_active");
    let sidecar = &mesh.client.sidecar;
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { (sidecar.stat(&ejected).await.ok()? >= 1).then_some(()) },
    )
    .await
    .expect("outlier detection never ejected the dead instance");
    mesh.trellis.start_again().await.unwrap();
    let restarted = Instant::now();
    mesh.wait_reconnected().await;

    // Ejected: no new connection attempt reaches the dead host.
    let fails = format!("cluster.{CLUSTER}.upstream_cx_connect_fail");
    let before = sidecar.stat(&fails).await.unwrap();
    let tally = mesh.client.tally("inventory", &[], 100, 4).await;
    assert_eq!(tally.ok(), 100, "{tally:?}");
    assert_eq!(
        sidecar.stat(&fails).await.unwrap(),
        before,
        "a request went to the dead host"
    );

    // Still an endpoint until the restart grace ends, then gone.
    mesh.client.wait_endpoints(CLUSTER, 1).await.ok();
    let (_, took) = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let clusters = sidecar.clusters().await.ok()?;
            (clusters.get(CLUSTER)?.len() == 1).then_some(())
        },
    )
    .await
    .expect("the dead sidecar never left the endpoints");
    let gone_after = restarted.elapsed();
    assert!(
        gone_after + Duration::from_millis(500) >= restart_grace,
        "left {gone_after:?} after the restart, before the restart grace period ({took:?} of polling)"
    );
    mesh.change_routes_and_wait().await;
    let (sent, failures) = load.finish().await;
    eprintln!(
        "dead sidecar left {gone_after:?} after the restart; {} requests, {} failed",
        sent - start,
        failures.len()
    );
    assert_no_failures(sent - start, &failures);
}
