//! The JWKS client against an in-process HTTPS server (rcgen certificate,
//! tokio-rustls, one fixed HTTP/1.1 answer per connection).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

use super::{JwksClient, JwksError};

const KEYS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#;

/// Serves `body` over HTTPS on 127.0.0.1; returns the URI and the CA PEM.
async fn server(body: &'static str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    (format!("https://127.0.0.1:{}/keys", addr.port()), pem)
}

fn client_trusting(pem: &str) -> JwksClient {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    JwksClient::new(Some(&path)).unwrap()
}

#[tokio::test]
async fn fetches_keys_from_a_server_the_ca_file_trusts() {
    let (uri, pem) = server(KEYS).await;
    assert_eq!(client_trusting(&pem).fetch(&uri).await.unwrap(), KEYS);
}

#[tokio::test]
async fn an_untrusted_server_is_refused() {
    let (uri, _) = server(KEYS).await;
    let err = JwksClient::new(None)
        .unwrap()
        .fetch(&uri)
        .await
        .unwrap_err();
    assert!(matches!(err, JwksError::Fetch { .. }), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test]
async fn a_body_that_is_no_key_set_is_refused() {
    let (uri, pem) = server(r#"{"nokeys": 1}"#).await;
    let err = client_trusting(&pem).fetch(&uri).await.unwrap_err();
    assert!(matches!(err, JwksError::Invalid { .. }), "{err}");
}

#[test]
fn a_ca_file_without_certificates_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "nothing").unwrap();
    let err = JwksClient::new(Some(&path)).err().unwrap();
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}
