//! Ingress gateway end to end: an external client with no mesh certificate
//! reaches a STRICT-mTLS service through a gateway Envoy over HTTPS with a
//! certificate from `--credentials-dir` (SIMPLE and MUTUAL), plain HTTP is
//! redirected to HTTPS, and a certificate replaced in the directory reaches
//! the gateway under constant traffic without one failed request, while a
//! pair whose key does not match is never served.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use trellis_integration_tests::gateway::start_gateway;
use trellis_integration_tests::*;

const HOST: &str = "shop.example.com";
const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

const CONFIG: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment}
spec:
  hosts: [payment]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 8443, name: https-mutual, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: MUTUAL, credentialName: shop-cert}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  gateways: [shop-gw]
  http:
  - route:
    - destination: {host: payment}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin-at-the-edge}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin]}}]
";

/// A test CA that signs server and client certificates.
struct Pki {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: a leaf whose issuer equals its subject looks
        // self-signed to OpenSSL.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "gateway test CA");
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        Pki {
            ca_params,
            ca_key,
            ca_pem,
        }
    }

    /// A leaf for `name` with `serial`, signed by the CA: (cert, key) PEM.
    fn leaf(&self, name: &str, serial: u64, key: &KeyPair) -> String {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.serial_number = Some(serial.into());
        p.distinguished_name.push(DnType::CommonName, name);
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        p.signed_by(key, &issuer).unwrap().pem()
    }
}

/// Writes `content` to `path` by rename, as a secret updater would.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Everything of one run: control plane, STRICT payment service, gateway.
struct Edge {
    trellis: Trellis,
    _payment: Instance,
    gateway: Envoy,
    pki: Pki,
    server_key: KeyPair,
    cred_dir: PathBuf,
    files: tempfile::TempDir,
    https: u16,
    mutual: u16,
    http: u16,
    _config: ConfigDir,
}

