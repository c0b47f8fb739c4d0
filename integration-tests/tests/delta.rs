//! What only delta (incremental) ADS does, on real Envoy with every sidecar
//! pinned to delta (`trellis bootstrap --ads-mode delta`, `api_type:
//! DELTA_GRPC`) whatever the run chose: a control-plane restart, after which
//! Envoy reconnects with `initial_resource_versions` and must resync and keep
//! taking changes, and a removed subset, whose cluster must leave Envoy
//! through `removed_resources` (state of the world removes by omission).
//!
//! How both modes are covered: delta is the bootstrap default, so `make
//! test`'s first run (`cargo test --workspace`) puts every sidecar of every
//! integration test on delta; its second run
//! (`TRELLIS_TEST_ADS_MODE=sotw cargo test -p trellis-integration-tests`)
//! runs the whole integration suite again with state-of-the-world sidecars
//! (`ads_mode.rs` checks each run really speaks the mode it claims). This
//! file stays on delta in both runs.

use std::time::Duration;

use trellis_integration_tests::ads_mode::{api_type, use_ads_mode};
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::*;

/// Trellis with payment v1 and v2 and a client, every sidecar on delta ADS,
/// the client holding both subsets' endpoints.
async fn mesh(config: &ConfigDir) -> (Trellis, Vec<Instance>, MeshClient) {
    use_ads_mode("delta");
    let trellis = Trellis::start(config.path()).await.unwrap();
    let mut instances = Vec::new();
    for v in ["v1", "v2"] {
        let i = Instance::start(&trellis, "payment", v, Behavior::Ok).await;
        instances.push(i.unwrap());
    }
    let client = MeshClient::start(&trellis).await.unwrap();
    for v in ["v1", "v2"] {
        let cluster = subset_cluster(v, "payment");
        client.wait_endpoints(&cluster, 1).await.unwrap();
    }
    assert_delta(&client.sidecar).await;
    (trellis, instances, client)
}

/// The sidecar's Envoy really runs with `api_type: DELTA_GRPC`.
async fn assert_delta(sidecar: &Sidecar) {
    assert_eq!(api_type(sidecar).await.unwrap(), "DELTA_GRPC");
}

fn split_config(v1: u32, v2: u32) -> ConfigDir {
    ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        (
            "routes.yaml",
            &weighted_routes("payment", &[("v1", v1), ("v2", v2)]),
        ),
    ])
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_removed_subset_leaves_envoy() {
    let config = split_config(50, 50);
    let (_trellis, _instances, client) = mesh(&config).await;
    let v2 = subset_cluster("v2", "payment");
    assert!(
        has_cluster(&client.sidecar, &v2).await,
        "{v2} never arrived"
    );
    // Routes first, then the rule: a route never names a missing cluster.
    let routes = weighted_routes("payment", &[("v1", 100)]);
    config.write("routes.yaml", &routes).unwrap();
    let rule = subsets_rule("payment", &["v1"]);
    config.write("rule.yaml", &rule).unwrap();
    let gone = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { (!has_cluster(&client.sidecar, &v2).await).then_some(()) },
    )
    .await;
    assert!(gone.is_ok(), "{v2} is still in Envoy's clusters");
    let tally = client.tally("payment", &[], 100, 2).await;
    assert_eq!(tally.get("payment v1"), 100, "{tally:?}");
}

/// Whether Envoy holds a dynamic cluster whose name contains `fragment`
/// (its `/config_dump`).
async fn has_cluster(sidecar: &Sidecar, fragment: &str) -> bool {
    let Ok(dump) = sidecar.config_dump().await else {
        return false;
    };
    active_clusters(&dump)
        .into_iter()
        .filter_map(|c| c["name"].as_str())
        .any(|name| name.contains(fragment))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_control_plane_restart_keeps_traffic_and_resyncs() {
    let config = split_config(0, 100);
    let (mut trellis, _instances, client) = mesh(&config).await;
    trellis.restart().await.unwrap();
    // Every sidecar reconnects (with initial_resource_versions) and ACKs.
    let synced = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let now = trellis.acked_versions("RouteConfiguration").await.ok()?;
            let ok = now.len() == 3 && now.values().all(|(a, s)| a.is_some() && a == s);
            ok.then_some(())
        },
    )
    .await;
    assert!(synced.is_ok(), "proxies did not resync:\n{}", trellis.log());
    let tally = client.tally("payment", &[], 100, 2).await;
    assert_eq!(tally.get("payment v2"), 100, "{tally:?}");
    // A change after the restart still arrives.
    config
        .write(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 100), ("v2", 0)]),
        )
        .unwrap();
    let moved = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async {
            let r = client.get("payment", &[]).await.ok()?;
            (r.version() == Some("v1")).then_some(())
        },
    )
    .await;
    assert!(moved.is_ok(), "route change after restart never arrived");
}
