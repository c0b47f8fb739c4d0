//! DestinationRule `tls.credentialName` against real Envoy: a backend that
//! requires a client certificate is reached through a rule whose
//! certificate and CA come from `--credentials-dir` over SDS (MUTUAL);
//! the same backend through a rule with the CA only (SIMPLE) is refused,
//! so the certificate is what lets the request in.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
    RootCertStore,
};
use tokio_rustls::TlsAcceptor;
use trellis_integration_tests::wait::wait_until;
use trellis_integration_tests::*;

const HOST: &str = "secure.example";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A CA, the backend's server certificate and a client certificate.
struct Pki {
    ca: rcgen::Certificate,
    server: (rcgen::Certificate, KeyPair),
    client: (rcgen::Certificate, KeyPair),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "test client-cert CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf = |name: &str, usage| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![usage];
        (p.signed_by(&key, &issuer).unwrap(), key)
    };
    Pki {
        server: leaf(HOST, ExtendedKeyUsagePurpose::ServerAuth),
        client: leaf("client.example", ExtendedKeyUsagePurpose::ClientAuth),
        ca: ca_cert,
    }
}

/// An HTTP/1.1 server over TLS that requires a client certificate from
/// the CA and answers every request with 200 `secure`.
async fn mtls_backend(pki: &Pki) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let key = PrivatePkcs8KeyDer::from(pki.server.1.serialize_der());
    let chain: Vec<CertificateDer<'static>> = vec![pki.server.0.der().clone()];
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, PrivateKeyDer::Pkcs8(key))
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                // One request per connection: read up to the end of the
                // headers (a GET has no body), answer, close.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let reply =
                    "HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure";
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// `DIR/default/NAME/{tls.crt,tls.key,ca.crt}`; without `cert`, the CA
/// only (a SIMPLE client needs nothing else, but the layout wants a pair:
/// the client pair is written and SIMPLE does not send it).
fn write_credential(dir: &Path, name: &str, pki: &Pki) {
    let d = dir.join("default").join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("tls.crt"), pki.client.0.pem()).unwrap();
    std::fs::write(d.join("tls.key"), pki.client.1.serialize_pem()).unwrap();
    std::fs::write(d.join("ca.crt"), pki.ca.pem()).unwrap();
}

/// A service `NAME` on port 80 whose one endpoint is the backend, and a
/// rule reaching it over TLS with `mode` and credential `client-cert`.
fn service(name: &str, backend: u16, mode: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {backend}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {name}
  trafficPolicy:
    tls: {{mode: {mode}, credentialName: client-cert, sni: {HOST}, subjectAltNames: [{HOST}]}}
---
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_name_presents_the_client_certificate() {
    let pki = pki();
    let backend = mtls_backend(&pki).await;
    let creds = tempfile::tempdir().unwrap();
    write_credential(creds.path(), "client-cert", &pki);
    let yaml = service("secure", backend, "MUTUAL") + &service("no-cert", backend, "SIMPLE");
    let config = ConfigDir::with(&[("mesh.yaml", yaml.as_str())]).unwrap();
    let opts = TrellisOptions {
        extra_args: vec![
            "--credentials-dir".into(),
            creds.path().display().to_string(),
        ],
        ..Default::default()
    };
    let trellis = Trellis::start_with(config.path(), opts).await.unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();

    // MUTUAL: the certificate from the credentials dir gets the request in.
    let reply = wait_until(TIMEOUT, Duration::from_millis(200), || async {
        let r = client.get("secure", &[]).await.ok()?;
        (r.status == 200).then_some(r)
    })
    .await;
    let dump = client.sidecar.config_dump().await.unwrap().to_string();
    let (reply, _) = reply.unwrap_or_else(|e| panic!("secure never answered 200 ({e}): {dump}"));
    assert_eq!(reply.body, "secure");
    // The secret reached Envoy over SDS, not from a file.
    assert!(dump.contains("kubernetes://client-cert"), "{dump}");
    assert!(!dump.contains("BEGIN PRIVATE KEY"), "the dump shows a key");

    // SIMPLE with the same credential sends no certificate: refused.
    let r = client.get("no-cert", &[]).await.unwrap();
    assert_eq!(r.status, 503, "{r:?}");
}
