//! Every directory in `config-examples/` is served as written and a real
//! Envoy accepts all of it over ADS: no NACK in `/debug/proxies`, no
//! rejected update in Envoy's stats.

use std::time::Duration;

use trellis_integration_tests::*;

/// Waits until the sidecar has ACKed every type sent to it, then checks
/// that nothing was rejected on either side.
async fn assert_all_accepted(example: &str, trellis: &Trellis, sidecar: &Sidecar) {
    let node = sidecar.spec.node_id.clone();
    let acked = wait::wait_for(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let Ok(p) = trellis.debug_proxies().await else {
                return false;
            };
            let types = p[&node]["types"].as_object().cloned().unwrap_or_default();
            !types.is_empty()
                && types.values().all(|t| {
                    t["last_sent_version"].is_string()
                        && t["last_acked_version"] == t["last_sent_version"]
                })
        },
    )
    .await;
    let proxies = trellis.debug_proxies().await.unwrap();
    assert!(
        acked.is_ok(),
        "{example}: not everything ACKed: {}",
        proxies[&node]
    );
    for (url, t) in proxies[&node]["types"].as_object().into_iter().flatten() {
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
