//! Check 1: a 90/10 split over subsets, through a client sidecar.

use trellis_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_90_10_over_subsets() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1: _v1,
        trellis: _trellis,
        config: _config,
    } = CanaryMesh::weighted(90, 10, &["v1", "v2"]).await.unwrap();

    let tally = client.tally("payment", &[], 2000, 8).await;
    assert_eq!(tally.ok(), 2000, "every request must succeed: {tally:?}");
    let v2_share = tally.get("payment v2") as f64 / 2000.0;
    assert!(
        (0.075..=0.125).contains(&v2_share),
        "v2 share {v2_share:.3} outside 10% ± 2.5%: {tally:?}"
    );
}
