//! `trellis demo-app`: a tiny HTTP service for the demo and the tests.
//!
//! It answers every request with JSON naming itself (`service`, `version`),
//! can call one upstream through its sidecar's outbound port (the `Host`
//! header names the upstream service, as the sidecar model in
//! docs/architecture.md says) and can fail on purpose so retries and
//! outlier detection have work to do.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use clap::Args;
use serde_json::{json, Value};

use super::http::HttpClient;

/// Flags of `trellis demo-app`.
#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// Service name reported in answers.
    #[arg(long)]
    pub name: String,
    /// Version reported in answers.
    #[arg(long, default_value = "v1")]
    pub version: String,
    /// Port to listen on (127.0.0.1).
    #[arg(long)]
    pub port: u16,
    /// Upstream to call on each request, e.g. `http://127.0.0.1:OUTBOUND`.
    #[arg(long, value_name = "URL")]
    pub call: Option<String>,
    /// `Host` header for the upstream call (the upstream service's name).
    #[arg(long, value_name = "HOST", requires = "call")]
    pub call_host: Option<String>,
    /// Answer 503 on every Nth request (1 = always).
    #[arg(long, value_name = "N")]
    pub fail_every: Option<u64>,
}

struct App {
    args: AppArgs,
    served: AtomicU64,
    client: HttpClient,
}

/// Serves until SIGINT/SIGTERM.
pub async fn run(args: AppArgs) -> anyhow::Result<ExitCode> {
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(name = %args.name, version = %args.version, %addr, "demo app listening");
    axum::serve(listener, router(args))
        .with_graceful_shutdown(crate::cli::shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// The app's routes: every path answers the same way.
pub fn router(args: AppArgs) -> Router {
    let app = Arc::new(App {
        args,
        served: AtomicU64::new(0),
        client: HttpClient::new(Duration::from_secs(10)),
    });
    Router::new().fallback(handle).with_state(app)
}

async fn handle(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let n = app.served.fetch_add(1, Ordering::Relaxed) + 1;
    // The sidecar vouches for the caller (mTLS): it sets XFCC, and replaces
    // any XFCC the caller sent (SANITIZE_SET).
    let xfcc = headers
        .get("x-forwarded-client-cert")
        .and_then(|v| v.to_str().ok());
    let mut body = json!({
        "service": app.args.name,
        "version": app.args.version,
        "port": app.args.port,
        "request": n,
        "caller": xfcc.and_then(caller_uri),
        "xfcc": xfcc,
    });
    if app
        .args
        .fail_every
        .is_some_and(|every| every > 0 && n % every == 0)
    {
        body["error"] = json!("injected failure (--fail-every)");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let mut status = StatusCode::OK;
    if let Some(url) = &app.args.call {
        let (upstream_status, upstream) = call_upstream(&app, url).await;
        // Pass server errors on so the caller's sidecar sees (and retries) them.
        if upstream_status.is_server_error() {
            status = upstream_status;
        }
        body["upstream"] = upstream;
    }
    (status, Json(body)).into_response()
}

/// The caller's SPIFFE ID: the `URI=` of the last XFCC element (the hop
/// nearest to this app; Envoy appends elements, comma-separated).
pub fn caller_uri(xfcc: &str) -> Option<String> {
    let last = xfcc.rsplit(',').next()?;
    last.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("uri")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

async fn call_upstream(app: &App, url: &str) -> (StatusCode, Value) {
    match app.client.get(url, app.args.call_host.as_deref()).await {
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = serde_json::from_str(&reply.body).unwrap_or(Value::String(reply.body));
            (status, json!({ "status": reply.status, "body": body }))
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            json!({ "error": format!("{e:#}") }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve(args: AppArgs) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(args)).await });
        addr
    }

    fn args(name: &str) -> AppArgs {
        AppArgs {
            name: name.into(),
            version: "v2".into(),
            port: 0,
            call: None,
            call_host: None,
            fail_every: None,
        }
    }

    #[tokio::test]
    async fn answers_with_its_name_and_fails_on_schedule() {
        let mut a = args("ledger");
        a.fail_every = Some(3);
        let addr = serve(a).await;
        let client = HttpClient::new(Duration::from_secs(5));
        let url = format!("http://{addr}/anything");
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let reply = client.get(&url, None).await.unwrap();
            let v: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(v["service"], "ledger");
            assert_eq!(v["version"], "v2");
            statuses.push(reply.status);
        }
        assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
    }

    #[tokio::test]
    async fn calls_the_upstream_with_its_host() {
        let upstream = serve(args("ledger")).await;
        let mut a = args("payment");
        a.call = Some(format!("http://{upstream}"));
        a.call_host = Some("ledger".into());
        let addr = serve(a).await;
        let client = HttpClient::new(Duration::from_secs(5));
        let reply = client.get(&format!("http://{addr}/"), None).await.unwrap();
        assert_eq!(reply.status, 200);
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(v["service"], "payment");
        assert_eq!(v["upstream"]["status"], 200);
        assert_eq!(v["upstream"]["body"]["service"], "ledger");
    }

    #[test]
    fn caller_is_the_uri_of_the_last_xfcc_element() {
        let xfcc =
            "By=spiffe://td/ns/default/sa/payment;Hash=ab;URI=spiffe://td/ns/default/sa/frontend";
        assert_eq!(
            caller_uri(xfcc).as_deref(),
            Some("spiffe://td/ns/default/sa/frontend")
        );
        let two = "URI=spiffe://a,By=x;URI=\"spiffe://b\"";
        assert_eq!(caller_uri(two).as_deref(), Some("spiffe://b"));
        assert_eq!(caller_uri("By=x;Hash=y"), None);
    }

    #[tokio::test]
    async fn upstream_failures_are_passed_on() {
        let mut up = args("ledger");
        up.fail_every = Some(1);
        let upstream = serve(up).await;
        let mut a = args("payment");
        a.call = Some(format!("http://{upstream}"));
        let addr = serve(a).await;
        let client = HttpClient::new(Duration::from_secs(5));
        let reply = client.get(&format!("http://{addr}/"), None).await.unwrap();
        assert_eq!(reply.status, 503);
    }
}
