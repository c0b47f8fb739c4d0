//! The service graph: what the sidecars observe of the calls between
//! services, read from their Envoy stats.
//!
//! A background scraper ([`scrape_loop`]) fetches every registered
//! sidecar's Prometheus stats port (metadata `stats_port`, written by
//! `trellis bootstrap`) on an interval, a bounded number at a time, each
//! fetch with a timeout; it never runs in the push path. Each fetch becomes
//! a [`ProxySample`]: the sidecar's cumulative outbound counters per
//! destination host ([`DestStats`]: requests, 5xx errors and Envoy's
//! `upstream_rq_time` histogram, summed over the destination's outbound
//! clusters, `outbound|PORT|SUBSET|HOST`).
//!
//! [`SampleStore`] is the shared handle that keeps the latest sample of
//! each sidecar and a few older ones spanning the graph window;
//! [`rates`] differences two samples of one sidecar into request rate,
//! success rate and p50/p99 latency per destination; [`Graph::build`]
//! aggregates the window of every sidecar into service-to-service edges
//! (`/debug/graph`, `trellis graph`).

mod edges;
mod prom;
mod rates;
mod samples;
mod scrape;

use std::collections::BTreeMap;
use std::time::SystemTime;

pub use edges::{Edge, Graph, ScrapeFailure};
pub use prom::{parse_outbound, STATS_PATH};
pub use rates::{delta, rates, DestRates, SampleRates};
pub use samples::SampleStore;
pub use scrape::{scrape_loop, scrape_one, ScrapeError, ScrapeOptions, Target};

/// One scrape of one sidecar: its cumulative outbound counters.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySample {
    /// The sidecar's node id.
    pub proxy: String,
    /// The canonical host of the sidecar's own service (the edges' source);
    /// `None` when unknown.
    pub service: Option<String>,
    /// When the stats were read.
    pub at: SystemTime,
    /// Destination host (`payment.default.svc.cluster.local`) → counters.
    pub outbound: BTreeMap<String, DestStats>,
}

/// Cumulative counters of one sidecar toward one destination host, since
/// its Envoy started (or, from [`delta`], over a window).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DestStats {
    /// Upstream requests that completed with a response (Envoy's
    /// `upstream_rq_1xx` .. `upstream_rq_5xx`; retries count each try).
    pub requests: u64,
    /// Those answered 5xx, including Envoy's own 503s for failed
    /// connections (`upstream_rq_5xx`).
    pub errors: u64,
    /// Envoy's `upstream_rq_time`, in milliseconds.
    pub latency: Histogram,
}

/// A cumulative latency histogram as Envoy exports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the buckets in milliseconds, ascending; the last is
    /// `f64::INFINITY`.
    pub bounds_ms: Vec<f64>,
    /// `cumulative[i]`: observations at most `bounds_ms[i]`.
    pub cumulative: Vec<u64>,
    /// Number of observations.
    pub count: u64,
    /// Sum of the observations in milliseconds.
    pub sum_ms: f64,
}

impl DestStats {
    /// Adds `other`'s counters to these (another cluster of the same
    /// destination, or another sidecar's).
    pub fn add(&mut self, other: &DestStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.add(&other.latency);
    }
}

impl Histogram {
    /// Observations at most `bound` milliseconds, read at the largest own
    /// bucket bound not above it (exact when the bounds are shared).
    pub fn cumulative_at(&self, bound: f64) -> u64 {
        (self.bounds_ms.iter().zip(&self.cumulative))
            .take_while(|(b, _)| **b <= bound)
            .last()
            .map_or(0, |(_, c)| *c)
    }

    /// Merges `other` into this histogram; over the union of both bounds
    /// when they differ (Envoy's defaults are the same everywhere).
    pub fn add(&mut self, other: &Histogram) {
        if self.bounds_ms != other.bounds_ms {
            let mut bounds: Vec<f64> = self.bounds_ms.clone();
            bounds.extend(&other.bounds_ms);
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            let cumulative = bounds.iter().map(|b| self.cumulative_at(*b)).collect();
            self.bounds_ms = bounds;
            self.cumulative = cumulative;
        }
        let theirs: Vec<u64> = (self.bounds_ms.iter())
            .map(|b| other.cumulative_at(*b))
            .collect();
        for (mine, theirs) in self.cumulative.iter_mut().zip(theirs) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_ms += other.sum_ms;
    }

    /// The `q` quantile (0..=1) in milliseconds, interpolated linearly in
    /// its bucket as Prometheus' `histogram_quantile` does; `None` without
    /// observations. A quantile in the open last bucket is its lower bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = *self.cumulative.last()?;
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let i = self.cumulative.iter().position(|c| *c as f64 >= rank)?;
        let lower = if i == 0 { 0.0 } else { self.bounds_ms[i - 1] };
        let upper = self.bounds_ms[i];
        if upper.is_infinite() {
            return Some(lower);
        }
        let below = if i == 0 { 0 } else { self.cumulative[i - 1] };
        let inside = (self.cumulative[i] - below) as f64;
        if inside == 0.0 {
            return Some(upper);
        }
        Some(lower + (upper - lower) * (rank - below as f64) / inside)
    }
}

#[cfg(test)]
mod tests;
