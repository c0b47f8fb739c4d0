//! Keys for `RequestAuthentication` `jwksUri`s. As istiod does, the
//! control plane fetches each URI (HTTPS only), keeps the last good key
//! set, refreshes it every `--jwks-refresh-interval`, and serves it
//! inline in Envoy's JWT filter, so sidecars and gateways never call out.
//! A fetch that fails (unreachable, bad TLS, not a key set) is logged and
//! counted (`trellis_jwks_fetch_errors_total`) and the rule keeps its last
//! good keys; a URI never fetched serves keys no token verifies against.
//!
//! Servers are trusted through the system roots (the first bundle found
//! of `SSL_CERT_FILE` and the usual distribution paths) plus the PEM
//! certificates of `--jwks-ca-file`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use tokio_rustls::rustls::{self, pki_types};

use super::core::{lock, Core};
use crate::config::check_jwks;
use crate::translate::jwt::jwks_uris;

/// Istio's default refresh (`PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(20 * 60);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A key set larger than this is refused.
const MAX_BODY: usize = 1 << 20;
/// How often the loop looks for URIs the config added.
const TICK: Duration = Duration::from_millis(500);

/// Why a key set could not be fetched. Names the URI, never key material.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The URI is not an `https://` URL with a host.
    #[error("{0}: not an https:// URL with a host")]
    Uri(String),
    /// Connecting, TLS or HTTP failed.
    #[error("{uri}: {reason}")]
    Fetch {
        /// The URI.
        uri: String,
        /// What failed.
        reason: String,
    },
    /// The server answered, but not with a key set.
    #[error("{uri}: {reason}")]
    Invalid {
        /// The URI.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS client could not be configured.
    #[error("TLS client: {0}")]
    Tls(String),
    /// `--jwks-ca-file` could not be read or has no certificate.
    #[error("--jwks-ca-file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The HTTPS client the fetcher uses.
#[derive(Clone)]
pub struct JwksClient {
    tls: tokio_rustls::TlsConnector,
}

impl JwksClient {
    /// A client trusting the system roots and the certificates of `ca_file`.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, JwksError> {
        let mut roots = rustls::RootCertStore::empty();
        for der in system_roots() {
            // A system bundle may hold certificates rustls cannot use.
            let _ = roots.add(der);
        }
        if let Some(path) = ca_file {
            let ca_err = |reason: String| JwksError::CaFile {
                path: path.to_path_buf(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let certs = pem_certs(&pem);
            if certs.is_empty() {
                return Err(ca_err("no PEM certificate in the file".into()));
            }
            for der in certs {
                roots.add(der).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| JwksError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(JwksClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Fetches and checks the key set at `uri`.
    pub async fn fetch(&self, uri: &str) -> Result<String, JwksError> {
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch_inner(uri)).await {
            Ok(r) => r,
            Err(_) => Err(JwksError::Fetch {
                uri: uri.into(),
                reason: format!("no answer within {FETCH_TIMEOUT:?}"),
            }),
        }
    }

    async fn fetch_inner(&self, uri: &str) -> Result<String, JwksError> {
        let parsed: hyper::Uri = uri.parse().map_err(|_| JwksError::Uri(uri.into()))?;
        let (Some("https"), Some(host)) = (parsed.scheme_str(), parsed.host()) else {
            return Err(JwksError::Uri(uri.into()));
        };
        let fail = |reason: String| JwksError::Fetch {
            uri: uri.into(),
            reason,
        };
        let tls = self
            .connect(host, parsed.port_u16().unwrap_or(443))
            .await
            .map_err(fail)?;
        let io = hyper_util::rt::TokioIo::new(tls);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| fail(format!("HTTP: {e}")))?;
        tokio::spawn(conn);
        let authority = parsed.authority().map(|a| a.as_str()).unwrap_or(host);
        let path = parsed.path_and_query().map_or("/", |p| p.as_str());
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail(e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| fail(format!("HTTP: {e}")))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP status {}", resp.status())));
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| fail(format!("body: {e}")))?
            .to_bytes();
        let text = String::from_utf8(body.to_vec()).map_err(|_| JwksError::Invalid {
            uri: uri.into(),
            reason: "the body is not UTF-8".into(),
        })?;
        check_jwks(&text).map_err(|reason| JwksError::Invalid {
            uri: uri.into(),
            reason,
        })?;
        Ok(text)
    }
}

impl JwksClient {
    /// A TLS connection to `host:port`, the server checked against `host`.
    async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((bare, port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = pki_types::ServerName::try_from(bare.to_string())
            .map_err(|e| format!("server name: {e}"))?;
        self.tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))
    }
}

/// The DER certificates of every PEM `CERTIFICATE` block in `pem`.
fn pem_certs(pem: &[u8]) -> Vec<pki_types::CertificateDer<'static>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| pki_types::CertificateDer::from(p.contents))
        .collect()
}

/// The first system CA bundle found (`SSL_CERT_FILE`, then the usual
/// Debian, Red Hat and Alpine paths).
fn system_roots() -> Vec<pki_types::CertificateDer<'static>> {
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let paths = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ];
    (env.into_iter().chain(paths.iter().map(PathBuf::from)))
        .find_map(|p| std::fs::read(p).ok())
        .map(|pem| pem_certs(&pem))
        .unwrap_or_default()
}

/// Fetch settings (`trellis serve` flags).
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// `--jwks-refresh-interval`.
    pub refresh: Duration,
    /// `--jwks-ca-file`.
    pub ca_file: Option<PathBuf>,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            refresh: DEFAULT_REFRESH,
            ca_file: None,
        }
    }
}

/// Fetches every `jwksUri` of the config in force: a new URI at once,
/// each again every `refresh`; a changed key set triggers a rebuild.
/// Runs until `stop`.
pub(crate) async fn fetch_loop(
    core: Arc<Core>,
    client: JwksClient,
    refresh: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut attempted: HashMap<String, Instant> = HashMap::new();
    loop {
        let uris = jwks_uris(&core.config.load().request_authentications);
        attempted.retain(|u, _| uris.contains(u));
        // Keys of URIs the config no longer names are not kept.
        lock(&core.build).jwks.retain(|u, _| uris.contains(u));
        let due: Vec<String> = (uris.into_iter())
            .filter(|u| attempted.get(u).is_none_or(|t| t.elapsed() >= refresh))
            .collect();
        let fetch_due = async {
            let mut changed = false;
            for uri in due {
                attempted.insert(uri.clone(), Instant::now());
                changed |= fetch_one(&core, &client, &uri).await;
            }
            changed
        };
        // A fetch in flight must not hold up shutdown.
        tokio::select! {
            _ = stop.changed() => return,
            changed = fetch_due => if changed { core.request_rebuild(); },
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Fetches `uri` into the build state; true when its keys changed.
async fn fetch_one(core: &Core, client: &JwksClient, uri: &str) -> bool {
    match client.fetch(uri).await {
        Ok(keys) => {
            let mut build = lock(&core.build);
            let changed = build.jwks.get(uri) != Some(&keys);
            if changed {
                tracing::info!(uri, "JWKS fetched");
                build.jwks.insert(uri.to_string(), keys);
            }
            changed
        }
        Err(e) => {
            let had = lock(&core.build).jwks.contains_key(uri);
            tracing::warn!(error = %e, last_good_kept = had, "JWKS fetch failed");
            core.metrics.jwks_fetch_error();
            false
        }
    }
}

#[cfg(test)]
mod tests;
