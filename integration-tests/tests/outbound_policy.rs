//! `outboundTrafficPolicy` and `CONNECT` on the outbound listener, against
//! real Envoy. The mesh default is REGISTRY_ONLY; a Sidecar gives the
//! `crawler` workload ALLOW_ANY. The client's sidecar refuses hosts that
//! are not in the registry (502, the backend never sees them) and still
//! reaches mesh hosts; the crawler's sidecar forwards `127.0.0.5:PORT` and
//! `localhost:PORT` with the dynamic forward proxy. `https_proxy`-style
//! clients send `CONNECT HOST:PORT`: to a mesh TCP service it tunnels
//! through the service's cluster (under REGISTRY_ONLY too), to an unknown
//! host it tunnels under ALLOW_ANY (a TLS handshake and HTTP request
//! through the tunnel) and is refused with 502 under REGISTRY_ONLY. A
//! CONNECT to a service with sidecars rides the mesh's mTLS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use trellis_integration_tests::raw_http::{answer, read_head, server};
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// A TCP server that writes back what it reads.
async fn echo(ip: &str) -> (u16, Arc<AtomicUsize>) {
    server(ip, |mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}

/// `CONNECT authority` through the proxy on `port`: the response status
/// and the stream (a tunnel when the status is 200).
async fn connect(port: u16, authority: &str) -> Option<(u16, TcpStream)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut s))
        .await
        .ok()??;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, s))
}

/// Sends `text` through a tunnel and reads it back from an echo server.
async fn echo_through(port: u16, authority: &str, text: &str) -> Option<String> {
    let (status, mut s) = connect(port, authority).await?;
    if status != 200 {
        return None;
    }
    s.write_all(text.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; text.len()];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf));
    read.await.ok()?.ok()?;
    String::from_utf8(buf).ok()
}

fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS server for `localhost` with a self-signed certificate.
async fn https_server() -> (u16, Arc<AtomicUsize>, pki_types::CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(tls_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key.into())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (port, seen) = server("127.0.0.1", move |s| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(tls) = acceptor.accept(s).await {
                answer(tls, "https").await;
            }
        }
    })
    .await;
    (port, seen, cert.cert.der().clone())
}

/// `GET https://localhost:TLS_PORT/` the way an `https_proxy` client does
/// it: CONNECT, then TLS (verifying the server) inside the tunnel.
async fn https_get(
    proxy: u16,
    tls_port: u16,
    trusted: &pki_types::CertificateDer<'static>,
) -> Option<String> {
    let (status, tunnel) = connect(proxy, &format!("localhost:{tls_port}")).await?;
    if status != 200 {
        return None;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).ok()?;
    let config = rustls::ClientConfig::builder_with_provider(tls_provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = pki_types::ServerName::try_from("localhost").ok()?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tunnel)
        .await
        .ok()?;
    let req = format!("GET / HTTP/1.1\r\nHost: localhost:{tls_port}\r\n\r\n");
    tls.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut out)).await;
    out.contains("200 OK").then_some(out)
}

async fn http_get(http: &Client, port: u16, host: String) -> Option<Reply> {
    http.get(port, &host, "/", &[]).await.ok()
}

async fn ok_get(http: &Client, port: u16, host: String) -> Option<Reply> {
    http_get(http, port, host).await.filter(|r| r.status == 200)
}

fn config(catalog: u16, echo_port: u16) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {{name: mesh}}
spec:
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: crawler}}
spec:
  workloadSelector: {{labels: {{app: crawler}}}}
  outboundTrafficPolicy: {{mode: ALLOW_ANY}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog}}
spec:
  hosts: [catalog]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {catalog}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo}}
