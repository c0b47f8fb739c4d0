//! ServiceEntry hosts reached without interception, against real Envoy:
//! resolution NONE and wildcard hosts (`*.wild.test`) forward each request
//! to the host it names through the dynamic forward proxy (TLS originated
//! with the request's host as SNI and checked name), `addresses` are
//! `Host` names on HTTP ports and destination matches on a Sidecar egress
//! port, `exportTo` hides a service from other namespaces, and a Sidecar's
//! `egressProxy` takes requests for unknown hosts. The mesh default is
//! REGISTRY_ONLY, so nothing here reaches its server by the passthrough.
//! The names resolve to 127.0.0.1 through the sidecar's own `/etc/hosts`
//! (`SidecarSpec::hosts`): the test needs no DNS server or Internet.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};
use tokio_rustls::TlsAcceptor;
use trellis_integration_tests::raw_http::{answer, server};
use trellis_integration_tests::sidecar::SidecarSpec;
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

async fn http(name: &'static str) -> (u16, Arc<AtomicUsize>) {
    server("127.0.0.1", move |s| answer(s, name)).await
}

/// A TCP server that writes `tag` and closes.
async fn tagged(tag: &'static str) -> u16 {
    server("127.0.0.1", move |mut s| async move {
        let _ = s.write_all(tag.as_bytes()).await;
        let _ = s.shutdown().await;
    })
    .await
    .0
}

/// An HTTPS server whose certificate names only `name`; the certificate
/// (its own CA) is written to `ca`.
async fn https(name: &str, ca: &std::path::Path) -> (u16, Arc<AtomicUsize>) {
    let cert = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
    std::fs::write(ca, cert.cert.pem()).unwrap();
    let key = pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key.into())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    server("127.0.0.1", move |s| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(tls) = acceptor.accept(s).await {
                answer(tls, "https").await;
            }
        }
    })
    .await
}

/// Reads what a server at `ip:port` sends before closing.
async fn read_from(ip: &str, port: u16) -> Option<String> {
    let mut s = TcpStream::connect((ip, port)).await.ok()?;
    let mut out = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out));
    read.await.ok()?.ok()?;
    (!out.is_empty()).then_some(out)
}

struct Ports {
    plain: u16,
    tls: u16,
    vip: u16,
    egress: u16,
    db: (u16, u16),
    listener: u16,
}

fn config(p: &Ports, ca: &str) -> String {
    let se = |name: &str, ns: &str, body: &str| {
        format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{body}")
    };
    let http_port = |n: u16| format!("  ports: [{{number: {n}, name: http, protocol: HTTP}}]\n");
    let local = |n: u16| {
        format!(
            "  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {n}}}}}]\n"
        )
    };
    let (plain, tls, vip, egress) = (p.plain, p.tls, p.vip, p.egress);
    let db = |name: &str, address: &str, port: u16| {
        se(name, "default", &format!("  hosts: [{name}.db.test]\n  ports: [{{number: {}, name: tcp, protocol: TCP}}]\n  addresses: [{address}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {port}}}}}]\n", p.listener))
    };
    [
        "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n  defaultSidecarScope: ALL_SERVICES\n".to_string(),
        se("wild", "default", &format!("  hosts: [\"*.wild.test\"]\n{}  location: MESH_EXTERNAL\n  resolution: DNS\n", http_port(plain))),
        se("none", "default", &format!("  hosts: [plain.none.test]\n{}", http_port(plain))),
        se("secure", "default", &format!("  hosts: [\"*.secure.test\"]\n{}  resolution: NONE\n", http_port(tls))),
        format!("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: secure}}\nspec:\n  host: \"*.secure.test\"\n  trafficPolicy: {{tls: {{mode: SIMPLE, caCertificates: {ca}}}}}\n"),
        se("vip", "default", &format!("  hosts: [vip.test]\n{}  addresses: [10.77.0.5]\n{}", http_port(vip), local(vip))),
        se("hidden", "other", &format!("  hosts: [hidden.test]\n  exportTo: [\".\"]\n{}{}", http_port(vip), local(vip))),
        se("shown", "other", &format!("  hosts: [shown.test]\n{}{}", http_port(vip), local(vip))),
        se("egress-gw", "default", &format!("  hosts: [egress-gw]\n{}{}", http_port(egress), local(egress))),
        db("one", "127.0.0.10", p.db.0),
        db("two", "127.0.0.11/32", p.db.1),
        format!("---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: via-egress}}\nspec:\n  workloadSelector: {{labels: {{app: crawler}}}}\n  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {{host: egress-gw, port: {{number: {egress}}}}}\n"),
        format!("---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: db-client}}\nspec:\n  workloadSelector: {{labels: {{app: dbclient}}}}\n  egress:\n  - hosts: [\"./*\"]\n  - port: {{number: {}, protocol: TCP, name: db}}\n    bind: 0.0.0.0\n    hosts: [\"./*\"]\n", p.listener),
    ]
    .concat()
}

async fn get(c: &Client, port: u16, host: &str) -> Option<Reply> {
    c.get(port, host, "/", &[]).await.ok()
}

