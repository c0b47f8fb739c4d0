//! Locality-aware load balancing against real Envoy: sidecars started
//! with `trellis bootstrap --locality`, a client in us-east/us-east-1a
//! calling `payment` with instances in its zone and in eu-west.
//!
//! - failover: traffic stays in the client's zone; when that zone's
//!   instances answer 503, outlier detection ejects them and traffic moves
//!   to eu-west (errors counted and printed); when they recover, traffic
//!   comes back.
//! - distribute: an 80/20 split between the two localities, measured.

use std::time::Duration;

use trellis_integration_tests::locality::{answers_from, client_in, payment_in, until_steady};
use trellis_integration_tests::wait::wait_until;
use trellis_integration_tests::*;

const CLUSTER: &str = "outbound|80||payment.default.svc.cluster.local";
const EAST: &str = "us-east/us-east-1a";
const WEST: &str = "eu-west/eu-west-1a";

/// Failover with outlier detection: two failures eject a host for 3 s
/// (then longer on each ejection), every host may be ejected.
const FAILOVER: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: payment
spec:
  host: payment
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 3s
      maxEjectionPercent: 100
---
# Istio's advice for failover: a retry after a failure in the client's own
# locality goes to the next priority. Without it, Envoy (envoyproxy/envoy#28304)
# may keep sending a share of requests to one host of a zone whose hosts were
# all ejected at once, and a request whose tries all land there fails.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts: [payment]
  http:
  - route:
    - destination: {host: payment}
    retries:
      attempts: 2
      retryOn: 5xx
      retryRemoteLocalities: true
"#;

const DISTRIBUTE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: payment
spec:
  host: payment
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: us-east/us-east-1a
          to:
            "us-east/us-east-1a": 80
            "eu-west/eu-west-1a": 20
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_stays_local_fails_over_and_returns() {
    let config = ConfigDir::with(&[("rule.yaml", FAILOVER)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let a1 = payment_in(&trellis, "east-1", EAST).await;
    let a2 = payment_in(&trellis, "east-2", EAST).await;
    let b1 = payment_in(&trellis, "west-1", WEST).await;
    let client = client_in(&trellis, EAST).await;
    client.wait_endpoints(CLUSTER, 3).await.unwrap();
    let east = ["east-1", "east-2"];

    // Healthy: every request stays in the client's zone.
    let tally = client.tally("payment", &[], 200, 4).await;
    assert_eq!(
        answers_from(&tally, &east),
        200,
        "traffic left the zone: {tally:?}"
    );

    // The zone fails: outlier detection ejects both, eu-west takes over.
    a1.backend.set_behavior(Behavior::Always(503));
    a2.backend.set_behavior(Behavior::Always(503));
    let timeout = Duration::from_secs(20);
    let (took, failed, sent) = until_steady(&client, 20, timeout, |o| o == "west-1 v1").await;
    eprintln!("failover to eu-west: {took:?}, {failed} of {sent} requests failed");
    assert!(
        failed <= 10,
        "{failed} of {sent} requests failed during failover"
    );
    let ejected = format!("cluster.{CLUSTER}.outlier_detection.ejections_active");
    assert_eq!(client.sidecar.stat(&ejected).await.unwrap(), 2);
    // Outlier detection lets an ejected host back after its ejection time
    // to probe it; while the zone still fails, each such probe costs at
    // most `consecutive5xxErrors` (2) requests before the host is ejected
    // again. Those are the only failures allowed (plus one probe the tally
    // may end in the middle of, before its host is ejected again).
    let enforced = format!("cluster.{CLUSTER}.outlier_detection.ejections_enforced_total");
    let before = client.sidecar.stat(&enforced).await.unwrap();
    let tally = client.tally("payment", &[], 100, 4).await;
    let probes = client.sidecar.stat(&enforced).await.unwrap() - before;
    eprintln!("after failover: {tally:?}, {probes} re-ejections");
    assert_eq!(answers_from(&tally, &east), 0, "{tally:?}");
    let failed = 100 - answers_from(&tally, &["west-1"]);
    assert!(
        failed <= 2 * (probes as usize + 1),
        "{failed} failures but {probes} re-ejections: {tally:?}"
    );

    // The zone recovers: once the ejections end, traffic comes back.
    a1.backend.set_behavior(Behavior::Ok);
    a2.backend.set_behavior(Behavior::Ok);
    let local = |o: &str| east.iter().any(|n| o == format!("{n} v1"));
    let (took, failed, sent) = until_steady(&client, 20, timeout, local).await;
    eprintln!("return to us-east: {took:?}, {failed} of {sent} requests failed");
    assert_eq!(failed, 0, "recovery must not fail requests");
    // A host ejected twice stays out twice as long: wait for both.
    let stat = || async { client.sidecar.stat(&ejected).await.ok().filter(|n| *n == 0) };
    let (_, later) = wait_until(timeout, Duration::from_millis(100), stat)
        .await
        .expect("the recovered hosts stayed ejected");
    eprintln!("both us-east hosts back after {:?}", took + later);
    // Envoy may take an interval more to use a host again: poll.
    let all_east = || async {
        let tally = client.tally("payment", &[], 50, 4).await;
        (answers_from(&tally, &east) == 50).then_some(())
    };
    if wait_until(timeout, Duration::from_millis(200), all_east)
        .await
        .is_err()
    {
        let flags = client.sidecar.clusters().await.unwrap_or_default();
        panic!(
            "traffic never all back in us-east: {:?}",
            flags.get(CLUSTER)
        );
    }
    drop(b1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribute_splits_by_locality() {
    let config = ConfigDir::with(&[("rule.yaml", DISTRIBUTE)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    // Two instances in the east, one in the west: the split is per
    // locality, not per instance.
    let _a1 = payment_in(&trellis, "east-1", EAST).await;
    let _a2 = payment_in(&trellis, "east-2", EAST).await;
    let _b1 = payment_in(&trellis, "west-1", WEST).await;
    let client = client_in(&trellis, EAST).await;
    client.wait_endpoints(CLUSTER, 3).await.unwrap();

    // Envoy has the weights (its locality weighted LB reads them).
    let ((), _) = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let dump = client
                .sidecar
                .admin("/config_dump?include_eds")
                .await
                .ok()?;
            (dump.contains("\"load_balancing_weight\": 80")
                && dump.contains("\"load_balancing_weight\": 20"))
            .then_some(())
        },
    )
    .await
    .expect("locality weights never reached Envoy");

    let n = 1000;
    let tally = client.tally("payment", &[], n, 8).await;
    let east = answers_from(&tally, &["east-1", "east-2"]);
    let west = answers_from(&tally, &["west-1"]);
    eprintln!("distribute 80/20: us-east {east}, eu-west {west} of {n}");
    assert_eq!(east + west, n, "{tally:?}");
    let share = east as f64 / n as f64;
    assert!(
        (0.75..=0.85).contains(&share),
        "us-east share {share}: {tally:?}"
    );
}
