//! The admin HTTP API (axum): health, readiness, Prometheus metrics and
//! debug views of the config and of every connected proxy.
//!
//! The admin side only reads: `serve` owns the state and updates it through
//! [`AdminState`]'s setters; handlers never block the control plane.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::config::{Diagnostics, LoadError};
use crate::xds::SnapshotCache;

mod graph;
mod lint;
pub mod proxy_config;
pub mod ratelimits;
mod ui;

pub use lint::LintView;
pub mod rollout;

pub use rollout::RolloutControl;

/// Produces the `/debug/proxies` JSON on demand (xds' `ProxyStatusTable`).
pub type ProxiesView = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The certificate authority as the admin API sees it (`serve` implements it).
pub trait CaControl: Send + Sync {
    /// `/debug/ca`: rotation phase, roots (fingerprints, expiries) and leaves
    /// (serials, expiries). Never keys.
    fn debug(&self) -> serde_json::Value;
    /// Starts (or resumes) a root rotation in the background; `Err` says why
    /// it cannot (one is running, or the CA is managed by the operator).
    /// With `begin_only` it stops once the new root is trusted (the old one
    /// still signs), so operators can hand the new trust bundle to sidecars
    /// that pin it (`--xds-ca-file`) before the new root signs.
    fn rotate(&self, begin_only: bool) -> Result<serde_json::Value, String>;
}

/// What `/debug/config` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigStatus {
    /// Bumped on every accepted config (the first load is generation 1).
    pub generation: u64,
    /// The watched directory.
    pub config_dir: PathBuf,
    /// Files of the config in force.
    pub files: Vec<PathBuf>,
    /// When the config in force was loaded (HTTP date, UTC).
    pub loaded_at: Option<String>,
    /// The most recent change that was rejected, if any since the start.
    pub last_rejected: Option<Rejected>,
}

/// A rejected config change: the mesh kept serving the previous one.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// When it was rejected (HTTP date, UTC).
    pub at: String,
    /// The same, as milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// One line per error, exactly as `trellis validate` prints them.
    pub diagnostics: Vec<String>,
    /// The same errors, structured (file, line, col, kind, name, field, message).
    pub errors: Diagnostics,
}

impl Rejected {
    /// Records a failed load now.
    pub fn from_load_error(err: &LoadError) -> Self {
        let errors = match err {
            LoadError::Invalid(diags) => diags.clone(),
            _ => Diagnostics::default(),
        };
        let diagnostics = if errors.0.is_empty() {
            vec![err.to_string()]
        } else {
            errors.0.iter().map(ToString::to_string).collect()
        };
        let (at, at_unix_ms) = now();
        Rejected {
            at,
            at_unix_ms,
            diagnostics,
            errors,
        }
    }
}

/// The current time as an HTTP date and as Unix milliseconds.
pub fn now() -> (String, u64) {
    let t = SystemTime::now();
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (httpdate::fmt_http_date(t), ms)
}

/// Shared state behind the admin routes. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    config_loaded: AtomicBool,
    grpc_listening: AtomicBool,
    /// Why the shared store keeps this replica from being ready.
    store_problem: ArcSwap<Option<String>>,
    metrics: prometheus_client::registry::Registry,
    proxies: ProxiesView,
    config: ArcSwap<ConfigStatus>,
    ca: OnceLock<Arc<dyn CaControl>>,
    snapshots: OnceLock<SnapshotCache>,
    rollout: OnceLock<std::sync::Arc<dyn RolloutControl>>,
    graph: OnceLock<crate::graph::SampleStore>,
    lint: OnceLock<LintView>,
}

impl AdminState {
    /// State over a finished metrics registry and a proxies view.
    pub fn new(metrics: prometheus_client::registry::Registry, proxies: ProxiesView) -> Self {
        AdminState {
            inner: Arc::new(Inner {
                config_loaded: AtomicBool::new(false),
                grpc_listening: AtomicBool::new(false),
                store_problem: ArcSwap::from_pointee(None),
                metrics,
                proxies,
                config: ArcSwap::from_pointee(ConfigStatus::default()),
                ca: OnceLock::new(),
                snapshots: OnceLock::new(),
                rollout: OnceLock::new(),
                graph: OnceLock::new(),
                lint: OnceLock::new(),
            }),
        }
    }

    /// Marks the config as loaded (readiness needs it).
    pub fn set_config_loaded(&self, loaded: bool) {
        self.inner.config_loaded.store(loaded, Ordering::SeqCst);
    }

    /// Marks the gRPC server as listening (readiness needs it).
    pub fn set_grpc_listening(&self, listening: bool) {
        self.inner.grpc_listening.store(listening, Ordering::SeqCst);
    }

    /// Sets why the shared store keeps this replica from being ready
    /// (`None`: it does not).
    pub fn set_store_problem(&self, problem: Option<String>) {
        self.inner.store_problem.store(Arc::new(problem));
    }

