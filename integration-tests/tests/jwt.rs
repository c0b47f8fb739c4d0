//! `RequestAuthentication` with real Envoys. The keys come from a
//! loopback HTTPS server (`jwksUri`, trusted through `--jwks-ca-file`);
//! the control plane fetches them and serves them inline. A valid token
//! is 200; an expired one, one with a bad signature or for another
//! audience is 401 (the last one through the HCM's local reply mapper); no token is 403 because a policy requires a request
//! principal; a claim decides an ALLOW (nested claim) and a DENY (list
//! claim). The key is then rotated on the server: the new key's tokens
//! pass once the control plane's refresh picked it up, the old key's are
//! refused. When the server then fails, the failures are counted and the
//! last good keys stay in force.
//!
//! At the edge: a RequestAuthentication with inline keys that selects an
//! ingress gateway, and a policy there that needs a request principal.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use trellis_integration_tests::trellis::TrellisOptions;
use trellis_integration_tests::*;

const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
const ISSUER: &str = "https://issuer.trellis.test";

/// An ES256 signing key and its JWK.
struct Key {
    pair: EcdsaKeyPair,
    kid: String,
}

impl Key {
    fn new(kid: &str) -> Key {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Key {
            pair,
            kid: kid.into(),
        }
    }

    /// The public key as a JWK (uncompressed point: 0x04 || x || y).
    fn jwk(&self) -> serde_json::Value {
        let p = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
               "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])})
    }

    /// A compact JWS of `claims` (header.payload.signature, base64url).
    fn sign(&self, claims: &serde_json::Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

fn jwks(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a token for `aud`, with `level` and `groups`, valid for an hour.
fn claims(sub: &str, aud: &str, level: &str, groups: &[&str]) -> serde_json::Value {
    json!({"iss": ISSUER, "sub": sub, "aud": aud, "iat": now(), "exp": now() + 3600,
           "scope": {"level": level}, "groups": groups})
}

/// The JWKS server: HTTPS on loopback with a fresh certificate, answering
/// every request with the key set in `keys`.
struct JwksServer {
    uri: String,
    ca_file: tempfile::NamedTempFile,
    keys: Arc<Mutex<String>>,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    /// When set, every request is answered 503.
    broken: Arc<std::sync::atomic::AtomicBool>,
}

impl JwksServer {
    async fn start(initial: String) -> JwksServer {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), cert.pem()).unwrap();
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
        let port = listener.local_addr().unwrap().port();
        let keys = Arc::new(Mutex::new(initial));
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (k, h, b) = (keys.clone(), hits.clone(), broken.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, k, h, b) = (acceptor.clone(), k.clone(), h.clone(), b.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = k.lock().unwrap().clone();
                    let resp = if b.load(std::sync::atomic::Ordering::SeqCst) {
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
                    } else {
                        format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    };
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        JwksServer {
            uri: format!("https://127.0.0.1:{port}/jwks"),
            ca_file,
            keys,
            hits,
            broken,
        }
    }
}

fn config(jwks_uri: &str) -> String {
    format!(
        r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: payment-jwt, namespace: default}}
spec:
  selector: {{matchLabels: {{app: payment}}}}
  jwtRules:
  - issuer: {ISSUER}
    audiences: [shop]
    jwksUri: {jwks_uri}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: payment-needs-gold-or-silver, namespace: default}}
spec:
  selector: {{matchLabels: {{app: payment}}}}
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["{ISSUER}/*"]
    when:
    - key: request.auth.claims[scope][level]
      values: [gold, silver]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: payment-no-banned, namespace: default}}
spec:
  selector: {{matchLabels: {{app: payment}}}}
  action: DENY
  rules:
  - when:
    - key: request.auth.claims[groups]
      values: [banned]
"#
    )
}

/// The status of `GET http://payment/` through `sidecar`, with `token`
/// as a bearer token (`None` on a transport error).
async fn status(sidecar: &Sidecar, token: Option<&str>) -> Option<u16> {
    answer(sidecar, token).await.map(|(s, _)| s)
}

/// Status and body of that request.
async fn answer(sidecar: &Sidecar, token: Option<&str>) -> Option<(u16, String)> {
    let client = HyperClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let mut req = hyper::Request::builder()
        .uri(format!("http://127.0.0.1:{}/", sidecar.outbound_port()))
        .header(hyper::header::HOST, "payment");
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Empty::new()).ok()?;
    let fut = async {
        let resp = client.request(req).await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .ok()?
}

