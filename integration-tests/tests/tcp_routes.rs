//! TCP and TLS routing against real Envoy: a `tcp` rule on a Sidecar
//! egress port splits connections 80/20 between two TCP backends; a `tls`
//! rule on a sidecar's TLS egress port picks the backend by SNI; a TLS
//! PASSTHROUGH gateway server hands the client's TLS to the backend, whose
//! own certificate the client sees; the gateway's TCP server proxies, and
//! its SIMPLE TLS server terminates with its own certificate in front of a
//! plain TCP backend.

use std::sync::Arc;
use std::time::Duration;

use rcgen::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use trellis_integration_tests::gateway::start_gateway;
use trellis_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// A TCP backend that answers every connection with its name and closes.
async fn tcp_backend(name: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(name.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS backend for `name` with its own self-signed certificate: after
/// the handshake it writes `name` and closes.
async fn tls_backend(name: &'static str, cert: &CertifiedKey<rcgen::KeyPair>) -> u16 {
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], PrivateKeyDer::Pkcs8(key))
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let _ = tls.write_all(name.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

/// What a plain TCP connection to `port` reads, `None` if it fails.
async fn read_tcp(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let mut out = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out));
    read.await.ok()?.ok()?;
    (!out.is_empty()).then_some(out)
}

/// What a TLS connection to `port` with SNI `sni` reads, when the server
/// proves it holds `trusted` (the only certificate the client accepts).
async fn read_tls(port: u16, sni: &str, trusted: &CertificateDer<'static>) -> Option<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).ok()?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let name = ServerName::try_from(sni.to_string()).ok()?;
    let connect = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    let mut tls = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .ok()?
        .ok()?;
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut out)).await;
    (!out.is_empty()).then_some(out)
}

fn service(name: &str, port: u16, protocol: &str, backend: u16) -> String {
    let p = protocol.to_ascii_lowercase();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
  ports: [{{number: {port}, name: {p}, protocol: {protocol}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{{p}: {backend}}}}}]
---
"
    )
}

/// The mesh config: services, the split, the SNI routes (on sidecars and
/// the `edge` gateway), the client's egress ports and the gateway with a
/// passthrough, a TCP and a terminating TLS server (certificate `cert_dir`).
fn config(tcp_port: u16, tls_port: u16, backends: [u16; 4], cert_dir: &str) -> String {
    let mut out = service("tcp-a", tcp_port, "TCP", backends[0]);
    out += &service("tcp-b", tcp_port, "TCP", backends[1]);
    out += &service("tls-a", tls_port, "TLS", backends[2]);
    out += &service("tls-b", tls_port, "TLS", backends[3]);
    out += &format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp-split}}
spec:
  hosts: [tcp-a]
  tcp:
  - match: [{{port: {tcp_port}}}]
    route:
    - {{destination: {{host: tcp-a}}, weight: 80}}
    - {{destination: {{host: tcp-b}}, weight: 20}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: by-sni}}
spec:
  hosts: [tls-a, tls-b]
  gateways: [mesh, edge]
  tls:
  - match: [{{sniHosts: [a.example.com]}}]
    route: [{{destination: {{host: tls-a}}}}]
  - match: [{{sniHosts: [b.example.com]}}]
    route: [{{destination: {{host: tls-b}}}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default}}