    /// Why the control plane is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        if !self.inner.config_loaded.load(Ordering::SeqCst) {
            Some("config not loaded".into())
        } else if !self.inner.grpc_listening.load(Ordering::SeqCst) {
            Some("gRPC server not listening".into())
        } else {
            self.inner.store_problem.load().as_ref().clone()
        }
    }

    /// Replaces what `/debug/config` shows.
    pub fn set_config_status(&self, status: ConfigStatus) {
        self.inner.config.store(Arc::new(status));
    }

    /// Connects `/debug/ca` and `POST /ca/rotate` (once; later calls are ignored).
    pub fn set_ca(&self, ca: Arc<dyn CaControl>) {
        let _ = self.inner.ca.set(ca);
    }

    /// Connects `/debug/rollout` and `POST /rollout/{promote,abort}` (once).
    pub fn set_rollout(&self, rollout: Arc<dyn RolloutControl>) {
        let _ = self.inner.rollout.set(rollout);
    }

    /// Connects `/debug/proxies/{id}/config` to the snapshots sent (once).
    pub fn set_snapshots(&self, cache: SnapshotCache) {
        let _ = self.inner.snapshots.set(cache);
    }

    /// Connects `/debug/graph` to the scraped sidecar stats (once).
    pub fn set_graph(&self, samples: crate::graph::SampleStore) {
        let _ = self.inner.graph.set(samples);
    }

    /// Connects `/debug/lint` (once).
    pub fn set_lint(&self, view: LintView) {
        let _ = self.inner.lint.set(view);
    }

    /// What `/debug/config` shows now.
    pub fn config_status(&self) -> Arc<ConfigStatus> {
        self.inner.config.load_full()
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/debug/proxies", get(debug_proxies))
        .route("/debug/proxies/{id}/config", get(debug_proxy_config))
        .route("/debug/config", get(debug_config))
        .route("/debug/ca", get(debug_ca))
        .route("/ca/rotate", post(ca_rotate))
        .route("/debug/rollout", get(rollout::debug))
        .route("/rollout/promote", post(rollout::promote))
        .route("/rollout/abort", post(rollout::abort))
        .route("/debug/graph", get(graph::debug_graph))
        .route("/debug/lint", get(lint::debug_lint))
        .route("/ui", get(ui::page))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.not_ready_reason() {
        None => (StatusCode::OK, "ready").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.inner.metrics) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn debug_proxies(State(state): State<AdminState>) -> Json<serde_json::Value> {
    Json((state.inner.proxies)())
}

/// `?type=` of `/debug/proxies/{id}/config`.
#[derive(Debug, serde::Deserialize)]
struct ConfigQuery {
    r#type: Option<String>,
}

/// What was sent to one proxy: `{proxy, configs: {KIND: {version,
/// resources}}}`, every kind unless `?type=` names one; keys redacted.
async fn debug_proxy_config(
    State(state): State<AdminState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<ConfigQuery>,
) -> Response {
    let kinds: Vec<&str> = match q.r#type.as_deref() {
        None | Some("") | Some("all") => proxy_config::KINDS.to_vec(),
        Some(kind) if proxy_config::type_url(kind).is_some() => vec![kind],
        Some(proxy_config::RATE_LIMITS) => vec![proxy_config::RATE_LIMITS],
        Some(kind) => {
            let why = format!(
                "unknown type {kind:?}: expected one of {}",
                proxy_config::KINDS.join(", ")
            );
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let Some(snapshot) = state.inner.snapshots.get().and_then(|c| c.get(&id)) else {
        return (StatusCode::NOT_FOUND, format!("no config for proxy {id:?}")).into_response();
    };
    let configs = proxy_config::render(&snapshot, &kinds);
    Json(serde_json::json!({ "proxy": id, "configs": configs })).into_response()
}

async fn debug_config(State(state): State<AdminState>) -> Json<ConfigStatus> {
    Json(state.config_status().as_ref().clone())
}

async fn debug_ca(State(state): State<AdminState>) -> Response {
    match state.inner.ca.get() {
        Some(ca) => Json(ca.debug()).into_response(),
        None => (StatusCode::NOT_FOUND, "no certificate authority").into_response(),
    }
}

/// 202 with the phase when a rotation started; 409 with the reason when not.
/// The query of `POST /ca/rotate`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateQuery {
    /// `?begin_only=true`: see [`CaControl::rotate`].
    #[serde(default)]
    begin_only: bool,
}

async fn ca_rotate(
    State(state): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<RotateQuery>,
) -> Response {
    match state.inner.ca.get().map(|ca| ca.rotate(query.begin_only)) {
        Some(Ok(body)) => (StatusCode::ACCEPTED, Json(body)).into_response(),
        Some(Err(why)) => (StatusCode::CONFLICT, why).into_response(),
        None => (StatusCode::NOT_FOUND, "no certificate authority").into_response(),
    }
}

#[cfg(test)]
mod tests;
