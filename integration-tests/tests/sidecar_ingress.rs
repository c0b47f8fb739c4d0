//! `Sidecar.ingress[]` with real Envoys: one `api` sidecar with two
//! ingress ports forwarding to two different backends, mesh mTLS STRICT.
//! A client sidecar calling `api:80` and `api:81` through the mesh gets
//! the backend each port forwards to (the service's `targetPort`s are the
//! ingress ports); a DENY AuthorizationPolicy on one port is answered 403
//! by the api sidecar; a plaintext caller is refused; `/config_dump`
//! shows the two ingress listeners and no default inbound listener.

use std::time::Duration;

use trellis_integration_tests::envoy::SidecarSpec;
use trellis_integration_tests::*;

/// How long the first configuration may take to reach every Envoy.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The mesh: `api` with ports 80 → `web_port` and 81 → `admin_port`,
/// its Sidecar's ingress listeners on those ports, STRICT mTLS and a
/// DENY of the admin port.
fn config(web_port: u16, admin_port: u16, web_app: u16, admin_app: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 80, name: http-web, protocol: HTTP, targetPort: {web_port}}}
  - {{number: 81, name: http-admin, protocol: HTTP, targetPort: {admin_port}}}
  workloadSelector:
    labels: {{app: api}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: api, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: api}}
  ingress:
  - port: {{number: {web_port}, protocol: HTTP, name: web}}
    defaultEndpoint: 127.0.0.1:{web_app}
  - port: {{number: {admin_port}, protocol: HTTP, name: admin}}
    defaultEndpoint: 127.0.0.1:{admin_app}
    captureMode: NONE
  egress:
  - hosts: ["./*"]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: istio-system}}
spec:
  mtls: {{mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: api-deny-admin-paths, namespace: default}}
spec:
  selector:
    matchLabels: {{app: api}}
  action: DENY
  rules:
  - to:
    - operation:
        ports: ["{admin_port}"]
        paths: ["/secret*"]
"#
    )
}

/// The `api` workload's sidecar (`app: api`, the label its Sidecar selects).
async fn start_api(trellis: &Trellis, app_port: u16) -> Sidecar {
    Sidecar::start(
        trellis,
        "api",
        &[("app", "api"), ("version", "v1")],
        app_port,
    )
    .await
    .unwrap()
}

/// Polls `GET http://HOST/PATH` through `client`'s outbound listener
/// until the reply's outcome is `want`.
async fn wait_outcome(client: &Sidecar, host: &str, path: &str, want: &str) {
    let port = client.outbound_port();
    let http = Client::new();
    let last = std::sync::Mutex::new(String::new());
    let got = wait_until(SETUP_TIMEOUT, Duration::from_millis(50), || {
        let http = http.clone();
        let last = &last;
        async move {
            let outcome = match http.get(port, host, path, &[]).await {
                Ok(r) => r.outcome(),
                Err(e) => format!("error {e}"),
            };
            let done = outcome == want;
            *last.lock().unwrap() = outcome;
            done.then_some(())
        }
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(
        got.is_ok(),
        "{host}{path} never answered {want:?}; last {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingress_ports_serve_two_backends_over_mtls() {
    let web = Backend::start("web", "v1").await.unwrap();
    let admin = Backend::start("admin", "v1").await.unwrap();
    let (web_port, admin_port) = (free_port(), free_port());
    let text = config(web_port, admin_port, web.port(), admin.port());
    let dir = ConfigDir::with(&[("mesh.yaml", &text)]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let api = start_api(&trellis, web.port()).await;
    let front_app = Backend::start("frontend", "v1").await.unwrap();
    let frontend = Sidecar::start(&trellis, "frontend", &[("version", "v1")], front_app.port())
        .await
        .unwrap();

    // Each service port reaches the backend its ingress port forwards to.
    wait_outcome(&frontend, "api", "/", "web v1").await;
    wait_outcome(&frontend, "api:81", "/", "admin v1").await;
    for _ in 0..10 {
        let http = Client::new();
        let port = frontend.outbound_port();
        let r = http.get(port, "api:80", "/x", &[]).await.unwrap();
        assert_eq!(r.outcome(), "web v1");
        let r = http.get(port, "api:81", "/x", &[]).await.unwrap();
        assert_eq!(r.outcome(), "admin v1");
    }

    // The DENY names the admin port: Envoy answers 403 there only.
    let http = Client::new();
    let port = frontend.outbound_port();
    let denied = http.get(port, "api:81", "/secret", &[]).await.unwrap();
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.body, "RBAC: access denied");
    let allowed = http.get(port, "api:80", "/secret", &[]).await.unwrap();
    assert_eq!(allowed.outcome(), "web v1");
    // Counted by the admin port's listener (its HCM's stat prefix).
    let denied_stat = format!("http.inbound_127.0.0.1_{admin_port}.rbac.denied");
    assert!(api.stat(&denied_stat).await.unwrap() >= 1, "{denied_stat}");

    // STRICT: a plaintext caller on an ingress port gets no answer.
    let plain = http.get(web_port, "api", "/", &[]).await;
    assert!(plain.is_err(), "plaintext reached the app: {plain:?}");

    // `/config_dump`: the two ingress listeners, and no default inbound one.
    let dump = api.config_dump().await.unwrap().to_string();
    for name in [
        format!("inbound_{web_port}"),
        format!("inbound_{admin_port}"),
    ] {
        assert!(
            dump.contains(&format!("\"name\":\"{name}\"")),
            "{name} missing"
        );
    }
    let listeners = api.listeners().await.unwrap();
    assert!(!listeners.iter().any(|n| n == "inbound"), "{listeners:?}");
    assert!(web.hits() > 0 && admin.hits() > 0);
}

/// `api`'s Sidecar with one HTTPS ingress port, `port` to the app on
/// `app`, ending TLS with the certificate and key files given; STRICT
/// mesh mTLS.
fn tls_sidecar(port: u16, app: u16, cert: &std::path::Path, key: &std::path::Path) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: api, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: api}}
  ingress:
  - port: {{number: {port}, protocol: HTTPS, name: https}}
    defaultEndpoint: 127.0.0.1:{app}
    tls:
      mode: SIMPLE
      serverCertificate: {cert}
      privateKey: {key}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: istio-system}}