async fn ok(c: &Client, port: u16, host: String) -> Option<Reply> {
    get(c, port, &host).await.filter(|r| r.status == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test (root: a mount namespace for the sidecar's /etc/hosts): make test-system"]
async fn hosts_without_interception_reach_their_servers() {
    let dir = ConfigDir::with(&[]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = certs.path().join("ca.pem");
    let (plain, plain_seen) = http("plain").await;
    let (tls, tls_seen) = https("api.secure.test", &ca).await;
    let (vip, vip_seen) = http("vip").await;
    let (egress, egress_seen) = http("egress").await;
    let db = (tagged("one").await, tagged("two").await);
    let ports = Ports {
        plain,
        tls,
        vip,
        egress,
        db,
        listener: free_port(),
    };
    dir.write("mesh.yaml", &config(&ports, &ca.display().to_string()))
        .unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let mut spec = SidecarSpec::new("client", &[("app", "client")], free_port());
    let names = [
        "api.wild.test",
        "plain.none.test",
        "api.secure.test",
        "bad.secure.test",
    ];
    spec.hosts = names
        .iter()
        .map(|n| (n.to_string(), "127.0.0.1".to_string()))
        .collect();
    let client = Sidecar::start_spec(&trellis, spec);
    let crawler = Sidecar::start(&trellis, "crawler", &[("app", "crawler")], free_port());
    let dbclient = Sidecar::start(&trellis, "dbclient", &[("app", "dbclient")], free_port());
    let (client, crawler, dbclient) = (
        client.await.unwrap(),
        crawler.await.unwrap(),
        dbclient.await.unwrap(),
    );
    let c = Client::new();
    let out = client.outbound_port();

    // A wildcard DNS host and a NONE host: each request goes to the host
    // it names, at the port it names.
    let wild = format!("api.wild.test:{plain}");
    let got = wait_until(TIMEOUT, POLL, || ok(&c, out, wild.clone())).await;
    let got = got.unwrap_or_else(|e| panic!("{e}\n{}", client.log())).0;
    assert_eq!(got.body, format!("plain host={wild}"));
    let none = format!("plain.none.test:{plain}");
    assert_eq!(
        get(&c, out, &none).await.map(|r| r.body),
        Some(format!("plain host={none}"))
    );
    assert_eq!(plain_seen.load(Ordering::SeqCst), 2);
    // A name no entry matches is refused (REGISTRY_ONLY).
    let refused = get(&c, out, &format!("api.tame.test:{plain}")).await;
    assert_eq!(refused.map(|r| r.status), Some(502));

    // TLS originated to the name the request carries, its certificate
    // checked against that name: `bad.secure.test` resolves to the same
    // server, whose certificate names only `api.secure.test`.
    let secure = format!("api.secure.test:{tls}");
    let got = get(&c, out, &secure).await.expect("a reply");
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, format!("https host={secure}").as_str()),
        "{}",
        client.log()
    );
    let bad = get(&c, out, &format!("bad.secure.test:{tls}"))
        .await
        .expect("a reply");
    assert_eq!(bad.status, 503, "{}", bad.body);
    // (A failed handshake is a connect failure: the default route retries.)
    assert!(tls_seen.load(Ordering::SeqCst) >= 2);

    // The VIP of an HTTP port is one of its names.
    let got = get(&c, out, &format!("10.77.0.5:{vip}"))
        .await
        .expect("a reply");
    assert_eq!(got.body, format!("vip host=10.77.0.5:{vip}"));
    // exportTo: `hidden.test` is exported to its namespace only.
    let got = get(&c, out, &format!("shown.test:{vip}"))
        .await
        .expect("a reply");
    assert_eq!(got.status, 200);
    let hidden = get(&c, out, &format!("hidden.test:{vip}")).await;
    assert_eq!(hidden.map(|r| r.status), Some(502));
    assert_eq!(vip_seen.load(Ordering::SeqCst), 2);

    // egressProxy: unknown hosts go to the egress proxy, Host kept.
    let w = crawler.outbound_port();
    let got = wait_until(TIMEOUT, POLL, || ok(&c, w, "unknown.example:1234".into())).await;
    let got = got.unwrap_or_else(|e| panic!("{e}\n{}", crawler.log())).0;
    assert_eq!(got.body, "egress host=unknown.example:1234");
    assert_eq!(egress_seen.load(Ordering::SeqCst), 1);

    // TCP: the egress port listener picks the service by the address the
    // app connected to.
    let port = ports.listener;
    let one = wait_until(TIMEOUT, POLL, || read_from("127.0.0.10", port)).await;
    assert_eq!(
        one.unwrap_or_else(|e| panic!("{e}\n{}", dbclient.log())).0,
        "one"
    );
    assert_eq!(read_from("127.0.0.11", port).await.as_deref(), Some("two"));
    assert_eq!(read_from("127.0.0.12", port).await, None);

    // What Envoy was given: the wildcard's cluster is a dynamic forward
    // proxy, and it counted the request.
    let dump = client.config_dump().await.unwrap().to_string();
    assert!(
        dump.contains("envoy.clusters.dynamic_forward_proxy"),
        "{dump}"
    );
    let stats = client.stats().await.unwrap();
    let name = format!("cluster.outbound|{plain}||*.wild.test.upstream_rq_total");
    assert_eq!(stats.get(&name), Some(&1), "{name}");
}
