//! An HTTP/1.1 client that talks to a sidecar's outbound listener with a
//! `Host` header, the way an application in the mesh does.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;

use crate::backend::BACKEND_HEADER;

/// Where the tests' own servers listen unless a test says otherwise.
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Longest a single request may take before the test gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `NAME VERSION` of the backend that answered, if one did.
    pub backend: Option<String>,
    /// Response body as text.
    pub body: String,
    /// Response headers (first value of each).
    pub headers: BTreeMap<String, String>,
    /// Time from sending to the full body.
    pub elapsed: Duration,
}

impl Reply {
    /// The backend's version (`v2` of `reviews v2`), if a backend answered.
    pub fn version(&self) -> Option<&str> {
        self.backend.as_deref()?.split_whitespace().nth(1)
    }

    /// What [`Tally`] counts: the backend label on 2xx, else `HTTP NNN`.
    pub fn outcome(&self) -> String {
        match (&self.backend, self.status) {
            (Some(b), 200..=299) => b.clone(),
            _ => format!("HTTP {}", self.status),
        }
    }
}

/// Counts of [`Reply::outcome`] over many requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(pub BTreeMap<String, usize>);

impl Tally {
    /// How many requests had this outcome.
    pub fn get(&self, outcome: &str) -> usize {
        self.0.get(outcome).copied().unwrap_or(0)
    }

    /// All requests counted.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// Requests answered with 2xx by any backend.
    pub fn ok(&self) -> usize {
        self.0
            .iter()
            .filter(|(k, _)| !k.starts_with("HTTP "))
            .map(|(_, v)| v)
            .sum()
    }
}

/// A pooled HTTP/1.1 client.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client")
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A new client with its own connection pool.
    pub fn new() -> Self {
        let inner = HyperClient::builder(TokioExecutor::new()).build_http();
        Self { inner }
    }

    /// `GET http://127.0.0.1:PORT/PATH` with `Host: HOST` and extra headers.
    pub async fn get(
        &self,
        port: u16,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        self.get_at(LOCALHOST, port, host, path, headers).await
    }

    /// `GET http://IP:PORT/PATH` with `Host: HOST` and extra headers: a
    /// server on another address, e.g. in a network namespace.
    pub async fn get_at(
        &self,
        ip: IpAddr,
        port: u16,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let addr = SocketAddr::new(ip, port);
        self.send(hyper::Method::GET, addr, host, path, headers)
            .await
    }

    /// `METHOD http://ADDR/PATH` with `Host: HOST` and extra headers
    /// (e.g. a CORS preflight, `OPTIONS`).
    pub async fn send(
        &self,
        method: hyper::Method,
        addr: SocketAddr,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header(hyper::header::HOST, host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::new())?;
        let start = Instant::now();
        let fut = async {
            let resp = self.inner.request(req).await?;
            let status = resp.status().as_u16();
            let headers: BTreeMap<String, String> = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, headers, body))
        };
        let (status, headers, body) = tokio::time::timeout(REQUEST_TIMEOUT, fut).await??;
        Ok(Reply {
            status,
            backend: headers.get(BACKEND_HEADER).cloned(),
            body: String::from_utf8_lossy(&body).into_owned(),
            headers,
            elapsed: start.elapsed(),
        })
    }

    /// Sends `n` GETs, `concurrency` at a time, and counts the outcomes.
    /// A transport error counts as `error`.
    pub async fn tally(
        &self,
        port: u16,
        host: &str,
        headers: &[(&str, &str)],
        n: usize,
        concurrency: usize,
    ) -> Tally {
        use futures::StreamExt as _;
        let replies: Vec<_> = futures::stream::iter(0..n)
            .map(|_| self.get(port, host, "/", headers))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut tally = Tally::default();
        for r in replies {
            let key = match r {
                Ok(reply) => reply.outcome(),
                Err(_) => "error".to_string(),
            };
            *tally.0.entry(key).or_default() += 1;
        }
        tally
    }
}

/// `GET http://127.0.0.1:PORT/PATH` (an admin endpoint): status and body.
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    http_get_at(LOCALHOST, port, path).await
}

/// `GET http://IP:PORT/PATH`: status and body.
pub async fn http_get_at(ip: IpAddr, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let host = SocketAddr::new(ip, port).to_string();
    let reply = shared_client().get_at(ip, port, &host, path, &[]).await?;
    Ok((reply.status, reply.body))
}

/// `POST http://127.0.0.1:PORT/PATH` with an empty body (Envoy's admin
/// mutations need POST): status and body.
pub async fn http_post(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let req = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header(hyper::header::HOST, "127.0.0.1")
        .body(Empty::new())?;
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, shared_client().inner.request(req)).await??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One client for admin calls, so they reuse connections.
fn shared_client() -> &'static Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(Client::new)
}
