//! Authenticated xDS. A sidecar whose token is for one
//! service but which claims another gets nothing and is not registered;
//! missing, forged and malformed tokens are refused, logged and counted.
//! Revoked ones too (`trellis token --revoke`); expired: unit tests in
//! `serve::auth`, `serve::tests::revocation` and `ca::token`. Revoking the
//! token of a running sidecar cuts its open stream with UNAUTHENTICATED
//! within the documented bound, and its certificate is never renewed again.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trellis_integration_tests::envoy::{envoy_bin, SidecarSpec};
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

const REFUSAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts Envoy for `spec` without waiting for it to be ready: a refused
/// sidecar never gets its listeners.
fn start_envoy(trellis: &Trellis, spec: &SidecarSpec, dir: &Path) -> ChildGuard {
    let file = dir.join(format!("{}.yaml", spec.node_id));
    spec.write_bootstrap(&trellis.xds_addr(), &file).unwrap();
    let mut cmd = Command::new(envoy_bin());
    cmd.arg("-c")
        .arg(&file)
        .args(["--disable-hot-restart", "--concurrency", "1"])
        .args(["--log-level", "warn"]);
    let log = dir.join(format!("{}.log", spec.node_id));
    ChildGuard::spawn(&spec.node_id, cmd, &log).unwrap()
}

