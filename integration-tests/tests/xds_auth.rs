//! Authenticated xDS. A sidecar whose token is for one
//! service but which claims another gets nothing and is not registered;
//! missing, forged and malformed tokens are refused, logged and counted.
//! Revoked ones too (`trellis token --revoke`); expired: unit tests in
//! `serve::auth` and `ca::token`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
