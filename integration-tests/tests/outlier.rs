//! Check 4: outlier detection ejects an instance that always fails.

use std::time::Duration;

use trellis_integration_tests::wait::wait_until;
use trellis_integration_tests::*;

/// `maxEjectionPercent: 50`: with Istio's default (Envoy's 10%) Envoy 1.40
/// ejects no host of a two-host cluster, since one host is 50% of it (Envoy
/// ejects one anyway only with `always_eject_one_host`, which Istio does not
/// set).
const RULE: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: payment
spec:
  host: payment
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 60s
      maxEjectionPercent: 50
"#;

const CLUSTER: &str = "outbound|80||payment.default.svc.cluster.local";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_instance_is_ejected() {
    let config = ConfigDir::with(&[("rule.yaml", RULE)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let good = Instance::start_named(&trellis, "payment", "good", "v1", Behavior::Ok);
    let good = good.await.unwrap();
    let bad = Instance::start_named(&trellis, "payment", "bad", "v1", Behavior::Always(500));
    let bad = bad.await.unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client.wait_endpoints(CLUSTER, 2).await.unwrap();

    // Round robin sends every other request to the bad instance until it has
    // failed `consecutive5xxErrors` times in a row.
    let stat = format!("cluster.{CLUSTER}.outlier_detection.ejections_enforced_total");
    let ((), took) = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(1),
        || async {
            let _ = client.get("payment", &[]).await;
            (client.sidecar.stat(&stat).await.ok()? >= 1).then_some(())
        },
    )
    .await
    .expect("Envoy never ejected the failing instance");
    eprintln!(
        "ejected after {took:?}; bad instance saw {} requests",
        bad.backend.hits()
    );

    let tally = client.tally("payment", &[], 200, 4).await;
    assert!(tally.get("good v1") >= 190, "≥95% must succeed: {tally:?}");
    let stats = client.sidecar.stats().await.unwrap();
    assert!(stats[&stat] >= 1);
    assert!(stats[&format!("cluster.{CLUSTER}.outlier_detection.ejections_active")] >= 1);
    let clusters = client.sidecar.clusters().await.unwrap();
    let flags: Vec<_> = clusters[CLUSTER].iter().map(|(_, f)| f.as_str()).collect();
    assert!(flags.contains(&"/failed_outlier_check"), "{flags:?}");
    drop(good);
}
