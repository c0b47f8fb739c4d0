//! Gateway TLS modes and Istio's egress-gateway pattern against real
//! Envoy: a sidecar's request to an external host goes through an egress
//! gateway over ISTIO_MUTUAL (the gateway registered as the endpoints of
//! `istio-egressgateway.istio-system.svc.cluster.local`), and the external
//! server sees the gateway's own source address; ISTIO_MUTUAL refuses a
//! client without a mesh certificate while an AuthorizationPolicy on the
//! gateway allows the sidecar's principal; OPTIONAL_MUTUAL accepts clients
//! with and without a certificate; AUTO_PASSTHROUGH carries a sidecar's
//! mTLS by SNI (`outbound_.PORT_._.HOST`) to a STRICT service.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use trellis_integration_tests::gateway::{start_gateway_spec, GatewaySpec};
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const EXTERNAL: &str = "edition.example.com";
/// The egress gateway's own source address for upstream connections.
const GATEWAY_SOURCE: &str = "127.0.0.3";

/// An "external" HTTP server that answers `external` and records the
/// peer address of every connection.
async fn external_server() -> (u16, Arc<Mutex<Vec<SocketAddr>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((mut s, peer)) = l.accept().await {
            seen.lock().unwrap().push(peer);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // One answer per request head (GETs have no body).
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let reply = "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nexternal";
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, peers)
}

/// A gateway labelled `istio=egressgateway` in `istio-system`, registered
/// at 127.0.0.1 as the endpoints of its service, binding upstream
/// connections to [`GATEWAY_SOURCE`].
async fn start_egress_gateway(trellis: &Trellis, dir: &Path, ports: &[(u16, u16)]) -> Envoy {
    let args = [
        "--endpoint-address",
        "127.0.0.1",
        "--upstream-bind-address",
        GATEWAY_SOURCE,
    ];
    let spec = GatewaySpec {
        service: "istio-egressgateway".into(),
        namespace: "istio-system".into(),
        label: "istio=egressgateway".into(),
        extra_args: args.map(String::from).into(),
    };
    start_gateway_spec(trellis, dir, &spec, ports)
        .await
        .unwrap()
}

/// A CA and a server leaf for [`EXTERNAL`] and a client leaf, as files in
/// `dir`: `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
fn write_pki(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "egress test CA");
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    for (name, san) in [("server", EXTERNAL), ("client", "client.example.com")] {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![san.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, san);
        let pem = p.signed_by(&key, &issuer).unwrap().pem();
        std::fs::write(dir.join(format!("{name}.pem")), pem).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

fn egress_config(external_port: u16, pki: &Path) -> String {
    let f = |n: &str| pki.join(n).display().to_string();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external, namespace: istio-system}}
spec:
  hosts: [{EXTERNAL}]
  location: MESH_EXTERNAL
  ports: [{{number: 80, name: http-port, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http-port: {external_port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: istio-egressgateway, namespace: istio-system}}
spec:
  hosts: [istio-egressgateway.istio-system.svc.cluster.local]
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 443, name: https, protocol: HTTPS}}
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: istio-egressgateway}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [{EXTERNAL}]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 8443, name: https-optional, protocol: HTTPS}}
    hosts: [{EXTERNAL}]
    tls:
      mode: OPTIONAL_MUTUAL
      serverCertificate: {server}
      privateKey: {key}
      caCertificates: {ca}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: egressgateway-for-external}}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: external
    trafficPolicy:
      portLevelSettings:
      - port: {{number: 443}}
        tls: {{mode: ISTIO_MUTUAL, sni: {EXTERNAL}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: external-through-egress-gateway}}
spec:
  hosts: [{EXTERNAL}]
  http:
  - route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: external
        port: {{number: 443}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: external-from-egress-gateway}}
spec:
  hosts: [{EXTERNAL}]
  gateways: [istio-egressgateway]
  http:
  - route:
    - destination:
        host: {EXTERNAL}
        port: {{number: 80}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: egress-callers, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: egressgateway}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{principals: [cluster.local/ns/default/sa/client]}}}}]
  - to: [{{operation: {{paths: [/open]}}}}]
",
        server = f("server.pem"),
        key = f("server.key"),
        ca = f("ca.pem"),
    )
}

