//! `--xds-tls`: ADS over TLS with a server certificate from the mesh CA, so
//! sidecars (`trellis bootstrap --xds-ca-file ROOTS.pem`) know they talk to
//! this control plane before they send their token.
//!
//! The handshake is done here rather than by tonic's `ServerTlsConfig`,
//! which is fixed once serving: the certificate is renewed while running.
//! [`renew_loop`] issues a new one at half its life, and as soon as another
//! certificate signs for the CA (a root rotation's `activate` and `finish`),
//! and swaps it in: connections already open keep their TLS session (and
//! their ADS streams), every new handshake gets the new certificate.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls::crypto::ring as provider;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::{ServeError, ServeOptions};
use crate::ca::{Ca, IssuedCert};

#[cfg(test)]
mod tests;

/// Shortest lifetime accepted: a renewal every second is already plenty.
const MIN_TTL: Duration = Duration::from_secs(2);
/// How often the loop checks whether another certificate signs for the CA.
const SIGNER_CHECK: Duration = Duration::from_secs(1);
/// A client that has not finished its handshake by then is dropped, so
/// half-open connections cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry delay after a failed issuance (the old certificate stays).
const RETRY: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// The xDS server's certificate, swapped on renewal, and what issues it.
#[derive(Debug)]
pub(super) struct ServerCert {
    ca: Arc<Ca>,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    ttl: Duration,
    current: ArcSwap<Current>,
}

/// The certificate in use and when it is renewed.
#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    serial: String,
    renew_at: SystemTime,
    /// The CA certificate that signed it ([`Ca::signer_fingerprint`]).
    signer: String,
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.load().key))
    }
}

impl ServerCert {
    /// Issues the first certificate for the names of `opts`.
    pub(super) fn new(ca: Arc<Ca>, opts: &ServeOptions, ttl: Duration) -> Result<Self, ServeError> {
        if ttl < MIN_TTL {
            return Err(ServeError::XdsTls(format!(
                "the certificate lifetime must be at least {MIN_TTL:?}"
            )));
        }
        let (dns, ips) = names(opts);
        let first = issue(&ca, &dns, &ips, ttl)?;
        tracing::info!(serial = first.serial, dns = ?dns, ips = ?ips, ?ttl, "xDS over TLS with a certificate from the mesh CA");
        Ok(ServerCert {
            ca,
            dns,
            ips,
            ttl,
            current: ArcSwap::from_pointee(first),
        })
    }

    /// The serial of the certificate new handshakes get (lowercase hex).
    #[cfg(test)]
    pub(super) fn serial(&self) -> String {
        self.current.load().serial.clone()
    }

    /// Renews when due or when another certificate signs; true if it did.
    fn renew_if_due(&self, now: SystemTime) -> Result<bool, ServeError> {
        let current = self.current.load();
        let signer = self.ca.signer_fingerprint();
        if now < current.renew_at && signer == current.signer {
            return Ok(false);
        }
        let next = issue(&self.ca, &self.dns, &self.ips, self.ttl)?;
        tracing::info!(
            old = current.serial,
            new = next.serial,
            signer_changed = signer != current.signer,
            "xDS server certificate renewed"
        );
        self.current.store(Arc::new(next));
        Ok(true)
    }
}

fn issue(ca: &Ca, dns: &[String], ips: &[IpAddr], ttl: Duration) -> Result<Current, ServeError> {
    let signer = ca.signer_fingerprint();
    let cert = ca.issue_server(dns, ips, ttl)?;
    Ok(Current {
        key: Arc::new(certified_key(&cert)?),
        serial: cert.serial_hex.clone(),
        renew_at: cert.renew_at(),
        signer,
    })
}

/// The chain and key of `cert` as rustls serves them.
fn certified_key(cert: &IssuedCert) -> Result<CertifiedKey, ServeError> {
    let bad = |problem: &str| ServeError::XdsTls(format!("the server certificate: {problem}"));
    let chain = pem_blocks(cert.chain_pem.as_bytes(), "CERTIFICATE")
        .into_iter()
        .map(CertificateDer::from)
        .collect::<Vec<_>>();
    let key = pem_blocks(cert.key.expose_secret().as_bytes(), "PRIVATE KEY")
        .into_iter()
        .next()
        .ok_or_else(|| bad("no PKCS#8 key"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    let signing = provider::sign::any_supported_type(&key).map_err(|_| bad("unusable key"))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// The contents of the PEM blocks labelled `label`.
fn pem_blocks(pem: &[u8], label: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == label)
        .map(|p| p.contents)
        .collect()
}

/// Accepts TLS on the sockets of `tcp`: handshakes run concurrently (a slow
/// client holds up no one) and finished ones are yielded to the server.
pub(super) fn incoming<S>(
    cert: Arc<ServerCert>,
    tcp: impl Stream<Item = std::io::Result<S>> + Send + 'static,
) -> Result<impl Stream<Item = std::io::Result<TlsStream<S>>>, ServeError>
where
    S: Connected<ConnectInfo = TcpConnectInfo> + AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let acceptor = acceptor(cert)?;
    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
    tokio::spawn(async move {
        let mut tcp = std::pin::pin!(tcp);
        loop {
            // Ends with the server (it dropped the receiver), releasing the port.
            let accepted = tokio::select! {
                next = tcp.next() => match next {
                    Some(accepted) => accepted,
                    None => return,
                },
                () = tx.closed() => return,
            };
            let socket = match accepted {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::warn!("xDS accept failed: {e}");
                    continue;
                }
            };
            // TCP_NODELAY and keepalive are already set where it was
            // accepted (`serve::incoming`).
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let peer = socket.connect_info().remote_addr();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(?peer, "xDS TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(?peer, "xDS TLS handshake timed out"),
                }
            });
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// TLS 1.2 and 1.3 with the swappable certificate; ALPN `h2` (gRPC).
fn acceptor(cert: Arc<ServerCert>) -> Result<TlsAcceptor, ServeError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::XdsTls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Renews the certificate at half its life and after the CA's signer
/// changed, until `stop` fires.
pub(super) async fn renew_loop(cert: Arc<ServerCert>, mut stop: watch::Receiver<bool>) {
    loop {
        let due = cert.current.load().renew_at;
        let wait = due
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(SIGNER_CHECK);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = cert.renew_if_due(SystemTime::now()) {
            tracing::error!("cannot renew the xDS server certificate (the current one stays): {e}");
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// The certificate's SANs: the listen IP (unless unspecified), loopback,
/// `localhost` and the names given with `--xds-tls-name`.
fn names(opts: &ServeOptions) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_string()];
    let mut ips = vec![IpAddr::from([127, 0, 0, 1])];
    let listen = opts.xds_addr.ip();
    if !listen.is_unspecified() && !ips.contains(&listen) {
        ips.push(listen);
    }
    for name in &opts.xds_tls_names {
        match name.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !dns.contains(name) => dns.push(name.clone()),
            Err(_) => {}
        }
    }
    (dns, ips)
}
