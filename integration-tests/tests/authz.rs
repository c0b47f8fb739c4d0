//! `AuthorizationPolicy` with real Envoys over mTLS.
//! ALLOW from principal `frontend` for `GET /api/*` on payment: frontend's
//! `GET /api/x` is 200, its `POST` 403, ledger's `GET` 403; a DENY rule
//! overrides the ALLOW; a policy change takes effect within 1 s.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use trellis_integration_tests::envoy::SidecarSpec;
use trellis_integration_tests::*;

/// How long the first configuration may take to reach every Envoy.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// The issue's bound on a policy change.
const CHANGE_BOUND: Duration = Duration::from_secs(1);

const ALLOW: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: payment-allow-frontend
  namespace: default
spec:
  selector:
    matchLabels:
      app: payment
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/frontend"]
    to:
    - operation:
        methods: ["GET"]
        paths: ["/api/*"]
"#;

const DENY: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: payment-deny-x
  namespace: default
spec:
  selector:
    matchLabels:
      app: payment
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/api/x"]
"#;

/// A caller: an idle app and its sidecar, registered as `service`.
struct Caller {
    _app: Backend,
    sidecar: Sidecar,
}

impl Caller {
    async fn start(trellis: &Trellis, service: &str) -> Caller {
        let app = Backend::start(service, "v1").await.unwrap();
        let sidecar = Sidecar::start(trellis, service, &[("version", "v1")], app.port())
            .await
            .unwrap();
        Caller { _app: app, sidecar }
    }

    /// The status of `METHOD http://payment/PATH` through this sidecar
    /// (`None` on a transport error), on a fresh connection.
    async fn status(&self, method: &str, path: &str) -> Option<u16> {
        let client = HyperClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
        let port = self.sidecar.outbound_port();
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .header(hyper::header::HOST, "payment")
            .body(Empty::new())
            .ok()?;
        let fut = async {
            let resp = client.request(req).await.ok()?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await.ok()?;
            Some(status)
        };
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .ok()?
    }
}

/// payment's sidecar, started as Istio starts Envoy: with
/// `--drain-strategy immediate`. A policy change replaces the inbound
/// listener's filter chain; Envoy drains the old one, and only with this
/// strategy do callers' pooled connections on it close at once (the
/// default, `gradual`, spreads that over `--drain-time-s`, 600 s).
async fn start_payment_sidecar(
    trellis: &Trellis,
    app_port: u16,
) -> (ChildGuard, tempfile::TempDir, SidecarSpec) {
    let labels = [("app", "payment"), ("version", "v1")];
    let mut spec = SidecarSpec::new("payment", &labels, app_port);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    trellis
        .write_token("payment", "payment", "1h", &token)
        .unwrap();
    spec.token_file = Some(token);
    let file = dir.path().join("bootstrap.yaml");
    spec.write_bootstrap(&trellis.xds_addr(), &file).unwrap();
    let mut cmd = std::process::Command::new(envoy::envoy_bin());
    cmd.arg("-c").arg(&file).args([
        "--disable-hot-restart",
        "--log-level",
        "warn",
        "--concurrency",
        "1",
        "--drain-strategy",
        "immediate",
    ]);
    let child = ChildGuard::spawn("envoy payment", cmd, &dir.path().join("envoy.log")).unwrap();
    let admin = spec.admin_port;
    wait_until(SETUP_TIMEOUT, Duration::from_millis(50), || async move {
        let (status, body) = client::http_get(admin, "/listeners").await.ok()?;
        (status == 200 && body.contains("inbound")).then_some(())
    })
    .await
    .expect("payment's sidecar gets its inbound listener");
    (child, dir, spec)
}

async fn wait_status(
    caller: &Caller,
    method: &str,
    path: &str,
    want: u16,
    within: Duration,
) -> Duration {
    let (_, took) = wait_until(within, Duration::from_millis(20), || async {
        (caller.status(method, path).await == Some(want)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{method} {path} never answered {want}: {e}"));
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_for_frontend_get_api_then_deny_overrides() {
    let config = ConfigDir::with(&[("allow.yaml", ALLOW)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    // The policy selects `app: payment`: the sidecar carries that label.
    let payment_app = Backend::start("payment", "v1").await.unwrap();
    let _payment = start_payment_sidecar(&trellis, payment_app.port()).await;
    let frontend = Caller::start(&trellis, "frontend").await;
    let ledger = Caller::start(&trellis, "ledger").await;

    // Once the mesh is up, frontend's GET /api/x passes ...
    wait_status(&frontend, "GET", "/api/x", 200, SETUP_TIMEOUT).await;
    // ... its POST and other paths do not, and ledger gets nothing.
    assert_eq!(frontend.status("POST", "/api/x").await, Some(403));
    assert_eq!(frontend.status("GET", "/admin").await, Some(403));
    wait_status(&ledger, "GET", "/api/x", 403, SETUP_TIMEOUT).await;
    for _ in 0..20 {
        assert_eq!(frontend.status("GET", "/api/y").await, Some(200));
        assert_eq!(ledger.status("GET", "/api/y").await, Some(403));
    }

    // A DENY rule overrides the ALLOW, within the issue's bound.
    let written = Instant::now();
    config.write("deny.yaml", DENY).unwrap();
    wait_status(&frontend, "GET", "/api/x", 403, SETUP_TIMEOUT).await;
    let took = written.elapsed();
    eprintln!("DENY in force {took:?} after the file was written");
    assert!(
        took <= CHANGE_BOUND,
        "DENY took {took:?} (bound {CHANGE_BOUND:?})"
    );
    assert_eq!(frontend.status("GET", "/api/y").await, Some(200));

    // Removing every policy allows everything again.
    let written = Instant::now();
    std::fs::remove_file(config.file("deny.yaml")).unwrap();
    std::fs::remove_file(config.file("allow.yaml")).unwrap();
    wait_status(&ledger, "POST", "/anything", 200, SETUP_TIMEOUT).await;
    let took = written.elapsed();
    eprintln!("policies gone {took:?} after the files were removed");
    assert!(
        took <= CHANGE_BOUND,
        "removal took {took:?} (bound {CHANGE_BOUND:?})"
    );
}
