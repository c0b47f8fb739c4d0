//! A minimal HTTP/1 client for the demo: GETs on loopback with a chosen
//! `Host` header (how an app addresses a service via its sidecar), plain or
//! over HTTPS trusting one given CA (the demo's ingress gateway).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::tls::{TlsConnect, TlsError};

/// A pooled HTTP/1 client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
    timeout: Duration,
}

#[derive(Clone)]
enum Inner {
    Plain(Client<HttpConnector, Empty<Bytes>>),
    Tls(Client<TlsConnect, Empty<Bytes>>),
}

/// A response's status, `Location` header and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The `Location` header, if any (redirects).
    pub location: Option<String>,
    /// The body as text.
    pub body: String,
}

impl HttpClient {
    /// A client whose requests fail after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        HttpClient {
            inner: Inner::Plain(Client::builder(TokioExecutor::new()).build(connector)),
            timeout,
        }
    }

    /// An HTTPS-only client that trusts only the certificates in `ca_pem`
    /// and connects to `ip` whatever the URL's host (`curl --resolve`).
    pub fn https(timeout: Duration, ca_pem: &str, ip: IpAddr) -> Result<Self, TlsError> {
        let connector = TlsConnect::trusting(ca_pem, ip)?;
        Ok(HttpClient {
            inner: Inner::Tls(Client::builder(TokioExecutor::new()).build(connector)),
            timeout,
        })
    }

    /// `GET url` with `Host: host` when given.
    pub async fn get(&self, url: &str, host: Option<&str>) -> anyhow::Result<Reply> {
        self.send(hyper::Request::get(url), url, host).await
    }

    /// `POST url` with an empty body.
    pub async fn post(&self, url: &str) -> anyhow::Result<Reply> {
        self.send(hyper::Request::post(url), url, None).await
    }

    async fn send(
        &self,
        mut req: hyper::http::request::Builder,
        url: &str,
        host: Option<&str>,
    ) -> anyhow::Result<Reply> {
        if let Some(h) = host {
            req = req.header(hyper::header::HOST, h);
        }
        let req = req
            .body(Empty::new())
            .with_context(|| format!("bad URL {url}"))?;
        let fut = async {
            let resp = match &self.inner {
                Inner::Plain(c) => c.request(req).await?,
                Inner::Tls(c) => c.request(req).await?,
            };
            let status = resp.status().as_u16();
            let location = (resp.headers().get(hyper::header::LOCATION))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok(Reply {
                status,
                location,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .with_context(|| format!("{url}: no answer within {:?}", self.timeout))?
            .with_context(|| url.to_string())
    }
}
