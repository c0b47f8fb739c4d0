//! `/debug/lint`: `trellis lint`'s findings on the config in force, with
//! the observed service graph joining the call graph.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::AdminState;

/// Produces the `/debug/lint` JSON (`serve` implements it); it reads the
/// config files, so it runs on a blocking thread.
pub type LintView = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The findings as JSON; 404 when no view is connected.
pub(super) async fn debug_lint(State(state): State<AdminState>) -> Response {
    let Some(view) = state.inner.lint.get().cloned() else {
        return (StatusCode::NOT_FOUND, "no lint view").into_response();
    };
    match tokio::task::spawn_blocking(move || view()).await {
        Ok(value) => Json(value).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
