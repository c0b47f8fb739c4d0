//! Staged config rollout with real Envoy sidecars: two client sidecars, one
//! in the canary set (`track: canary`) and one not, calling `payment` v1/v2.
//! A new generation reaches the canary first and everyone after the bake;
//! one the canary's Envoy rejects is rolled back and never leaves the
//! canary set; a restart during the bake resumes it.

use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::rollout::{admin, backend, outcome, policy, wait_backend};
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

/// The mesh: `payment` v1 and v2, a canary client and a stable client.
struct RolloutMesh {
    canary: MeshClient,
    stable: MeshClient,
    _v2: Instance,
    _v1: Instance,
    trellis: Trellis,
    config: ConfigDir,
}

async fn client(trellis: &Trellis, labels: &[(&str, &str)]) -> MeshClient {
    let app = Backend::start("client", "v1").await.unwrap();
    let sidecar = Sidecar::start(trellis, "client", labels, app.port())
        .await
        .unwrap();
    MeshClient {
        app,
        sidecar,
        http: Client::new(),
    }
}

impl RolloutMesh {
    /// All traffic to v1, the policy with `bake`.
    async fn start(bake: &str, v2: Behavior) -> Self {
        Self::start_with(bake, v2, TrellisOptions::default()).await
    }

    async fn start_with(bake: &str, v2: Behavior, opts: TrellisOptions) -> Self {
        let config = ConfigDir::with(&[
            ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
            (
                "routes.yaml",
                &weighted_routes("payment", &[("v1", 100), ("v2", 0)]),
            ),
            ("policy.yaml", &policy(bake)),
        ])
        .unwrap();
        let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
        let v1 = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
            .await
            .unwrap();
        let v2 = Instance::start(&trellis, "payment", "v2", v2)
            .await
            .unwrap();
        let canary = client(&trellis, &[("version", "v1"), ("track", "canary")]).await;
        let stable = client(&trellis, &[("version", "v1")]).await;
        for c in [&canary, &stable] {
            for subset in ["v1", "v2"] {
                c.wait_endpoints(&subset_cluster(subset, "payment"), 1)
                    .await
                    .unwrap();
            }
        }
        RolloutMesh {
            canary,
            stable,
            _v2: v2,
            _v1: v1,
            trellis,
            config,
        }
    }

    async fn rollout(&self) -> Value {
        let body = self.trellis.admin("/debug/rollout").await.unwrap();
        serde_json::from_str(&body).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_change_reaches_the_canary_first_and_everyone_after_the_bake() {
    let mesh = RolloutMesh::start("6s", Behavior::Ok).await;
    assert_eq!(backend(&mesh.stable).await.as_deref(), Some("payment v1"));
    let changed = Instant::now();
    mesh.config
        .replace(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 0), ("v2", 100)]),
        )
        .unwrap();
    wait_backend(&mesh.canary, "payment v2", Duration::from_secs(5), "canary").await;
    let view = mesh.rollout().await;
    let current = &view["current"];
    assert_eq!(current["state"], "baking", "{view}");
    assert_eq!(
        current["canary"].as_array().map(Vec::len),
        Some(1),
        "{view}"
    );
    assert_eq!(
        current["canary"][0],
        mesh.canary.sidecar.spec.node_id.as_str()
    );
    // Outside the canary set the previous generation holds for the bake.
    let tally = mesh.stable.tally("payment", &[], 30, 2).await;
    assert_eq!(
        tally.get("payment v1"),
        30,
        "stable during the bake: {tally:?}"
    );
    assert!(
        changed.elapsed() < Duration::from_secs(5),
        "bake checked too late"
    );
    wait_backend(
        &mesh.stable,
        "payment v2",
        Duration::from_secs(15),
        "stable after the bake",
    )
    .await;
    assert!(
        changed.elapsed() >= Duration::from_secs(5),
        "promoted before the bake ended"
    );
    let view = mesh.rollout().await;
    assert!(view["current"].is_null(), "{view}");
    assert_eq!(outcome(&view).1, Some("promoted"), "{view}");
    let metrics = mesh.trellis.metrics().await.unwrap();
    assert!(
        metrics
            .contains("trellis_rollout_generations_total{outcome=\"promoted\",cause=\"bake\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_envoy_rejects_never_leaves_the_canary_set() {
    let mesh = RolloutMesh::start("10m", Behavior::Ok).await;
    let stable_dump = || mesh.stable.routes_dump();
    mesh.config.replace("routes.yaml", NACKED_ROUTES).unwrap();
    // Until the rollout is aborted, the stable proxy's routes never hold
    // the rejected regex.
    let (view, _) = wait::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let dump = stable_dump().await;
            assert!(
                !dump.contains("alpha|beta"),
                "the stable proxy got the canary's change: {dump}"
            );
            let view = mesh.rollout().await;
            (outcome(&view).1 == Some("failed")).then_some(view)
        },
    )
    .await
    .expect("the canary's NACK never aborted the rollout");
    let reason = view["history"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("rejected the RouteConfiguration"), "{view}");
    assert!(reason.contains(&mesh.canary.sidecar.spec.node_id), "{view}");
    assert!(view["current"].is_null(), "{view}");
    assert!(!stable_dump().await.contains("alpha|beta"));
    // The canary is back on the last good generation and serves v1; its
    // Envoy holds no rejected routes.
    wait_backend(
        &mesh.canary,
        "payment v1",
        Duration::from_secs(5),
        "canary after abort",
    )
    .await;
    let (status, text) = status_text(&mesh.trellis);
    assert_eq!(status, 0, "{text}");
    assert!(
        text.contains("failed") && text.contains("rejected the RouteConfiguration"),
        "{text}"
    );
    assert!(
        mesh.trellis.log().contains("rollout aborted"),
        "no log line"
    );
    let metrics = mesh.trellis.metrics().await.unwrap();
    assert!(
        metrics.contains("trellis_rollout_generations_total{outcome=\"failed\",cause=\"nack\"} 1"),
        "{metrics}"
    );
    // The config dir is untouched; the next edit starts a new rollout.
    assert_eq!(
        std::fs::read_to_string(mesh.config.file("routes.yaml")).unwrap(),
        NACKED_ROUTES
    );
    mesh.config
        .replace(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 0), ("v2", 100)]),
        )
        .unwrap();
    wait_backend(
        &mesh.canary,
        "payment v2",
        Duration::from_secs(5),
        "canary, next edit",
    )
    .await;
    assert_eq!(backend(&mesh.stable).await.as_deref(), Some("payment v1"));
    // An operator's abort rolls that one back too.
    let (code, out, err) =
        run_trellis(&["rollout", "abort", "--admin-addr", &admin(&mesh.trellis)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    wait_backend(
        &mesh.canary,
        "payment v1",
        Duration::from_secs(5),
        "canary after operator abort",
    )
    .await;
    let (code, _, err) =
        run_trellis(&["rollout", "abort", "--admin-addr", &admin(&mesh.trellis)]).unwrap();
    assert_eq!(code, 1, "nothing left to abort: {err}");
}

fn status_text(trellis: &Trellis) -> (i32, String) {
    let (code, out, err) =
        run_trellis(&["rollout", "status", "--admin-addr", &admin(trellis)]).unwrap();
    (code, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_the_bake_resumes_it() {
    let mut mesh = RolloutMesh::start("12s", Behavior::Ok).await;
    mesh.config
        .replace(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 0), ("v2", 100)]),
        )
        .unwrap();
    wait_backend(&mesh.canary, "payment v2", Duration::from_secs(5), "canary").await;
    let before = mesh.rollout().await["current"].clone();
    assert_eq!(before["state"], "baking");
    mesh.trellis.restart().await.unwrap();
    let after = mesh.rollout().await;
    assert_eq!(
        after["current"]["generation"], before["generation"],
        "{after}"
    );
    assert_eq!(
        after["current"]["bake_ends_at"], before["bake_ends_at"],
        "{after}"
    );
    // Both sidecars reconnect; each keeps the generation assigned to it.
    for c in [&mesh.canary, &mesh.stable] {
        let node = c.sidecar.spec.node_id.clone();
        let (acked, view) = mesh.trellis.wait_all_acked(&node).await;
        assert!(acked, "{node} never synced after the restart: {view}");
    }
    assert_eq!(backend(&mesh.canary).await.as_deref(), Some("payment v2"));
    let ends = before["bake_ends_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now + 1 < ends {
        assert_eq!(
            backend(&mesh.stable).await.as_deref(),
            Some("payment v1"),
            "promoted early"
        );
    }
    wait_backend(
        &mesh.stable,
        "payment v2",
        Duration::from_secs(20),
        "stable after the resumed bake",
    )
    .await;
    let view = mesh.rollout().await;
    assert_eq!(
        outcome(&view),
        (before["generation"].as_u64(), Some("promoted")),
        "{view}"
    );
}

