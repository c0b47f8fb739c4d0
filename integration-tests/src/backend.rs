//! In-process HTTP backends standing in for applications behind sidecars.
//!
//! Each answers every path with `NAME VERSION` in the body and in the
//! `x-backend` header, so a test can tell which instance (and so which
//! subset) served a request. A [`Behavior`] makes it fail or slow down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// Header carrying `NAME VERSION` of the backend that answered.
pub const BACKEND_HEADER: &str = "x-backend";

/// Echoes the `x-forwarded-client-cert` the backend received.
pub const XFCC_ECHO_HEADER: &str = "x-seen-xfcc";

/// Headers an application must copy from the request it serves to the
/// requests it makes, so that the sidecars join them into one trace
/// (Istio's list: request id, B3, W3C trace context, OpenTracing).
pub const TRACE_HEADERS: &[&str] = &[
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "tracestate",
    "x-ot-span-context",
];

/// How a backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// 200 with its name and version.
    Ok,
    /// 503 on every Nth request it receives (the Nth, 2Nth, ...), else 200.
    FailEveryNth(u64),
    /// Always this status.
    Always(u16),
    /// 200 after this delay.
    Delay(Duration),
}

#[derive(Debug)]
struct State {
    name: String,
    version: String,
    behavior: Mutex<Behavior>,
    hits: AtomicU64,
    /// When set, each request is first passed on to `(outbound port,
    /// host)` with the trace headers (see [`Backend::call_upstream`]).
    upstream: Mutex<Option<(u16, String)>>,
    client: crate::client::Client,
}

/// A running backend; stops when dropped.
#[derive(Debug)]
pub struct Backend {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts a backend on a free port of 127.0.0.1 (needs a Tokio runtime).
    pub async fn start(name: &str, version: &str) -> anyhow::Result<Self> {
        Self::start_with(name, version, Behavior::Ok).await
    }

    /// Starts a backend with a given behaviour.
    pub async fn start_with(name: &str, version: &str, behavior: Behavior) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            name: name.to_string(),
            version: version.to_string(),
            behavior: Mutex::new(behavior),
            hits: AtomicU64::new(0),
            upstream: Mutex::new(None),
            client: crate::client::Client::new(),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// The port the backend listens on (the sidecar's app port).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Changes how the backend answers from now on.
    pub fn set_behavior(&self, behavior: Behavior) {
        *self
            .state
            .behavior
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = behavior;
    }

    /// Makes the backend an application that calls another service: each
    /// request is passed on as `GET /` to its sidecar's outbound port with
    /// `Host: host` and the [`TRACE_HEADERS`] it received; the answer has
    /// the upstream's status and the body `NAME VERSION > UPSTREAM BODY`.
    pub fn call_upstream(&self, outbound_port: u16, host: &str) {
        *self
            .state
            .upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((outbound_port, host.to_string()));
    }

    /// `NAME VERSION`, as found in its answers.
    pub fn label(&self) -> String {
        format!("{} {}", self.state.name, self.state.version)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    headers: HeaderMap,
) -> Response {
    let n = state.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let upstream = state
        .upstream
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some((port, host)) = upstream {
        return call(&state, port, &host, &headers).await;
    }
    let behavior = *state.behavior.lock().unwrap_or_else(|e| e.into_inner());
    let status = match behavior {
        Behavior::Ok => StatusCode::OK,
        Behavior::FailEveryNth(every) if every > 0 && n % every == 0 => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Behavior::FailEveryNth(_) => StatusCode::OK,
        Behavior::Always(code) => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Behavior::Delay(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
    };
    let label = format!("{} {}", state.name, state.version);
    let mut response = (status, [(BACKEND_HEADER, label.clone())], label).into_response();
    // The caller's identity as the sidecar forwarded it (mTLS tests).
    if let Some(xfcc) = headers.get("x-forwarded-client-cert") {
        response
            .headers_mut()
            .insert(XFCC_ECHO_HEADER, xfcc.clone());
    }
    response
}

/// Passes a request on to `host` through the sidecar's outbound port,
/// forwarding the trace headers as Istio requires of applications.
async fn call(state: &State, port: u16, host: &str, headers: &HeaderMap) -> Response {
    let forwarded: Vec<(&str, &str)> = TRACE_HEADERS
        .iter()
        .filter_map(|name| Some((*name, headers.get(*name)?.to_str().ok()?)))
        .collect();
    let label = format!("{} {}", state.name, state.version);
    let (status, body) = match state.client.get(port, host, "/", &forwarded).await {
        Ok(reply) => (reply.status, format!("{label} > {}", reply.body)),
        Err(e) => (502, format!("{label} > error: {e}")),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [(BACKEND_HEADER, label)], body).into_response()
}