/// `trellis_xds_streams_refused_total{reason="REASON"}`.
async fn refused(trellis: &Trellis, reason: &str) -> u64 {
    let text = trellis.metrics().await.unwrap_or_default();
    let key = format!("trellis_xds_streams_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_refused(trellis: &Trellis, reason: &str) {
    wait_until(REFUSAL_TIMEOUT, Duration::from_millis(50), || async {
        (refused(trellis, reason).await >= 1).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("no refusal {reason}: {e}\n{}", trellis.log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_must_match_the_node() {
    let config = ConfigDir::new().unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The genuine payment sidecar, with its own token.
    let payment = Sidecar::start(&trellis, "payment", &[("version", "v1")], free_port())
        .await
        .unwrap();

    // A token for ledger, in a sidecar that claims to be payment.
    let mut spoof = SidecarSpec::new("payment", &[("version", "v1")], free_port());
    let ledger_token = dir.path().join("ledger.token");
    trellis
        .write_token("ledger", "ledger", "1h", &ledger_token)
        .unwrap();
    spoof.token_file = Some(ledger_token.clone());
    let _spoof = start_envoy(&trellis, &spoof, dir.path());

    // No token at all.
    let missing = SidecarSpec::new("ledger", &[], free_port());
    let _missing = start_envoy(&trellis, &missing, dir.path());

    // A token signed with another control plane's key.
    let other_state = tempfile::tempdir().unwrap();
    let state = other_state.path().display().to_string();
    let (code, forged, _) =
        run_trellis(&["token", "--service", "ledger", "--state-dir", &state]).unwrap();
    assert_eq!(code, 0);
    let forged_file = dir.path().join("forged.token");
    std::fs::write(&forged_file, forged.trim()).unwrap();
    let mut forged_spec = SidecarSpec::new("ledger", &[], free_port());
    forged_spec.token_file = Some(forged_file);
    let _forged = start_envoy(&trellis, &forged_spec, dir.path());

    // Not a token.
    let junk = dir.path().join("junk.token");
    std::fs::write(&junk, "not-a-token").unwrap();
    let mut junk_spec = SidecarSpec::new("ledger", &[], free_port());
    junk_spec.token_file = Some(junk);
    let _junk = start_envoy(&trellis, &junk_spec, dir.path());

    // A valid ledger token on payment's node id: refused, or the stream
    // would be handed payment's current snapshot.
    let mut hijack = SidecarSpec::new("ledger", &[], free_port());
    hijack.node_id = payment.spec.node_id.clone();
    hijack.token_file = Some(ledger_token.clone());
    let _hijack = start_envoy(&trellis, &hijack, dir.path());

    // A revoked token (`trellis token --revoke JTI`).
    let state = trellis.state_dir().display().to_string();
    let mint = ["token", "--service", "ledger", "--state-dir", &state];
    let (code, revoked, stderr) = run_trellis(&mint).unwrap();
    assert_eq!(code, 0, "{stderr}");
    let jti = stderr
        .split("(id ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("trellis token prints the token id on stderr");
    let (code, _, stderr) =
        run_trellis(&["token", "--revoke", jti, "--state-dir", &state]).unwrap();
    assert_eq!(code, 0, "{stderr}");
    let revoked_file = dir.path().join("revoked.token");
    std::fs::write(&revoked_file, revoked.trim()).unwrap();
    let mut revoked_spec = SidecarSpec::new("ledger", &[], free_port());
    revoked_spec.token_file = Some(revoked_file);
    let _revoked = start_envoy(&trellis, &revoked_spec, dir.path());

    for reason in [
        "revoked",
        "node_id_conflict",
        "identity_mismatch",
        "missing_token",
        "bad_signature",
        "malformed",
    ] {
        wait_refused(&trellis, reason).await;
    }

    // None of them is registered or holds a certificate; the genuine one does.
    let proxies = trellis.debug_proxies().await.unwrap().to_string();
    let ca = trellis.admin("/debug/ca").await.unwrap();
    for spec in [&spoof, &missing, &forged_spec, &junk_spec, &revoked_spec] {
        assert!(
            !proxies.contains(&spec.node_id),
            "{} registered",
            spec.node_id
        );
        assert!(
            !ca.contains(&spec.node_id),
            "{} got a certificate",
            spec.node_id
        );
    }
    assert!(proxies.contains(&payment.spec.node_id), "{proxies}");
    assert!(ca.contains(&payment.spec.node_id), "{ca}");
    assert!(!ca.contains("PRIVATE KEY"), "/debug/ca shows a key");

    // Refusals are logged with the node id and reason, never the token.
    let log = trellis.log();
    let token = std::fs::read_to_string(&ledger_token).unwrap();
    assert!(log.contains(&spoof.node_id) && log.contains("identity_mismatch"));
    assert!(!log.contains(token.trim()), "the log shows a token");
    let signature = token.trim().rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "the log shows a token signature");
    assert!(!log.contains("PRIVATE KEY"));
}

/// What `trellis serve` documents: a revocation reaches open streams within
/// one poll of the revocation list (1 s); the rest is slack for a loaded host.
const CUT_BOUND: Duration = Duration::from_secs(3);

/// Mints a token for `service` with `trellis token`: (token, jti).
fn mint(trellis: &Trellis, service: &str) -> (String, String) {
    let state = trellis.state_dir().display().to_string();
    let (code, token, stderr) =
        run_trellis(&["token", "--service", service, "--state-dir", &state]).unwrap();
    assert_eq!(code, 0, "{stderr}");
    let jti = stderr
        .split("(id ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("trellis token prints the token id on stderr");
    (token.trim().to_string(), jti.to_string())
}

/// Serial numbers of the workload certificates Envoy holds (`/certs`).
async fn leaf_serials(envoy: &Envoy) -> BTreeSet<String> {
    let certs: serde_json::Value =
        serde_json::from_str(&envoy.admin("/certs").await.unwrap_or_default()).unwrap_or_default();
    let chains = certs["certificates"].as_array().into_iter().flatten();
    chains
        .flat_map(|c| c["cert_chain"].as_array().into_iter().flatten())
        .filter_map(|cert| cert["serial_number"].as_str().map(str::to_string))
        .collect()
}

/// `trellis_ca_certificates_issued_total`.
async fn issued(trellis: &Trellis) -> u64 {
    let text = trellis.metrics().await.unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("trellis_ca_certificates_issued_total ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Envoy's view of its ADS stream: `control_plane.connected_state` (1 while
/// a stream is open) and the streams to the control plane that ended.
async fn ads_state(envoy: &Envoy) -> (u64, u64) {
    let stats = envoy.stats().await.unwrap_or_default();
    let stat = |name: &str| stats.get(name).copied().unwrap_or(0);
    (
        stat("control_plane.connected_state"),
        stat("cluster.xds_cluster.upstream_rq_completed"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_running_sidecars_token_cuts_its_stream_and_its_renewals() {
    // Leaves of 10 s (the shortest allowed) are renewed every 5 s.
    let mesh = "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n  \
                certificates:\n    workloadTTL: 10s\n";
    let config = ConfigDir::with(&[("mesh.yaml", mesh)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (token, jti) = mint(&trellis, "payment");
    let token_file = dir.path().join("payment.token");
    std::fs::write(&token_file, &token).unwrap();
    let mut spec = SidecarSpec::new("payment", &[("version", "v1")], free_port());
    spec.token_file = Some(token_file);
    let node = spec.node_id.clone();
    let sidecar = Sidecar::start_spec(&trellis, spec).await.unwrap();

    // Before the revocation the leaf is renewed over the open stream.
    let seen = std::sync::Mutex::new(BTreeSet::new());
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let now = leaf_serials(sidecar.envoy()).await;
            let mut seen = seen.lock().unwrap();
            seen.extend(now);
            (seen.len() >= 2).then_some(())
        },
    )
    .await
    .expect("the sidecar's leaf is renewed at half-life");
    let (connected, ended_before) = ads_state(sidecar.envoy()).await;
    assert_eq!(connected, 1, "Envoy has its stream open");

    let state = trellis.state_dir().display().to_string();
    let (code, _, stderr) =
        run_trellis(&["token", "--revoke", &jti, "--state-dir", &state]).unwrap();
    assert_eq!(code, 0, "{stderr}");
    // The revocation list is written when the command returns.
    let revoked_at = Instant::now();
    let issued_then = issued(&trellis).await;
    let held = leaf_serials(sidecar.envoy()).await;

    // Envoy sees its stream end with UNAUTHENTICATED (16) within the bound,
    // and is refused when it reconnects: it stays disconnected.
    // `DeltaAggregatedResources` or `StreamAggregatedResources` by ADS mode.
    let closed = "AggregatedResources gRPC config stream to xds_cluster closed: 16, \
                  token%20revoked;%20the%20stream%20is%20closed";
    wait_until(CUT_BOUND * 2, Duration::from_millis(20), || async {
        let (connected, ended) = ads_state(sidecar.envoy()).await;
        let logged = sidecar.envoy().log().contains(closed);
        (connected == 0 && ended > ended_before && logged).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("the stream was not cut: {e}\n{}", trellis.log()));
    let cut_after = revoked_at.elapsed();
    eprintln!("stream cut {cut_after:?} after the revocation");
    assert!(cut_after <= CUT_BOUND, "cut after {cut_after:?}");
    assert!(refused(&trellis, "revoked").await >= 1);
    assert!(
        trellis.log().contains("cutting an ADS stream"),
        "{}",
        trellis.log()
    );

    // Deregistered at once; over two more renewal periods no leaf is
    // issued to it, and Envoy keeps the one it had.
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            let proxies = trellis.debug_proxies().await.ok()?.to_string();
            (!proxies.contains(&node)).then_some(())
        },
    )
    .await
    .expect("the revoked sidecar is deregistered");
    let watch_until = revoked_at + Duration::from_secs(11);
    while Instant::now() < watch_until {
        let ca = trellis.admin("/debug/ca").await.unwrap();
        assert!(!ca.contains(&node), "a leaf is still kept for {node}: {ca}");
        let now = issued(&trellis).await;
        assert_eq!(now, issued_then, "a leaf was issued after the revocation");
        assert_eq!(leaf_serials(sidecar.envoy()).await, held);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Its reconnects are refused at open.
    assert!(refused(&trellis, "revoked").await >= 2);
}

/// A hand-edited bootstrap whose inbound port is its outbound port (which
/// `trellis bootstrap` refuses to write): its stream is refused with both
/// keys named, and it is not registered. Before, it was served, and Envoy
/// refused every listener update after its outbound listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_two_listeners_on_one_address_is_refused_by_name() {
    let config = ConfigDir::new().unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SidecarSpec::new("ledger", &[], free_port());
    let token = dir.path().join("ledger.token");
    trellis
        .write_token("ledger", "ledger", "1h", &token)
        .unwrap();
    spec.token_file = Some(token);
    let file = dir.path().join(format!("{}.yaml", spec.node_id));
    spec.write_bootstrap(&trellis.xds_addr(), &file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let (from, to) = (
        format!("inbound_port: {}\n", spec.inbound_port),
        format!("inbound_port: {}\n", spec.outbound_port),
    );
    assert!(text.contains(&from), "{text}");
    std::fs::write(&file, text.replace(&from, &to)).unwrap();
    let mut cmd = Command::new(envoy_bin());
    cmd.arg("-c").arg(&file);
    cmd.args([
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--log-level",
        "warn",
    ]);
    let log = dir.path().join("envoy.log");
    let _envoy = ChildGuard::spawn(&spec.node_id, cmd, &log).unwrap();
    wait_refused(&trellis, "bad_node").await;
    let said = format!(
        "node metadata outbound_port (127.0.0.1:{p}) and inbound_port (127.0.0.1:{p}) cannot both listen",
        p = spec.outbound_port
    );
    assert!(trellis.log().contains(&said), "{}", trellis.log());
    let proxies = trellis.debug_proxies().await.unwrap().to_string();
    assert!(!proxies.contains(&spec.node_id), "{proxies}");
}