spec:
  mtls: {{mode: STRICT}}
"#,
        cert = cert.display(),
        key = key.display(),
    )
}

/// An ingress port with its own `tls` (SIMPLE, certificate files): a
/// caller from outside the mesh speaks TLS to the sidecar, which forwards
/// plain HTTP to the app; the mesh mTLS does not apply to that port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_port_with_tls_serves_outside_callers() {
    let web = Backend::start("web", "v1").await.unwrap();
    let certs = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["api.test".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let port = free_port();
    let text = tls_sidecar(port, web.port(), &cert_file, &key_file);
    let dir = ConfigDir::with(&[("mesh.yaml", &text)]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let api = start_api(&trellis, web.port()).await;
    api.wait_listener(&format!("inbound_{port}"), SETUP_TIMEOUT)
        .await
        .unwrap();
    let url = format!("https://api.test:{port}/");
    let resolve = format!("api.test:{port}:127.0.0.1");
    let cacert = cert_file.display().to_string();
    let curl = || async {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert", &cacert])
            .args(["--resolve", &resolve, &url])
            .output()
            .await
            .ok()?;
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && body.contains("web v1")).then_some(body)
    };
    let got = wait_until(SETUP_TIMEOUT, Duration::from_millis(100), curl).await;
    assert!(got.is_ok(), "no TLS answer: {}", api.log());
    // The port serves TLS only: plain HTTP gets no answer.
    let plain = Client::new().get(port, "api", "/", &[]).await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
}

/// Ingress and egress ports on addresses the sidecar already listens on
/// (its outbound listener's, its stats listener's, an earlier port's) or
/// that an ingress port forwards to (its app's) are
/// left out, as istiod leaves out listeners that clash with its own:
/// Envoy refuses a whole listener update that takes an address twice, so
/// one such port would leave a new sidecar with no listener at all. The
/// other ports reach Envoy, and a later fix of the config brings the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_on_the_sidecars_own_addresses_are_left_out() {
    let web = Backend::start("web", "v1").await.unwrap();
    let db = Backend::start("db", "v1").await.unwrap();
    let spec = SidecarSpec::new("api", &[("app", "api"), ("version", "v1")], web.port());
    let (out, stats, web_port) = (spec.outbound_port, spec.stats_port, free_port());
    // `ingress` names the ingress port, `egress` the egress port and db's.
    let config = |ingress: u16, egress: u16| {
        format!(
            r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: db, namespace: default}}
