//! The xDS TLS server: real handshakes on loopback with a client that
//! trusts only the mesh root, through renewals and a root rotation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_stream::wrappers::TcpListenerStream;

use super::*;
use crate::ca::{Ca, CaConfig};

struct Served {
    cert: Arc<ServerCert>,
    addr: SocketAddr,
    _state: tempfile::TempDir,
}

fn opts() -> ServeOptions {
    ServeOptions {
        config_dir: "/unused".into(),
        xds_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        state_dir: "/unused".into(),
        grace_period: Duration::from_secs(1),
        restart_grace_period: Duration::from_secs(1),
        insecure_xds: false,
        plugin_ca: None,
        xds_tls: true,
        xds_tls_names: vec!["xds.example".into()],
        xds_tls_ttl: Duration::from_secs(3600),
        xds_per_peer: crate::serve::PerPeerLimits::default(),
        credentials_dir: None,
        jwks: Default::default(),
        store: None,
        graph: Default::default(),
        release_memory: None,
    }
}

/// An echo server behind [`incoming`]: each connection echoes what it reads.
async fn serve() -> Served {
    let state = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&CaConfig {
        state_dir: state.path().into(),
        plugin: None,
    })
    .unwrap();
    let cert = Arc::new(ServerCert::new(Arc::new(ca), &opts(), Duration::from_secs(3600)).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut accepted = Box::pin(incoming(cert.clone(), TcpListenerStream::new(listener)).unwrap());
    tokio::spawn(async move {
        while let Some(Ok(mut tls)) = accepted.next().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = tls.read(&mut buf).await {
                    let _ = tls.write_all(&buf[..n]).await;
                }
            });
        }
    });
    Served {
        cert,
        addr,
        _state: state,
    }
}

/// A TLS client trusting only `bundle_pem`: the connection and the serial
/// of the certificate the server presented.
async fn connect(
    addr: SocketAddr,
    bundle_pem: &str,
) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, String)> {
    let mut roots = RootCertStore::empty();
    for der in pem_blocks(bundle_pem.as_bytes(), "CERTIFICATE") {
        roots.add(CertificateDer::from(der)).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("xds.example").unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let (_, session) = tls.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    let leaf = session.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    Ok((tls, parsed.raw_serial_as_string().replace(':', "")))
}

async fn echo(tls: &mut tokio_rustls::client::TlsStream<TcpStream>, msg: &[u8]) -> Vec<u8> {
    tls.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    tls.read_exact(&mut buf).await.unwrap();
    buf
}

#[tokio::test]
async fn renewal_keeps_open_connections_and_new_handshakes_get_the_new_certificate() {
    let served = serve().await;
    let bundle = served.cert.ca.trust_bundle_pem();
    let (mut old_conn, first) = connect(served.addr, &bundle).await.unwrap();
    assert_eq!(first, served.cert.serial());
    // Not due yet: nothing changes.
    assert!(!served.cert.renew_if_due(SystemTime::now()).unwrap());
    // At half-life it is renewed.
    let half_life = SystemTime::now() + Duration::from_secs(1800);
    assert!(served.cert.renew_if_due(half_life).unwrap());
    let renewed = served.cert.serial();
    assert_ne!(renewed, first);
    let (mut new_conn, seen) = connect(served.addr, &bundle).await.unwrap();
    assert_eq!(seen, renewed);
    // The connection made before the renewal still carries data.
    assert_eq!(echo(&mut old_conn, b"still here").await, b"still here");
    assert_eq!(echo(&mut new_conn, b"new").await, b"new");
}

#[tokio::test]
async fn a_root_rotation_reissues_under_the_new_root_and_the_bundle_trusts_both() {
    let served = serve().await;
    let ca = served.cert.ca.clone();
    let old_root = ca.trust_bundle_pem();
    let (mut before, first) = connect(served.addr, &old_root).await.unwrap();
    ca.begin_rotation().unwrap();
    // The old root still signs: nothing to re-issue.
    assert!(!served.cert.renew_if_due(SystemTime::now()).unwrap());
    let bundle = ca.trust_bundle_pem();
    ca.activate_new_root().unwrap();
    assert!(served.cert.renew_if_due(SystemTime::now()).unwrap());
    let (_, serial) = connect(served.addr, &bundle).await.unwrap();
    assert_ne!(serial, first);
    // Pinned to the old root only, a new handshake fails; with the bundle
    // (both roots) it works, and so does the connection made before.
    assert!(connect(served.addr, &old_root).await.is_err());
    assert_eq!(echo(&mut before, b"open").await, b"open");
    ca.finish_rotation().unwrap();
    served.cert.renew_if_due(SystemTime::now()).unwrap();
    let (_, after) = connect(served.addr, &bundle).await.unwrap();
    assert_eq!(after, served.cert.serial());
}

#[test]
fn a_lifetime_under_the_minimum_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&CaConfig {
        state_dir: state.path().into(),
        plugin: None,
    })
    .unwrap();
    let err = ServerCert::new(Arc::new(ca), &opts(), Duration::from_secs(1)).unwrap_err();
    assert!(err.to_string().contains("at least 2s"), "{err}");
}