/// curl to the gateway on `port` for [`EXTERNAL`]: (exit code, HTTP status).
async fn curl(pki: &Path, port: u16, path: &str, cert: bool) -> (i32, String) {
    let mut args = vec![
        "-s".to_string(),
        "--max-time".into(),
        "5".into(),
        "-k".into(),
        "--resolve".into(),
        format!("{EXTERNAL}:{port}:127.0.0.1"),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
    ];
    if cert {
        for (flag, file) in [("--cert", "client.pem"), ("--key", "client.key")] {
            args.push(flag.into());
            args.push(pki.join(file).display().to_string());
        }
    }
    args.push(format!("https://{EXTERNAL}:{port}{path}"));
    let out = tokio::process::Command::new("curl")
        .args(&args)
        .output()
        .await
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), code)
}

/// The sum of every gateway stat whose name ends with `suffix`.
async fn stat_sum(envoy: &Envoy, suffix: &str) -> u64 {
    let stats = envoy.stats().await.unwrap_or_default();
    (stats.iter())
        .filter(|(k, _)| k.ends_with(suffix))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_reaches_an_external_host_through_an_istio_mutual_egress_gateway() {
    let files = tempfile::tempdir().unwrap();
    write_pki(files.path());
    let (external_port, peers) = external_server().await;
    let config =
        ConfigDir::with(&[("egress.yaml", &egress_config(external_port, files.path()))]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let (mutual, optional) = (free_port(), free_port());
    let gateway =
        start_egress_gateway(&trellis, files.path(), &[(443, mutual), (8443, optional)]).await;
    let client = MeshClient::start(&trellis).await.unwrap();

    let got = wait_until(TIMEOUT, POLL, || async {
        let r = client.get(EXTERNAL, &[]).await.ok()?;
        (r.status == 200).then_some(r)
    })
    .await;
    let reply = match got {
        Ok((r, _)) => r,
        Err(e) => panic!(
            "{e}\nclient routes: {}\ngateway log:\n{}",
            client.routes_dump().await,
            gateway.log()
        ),
    };
    assert_eq!(reply.body, "external", "answered by the external server");
    let seen = peers.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the external server saw a connection");
    assert!(
        seen.iter().all(|p| p.ip().to_string() == GATEWAY_SOURCE),
        "every connection comes from the egress gateway's address: {seen:?}"
    );
    // The sidecar's request crossed the gateway's ISTIO_MUTUAL server, to
    // the external host's cluster.
    let ext_cluster = format!("cluster.outbound|80||{EXTERNAL}.upstream_rq_total");
    assert!(gateway.stat(&ext_cluster).await.unwrap() >= 1);
    let client_cluster = "cluster.outbound|443|external|istio-egressgateway.istio-system.svc.cluster.local.upstream_cx_total";
    assert!(client.sidecar.envoy().stat(client_cluster).await.unwrap() >= 1);

    // ISTIO_MUTUAL: a client without a mesh certificate is refused in the
    // handshake (and a certificate of another CA too).
    let (_, status) = curl(files.path(), mutual, "/open", false).await;
    assert_eq!(status, "000", "no certificate: refused");
    let (_, status) = curl(files.path(), mutual, "/open", true).await;
    assert_eq!(status, "000", "a non-mesh certificate: refused");
    let no_cert = stat_sum(&gateway, "ssl.fail_verify_no_cert").await;
    assert!(
        no_cert >= 1,
        "the gateway refused for want of a certificate"
    );

    // OPTIONAL_MUTUAL: with and without a client certificate.
    let (_, status) = curl(files.path(), optional, "/open", false).await;
    assert_eq!(status, "200", "OPTIONAL_MUTUAL without a certificate");
    let (_, status) = curl(files.path(), optional, "/open", true).await;
    assert_eq!(status, "200", "OPTIONAL_MUTUAL with a certificate");
    // The policy allows only the sidecar's principal elsewhere: a client
    // without a mesh identity is denied, so the ALLOW above did match the
    // sidecar's SPIFFE principal.
    let (_, status) = curl(files.path(), optional, "/private", false).await;
    assert_eq!(
        status, "403",
        "no principal: denied by the AuthorizationPolicy"
    );
}

const PASSTHROUGH: &str = "apiVersion: networking.istio.io/v1
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
metadata: {name: cross-network}
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ['*.local']
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment-remote}
spec:
  hosts: [payment-remote.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: GATEWAY_PORT}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment-remote}