spec:
  hosts: [echo]
  ports: [{{number: 9000, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {echo_port}}}}}]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_only_refuses_allow_any_forwards_and_connect_tunnels() {
    let catalog = Backend::start("catalog", "v1").await.unwrap();
    let (mesh_echo, mesh_echo_seen) = echo("127.0.0.1").await;
    let (unknown_http, unknown_http_seen) = server("127.0.0.5", |s| answer(s, "unknown")).await;
    let (unknown_echo, unknown_echo_seen) = echo("127.0.0.5").await;
    let local = Backend::start("local", "v1").await.unwrap();
    let (https_port, https_seen, https_cert) = https_server().await;

    let yaml = config(catalog.port(), mesh_echo);
    let dir = ConfigDir::with(&[("mesh.yaml", &yaml)]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let client = Sidecar::start(&trellis, "client", &[("app", "client")], free_port());
    let crawler = Sidecar::start(&trellis, "crawler", &[("app", "crawler")], free_port());
    let (client, crawler) = (client.await.unwrap(), crawler.await.unwrap());
    let http = Client::new();
    let get = |port: u16, host: String| http_get(&http, port, host);

    // REGISTRY_ONLY: mesh hosts work, an unknown host gets 502 from the
    // sidecar and never reaches its server.
    let (c_out, w_out) = (client.outbound_port(), crawler.outbound_port());
    let reply = wait_until(TIMEOUT, POLL, || ok_get(&http, c_out, "catalog".into())).await;
    assert_eq!(reply.unwrap().0.backend.as_deref(), Some("catalog v1"));
    let unknown = format!("127.0.0.5:{unknown_http}");
    let refused = get(c_out, unknown.clone()).await.expect("a reply");
    assert_eq!(refused.status, 502, "{}", client.log());
    assert_eq!(unknown_http_seen.load(Ordering::SeqCst), 0);

    // ALLOW_ANY: the same request is forwarded to 127.0.0.5, and a
    // `localhost` name resolves (getaddrinfo, /etc/hosts).
    let got = wait_until(TIMEOUT, POLL, || ok_get(&http, w_out, unknown.clone())).await;
    let body = got
        .unwrap_or_else(|e| panic!("{e}\n{}", crawler.log()))
        .0
        .body;
    assert_eq!(body, format!("unknown host={unknown}"));
    assert_eq!(unknown_http_seen.load(Ordering::SeqCst), 1);
    let localhost = format!("localhost:{}", local.port());
    let got = get(w_out, localhost).await.expect("a reply");
    assert_eq!(got.backend.as_deref(), Some("local v1"), "{}", got.body);
    assert_eq!(local.hits(), 1);
    let refused = get(c_out, format!("localhost:{}", local.port())).await;
    assert_eq!(refused.map(|r| r.status), Some(502));
    assert_eq!(local.hits(), 1);

    // CONNECT to a mesh TCP service tunnels through its cluster, on both.
    for port in [c_out, w_out] {
        let got = echo_through(port, "echo:9000", "ping").await;
        assert_eq!(got.as_deref(), Some("ping"), "CONNECT echo:9000 via {port}");
    }
    assert_eq!(mesh_echo_seen.load(Ordering::SeqCst), 2);

    // CONNECT to an unknown host: a tunnel under ALLOW_ANY, 502 under
    // REGISTRY_ONLY.
    let authority = format!("127.0.0.5:{unknown_echo}");
    let got = echo_through(w_out, &authority, "hello").await;
    assert_eq!(got.as_deref(), Some("hello"));
    let (status, _) = connect(c_out, &authority).await.expect("a reply");
    assert_eq!(status, 502);
    assert_eq!(unknown_echo_seen.load(Ordering::SeqCst), 1);

    // An https_proxy client: TLS to localhost inside the tunnel, the
    // server's own certificate verified end to end.
    let got = https_get(w_out, https_port, &https_cert).await;
    let got = got.unwrap_or_else(|| panic!("no HTTPS reply\n{}", crawler.log()));
    assert!(
        got.ends_with(&format!("https host=localhost:{https_port}")),
        "{got}"
    );
    assert_eq!(https_get(c_out, https_port, &https_cert).await, None);
    assert_eq!(https_seen.load(Ordering::SeqCst), 1);

    // Envoy counted the tunnels and forwarded requests on its passthrough
    // cluster, and only on the crawler's sidecar.
    let stats = crawler.stats().await.unwrap();
    let cx = stats.get("cluster.PassthroughCluster.upstream_cx_total");
    assert!(cx.is_some_and(|n| *n >= 4), "{cx:?}");
    let client_stats = client.stats().await.unwrap();
    assert_eq!(
        client_stats.get("cluster.PassthroughCluster.upstream_cx_total"),
        None
    );
}

/// A GET through a CONNECT tunnel to `authority`: the response head and
/// body, `None` unless the tunnel opened.
async fn get_through(port: u16, authority: &str, host: &str) -> Option<String> {
    let (status, mut s) = connect(port, authority).await?;
    if status != 200 {
        return None;
    }
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out));
    read.await.ok()?.ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

/// CONNECT to a service whose instances have sidecars: the tunnel rides
/// the mesh's mTLS (STRICT, so plaintext would be refused) and the
/// destination sidecar serves the HTTP inside it as a mesh request, with
/// the caller's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_sidecar_service_rides_mtls() {
    let strict = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
";
    let dir = ConfigDir::with(&[("mesh.yaml", strict)]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let ledger = Instance::start(&trellis, "ledger", "v1", Behavior::Ok);
    let client = Sidecar::start(&trellis, "client", &[("app", "client")], free_port());
    let (ledger, client) = (ledger.await.unwrap(), client.await.unwrap());
    let port = client.outbound_port();
    let got = wait_until(TIMEOUT, POLL, || get_through(port, "ledger:80", "ledger")).await;
    let reply = got.unwrap_or_else(|e| panic!("{e}\n{}", client.log())).0;
    assert!(reply.contains("ledger v1"), "{reply}");
    let xfcc = (reply.lines())
        .find(|l| l.to_ascii_lowercase().starts_with("x-seen-xfcc:"))
        .unwrap_or_default();
    assert!(xfcc.contains("/sa/client"), "caller identity: {reply}");
    assert!(ledger.backend.hits() >= 1);
}
