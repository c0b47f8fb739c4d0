//! Every directory in `config-examples/` is served as written and a real
//! Envoy accepts all of it over ADS: no NACK in `/debug/proxies`, no
//! rejected update in Envoy's stats.

use trellis_integration_tests::*;

/// Waits until the sidecar has ACKed every type sent to it, then checks
/// that nothing was rejected on either side.
async fn assert_all_accepted(example: &str, trellis: &Trellis, sidecar: &Sidecar) {
    let (acked, status) = trellis.wait_all_acked(&sidecar.spec.node_id).await;
    assert!(acked, "{example}: not everything ACKed: {status}");
    for (url, t) in status["types"].as_object().into_iter().flatten() {
        assert!(
            t["last_nack"].is_null(),
            "{example}: {url} NACKed: {}",
            t["last_nack"]
        );
    }
    let stats = sidecar.stats().await.unwrap();
    let rejected: Vec<_> = stats
        .iter()
        .filter(|(k, v)| k.ends_with("update_rejected") && **v > 0)
        .collect();
    assert!(
        rejected.is_empty(),
        "{example}: Envoy rejected updates: {rejected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_accepted_by_envoy() {
    let root = repo_root().join("config-examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5, "examples in {}: {dirs:?}", root.display());
    for dir in dirs {
        let example = dir.file_name().unwrap().to_string_lossy().into_owned();
        let trellis = Trellis::start(&dir).await.unwrap();
        let client = MeshClient::start(&trellis).await.unwrap();
        assert_all_accepted(&example, &trellis, &client.sidecar).await;
    }
}
