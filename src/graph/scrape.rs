//! The scraper: every interval, each target's stats port, a bounded number
//! at a time, each fetch with a timeout.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use super::{parse_outbound, ProxySample, SampleStore, STATS_PATH};

/// The largest stats body read; the filtered output of a sidecar with a
/// thousand clusters is a few megabytes.
const MAX_BODY: usize = 16 << 20;

/// One sidecar to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its node id.
    pub proxy: String,
    /// Its service's canonical host.
    pub service: Option<String>,
    /// `HOST:PORT` of its stats listener.
    pub addr: String,
}

/// How the scraper runs (`trellis serve --stats-scrape-interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeOptions {
    /// Time from the start of one round to the start of the next.
    pub interval: Duration,
    /// Per-fetch timeout (connect, response and body).
    pub timeout: Duration,
    /// Fetches in flight at once.
    pub concurrency: usize,
}

impl ScrapeOptions {
    /// Options for `interval`: a fetch may take the whole interval but
    /// never more than 2 s, and 16 run at once.
    pub fn every(interval: Duration) -> Self {
        ScrapeOptions {
            interval,
            timeout: interval.clamp(Duration::from_millis(50), Duration::from_secs(2)),
            concurrency: 16,
        }
    }
}

/// Why one scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The request failed (connection refused, reset, bad address).
    #[error("request failed: {0}")]
    Request(String),
    /// The stats port answered with an error status.
    #[error("HTTP {0}")]
    Status(u16),
    /// The body could not be read, or was too large.
    #[error("reading the body: {0}")]
    Body(String),
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Scrapes one target once.
pub async fn scrape_one(target: &Target, timeout: Duration) -> Result<ProxySample, ScrapeError> {
    scrape_with(&client(), target, timeout).await
}

async fn scrape_with(
    client: &HttpClient,
    target: &Target,
    timeout: Duration,
) -> Result<ProxySample, ScrapeError> {
    let fetch = async {
        let uri = format!("http://{}{STATS_PATH}", target.addr);
        let uri: hyper::Uri = (uri.parse()).map_err(|e| ScrapeError::Request(format!("{e}")))?;
        let resp = (client.get(uri).await).map_err(|e| ScrapeError::Request(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(ScrapeError::Status(resp.status().as_u16()));
        }
        let body = Limited::new(resp.into_body(), MAX_BODY).collect().await;
        body.map(|b| b.to_bytes())
            .map_err(|e| ScrapeError::Body(e.to_string()))
    };
    let bytes = (tokio::time::timeout(timeout, fetch).await)
        .map_err(|_| ScrapeError::Timeout(timeout))??;
    Ok(ProxySample {
        proxy: target.proxy.clone(),
        service: target.service.clone(),
        at: SystemTime::now(),
        outbound: parse_outbound(&String::from_utf8_lossy(&bytes)),
    })
}

/// Scrapes `targets()` every `opts.interval` into `store` until `stop`
/// fires; sidecars no longer among the targets are forgotten. A round that
/// outlasts the interval delays the next one instead of overlapping it.
pub async fn scrape_loop(
    targets: impl Fn() -> Vec<Target> + Send,
    store: SampleStore,
    opts: ScrapeOptions,
    mut stop: watch::Receiver<bool>,
) {
    let client = client();
    // tokio's interval panics on zero.
    let mut tick = tokio::time::interval(opts.interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let round = targets();
        let ids: std::collections::HashSet<String> =
            round.iter().map(|t| t.proxy.clone()).collect();
        store.retain(|id| ids.contains(id));
        tokio::select! {
            _ = scrape_round(&client, round, &store, opts) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Scrapes every target once, `opts.concurrency` at a time.
async fn scrape_round(
    client: &HttpClient,
    round: Vec<Target>,
    store: &SampleStore,
    opts: ScrapeOptions,
) {
    let fetches = futures::stream::iter(round)
        .map(|t| async move { (scrape_with(client, &t, opts.timeout).await, t) });
    let mut results = fetches.buffer_unordered(opts.concurrency.max(1));
    while let Some((result, target)) = results.next().await {
        match result {
            Ok(sample) => store.record(sample),
            Err(e) => {
                tracing::debug!(proxy = %target.proxy, addr = %target.addr, error = %e, "stats scrape failed");
                store.record_error(&target.proxy, e.to_string());
            }
        }
    }
}
