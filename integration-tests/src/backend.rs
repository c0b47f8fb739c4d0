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