async fn wait_status(sidecar: &Sidecar, token: Option<&str>, want: u16, what: &str) {
    wait_until(SETUP_TIMEOUT, Duration::from_millis(50), || async {
        (status(sidecar, token).await == Some(want)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{what}: never {want}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_from_jwks_uri_with_claims_and_key_rotation() {
    let k1 = Key::new("k1");
    let server = JwksServer::start(jwks(&[&k1])).await;
    let dir = ConfigDir::with(&[("jwt.yaml", &config(&server.uri))]).unwrap();
    let opts = TrellisOptions {
        extra_args: vec![
            "--jwks-ca-file".into(),
            server.ca_file.path().display().to_string(),
            "--jwks-refresh-interval".into(),
            "1s".into(),
        ],
        ..Default::default()
    };
    let trellis = Trellis::start_with(dir.path(), opts).await.unwrap();
    let app = Backend::start("payment", "v1").await.unwrap();
    let _payment = Sidecar::start(
        &trellis,
        "payment",
        &[("app", "payment"), ("version", "v1")],
        app.port(),
    )
    .await
    .unwrap();
    let front_app = Backend::start("frontend", "v1").await.unwrap();
    let frontend = Sidecar::start(&trellis, "frontend", &[("version", "v1")], front_app.port())
        .await
        .unwrap();

    // A valid token passes once the fetched keys reached the sidecar.
    let good = k1.sign(&claims("alice", "shop", "gold", &["dev"]));
    wait_status(&frontend, Some(&good), 200, "valid token").await;
    assert!(server.hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // Invalid tokens: 401 from the JWT filter.
    let mut expired = claims("alice", "shop", "gold", &[]);
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 7200);
    assert_eq!(
        status(&frontend, Some(&k1.sign(&expired))).await,
        Some(401),
        "expired"
    );
    let stranger = Key::new("k1");
    let forged = stranger.sign(&claims("alice", "shop", "gold", &[]));
    assert_eq!(
        status(&frontend, Some(&forged)).await,
        Some(401),
        "bad signature"
    );
    let other_aud = k1.sign(&claims("alice", "ledger", "gold", &[]));
    let (code, body) = answer(&frontend, Some(&other_aud)).await.unwrap();
    assert_eq!(
        (code, body.as_str()),
        (401, "Audiences in Jwt are not allowed"),
        "wrong audience"
    );

    // No token: the JWT filter lets it through, the ALLOW needs a
    // request principal: 403.
    let (code, body) = answer(&frontend, None).await.unwrap();
    assert_eq!(
        (code, body.as_str()),
        (403, "RBAC: access denied"),
        "missing token"
    );

    // Claims: the nested ALLOW claim and the DENY list claim.
    let bronze = k1.sign(&claims("bob", "shop", "bronze", &[]));
    assert_eq!(
        status(&frontend, Some(&bronze)).await,
        Some(403),
        "claim ALLOW not met"
    );
    let silver = k1.sign(&claims("bob", "shop", "silver", &["ops"]));
    assert_eq!(
        status(&frontend, Some(&silver)).await,
        Some(200),
        "claim ALLOW met"
    );
    let banned = k1.sign(&claims("carol", "shop", "gold", &["dev", "banned"]));
    assert_eq!(
        status(&frontend, Some(&banned)).await,
        Some(403),
        "claim DENY"
    );

    // Rotation on the JWKS server: k2 replaces k1; the control plane's
    // refresh picks it up and Envoy gets the new keys inline.
    let k2 = Key::new("k2");
    *server.keys.lock().unwrap() = jwks(&[&k2]);
    let rotated = k2.sign(&claims("alice", "shop", "gold", &[]));
    let rotated_at = std::time::Instant::now();
    wait_status(&frontend, Some(&rotated), 200, "token of the rotated key").await;
    // Bounded by --jwks-refresh-interval (1 s) plus one push.
    eprintln!(
        "rotated key accepted {:?} after the server switched",
        rotated_at.elapsed()
    );
    assert_eq!(
        status(&frontend, Some(&good)).await,
        Some(401),
        "old key after rotation"
    );

    // The server fails: the control plane logs, counts, and keeps the
    // last good keys, so k2's tokens still pass.
    server
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    wait_until(SETUP_TIMEOUT, Duration::from_millis(100), || async {
        let m = trellis.metrics().await.ok()?;
        m.lines()
            .find_map(|l| l.strip_prefix("trellis_jwks_fetch_errors_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| *v >= 2.0)
    })
    .await
    .expect("failed fetches are counted");
    assert_eq!(
        status(&frontend, Some(&rotated)).await,
        Some(200),
        "last good keys kept"
    );
    assert!(trellis.log().contains("JWKS fetch failed"));
}

/// The gateway's config: payment behind an HTTP server on port 80, JWT
/// with inline keys on the gateway, and a policy there that needs a token.
fn edge_config(jwks: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment}}
spec:
  hosts: [payment]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: shop-gw}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [shop.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shop}}
spec:
  hosts: [shop.example.com]
  gateways: [shop-gw]
  http:
  - route:
    - destination: {{host: payment}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: edge-jwt}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  jwtRules:
  - issuer: {ISSUER}
    jwks: '{jwks}'
    fromHeaders: [{{name: x-token}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: edge-needs-a-user}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  rules:
  - from: [{{source: {{requestPrincipals: ["*"]}}}}]
"#
    )
}

/// `GET http://shop.example.com/` on the gateway's port, with `token` in
/// `x-token`.
async fn edge_status(port: u16, token: Option<&str>) -> Option<u16> {
    let client = HyperClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let mut req = hyper::Request::builder()
        .uri(format!("http://127.0.0.1:{port}/"))
        .header(hyper::header::HOST, "shop.example.com");
    if let Some(t) = token {
        req = req.header("x-token", t);
    }
    let fut = async {
        let resp = client.request(req.body(Empty::new()).ok()?).await.ok()?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await.ok()?;
        Some(status)
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .ok()?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_with_inline_keys_on_an_ingress_gateway() {
    let key = Key::new("edge");
    let dir = ConfigDir::with(&[("edge.yaml", &edge_config(&jwks(&[&key])))]).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let _payment = Instance::start(&trellis, "payment", "v1", Behavior::Ok)
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let http = free_port();
    let gateway =
        trellis_integration_tests::gateway::start_gateway(&trellis, files.path(), &[(80, http)])
            .await
            .unwrap();

    let good = key.sign(&claims("alice", "shop", "gold", &[]));
    wait_until(SETUP_TIMEOUT, Duration::from_millis(50), || async {
        (edge_status(http, Some(&good)).await == Some(200)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("valid token at the edge: {e}\n{}", gateway.log()));
    let forged = Key::new("edge").sign(&claims("alice", "shop", "gold", &[]));
    assert_eq!(
        edge_status(http, Some(&forged)).await,
        Some(401),
        "bad signature"
    );
    assert_eq!(edge_status(http, None).await, Some(403), "missing token");
}