/// The change routes everything to v2, whose backend answers 503: the
/// canary's error rate rises, and the rollout is rolled back from the
/// scraped sidecar stats within the bake time, while the stable proxy only
/// ever reaches v1. Prints the time from the canary's first error to the
/// abort and to its first good answer after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_failing_subset_is_rolled_back_on_the_canary_error_rate() {
    let opts = TrellisOptions {
        extra_args: ["--stats-scrape-interval", "500ms"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let bake = Duration::from_secs(60);
    let mesh = RolloutMesh::start_with("60s", Behavior::Always(503), opts).await;
    let changed = Instant::now();
    mesh.config
        .replace(
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 0), ("v2", 100)]),
        )
        .unwrap();
    let (mut first_error, mut aborted, mut recovered) = (None, None, None);
    while changed.elapsed() < bake && recovered.is_none() {
        let reply = mesh.canary.get("payment", &[]).await.ok();
        let now = Instant::now();
        if first_error.is_none() && reply.as_ref().is_some_and(|r| r.status >= 500) {
            first_error = Some(now);
        }
        let stable = mesh.stable.get("payment", &[]).await.ok();
        assert_eq!(
            stable.as_ref().map(|r| (r.status, r.backend.clone())),
            Some((200, Some("payment v1".to_string()))),
            "the stable proxy saw the canary's change"
        );
        if first_error.is_some() && aborted.is_none() {
            let view = mesh.rollout().await;
            if outcome(&view).1 == Some("failed") {
                aborted = Some((Instant::now(), view));
            }
        }
        let back =
            reply.is_some_and(|r| r.status == 200 && r.backend.as_deref() == Some("payment v1"));
        if aborted.is_some() && back {
            recovered = Some(now);
        }
    }
    let first_error = first_error.expect("the canary never saw an error from v2");
    let (aborted_at, view) = aborted.expect("the rollout was not aborted within the bake time");
    let recovered = recovered.expect("the canary never got v1 back");
    let reason = view["history"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("canary error rate"), "{view}");
    let metrics = mesh.trellis.metrics().await.unwrap();
    assert!(
        metrics.contains(
            "trellis_rollout_generations_total{outcome=\"failed\",cause=\"error_rate\"} 1"
        ),
        "{metrics}"
    );
    println!(
        "rollback: first canary error -> abort {:?}, -> canary answered by v1 again {:?} (scrape interval 500ms, minRequests 20; {reason})",
        aborted_at - first_error,
        recovered - first_error
    );
    assert!(recovered - first_error < bake);
}
