//! ADS over TLS (`trellis serve --xds-tls`) with a server
//! certificate from the mesh CA; sidecars pin the root
//! (`trellis bootstrap --xds-ca-file`). A sidecar pinned to another root
//! never connects. The certificate is renewed while serving without
//! dropping streams, and through a root rotation sidecars pinned to the
//! bundle of both roots keep connecting.

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
    refuses_the_control_plane(&trellis, "ledger", &wrong, dir.path()).await;
}

/// Starts a sidecar for `service` pinned to `pin` and checks that its TLS
/// handshakes with the control plane fail verification and that it never
/// registers.
async fn refuses_the_control_plane(trellis: &Trellis, service: &str, pin: &Path, dir: &Path) {
    let mut spec = envoy::SidecarSpec::new(service, &[], free_port());
    spec.extra_args = vec!["--xds-ca-file".into(), pin.display().to_string()];
    let node = spec.node_id.clone();
    let file = dir.join(format!("{node}.yaml"));
    let token = dir.join(format!("{node}.token"));
    trellis.write_token(service, service, "1h", &token).unwrap();
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
    let mut envoy = ChildGuard::spawn(&node, cmd, &dir.join(format!("{node}.log"))).unwrap();
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
    envoy.kill();
}

async fn ledger_stats(port: u16) -> String {
    client::http_get(port, "/stats")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// `--xds-tls-ttl 4s`: the server certificate is renewed every 2 s, each
/// one expiring 4 s after it was issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_is_renewed_without_dropping_streams() {
    let config = ConfigDir::new().unwrap();
    let opts = TrellisOptions {
        extra_args: vec!["--xds-tls".into(), "--xds-tls-ttl".into(), "4s".into()],
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
    let payment = Sidecar::start_spec(&trellis, spec).await.unwrap();
    let connections = "cluster.xds_cluster.upstream_cx_total";
    let before = payment.stat(connections).await.unwrap();

    // Four renewals: the certificate payment's Envoy checked at connect
    // expired long ago.
    let renewals = || {
        trellis
            .log()
            .matches("xDS server certificate renewed")
            .count()
    };
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async { (renewals() >= 4).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("no renewals: {e}\n{}", trellis.log()));

    // A new Envoy's handshake verifies only an unexpired certificate.
    let app = Backend::start("client", "v1").await.unwrap();
    let mut spec = envoy::SidecarSpec::new("client", &[("version", "v1")], app.port());
    spec.extra_args = pin;
    let client = Sidecar::start_spec(&trellis, spec).await.unwrap();
    assert_eq!(
        client
            .stat("cluster.xds_cluster.ssl.fail_verify_error")
            .await
            .unwrap(),
        0
    );

    // payment's stream lived through every renewal: the same connection,
    // still connected, and it still gets updates (client's cluster).
    let client_cluster = subset_cluster("", "client");
    wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            let clusters = payment.clusters().await.ok()?;
            clusters
                .keys()
                .any(|c| c.ends_with(&client_cluster))
                .then_some(())
        },
    )
    .await
    .expect("payment's Envoy gets the new client cluster over its old stream");
    assert_kept_stream_and_traffic(&payment, connections, before, &client).await;
}

/// Sidecars pinned to the bundle (`trellis ca root` after
/// `trellis ca rotate --begin-only`) connect before and after the new root
/// signs; a sidecar already connected keeps its stream through it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_root_rotation_sidecars_pinned_to_the_bundle_keep_connecting() {
    let config = ConfigDir::new().unwrap();
    let opts = TrellisOptions {
        extra_args: vec!["--xds-tls".into()],
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    let admin = format!("127.0.0.1:{}", trellis.admin_port());
    let dir = tempfile::tempdir().unwrap();
    let old_root = dir.path().join("old-root.pem");
    write_root(trellis.state_dir(), &old_root);

    let backend = Backend::start("payment", "v1").await.unwrap();
    let mut spec = envoy::SidecarSpec::new("payment", &[("version", "v1")], backend.port());
    spec.extra_args = vec!["--xds-ca-file".into(), old_root.display().to_string()];
    let payment = Sidecar::start_spec(&trellis, spec).await.unwrap();
    let connections = "cluster.xds_cluster.upstream_cx_total";
    let before = payment.stat(connections).await.unwrap();

    // Step 1 only: the new root is trusted, the old one still signs.
    let rotate = |extra: &'static [&'static str]| {
        let mut args = vec!["ca", "rotate", "--admin-addr", admin.as_str()];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run_trellis(&args).unwrap();
        assert_eq!(code, 0, "{stdout}{stderr}");
    };
    rotate(&["--begin-only"]);
    let bundle = dir.path().join("bundle.pem");
    write_root(trellis.state_dir(), &bundle);
    let roots = std::fs::read_to_string(&bundle).unwrap();
    assert_eq!(roots.matches("BEGIN CERTIFICATE").count(), 2, "{roots}");
    let pin = vec!["--xds-ca-file".to_string(), bundle.display().to_string()];
    let app = Backend::start("client", "v1").await.unwrap();
    let mut spec = envoy::SidecarSpec::new("client", &[("version", "v1")], app.port());
    spec.extra_args = pin.clone();
    let client = Sidecar::start_spec(&trellis, spec).await.unwrap();

    // The rest: the new root signs (the xDS certificate moves to it), then
    // the old root is dropped.
    rotate(&[]);
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { trellis.log().contains("signer_changed=true").then_some(()) },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "the xDS certificate was not re-issued: {e}\n{}",
            trellis.log()
        )
    });

    // Pinned to the bundle, a new sidecar connects; pinned to the old root
    // only, one cannot.
    let backend2 = Backend::start("ledger", "v1").await.unwrap();
    let mut spec = envoy::SidecarSpec::new("ledger", &[("version", "v1")], backend2.port());
    spec.extra_args = pin;
    let _ledger = Sidecar::start_spec(&trellis, spec).await.unwrap();
    refuses_the_control_plane(&trellis, "stale", &old_root, dir.path()).await;

    // payment kept its stream through the rotation, and traffic flows.
    assert_kept_stream_and_traffic(&payment, connections, before, &client).await;
}

/// `payment` kept its one xDS connection (`connections` still `before`)
/// and is connected, and `client` reaches it.
async fn assert_kept_stream_and_traffic(
    payment: &Sidecar,
    connections: &str,
    before: u64,
    client: &Sidecar,
) {
    assert_eq!(
        payment.stat(connections).await.unwrap(),
        before,
        "payment reconnected"
    );
    assert_eq!(
        payment.stat("control_plane.connected_state").await.unwrap(),
        1
    );
    client
        .wait_healthy_endpoints(&subset_cluster("", "payment"), 1, Duration::from_secs(15))
        .await
        .unwrap();
    let tally = Client::new()
        .tally(client.outbound_port(), "payment", &[], 10, 2)
        .await;
    assert_eq!(tally.get("payment v1"), 10, "{tally:?}");
}