spec:
  hosts: [db]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: {egress}, name: tcp, protocol: TCP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {db}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: api, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: api}}
  ingress:
  - port: {{number: {ingress}, protocol: HTTP, name: on-outbound}}
    defaultEndpoint: 127.0.0.1:{app}
  - port: {{number: {stats}, protocol: HTTP, name: on-stats}}
    defaultEndpoint: 127.0.0.1:{app}
  - port: {{number: {app}, protocol: HTTP, name: on-app}}
    defaultEndpoint: 127.0.0.1:{app}
  - port: {{number: {web_port}, protocol: HTTP, name: web}}
    defaultEndpoint: 127.0.0.1:{app}
  egress:
  - port: {{number: {egress}, protocol: TCP, name: tcp-db}}
    bind: 127.0.0.1
    hosts: ["./db"]
  - hosts: ["./*"]
"#,
            db = db.port(),
            app = web.port(),
        )
    };
    let dir = ConfigDir::with(&[("mesh.yaml", &config(out, out))]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let api = Sidecar::start_spec(&trellis, spec).await.unwrap();
    api.wait_listener(&format!("inbound_{web_port}"), SETUP_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", api.log()));
    let listeners = api.listeners().await.unwrap();
    for left_out in [
        format!("inbound_{out}"),
        format!("inbound_{stats}"),
        format!("inbound_{}", web.port()),
        format!("127.0.0.1_{out}"),
    ] {
        assert!(!listeners.contains(&left_out), "{left_out}: {listeners:?}");
    }
    assert!(listeners.iter().any(|l| l == "outbound"), "{listeners:?}");
    // Each one counted and logged with what holds its address.
    // (The gauge is set just after the snapshots are: polled.)
    let skipped = |n: usize| {
        let trellis = &trellis;
        async move {
            let want = format!("trellis_gateway_servers_skipped {n}");
            let counted = wait_until(SETUP_TIMEOUT, Duration::from_millis(50), || async {
                let metrics = trellis.metrics().await.ok()?;
                metrics.lines().any(|l| l == want).then_some(())
            });
            assert!(
                counted.await.is_ok(),
                "never {want}: {:?}",
                trellis.metrics().await
            );
        }
    };
    skipped(4).await;
    let log = trellis.log();
    assert!(
        log.contains("which the sidecar's outbound listener listens on"),
        "{log}"
    );
    assert!(
        log.contains("which the sidecar's stats listener listens on"),
        "{log}"
    );
    // The stats listener, which an ingress port would have taken, answers.
    let stats_page = Client::new()
        .get(stats, "api", "/stats/prometheus", &[])
        .await;
    assert_eq!(stats_page.map(|r| r.status).ok(), Some(200));

    // Moved off the outbound listener's port, the same entries are built.
    let (ingress, egress) = (free_port(), free_port());
    dir.write("mesh.yaml", &config(ingress, egress)).unwrap();
    for name in [format!("inbound_{ingress}"), format!("127.0.0.1_{egress}")] {
        api.wait_listener(&name, SETUP_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e}: {}", api.log()));
    }
    // The ports on the stats listener's and the app's addresses still are.
    skipped(2).await;
}

/// An ingress port whose key file is missing on the sidecar's host: Envoy
/// rejects its listener, and the rejection is traced to the Sidecar
/// entry's `privateKey` line (log, `/debug/proxies`, `proxy-status`,
/// metric).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_ingress_listener_is_traced_to_its_sidecar_entry() {
    let web = Backend::start("web", "v1").await.unwrap();
    let empty = tempfile::tempdir().unwrap();
    let port = free_port();
    let (cert, key) = (empty.path().join("tls.crt"), empty.path().join("tls.key"));
    let text = tls_sidecar(port, web.port(), &cert, &key);
    let dir = ConfigDir::with(&[("mesh.yaml", &text)]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let api = start_api(&trellis, web.port()).await;
    let file = dir.path().join("mesh.yaml");
    let want = nack::Expected {
        kind: "Sidecar",
        name: "api",
        file: &file,
        at: nack::position_of(&text, "privateKey:"),
    };
    let node = &api.spec.node_id;
    nack::assert_traced(&trellis, node, ("Listener", "lds"), want).await;
    // The rejected listener is the port's own, not the outbound one.
    let proxies = trellis.debug_proxies().await.unwrap();
    let origin = nack::nack_origin(&proxies, node, "Listener").unwrap();
    assert_eq!(origin["resource"], format!("inbound_{port}"), "{origin}");
}
