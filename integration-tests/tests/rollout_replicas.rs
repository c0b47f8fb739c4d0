//! Staged config rollout with two replicas of `trellis serve` on one etcd,
//! real Envoy sidecars: the canary client connected to one replica, the
//! stable client to the other. Every replica serves the split the store
//! names, whichever one drives it. System tests (`make test-system`); they
//! fail, never skip, when etcd is missing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::etcd::Etcd;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::rollout::{admin, backend, outcome, policy, wait_backend};
use trellis_integration_tests::sidecar::SidecarSpec;
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

/// The lease TTL (`--restart-grace-period`): how long a dead driver's
/// election outlives it.
const LEASE: Duration = Duration::from_secs(4);

/// Two replicas reading one config directory, `payment` v1/v2 registered
/// through A (their bootstraps list B second), the canary client on B only
/// and the stable client on A.
struct Mesh {
    canary: MeshClient,
    stable: MeshClient,
    _v2: Instance,
    _v1: Instance,
    b: Trellis,
    a: Trellis,
    config: ConfigDir,
    _etcd: Etcd,
}

async fn replica(etcd: &Etcd, config: &ConfigDir, peer: Option<&Trellis>) -> Trellis {
    let opts = TrellisOptions {
        extra_args: vec![
            "--store".into(),
            etcd.store_url(),
            "--restart-grace-period".into(),
            format!("{}s", LEASE.as_secs()),
        ],
        share_state_of: peer.map(|p| p.state_dir().to_path_buf()),
        ..Default::default()
    };
    Trellis::start_with(config.path(), opts).await.unwrap()
}

/// A client sidecar on `via` (and on `then` if `via` fails: Envoy may
/// pick either when there are two).
async fn client(via: &Trellis, then: Option<&Trellis>, labels: &[(&str, &str)]) -> MeshClient {
    let app = Backend::start("client", "v1").await.unwrap();
    let mut spec = SidecarSpec::new("client", labels, app.port());
    if let Some(then) = then {
        spec.extra_args
            .extend(["--xds-addr".into(), then.xds_addr()]);
    }
    let sidecar = Sidecar::start_spec(via, spec).await.unwrap();
    MeshClient {
        app,
        sidecar,
        http: Client::new(),
    }
}

/// A `payment` instance registered through `via`, listing `then` second
/// (it outlives either replica).
async fn instance(via: &Trellis, then: &Trellis, version: &str) -> Instance {
    let backend = Backend::start("payment", version).await.unwrap();
    let mut spec = SidecarSpec::new("payment", &[("version", version)], backend.port());
    spec.extra_args
        .extend(["--xds-addr".into(), then.xds_addr()]);
    let sidecar = Sidecar::start_spec(via, spec).await.unwrap();
    Instance { backend, sidecar }
}

