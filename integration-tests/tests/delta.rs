//! The core scenarios with every sidecar on delta (incremental) ADS
//! (`trellis bootstrap --ads-mode delta`, `api_type: DELTA_GRPC`): split,
//! header match, hot reload, auto-registration, mTLS STRICT with secrets over
//! delta, and a control-plane restart (Envoy reconnects with
//! `initial_resource_versions`). The same scenarios on state-of-the-world
//! ADS are the other test files; `TRELLIS_TEST_ADS_MODE=delta` runs those
//! on delta too.

use std::time::{Duration, Instant};

use trellis_integration_tests::ads_mode::use_ads_mode;
use trellis_integration_tests::backend::XFCC_ECHO_HEADER;
use trellis_integration_tests::canary_mesh::HEADER_ROUTES;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::*;

const STRICT: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  \
     name: default\n  namespace: istio-system\nspec:\n  mtls:\n    mode: STRICT\n";

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
    let dump = sidecar.config_dump().await.unwrap();
    let api_type = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| c["bootstrap"]["dynamic_resources"]["ads_config"]["api_type"].as_str())
        .map(str::to_string);
    assert_eq!(api_type.as_deref(), Some("DELTA_GRPC"));
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
async fn delta_weighted_split_90_10() {
    let config = split_config(90, 10);
    let (_trellis, _instances, client) = mesh(&config).await;
    let tally = client.tally("payment", &[], 2000, 8).await;
    assert_eq!(tally.ok(), 2000, "every request must succeed: {tally:?}");
    let v2_share = tally.get("payment v2") as f64 / 2000.0;
    assert!(
        (0.075..=0.125).contains(&v2_share),
        "v2 share {v2_share:.3}: {tally:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_header_match() {
    let rule = subsets_rule("payment", &["v1", "v2"]);
    let config = ConfigDir::with(&[("rule.yaml", &rule), ("routes.yaml", HEADER_ROUTES)]).unwrap();
    let (_trellis, _instances, client) = mesh(&config).await;
    let jason = client
        .tally("payment", &[("end-user", "jason")], 200, 4)
        .await;
    assert_eq!(jason.get("payment v2"), 200, "jason: {jason:?}");
    let others = client
        .tally("payment", &[("end-user", "mary")], 200, 4)
        .await;
    assert_eq!(others.get("payment v1"), 200, "mary: {others:?}");
}

/// Waits until every proxy in `before` ACKed a new route version and holds
/// no newer unACKed one; returns how long that took.
async fn routes_acked(
    trellis: &Trellis,
    before: &std::collections::BTreeMap<String, (Option<String>, Option<String>)>,
) -> Duration {
    let step = Duration::from_millis(2);
    let (_, took) = wait_until(Duration::from_secs(5), step, || async {
        let now = trellis.acked_versions("RouteConfiguration").await.ok()?;
        let done = before.iter().all(|(node, (old, _))| {
            now.get(node)
                .is_some_and(|(acked, sent)| acked != old && acked.is_some() && acked == sent)
        });
        done.then_some(())
    })
    .await
    .expect("the proxies never ACKed the new routes");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_hot_reload_reaches_envoy_within_a_second() {
    let config = split_config(90, 10);
    let (trellis, _instances, client) = mesh(&config).await;
    let before = trellis.acked_versions("RouteConfiguration").await.unwrap();
    assert_eq!(before.len(), 3, "3 connected proxies: {before:?}");
    let routes = weighted_routes("payment", &[("v1", 0), ("v2", 100)]);
    config.write("routes.yaml", &routes).unwrap();
    let acked = routes_acked(&trellis, &before).await;
    eprintln!("delta: reload-to-ACK {acked:?}");
    assert!(
        acked <= Duration::from_secs(1),
        "reload-to-ACK took {acked:?}"
    );
    let after = client.tally("payment", &[], 200, 4).await;
    assert_eq!(after.get("payment v2"), 200, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_instance_joins_and_leaves() {
    use_ads_mode("delta");
    let grace = Duration::from_secs(1);
    let config = split_config(0, 100);
    let opts = TrellisOptions {
        grace_period: Some(grace),
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    let start = |name| Instance::start_named(&trellis, "payment", name, "v2", Behavior::Ok);
    let first = start("first").await.unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    let cluster = subset_cluster("v2", "payment");
    client.wait_endpoints(&cluster, 1).await.unwrap();
    let second = start("second").await.unwrap();
    client.wait_endpoints(&cluster, 2).await.unwrap();
    let both = client.tally("payment", &[], 100, 2).await;
    assert_eq!(both.ok(), 100, "{both:?}");
    assert!(
        both.get("second v2") >= 20 && both.get("first v2") >= 20,
        "{both:?}"
    );
    let killed_at = Instant::now();
    second.kill();
    client.wait_endpoints(&cluster, 1).await.unwrap();
    let left = killed_at.elapsed();
    assert!(
        left >= grace.mul_f64(0.8),
        "left before the grace period: {left:?}"
    );
    let after = client.tally("payment", &[], 100, 2).await;
    assert_eq!(after.get("first v2"), 100, "{after:?}");
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_strict_mtls_with_secrets_over_delta() {
    let config = ConfigDir::with(&[("peer-auth.yaml", STRICT)]).unwrap();
    use_ads_mode("delta");
    let trellis = Trellis::start(config.path()).await.unwrap();
    let payment = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    client
        .wait_endpoints(&subset_cluster("", "payment"), 1)
        .await
        .unwrap();
    assert_delta(&payment.sidecar).await;
    let want = "URI=spiffe://cluster.local/ns/default/sa/client";
    let xfcc = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let reply = client.get("payment", &[]).await.ok()?;
            (reply.status == 200).then(|| reply.headers.get(XFCC_ECHO_HEADER).cloned())
        },
    )
    .await
    .map(|(v, _)| v.unwrap_or_default())
    .expect("a request through the client's sidecar succeeds");
    assert!(xfcc.contains(want), "XFCC {xfcc:?} lacks {want}");
    let plaintext = Client::new()
        .get(payment.sidecar.spec.inbound_port, "payment", "/", &[])
        .await;
    assert!(plaintext.is_err(), "STRICT must refuse plaintext");
    let tally = client.tally("payment", &[], 50, 2).await;
    assert_eq!(tally.ok(), 50, "{tally:?}");
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
