//! ADS over TLS (`trellis serve --xds-tls`) with a server
//! certificate from the mesh CA; sidecars pin the root
//! (`trellis bootstrap --xds-ca-file`). A sidecar pinned to another root
//! never connects.

use std::path::Path;
use std::time::Duration;

use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

fn write_root(state_dir: &Path, out: &Path) {
    let (state, out_s) = (state_dir.display().to_string(), out.display().to_string());
    let (code, stdout, stderr) =
        run_trellis(&["ca", "root", "--state-dir", &state, "-o", &out_s]).unwrap();
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_talk_to_the_control_plane_over_pinned_tls() {
    let config = ConfigDir::new().unwrap();
    let opts = TrellisOptions {
        extra_args: vec!["--xds-tls".into()],
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    write_root(trellis.state_dir(), &root);
    let pin = vec!["--xds-ca-file".to_string(), root.display().to_string()];

    let backend = Backend::start("payment", "v1").await.unwrap();
    let mut spec = envoy::SidecarSpec::new("payment", &[("version", "v1")], backend.port());
    spec.extra_args = pin.clone();
    let _payment = Sidecar::start_spec(&trellis, spec).await.unwrap();
    let app = Backend::start("client", "v1").await.unwrap();
    let mut spec = envoy::SidecarSpec::new("client", &[("version", "v1")], app.port());
    spec.extra_args = pin;
    let client = Sidecar::start_spec(&trellis, spec).await.unwrap();
    client
        .wait_healthy_endpoints(&subset_cluster("", "payment"), 1, Duration::from_secs(15))
        .await
        .unwrap();
    let tally = Client::new()
        .tally(client.outbound_port(), "payment", &[], 20, 2)
        .await;
    assert_eq!(tally.get("payment v1"), 20, "{tally:?}");

    // A sidecar that pins another CA's root refuses the control plane.
    let other = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.pem");
    write_root(other.path(), &wrong);
    let mut spec = envoy::SidecarSpec::new("ledger", &[], free_port());
    spec.extra_args = vec!["--xds-ca-file".into(), wrong.display().to_string()];
    let node = spec.node_id.clone();
    let file = dir.path().join("ledger.yaml");
    let token = dir.path().join("ledger.token");
    trellis
        .write_token("ledger", "ledger", "1h", &token)
        .unwrap();
    spec.token_file = Some(token);
    spec.write_bootstrap(&trellis.xds_addr(), &file).unwrap();
    let mut cmd = std::process::Command::new(envoy::envoy_bin());
    cmd.arg("-c").arg(&file).args([
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--log-level",
        "warn",
    ]);
    let mut ledger = ChildGuard::spawn("ledger", cmd, &dir.path().join("ledger.log")).unwrap();
    // Envoy retries the handshake; give it a few attempts.
    let attempts = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let stats = envoy::parse_stats(&ledger_stats(spec.admin_port).await);
            let fails = stats
                .get("cluster.xds_cluster.ssl.fail_verify_error")
                .copied()
                .unwrap_or(0);
            (fails >= 2).then_some(fails)
        },
    )
    .await;
    let proxies = trellis.debug_proxies().await.unwrap().to_string();
    assert!(
        !proxies.contains(&node),
        "a wrongly pinned sidecar connected"
    );
    let stats = ledger_stats(spec.admin_port).await;
    let ssl: Vec<&str> = stats
        .lines()
        .filter(|l| l.contains("xds_cluster.ssl") || l.contains("xds_cluster.upstream_cx"))
        .collect();
    assert!(attempts.is_ok(), "no TLS failures seen: {ssl:?}");
    ledger.kill();
}

async fn ledger_stats(port: u16) -> String {
    client::http_get(port, "/stats")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}