async fn edge() -> Edge {
    let files = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server_key = KeyPair::generate().unwrap();
    let cred_dir = files.path().join("creds/default/shop-cert");
    std::fs::create_dir_all(&cred_dir).unwrap();
    std::fs::write(cred_dir.join("tls.crt"), pki.leaf(HOST, 1, &server_key)).unwrap();
    std::fs::write(cred_dir.join("tls.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(cred_dir.join("ca.crt"), &pki.ca_pem).unwrap();
    std::fs::write(files.path().join("ca.pem"), &pki.ca_pem).unwrap();
    let config = ConfigDir::with(&[("edge.yaml", CONFIG)]).unwrap();
    let creds = files.path().join("creds").display().to_string();
    let opts = TrellisOptions {
        extra_args: vec!["--credentials-dir".into(), creds],
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    let payment = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let (https, mutual, http) = (free_port(), free_port(), free_port());
    let gateway = start_gateway(
        &trellis,
        files.path(),
        &[(443, https), (8443, mutual), (80, http)],
    )
    .await
    .unwrap();
    Edge {
        trellis,
        _payment: payment,
        gateway,
        pki,
        server_key,
        cred_dir,
        files,
        https,
        mutual,
        http,
        _config: config,
    }
}

/// One curl run: its exit code and stdout.
async fn curl(args: &[String]) -> (i32, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

impl Edge {
    fn https_args(&self, port: u16, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--resolve".into(),
            format!("{HOST}:{port}:127.0.0.1"),
            "--cacert".into(),
            self.files.path().join("ca.pem").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(format!("https://{HOST}:{port}/"));
        a
    }

    /// Status and body of one HTTPS GET (status 0 when no HTTP answer).
    async fn get(&self, port: u16, extra: &[&str]) -> (u16, String) {
        let (_, out) =
            curl(&self.https_args(port, &[&["-w", "\n%{http_code}"], extra].concat())).await;
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The serial of the certificate the gateway presents on `port`.
    async fn serial(&self, port: u16) -> Option<String> {
        let (_, out) = curl(&self.https_args(port, &["-o", "/dev/null", "-w", "%{certs}"])).await;
        let (_, pem) = x509_parser::pem::parse_x509_pem(out.as_bytes()).ok()?;
        Some(pem.parse_x509().ok()?.raw_serial_as_string())
    }

    /// The first 200 through the gateway; on failure, what curl and the
    /// gateway saw.
    async fn wait_ok(&self) -> (u16, String) {
        let got = wait_until(TIMEOUT, POLL, || async {
            let r = self.get(self.https, &[]).await;
            (r.0 == 200).then_some(r)
        })
        .await;
        match got {
            Ok((r, _)) => r,
            Err(e) => panic!("{e}\n{}", self.diagnose().await),
        }
    }

    async fn diagnose(&self) -> String {
        let verbose = tokio::process::Command::new("curl")
            .args(self.https_args(self.https, &["-v"]))
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
        let stats = self.gateway.admin("/stats").await.unwrap_or_default();
        let stats: Vec<&str> = (stats.lines())
            .filter(|l| l.contains("ssl") || l.contains("sds") || l.contains("payment"))
            .collect();
        format!(
            "curl: {verbose:?}\nstats:\n{}\ngateway log:\n{}",
            stats.join("\n"),
            self.gateway.log()
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_mutual_and_redirect_reach_a_strict_service() {
    let edge = edge().await;
    let (_, body) = edge.wait_ok().await;
    assert!(
        body.contains("payment"),
        "answered by the payment app: {body:?}"
    );

    let client_key = KeyPair::generate().unwrap();
    let client_cert = edge.pki.leaf("client.example.com", 7, &client_key);
    let (cert, key) = (
        edge.files.path().join("client.pem"),
        edge.files.path().join("client.key"),
    );
    std::fs::write(&cert, client_cert).unwrap();
    std::fs::write(&key, client_key.serialize_pem()).unwrap();
    let with_cert = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let (status, body) = edge.get(edge.mutual, &with_cert).await;
    assert_eq!(status, 200, "MUTUAL with a client certificate: {body}");
    let (status, _) = edge.get(edge.mutual, &[]).await;
    assert_eq!(status, 0, "MUTUAL without a client certificate is refused");

    // An AuthorizationPolicy selecting the gateway applies at the edge.
    let (_, denied) = curl(&[
        "--resolve".into(),
        format!("{HOST}:{}:127.0.0.1", edge.https),
        "--cacert".into(),
        edge.files.path().join("ca.pem").display().to_string(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        format!("https://{HOST}:{}/admin", edge.https),
    ])
    .await;
    assert_eq!(denied, "403", "DENY on the gateway for /admin");

    let url = format!("http://{HOST}:{}/some/path", edge.http);
    let resolve = format!("{HOST}:{}:127.0.0.1", edge.http);
    let (_, out) = curl(&[
        "--resolve".into(),
        resolve,
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code} %{redirect_url}".into(),
        url,
    ])
    .await;
    assert!(
        out.starts_with("301 https://shop.example.com"),
        "redirect: {out}"
    );
    assert!(
        out.ends_with("/some/path"),
        "redirect keeps the path: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_traffic_drops_nothing_and_refuses_a_mismatched_pair() {
    let edge = Arc::new(edge().await);
    edge.wait_ok().await;
    assert_eq!(edge.serial(edge.https).await.as_deref(), Some("01"));

    let stop = Arc::new(AtomicBool::new(false));
    let (total, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (edge, stop, total, failed) =
            (edge.clone(), stop.clone(), total.clone(), failed.clone());
        tokio::spawn(async move {
            // Twenty requests per connection, connection after connection.
            let urls = vec![format!("https://{HOST}:{}/", edge.https); 20];
            let mut args = edge.https_args(edge.https, &["-w", "%{http_code}\n"]);
            args.pop();
            args.extend(
                urls.iter()
                    .flat_map(|u| ["-o".to_string(), "/dev/null".into(), u.clone()]),
            );
            while !stop.load(Ordering::SeqCst) {
                let (_, out) = curl(&args).await;
                let codes: Vec<&str> = out.lines().collect();
                total.fetch_add(20, Ordering::SeqCst);
                let ok = codes.iter().filter(|c| **c == "200").count();
                failed.fetch_add(20 - ok, Ordering::SeqCst);
            }
        })
    };
    wait_until(TIMEOUT, POLL, || async {
        (total.load(Ordering::SeqCst) >= 100).then_some(())
    })
    .await
    .unwrap();

    replace(
        &edge.cred_dir.join("tls.crt"),
        &edge.pki.leaf(HOST, 2, &edge.server_key),
    );
    let (_, took) = wait_until(TIMEOUT, POLL, || async {
        (edge.serial(edge.https).await.as_deref() == Some("02")).then_some(())
    })
    .await
    .expect("the client sees the new serial");
    let seen = total.load(Ordering::SeqCst);
    wait_until(TIMEOUT, POLL, || async {
        (total.load(Ordering::SeqCst) >= seen + 100).then_some(())
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let (total, failed) = (total.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("rotation: new serial seen after {took:?}; {total} requests, {failed} failed");
    assert_eq!(
        failed, 0,
        "no request fails across the rotation ({total} sent)"
    );

    // A certificate for another key: never served, the old pair stays.
    let other = KeyPair::generate().unwrap();
    replace(
        &edge.cred_dir.join("tls.crt"),
        &edge.pki.leaf(HOST, 3, &other),
    );
    wait_until(TIMEOUT, POLL, || async {
        let m = edge.trellis.metrics().await.ok()?;
        m.lines()
            .any(|l| l.starts_with("trellis_credential_errors_total") && !l.ends_with(" 0"))
            .then_some(())
    })
    .await
    .expect("the mismatch is counted");
    assert_eq!(edge.serial(edge.https).await.as_deref(), Some("02"));
    assert_eq!(edge.get(edge.https, &[]).await.0, 200);
    let log = edge.trellis.log();
    assert!(
        !log.contains("PRIVATE KEY"),
        "no key in the control plane's log"
    );
    let id = format!("ingress-{}", edge.gateway.admin_port());
    let path = format!("/debug/proxies/{id}/config?type=secrets");
    let view = edge.trellis.admin(&path).await.unwrap();
    assert!(view.contains("kubernetes://shop-cert"), "{view}");
    let key_pem = edge.server_key.serialize_pem();
    let key_line = key_pem.lines().nth(1).unwrap();
    assert!(
        !view.contains("PRIVATE KEY") && !view.contains(key_line),
        "no key in proxy-config"
    );
}

/// Two server ports on one listen address (`--port-map` sends the lower
/// port where the other listens): the lower port keeps it, the other is
/// left out and counted, and Envoy accepts the gateway's listeners (sent
/// both, it refuses the update).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_port_mapped_onto_another_is_left_out() {
    let payment = Backend::start("payment", "v1").await.unwrap();
    let (x, y) = (free_port(), free_port());
    let (low, high) = (x.min(y), x.max(y));
    let config = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment}}
spec:
  hosts: [payment]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {app}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: shop-gw}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {low}, name: http-low, protocol: HTTP}}
    hosts: [{HOST}]
  - port: {{number: {high}, name: http-high, protocol: HTTP}}
    hosts: [{HOST}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shop}}
spec:
  hosts: [{HOST}]
  gateways: [shop-gw]
  http:
  - route:
    - destination: {{host: payment}}
"#,
        app = payment.port(),
    );
    let dir = ConfigDir::with(&[("mesh.yaml", &config)]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    // Server port `low` listens on `high`, as server port `high` would.
    let gw = start_gateway(&trellis, files.path(), &[(low, high)])
        .await
        .unwrap();
    let listeners = gw.listeners().await.unwrap();
    assert!(
        !listeners.contains(&format!("127.0.0.1_{high}")),
        "{listeners:?}"
    );
    let rejected = gw.stat("listener_manager.lds.update_rejected").await;
    assert_eq!(rejected.ok(), Some(0), "{}", gw.log());
    let reply = Client::new().get(high, HOST, "/", &[]).await.unwrap();
    assert_eq!(reply.outcome(), "payment v1");
    let counted = wait_until(TIMEOUT, POLL, || async {
        let metrics = trellis.metrics().await.ok()?;
        metrics
            .lines()
            .any(|l| l == "trellis_gateway_servers_skipped 1")
            .then_some(())
    });
    assert!(counted.await.is_ok(), "{:?}", trellis.metrics().await);
}

/// A DestinationRule that only the gateway sees (`workloadSelector`)
/// hashes on a header: the gateway's route carries that hash key, so one
/// user's requests all reach one endpoint. Before, the gateway's routes
/// were translated with the default rule (none here): Envoy's ring hash
/// got no key and spread them.
#[tokio::test]
async fn a_hash_rule_only_the_gateway_sees_keeps_a_user_on_one_endpoint() {
    let (v1, v2) = (
        Backend::start("payment", "v1").await.unwrap(),
        Backend::start("payment", "v2").await.unwrap(),
    );
    let listen = free_port();
    let config = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment}}
spec:
  hosts: [payment]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {a}}}}}
  - {{address: 127.0.0.1, ports: {{http: {b}}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: payment-at-the-edge}}
spec:
  host: payment
  workloadSelector:
    matchLabels: {{istio: ingressgateway}}
  trafficPolicy:
    loadBalancer:
      consistentHash: {{httpHeaderName: x-user}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: shop-gw}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [{HOST}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shop}}
spec:
  hosts: [{HOST}]
  gateways: [shop-gw]
  http:
  - route:
    - destination: {{host: payment}}
"#,
        a = v1.port(),
        b = v2.port(),
    );
    let dir = ConfigDir::with(&[("mesh.yaml", &config)]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let gw = start_gateway(&trellis, files.path(), &[(80, listen)])
        .await
        .unwrap();
    let client = Client::new();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..20 {
        let reply = client.get(listen, HOST, "/", &[("x-user", "alice")]).await;
        let outcome = reply.map(|r| r.outcome()).unwrap_or_else(|e| e.to_string());
        *seen.entry(outcome).or_default() += 1;
    }
    let dump = gw.config_dump().await.unwrap().to_string();
    assert_eq!(seen.len(), 1, "{seen:?}\n{dump}");
    assert!(seen.keys().all(|k| k.starts_with("payment v")), "{seen:?}");
    assert!(dump.contains("\"header_name\":\"x-user\""), "{dump}");
}
