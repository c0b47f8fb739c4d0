//! Check 7: sidecars register their instance; a killed one leaves after
//! the grace period.

use std::time::{Duration, Instant};

use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::*;

const GRACE: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_joins_and_leaves() {
    let config = ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        (
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 0), ("v2", 100)]),
        ),
    ])
    .unwrap();
    let opts = TrellisOptions {
        grace_period: Some(GRACE),
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    let first = Instance::start_named(&trellis, "payment", "first", "v2", Behavior::Ok);
    let first = first.await.unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    let cluster = subset_cluster("v2", "payment");
    client.wait_endpoints(&cluster, 1).await.unwrap();
    let alone = client.tally("payment", &[], 50, 2).await;
    assert_eq!(alone.get("first v2"), 50, "{alone:?}");

    // A second v2 instance: no config change, it just starts its sidecar.
    let second = Instance::start_named(&trellis, "payment", "second", "v2", Behavior::Ok);
    let second = second.await.unwrap();
    let joined = client.wait_endpoints(&cluster, 2).await.unwrap();
    eprintln!("second instance reached the client's EDS in {joined:?}");
    let both = client.tally("payment", &[], 100, 2).await;
    assert_eq!(both.ok(), 100, "{both:?}");
    assert!(
        both.get("second v2") >= 20,
        "second instance gets traffic: {both:?}"
    );
    assert!(both.get("first v2") >= 20, "{both:?}");

    // Kill it: it leaves the endpoint set after the grace period.
    let killed_at = Instant::now();
    second.kill();
    client.wait_endpoints(&cluster, 1).await.unwrap();
    let left = killed_at.elapsed();
    eprintln!("killed instance left after {left:?} (grace {GRACE:?})");
    assert!(
        left >= GRACE.mul_f64(0.8),
        "left before the grace period: {left:?}"
    );
    assert!(
        left < GRACE + Duration::from_secs(5),
        "left too late: {left:?}"
    );
    let after = client.tally("payment", &[], 100, 2).await;
    assert_eq!(after.get("first v2"), 100, "{after:?}");
    drop(first);
}
