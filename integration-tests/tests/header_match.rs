//! Check 2: `end-user: jason` goes to v2, everyone else to v1.

use trellis_integration_tests::canary_mesh::HEADER_ROUTES;
use trellis_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_user_jason_goes_to_v2() {
    let CanaryMesh {
        client,
        v2: _v2,
        v1: _v1,
        trellis: _trellis,
        config: _config,
    } = CanaryMesh::start(HEADER_ROUTES, &["v1", "v2"])
        .await
        .unwrap();

    let jason = client
        .tally("payment", &[("end-user", "jason")], 200, 4)
        .await;
    assert_eq!(jason.get("payment v2"), 200, "jason: {jason:?}");
    let others = client
        .tally("payment", &[("end-user", "mary")], 200, 4)
        .await;
    assert_eq!(others.get("payment v1"), 200, "mary: {others:?}");
    let anonymous = client.tally("payment", &[], 200, 4).await;
    assert_eq!(anonymous.get("payment v1"), 200, "no header: {anonymous:?}");
}
