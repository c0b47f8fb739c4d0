//! HTTPS for the demo's client: a hyper connector that speaks TLS with
//! rustls and trusts exactly one CA (the one the demo generated for its
//! ingress gateway), so the traffic checks the gateway's certificate as a
//! browser would, without trusting anything else.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};

/// Why the client's TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file holds no usable PEM certificate.
    #[error("the CA holds no usable PEM certificate")]
    NoCa,
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects over TCP to a fixed IP (as `curl --resolve`), then TLS with
/// the URL's host as server name.
#[derive(Clone)]
pub struct TlsConnect {
    tls: tokio_rustls::TlsConnector,
    ip: IpAddr,
}

impl TlsConnect {
    /// A connector to `ip` that trusts only the certificates in `ca_pem`.
    pub fn trusting(ca_pem: &str, ip: IpAddr) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in pem_certs(ca_pem) {
            roots.add(cert).map_err(TlsError::Rustls)?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoCa);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConnect {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            ip,
        })
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<TlsStream>, BoxError> {
        let host = uri.host().ok_or("URL without host")?.to_string();
        let port = uri.port_u16().unwrap_or(443);
        let tcp = TcpStream::connect((self.ip, port)).await?;
        tcp.set_nodelay(true)?;
        let name = pki_types::ServerName::try_from(host)?;
        let tls = self.tls.connect(name, tcp).await?;
        Ok(TokioIo::new(TlsStream(tls)))
    }
}

/// The certificates of a PEM text, in order (others are skipped).
fn pem_certs(pem: &str) -> Vec<pki_types::CertificateDer<'static>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| pki_types::CertificateDer::from(p.contents))
        .collect()
}

impl tower_service::Service<Uri> for TlsConnect {
    type Response = TokioIo<TlsStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// A client TLS connection, as hyper's pool wants it.
pub struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl Connection for TlsStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_ca_without_certificates_is_refused() {
        assert!(matches!(
            TlsConnect::trusting("", LOOPBACK),
            Err(TlsError::NoCa)
        ));
        let cert = super::super::cert::IngressCert::generate(
            &["localhost".into()],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(TlsConnect::trusting(&cert.ca_pem, LOOPBACK).is_ok());
    }
}