async fn view(t: &Trellis) -> Value {
    let body = t.admin("/debug/rollout").await.unwrap_or_default();
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Waits until `t`'s view satisfies `ok`; the view.
async fn wait_view(
    t: &Trellis,
    within: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let waited = wait_until(within, Duration::from_millis(10), || async {
        let v = view(t).await;
        ok(&v).then_some(v)
    })
    .await;
    match waited {
        Ok((v, _)) => v,
        Err(e) => panic!("{what}: {e}\n{}\n{}", view(t).await, t.log()),
    }
}

impl Mesh {
    /// With `fail_over` the stable client's bootstrap lists B after A.
    async fn start(bake: &str, fail_over: bool) -> Mesh {
        let etcd = Etcd::start(1).await.unwrap();
        let config = ConfigDir::with(&[
            ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
            (
                "routes.yaml",
                &weighted_routes("payment", &[("v1", 100), ("v2", 0)]),
            ),
            ("policy.yaml", &policy(bake)),
        ])
        .unwrap();
        let a = replica(&etcd, &config, None).await;
        // A starts first and takes the election; B follows.
        let driver = a.xds_addr();
        wait_view(&a, Duration::from_secs(10), "A drives", |v| {
            v["driver"] == driver.as_str()
        })
        .await;
        let b = replica(&etcd, &config, Some(&a)).await;
        wait_view(&b, Duration::from_secs(10), "B knows A drives", |v| {
            v["driver"] == driver.as_str() && v["last_good"].is_u64()
        })
        .await;
        let v1 = instance(&a, &b, "v1").await;
        let v2 = instance(&a, &b, "v2").await;
        let canary = client(&b, None, &[("version", "v1"), ("track", "canary")]).await;
        let stable = client(&a, fail_over.then_some(&b), &[("version", "v1")]).await;
        for c in [&canary, &stable] {
            for subset in ["v1", "v2"] {
                c.wait_endpoints(&subset_cluster(subset, "payment"), 1)
                    .await
                    .unwrap();
            }
        }
        Mesh {
            canary,
            stable,
            _v2: v2,
            _v1: v1,
            b,
            a,
            config,
            _etcd: etcd,
        }
    }

    fn edit(&self, routes: &str) {
        self.config.replace("routes.yaml", routes).unwrap();
    }
}

/// The canary's Envoy's count of rejected xDS updates.
async fn rejected(c: &MeshClient) -> u64 {
    let stats: BTreeMap<String, u64> = c.sidecar.stats().await.unwrap_or_default();
    (stats.iter())
        .filter(|(k, _)| k.ends_with("update_rejected"))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd): make test-system"]
async fn a_change_bakes_on_the_canary_of_another_replica_and_survives_the_driver_dying() {
    let mut mesh = Mesh::start("12s", true).await;
    let changed = Instant::now();
    mesh.edit(&weighted_routes("payment", &[("v1", 0), ("v2", 100)]));
    // The canary is B's; A drives: the split reaches it through the store.
    wait_backend(
        &mesh.canary,
        "payment v2",
        Duration::from_secs(5),
        "canary on B",
    )
    .await;
    let on_b = view(&mesh.b).await;
    let on_a = view(&mesh.a).await;
    assert_eq!(on_b["current"]["state"], "baking", "{on_b}");
    assert_eq!(
        on_a["current"]["generation"], on_b["current"]["generation"],
        "{on_a}\n{on_b}"
    );
    assert_eq!(
        on_a["current"]["bake_ends_at"],
        on_b["current"]["bake_ends_at"]
    );
    let generation = on_b["current"]["generation"].as_u64().unwrap();
    let tally = mesh.stable.tally("payment", &[], 20, 2).await;
    assert_eq!(
        tally.get("payment v1"),
        20,
        "stable on A during the bake: {tally:?}"
    );
    // The driver dies mid-bake; B takes over within the lease TTL.
    let killed = Instant::now();
    mesh.a.kill();
    let me = mesh.b.xds_addr();
    let taken = wait_view(
        &mesh.b,
        LEASE + Duration::from_secs(5),
        "B takes over",
        |v| v["driver"] == me.as_str(),
    )
    .await;
    let takeover = killed.elapsed();
    assert_eq!(
        taken["current"]["generation"], generation,
        "the bake goes on: {taken}"
    );
    eprintln!("driver killed -> B drives: {takeover:?} (lease TTL {LEASE:?})");
    // A restarted replica resumes the bake from the store, B still drives.
    mesh.a.start_again().await.unwrap();
    let resumed = wait_view(&mesh.a, Duration::from_secs(5), "A follows again", |v| {
        v["current"]["generation"] == generation
    })
    .await;
    assert_eq!(
        resumed["current"]["bake_ends_at"],
        on_b["current"]["bake_ends_at"]
    );
    assert_eq!(resumed["driver"], me.as_str(), "{resumed}");
    // The stable client moved to B and still gets the good generation.
    let stable_id = mesh.stable.sidecar.spec.node_id.clone();
    let (acked, dbg) = mesh.b.wait_all_acked(&stable_id).await;
    assert!(acked, "stable never synced on B: {dbg}");
    if changed.elapsed() + Duration::from_secs(1) < Duration::from_secs(12) {
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
        "stable after the bake",
    )
    .await;
    assert!(
        changed.elapsed() >= Duration::from_secs(11),
        "promoted before the bake ended"
    );
    let done = view(&mesh.b).await;
    assert_eq!(
        outcome(&done),
        (Some(generation), Some("promoted")),
        "{done}"
    );
    wait::wait_for(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { mesh.b.log().contains("rollout promoted") },
    )
    .await
    .expect("B promoted it and logs it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (etcd): make test-system"]
async fn a_nack_on_one_replica_aborts_and_never_reaches_the_other_replicas_proxies() {
    let mesh = Mesh::start("10m", false).await;
    let before = rejected(&mesh.canary).await;
    mesh.edit(NACKED_ROUTES);
    // Polled together: the canary's NACK (Envoy's counter), and the abort
    // as the driving replica A shows it.
    let (mut nacked, mut aborted) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(15);
    while aborted.is_none() && Instant::now() < deadline {
        let dump = mesh.stable.routes_dump().await;
        assert!(
            !dump.contains("alpha|beta"),
            "the stable proxy on A got the canary's change"
        );
        if nacked.is_none() && rejected(&mesh.canary).await > before {
            nacked = Some(Instant::now());
        }
        let v = view(&mesh.a).await;
        if outcome(&v).1 == Some("failed") {
            aborted = Some((Instant::now(), v));
        }
    }
    let (aborted_at, v) = aborted.expect("the canary's NACK on B never aborted the rollout");
    let nacked = nacked.unwrap_or(aborted_at);
    let reason = v["history"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("rejected the RouteConfiguration"), "{v}");
    assert!(reason.contains(&mesh.canary.sidecar.spec.node_id), "{v}");
    eprintln!(
        "canary NACK on B -> abort seen on A: {:?} (polling every ~10 ms)",
        aborted_at.saturating_duration_since(nacked)
    );
    // B logs once its write returns, which may be after A saw it.
    wait::wait_for(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { mesh.b.log().contains("rollout aborted") },
    )
    .await
    .expect("B wrote the abort and logs it");
    assert!(!mesh.stable.routes_dump().await.contains("alpha|beta"));
    wait_backend(
        &mesh.canary,
        "payment v1",
        Duration::from_secs(5),
        "canary after abort",
    )
    .await;
    // Commands work against any replica: status on A, promote on B (the
    // one not driving) after the next edit, nothing to abort after it.
    let (code, out, err) =
        run_trellis(&["rollout", "status", "--admin-addr", &admin(&mesh.a)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("failed"), "{out}");
    let driver = format!("driven by replica: {}", mesh.a.xds_addr());
    assert!(out.contains(&driver), "{out}");
    mesh.edit(&weighted_routes("payment", &[("v1", 0), ("v2", 100)]));
    wait_backend(
        &mesh.canary,
        "payment v2",
        Duration::from_secs(5),
        "canary, next edit",
    )
    .await;
    assert_eq!(backend(&mesh.stable).await.as_deref(), Some("payment v1"));
    let (code, out, err) =
        run_trellis(&["rollout", "promote", "--admin-addr", &admin(&mesh.b)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    wait_backend(
        &mesh.stable,
        "payment v2",
        Duration::from_secs(5),
        "stable after promote on B",
    )
    .await;
    assert_eq!(outcome(&view(&mesh.a).await).1, Some("promoted"));
    let (code, _, err) =
        run_trellis(&["rollout", "abort", "--admin-addr", &admin(&mesh.b)]).unwrap();
    assert_eq!(code, 1, "nothing left to abort: {err}");
}
