//! The service graph over the window: every sidecar's outbound counters,
//! summed per (source service, destination host).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{delta, DestStats, SampleStore};

/// Source of the edges of sidecars whose service is unknown.
const UNKNOWN: &str = "unknown";

/// The observed service graph (`/debug/graph`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// The window the rates cover.
    pub window_seconds: f64,
    /// Every service that is a source or a destination, sorted.
    pub nodes: Vec<String>,
    /// Edges with requests in the window, by source then destination.
    pub edges: Vec<Edge>,
    /// Sidecars whose stats were read in the window.
    #[serde(default)]
    pub proxies_scraped: usize,
    /// Sidecars whose last scrape failed.
    #[serde(default)]
    pub scrape_failures: Vec<ScrapeFailure>,
}

/// Calls from one service to another over the window, summed over the
/// source's sidecars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// The calling service's canonical host.
    pub source: String,
    /// The called host.
    pub destination: String,
    /// Requests per second.
    pub rps: f64,
    /// Share of requests not answered 5xx (`null` without requests).
    pub success_rate: Option<f64>,
    /// Median request time in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile request time in milliseconds.
    pub p99_ms: Option<f64>,
    /// Requests in the window.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
}

/// A sidecar whose last scrape failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeFailure {
    /// Its node id.
    pub proxy: String,
    /// Why.
    pub error: String,
}

/// One edge's sums while it is built.
#[derive(Default)]
struct Sum {
    stats: DestStats,
    rps: f64,
}

impl Graph {
    /// The graph of `store`'s window ending `now`.
    pub fn build(store: &SampleStore, now: SystemTime) -> Graph {
        let window = store.window();
        let mut sums: BTreeMap<(String, String), Sum> = BTreeMap::new();
        let mut scraped = 0;
        for (id, sample) in store.latest() {
            let fresh = now.duration_since(sample.at).unwrap_or_default() <= window;
            let Some((old, new)) = store.window_of(&id).filter(|_| fresh) else {
                continue;
            };
            scraped += 1;
            let secs = new
                .at
                .duration_since(old.at)
                .unwrap_or_default()
                .as_secs_f64();
            let source = new.service.clone().unwrap_or_else(|| UNKNOWN.into());
            for (dest, d) in delta(&old, &new)
                .into_iter()
                .filter(|(_, d)| d.requests > 0)
            {
                let sum = sums.entry((source.clone(), dest)).or_default();
                sum.rps += d.requests as f64 / secs.max(f64::MIN_POSITIVE);
                sum.stats.add(&d);
            }
        }
        let failures = (store.failures().into_iter())
            .map(|(proxy, error)| ScrapeFailure { proxy, error })
            .collect();
        Graph::from_sums(window.as_secs_f64(), sums, scraped, failures)
    }

    fn from_sums(
        window_seconds: f64,
        sums: BTreeMap<(String, String), Sum>,
        proxies_scraped: usize,
        scrape_failures: Vec<ScrapeFailure>,
    ) -> Graph {
        let mut nodes = BTreeSet::new();
        let edges = (sums.into_iter())
            .map(|((source, destination), sum)| {
                nodes.insert(source.clone());
                nodes.insert(destination.clone());
                let r = sum.stats.rates(std::time::Duration::ZERO);
                Edge {
                    source,
                    destination,
                    rps: sum.rps,
                    success_rate: r.success_rate,
                    p50_ms: r.p50_ms,
                    p99_ms: r.p99_ms,
                    requests: r.requests,
                    errors: r.errors,
                }
            })
            .collect();
        Graph {
            window_seconds,
            nodes: nodes.into_iter().collect(),
            edges,
            proxies_scraped,
            scrape_failures,
        }
    }
}