spec:
  host: payment-remote.example
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
      sni: outbound_.80_._.payment.default.svc.cluster.local
      subjectAltNames: [spiffe://cluster.local/ns/default/sa/payment]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_passthrough_carries_a_sidecars_mtls_by_sni() {
    let files = tempfile::tempdir().unwrap();
    let listen = free_port();
    let text = PASSTHROUGH.replace("GATEWAY_PORT", &listen.to_string());
    let config = ConfigDir::with(&[("eastwest.yaml", &text)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _payment = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let gateway = start_gateway_labelled(&trellis, files.path(), listen).await;
    let client = MeshClient::start(&trellis).await.unwrap();

    let sni = "outbound_.80_._.payment.default.svc.cluster.local";
    let got = wait_until(TIMEOUT, POLL, || async {
        let r = client.get("payment-remote.example", &[]).await.ok()?;
        (r.status == 200).then_some(r)
    })
    .await;
    let reply = match got {
        Ok((r, _)) => r,
        Err(e) => panic!("{e}\ngateway log:\n{}", gateway.log()),
    };
    // STRICT: the payment sidecar answers only mTLS, which the gateway
    // (no TLS of its own on the SNI cluster) did not originate.
    assert_eq!(reply.backend.as_deref(), Some("payment v1"), "{reply:?}");
    let cx = gateway
        .stat(&format!("cluster.{sni}.upstream_cx_total"))
        .await
        .unwrap();
    assert!(cx >= 1, "the gateway proxied by SNI to {sni}");
    // The client checked the server's identity is payment's: the gateway,
    // whose listener has no TLS context, cannot have terminated it.
    let dump = gateway.config_dump().await.unwrap().to_string();
    assert!(
        dump.contains(&format!("\"server_names\":[\"{sni}\"]")),
        "{dump}"
    );
}

/// An east-west gateway (label `istio=eastwestgateway`) with server port
/// 15443 on `listen`.
async fn start_gateway_labelled(trellis: &Trellis, dir: &Path, listen: u16) -> Envoy {
    let spec = GatewaySpec {
        service: "eastwest".into(),
        label: "istio=eastwestgateway".into(),
        ..GatewaySpec::ingress()
    };
    start_gateway_spec(trellis, dir, &spec, &[(15443, listen)])
        .await
        .unwrap()
}

/// A DestinationRule only the east-west gateway sees (`workloadSelector`):
/// its subset `edge` exists for the gateway alone, and the gateway
/// proxies the SNI of that subset to it with the rule's connection limit.
/// Before, AUTO_PASSTHROUGH clusters followed the default rule (none
/// here): the gateway had no chain for that SNI and reset the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_passthrough_follows_the_rule_the_gateway_sees() {
    let files = tempfile::tempdir().unwrap();
    let listen = free_port();
    let sni = "outbound_.80_.edge_.payment.default.svc.cluster.local";
    let text = PASSTHROUGH
        .replace("GATEWAY_PORT", &listen.to_string())
        .replace("outbound_.80_._.payment", "outbound_.80_.edge_.payment");
    let rule = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment-at-the-edge}
spec:
  host: payment
  workloadSelector:
    matchLabels: {istio: eastwestgateway}
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 7}}
  subsets:
  - {name: edge, labels: {version: v1}}
";
    let config = ConfigDir::with(&[("eastwest.yaml", &format!("{text}{rule}"))]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let _payment = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let gateway = start_gateway_labelled(&trellis, files.path(), listen).await;
    let client = MeshClient::start(&trellis).await.unwrap();
    let got = wait_until(TIMEOUT, POLL, || async {
        let r = client.get("payment-remote.example", &[]).await.ok()?;
        (r.status == 200).then_some(r)
    })
    .await;
    let reply = match got {
        Ok((r, _)) => r,
        Err(e) => panic!("{e}\ngateway log:\n{}", gateway.log()),
    };
    assert_eq!(reply.backend.as_deref(), Some("payment v1"), "{reply:?}");
    let stat = format!("cluster.{sni}.upstream_cx_total");
    let cx = gateway.stat(&stat).await.unwrap();
    assert!(cx >= 1, "the gateway proxied by SNI to {sni}");
    let dump = gateway.config_dump().await.unwrap();
    let limit = (dump["configs"].as_array().into_iter().flatten())
        .flat_map(|c| {
            c["dynamic_active_clusters"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .find(|c| c["cluster"]["name"] == sni)
        .map(|c| c["cluster"]["circuit_breakers"]["thresholds"][0]["max_connections"].clone());
    assert_eq!(limit, Some(serde_json::json!(7)), "{dump}");
}