spec:
  egress:
  - hosts: [./*]
  - port: {{number: {tcp_port}, protocol: TCP, name: tcp}}
    hosts: [./tcp-a, ./tcp-b]
  - port: {{number: {tls_port}, protocol: TLS, name: tls}}
    hosts: [./tls-a, ./tls-b]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: [\"*\"]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 31400, name: tcp, protocol: TCP}}
    hosts: [\"*\"]
  - port: {{number: 9443, name: tls-terminated, protocol: TLS}}
    hosts: [echo.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {cert_dir}/echo.crt, privateKey: {cert_dir}/echo.key}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: edge-tcp}}
spec:
  hosts: [\"*\"]
  gateways: [edge]
  tcp:
  - match: [{{port: 31400}}]
    route: [{{destination: {{host: tcp-b}}}}]
  - match: [{{port: 9443}}]
    route: [{{destination: {{host: tcp-a}}}}]
"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_tls_routing_on_sidecars_and_gateways() {
    let cert_a = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).unwrap();
    let cert_b = rcgen::generate_simple_self_signed(vec!["b.example.com".into()]).unwrap();
    let backends = [
        tcp_backend("A").await,
        tcp_backend("B").await,
        tls_backend("TLS-A", &cert_a).await,
        tls_backend("TLS-B", &cert_b).await,
    ];
    let (tcp_port, tls_port) = (free_port(), free_port());
    // The gateway's own certificate for the TLS server it terminates.
    let files = tempfile::tempdir().unwrap();
    let echo = rcgen::generate_simple_self_signed(vec!["echo.example.com".into()]).unwrap();
    std::fs::write(files.path().join("echo.crt"), echo.cert.pem()).unwrap();
    std::fs::write(
        files.path().join("echo.key"),
        echo.signing_key.serialize_pem(),
    )
    .unwrap();
    let dir = files.path().display().to_string();
    let yaml = config(tcp_port, tls_port, backends, &dir);
    let config = ConfigDir::with(&[("tcp.yaml", &yaml)]).unwrap();
    let trellis = Trellis::start(config.path()).await.unwrap();
    let client = Sidecar::start(&trellis, "client", &[("app", "client")], free_port())
        .await
        .unwrap();
    for name in [tcp_port, tls_port].map(|p| format!("127.0.0.1_{p}")) {
        client.wait_listener(&name, TIMEOUT).await.unwrap();
    }
    wait_until(TIMEOUT, POLL, || read_tcp(tcp_port))
        .await
        .unwrap();

    // The 80/20 split, measured over 200 connections.
    let mut a = 0;
    for i in 0..200 {
        match read_tcp(tcp_port).await.as_deref() {
            Some("A") => a += 1,
            Some("B") => {}
            other => panic!("connection {i}: {other:?}\n{}", client.log()),
        }
    }
    println!("tcp split: {a}/200 to A (80% expected)");
    assert!((140..=180).contains(&a), "{a}/200 to A, expected about 160");

    // SNI picks the backend on the sidecar's TLS egress port; an unknown
    // name matches no chain and gets no backend.
    let (der_a, der_b) = (cert_a.cert.der().clone(), cert_b.cert.der().clone());
    let got = wait_until(TIMEOUT, POLL, || {
        read_tls(tls_port, "a.example.com", &der_a)
    })
    .await;
    assert_eq!(got.unwrap().0, "TLS-A");
    assert_eq!(
        read_tls(tls_port, "b.example.com", &der_b).await.as_deref(),
        Some("TLS-B")
    );
    assert_eq!(read_tls(tls_port, "c.example.com", &der_a).await, None);

    // Passthrough at the gateway: the client verifies the backend's own
    // certificate (it trusts nothing else).
    let gw_ports = [free_port(), free_port(), free_port()];
    let gw_port = gw_ports[0];
    let mapped = [
        (443, gw_ports[0]),
        (31400, gw_ports[1]),
        (9443, gw_ports[2]),
    ];
    let gateway = start_gateway(&trellis, files.path(), &mapped)
        .await
        .unwrap();
    let got = wait_until(TIMEOUT, POLL, || read_tls(gw_port, "b.example.com", &der_b)).await;
    assert_eq!(got.unwrap().0, "TLS-B", "{}", gateway.log());
    assert_eq!(
        read_tls(gw_port, "a.example.com", &der_a).await.as_deref(),
        Some("TLS-A")
    );
    // A's certificate is not B's: the client trusting only B refuses it.
    assert_eq!(read_tls(gw_port, "a.example.com", &der_b).await, None);

    // The gateway's TCP server, and its TLS server that terminates with
    // the gateway's certificate in front of a plain TCP backend.
    assert_eq!(read_tcp(gw_ports[1]).await.as_deref(), Some("B"));
    let der_echo = echo.cert.der().clone();
    assert_eq!(
        read_tls(gw_ports[2], "echo.example.com", &der_echo)
            .await
            .as_deref(),
        Some("A")
    );
}
