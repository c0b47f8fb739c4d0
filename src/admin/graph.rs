//! `/debug/graph`: the observed service graph over the scrape window.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::AdminState;
use crate::graph::Graph;

/// The graph as JSON (`graph::Graph`); 404 when nothing scrapes.
pub(super) async fn debug_graph(State(state): State<AdminState>) -> Response {
    match state.inner.graph.get() {
        Some(samples) => Json(Graph::build(samples, std::time::SystemTime::now())).into_response(),
        None => (StatusCode::NOT_FOUND, "no stats scraper").into_response(),
    }
}
