//! A gRPC test backend and client over h2c (HTTP/2 with prior
//! knowledge), written with hyper: no protobuf code generation. A message
//! is gRPC's length-prefixed frame (a zero "compressed" byte, a big-endian
//! u32 length, the bytes) around UTF-8 text, which Envoy passes through
//! like any other message.
//!
//! The backend answers any `/pkg.Service/Method` with `content-type:
//! application/grpc`, one message `NAME /pkg.Service/Method` and the
//! trailer `grpc-status: 0`, or with a configured error status. It echoes
//! every request header whose name starts with `x-` as `x-echo-NAME`, so a
//! test sees what the proxies added.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::wait::wait_until;

/// How long [`GrpcBackend::start`] waits for the server to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// A running gRPC backend; its accept loop and every connection stop when
/// it is dropped.
#[derive(Debug)]
pub struct GrpcBackend {
    addr: SocketAddr,
    status: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl GrpcBackend {
    /// Starts a backend named `name` on a free port of 127.0.0.1 and waits
    /// until it answers a call (needs a Tokio runtime).
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let status = Arc::new(Mutex::new(0));
        let name: Arc<str> = Arc::from(name);
        let (st, nm) = (status.clone(), name.clone());
        let task = tokio::spawn(async move {
            // Dropping the set (the task aborted) aborts every connection.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let (st, nm) = (st.clone(), nm.clone());
                let service = hyper::service::service_fn(move |req| {
                    let answer = answer(&nm, current(&st), req);
                    async move { Ok::<_, Infallible>(answer) }
                });
                conns.spawn(async move {
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        let me = Self { addr, status, task };
        let direct = wait_until(READY_TIMEOUT, Duration::from_millis(20), || async {
            call(me.port(), "ready", "/grpc.health.v1.Health/Check", &[])
                .await
                .ok()
        })
        .await;
        anyhow::ensure!(direct.is_ok(), "gRPC backend {name} never answered");
        Ok(me)
    }

    /// The port it listens on (the sidecar's app port, or an endpoint).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// From now on, answer every call with `grpc-status: status` (0: OK).
    pub fn set_status(&self, status: u32) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn current(status: &Mutex<u32>) -> u32 {
    *status.lock().unwrap_or_else(|e| e.into_inner())
}

type Answer = Response<StreamBody<futures::stream::Iter<std::vec::IntoIter<FrameResult>>>>;
type FrameResult = Result<Frame<Bytes>, Infallible>;

/// The answer to one call: headers, then one message and the status
/// trailers, or the error trailers alone.
fn answer(name: &str, status: u32, req: Request<Incoming>) -> Answer {
    let method = req.uri().path().to_string();
    let mut frames = Vec::new();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status));
    if status == 0 {
        frames.push(Ok(Frame::data(frame(&format!("{name} {method}")))));
    } else {
        let msg = format!("{name} fails {method}");
        trailers.insert("grpc-message", HeaderValue::from_str(&msg).unwrap());
    }
    frames.push(Ok(Frame::trailers(trailers)));
    let mut resp = Response::new(StreamBody::new(futures::stream::iter(frames)));
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("x-backend", HeaderValue::from_str(name).unwrap());
    for (k, v) in req.headers() {
        if k.as_str().starts_with("x-") {
            let echo = HeaderName::from_bytes(format!("x-echo-{k}").as_bytes());
            headers.extend(echo.ok().map(|n| (n, v.clone())));
        }
    }
    resp
}

/// One gRPC message frame around `text`.
fn frame(text: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + text.len());
    b.put_u8(0);
    b.put_u32(text.len() as u32);
    b.put_slice(text.as_bytes());
    b.freeze()
}

/// What a unary call got back.
#[derive(Debug, Clone)]
pub struct GrpcReply {
    /// `grpc-status` (from the trailers, or the headers of a
    /// trailers-only answer).
    pub status: u32,
    /// The first message's text, empty when none came.
    pub message: String,
    /// The response headers.
    pub headers: HeaderMap,
    /// The HTTP status (200 for any gRPC answer).
    pub http_status: u16,
}

impl GrpcReply {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The backend that answered: the message's first word.
    pub fn backend(&self) -> Option<&str> {
        self.message.split(' ').next().filter(|b| !b.is_empty())
    }
}

/// A unary call over h2c to 127.0.0.1:`port` with `:authority` `authority`
/// and path `method` (`/pkg.Service/Method`), with extra request headers:
/// a sidecar's outbound port or a gateway's listener.
pub async fn call(
    port: u16,
    authority: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<GrpcReply> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(conn);
    let mut req = Request::post(format!("http://{authority}{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(frame("call")))?;
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        let resp = sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await?;
        anyhow::Ok((parts, collected))
    })
    .await;
    driver.abort();
    let (parts, collected) = result??;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = (trailers
        .get("grpc-status")
        .or(parts.headers.get("grpc-status")))
    .and_then(|v| v.to_str().ok()?.parse().ok());
    let Some(status) = status else {
        anyhow::bail!(
            "no grpc-status (HTTP {}): {:?}",
            parts.status,
            parts.headers
        );
    };
    Ok(GrpcReply {
        status,
        message: first_message(collected.to_bytes()),
        headers: parts.headers,
        http_status: parts.status.as_u16(),
    })
}

/// The text of the first length-prefixed message, empty when none.
fn first_message(mut b: Bytes) -> String {
    if b.len() < 5 {
        return String::new();
    }
    b.advance(1);
    let len = (b.get_u32() as usize).min(b.len());
    String::from_utf8_lossy(&b[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_the_method_and_a_configured_error() {
        let b = GrpcBackend::start("echo").await.unwrap();
        let r = call(b.port(), "svc", "/pkg.Svc/Say", &[("x-k", "v")])
            .await
            .unwrap();
        assert_eq!(r.status, 0);
        assert_eq!(r.message, "echo /pkg.Svc/Say");
        assert_eq!(r.header("x-echo-x-k"), Some("v"));
        assert_eq!(r.header("content-type"), Some("application/grpc"));
        b.set_status(14);
        let r = call(b.port(), "svc", "/pkg.Svc/Say", &[]).await.unwrap();
        assert_eq!((r.status, r.message.as_str()), (14, ""));
    }

    #[tokio::test]
    async fn stops_when_dropped() {
        let b = GrpcBackend::start("gone").await.unwrap();
        let port = b.port();
        drop(b);
        let refused = wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async { call(port, "svc", "/pkg.Svc/Say", &[]).await.err() },
        )
        .await;
        assert!(refused.is_ok());
    }
}
