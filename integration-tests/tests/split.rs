//! Check 1: a 90/10 split over subsets, through a client sidecar.

use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_90_10_over_subsets() {
    let config = ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        (
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 90), ("v2", 10)]),
        ),
    ])
    .unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _v1 = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "payment", "v2", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("v1", "payment"), 1)
        .await
        .unwrap();
    client
        .wait_endpoints(&subset_cluster("v2", "payment"), 1)
        .await
        .unwrap();

    let tally = client.tally("payment", &[], 2000, 8).await;
    assert_eq!(tally.ok(), 2000, "every request must succeed: {tally:?}");
    let v2_share = tally.get("payment v2") as f64 / 2000.0;
    assert!(
        (0.075..=0.125).contains(&v2_share),
        "v2 share {v2_share:.3} outside 10% ± 2.5%: {tally:?}"
    );
}
