//! `/debug/rollout`, `POST /rollout/promote` and `POST /rollout/abort`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::future::BoxFuture;

use super::AdminState;

/// The staged config rollout as the admin API sees it (`serve` implements it).
pub trait RolloutControl: Send + Sync {
    /// `/debug/rollout`: `{policy, current, history, last_good}`.
    fn debug(&self) -> serde_json::Value;
    /// Promotes the generation baking on the canary set to every proxy;
    /// `Err` says why not (no rollout in progress). Asynchronous: with
    /// replicas it is a write to the shared store.
    fn promote(&self) -> BoxFuture<'_, Result<serde_json::Value, String>>;
    /// Rolls the canary set back to the last good generation; `Err` says why
    /// not (no rollout in progress).
    fn abort(&self) -> BoxFuture<'_, Result<serde_json::Value, String>>;
}

pub(super) async fn debug(State(state): State<AdminState>) -> Response {
    match state.inner.rollout.get() {
        Some(r) => Json(r.debug()).into_response(),
        None => (StatusCode::NOT_FOUND, "no rollout control").into_response(),
    }
}

/// 200 with the new view; 409 with the reason when nothing was rolling out.
pub(super) async fn promote(State(state): State<AdminState>) -> Response {
    match state.inner.rollout.get() {
        Some(r) => reply(Some(r.promote().await)),
        None => reply(None),
    }
}

/// 200 with the new view; 409 with the reason when nothing was rolling out.
pub(super) async fn abort(State(state): State<AdminState>) -> Response {
    match state.inner.rollout.get() {
        Some(r) => reply(Some(r.abort().await)),
        None => reply(None),
    }
}

fn reply(result: Option<Result<serde_json::Value, String>>) -> Response {
    match result {
        Some(Ok(body)) => Json(body).into_response(),
        Some(Err(why)) => (StatusCode::CONFLICT, why).into_response(),
        None => (StatusCode::NOT_FOUND, "no rollout control").into_response(),
    }
}
