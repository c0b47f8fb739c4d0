//! Two samples of one sidecar → what happened between them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{DestStats, Histogram, ProxySample};

/// What one sidecar sent one destination over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestRates {
    /// Requests completed in the window.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Requests per second.
    pub rps: f64,
    /// Share of requests not answered 5xx; `None` without requests.
    pub success_rate: Option<f64>,
    /// Median request time in milliseconds; `None` without timed requests.
    pub p50_ms: Option<f64>,
    /// 99th percentile request time in milliseconds.
    pub p99_ms: Option<f64>,
}

/// What one sidecar sent each destination between two of its samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleRates {
    /// The sidecar's node id.
    pub proxy: String,
    /// Its service's canonical host.
    pub service: Option<String>,
    /// Time between the two samples.
    pub window: Duration,
    /// Destination host → rates; destinations without requests in the
    /// window are left out.
    pub outbound: BTreeMap<String, DestRates>,
}

/// The counters of `newer` minus those of `older`, per destination. A
/// destination whose counters went down was reset (its Envoy restarted,
/// or the cluster was removed and added again), so all of `newer` counts,
/// as Prometheus' `increase` reads a counter reset.
pub fn delta(older: &ProxySample, newer: &ProxySample) -> BTreeMap<String, DestStats> {
    let none = DestStats::default();
    (newer.outbound.iter())
        .map(|(host, now)| {
            let before = older.outbound.get(host).unwrap_or(&none);
            (host.clone(), now.since(before))
        })
        .collect()
}

/// Request rate, success rate and p50/p99 per destination between two
/// samples of the same sidecar (`older` taken first).
pub fn rates(older: &ProxySample, newer: &ProxySample) -> SampleRates {
    let window = newer.at.duration_since(older.at).unwrap_or_default();
    let outbound = (delta(older, newer).into_iter())
        .filter(|(_, d)| d.requests > 0)
        .map(|(host, d)| (host, d.rates(window)))
        .collect();
    SampleRates {
        proxy: newer.proxy.clone(),
        service: newer.service.clone(),
        window,
        outbound,
    }
}

impl DestStats {
    /// These cumulative counters minus `before`'s (all of them on a reset).
    pub fn since(&self, before: &DestStats) -> DestStats {
        let reset = self.requests < before.requests
            || self.errors < before.errors
            || self.latency.count < before.latency.count;
        if reset {
            return self.clone();
        }
        let latency = Histogram {
            bounds_ms: self.latency.bounds_ms.clone(),
            cumulative: (self.latency.bounds_ms.iter().zip(&self.latency.cumulative))
                .map(|(b, c)| c.saturating_sub(before.latency.cumulative_at(*b)))
                .collect(),
            count: self.latency.count - before.latency.count,
            sum_ms: (self.latency.sum_ms - before.latency.sum_ms).max(0.0),
        };
        DestStats {
            requests: self.requests - before.requests,
            errors: self.errors - before.errors,
            latency,
        }
    }

    /// These counters (of a window of length `window`) as rates.
    pub fn rates(&self, window: Duration) -> DestRates {
        let secs = window.as_secs_f64();
        DestRates {
            requests: self.requests,
            errors: self.errors,
            rps: if secs > 0.0 {
                self.requests as f64 / secs
            } else {
                0.0
            },
            success_rate: (self.requests > 0).then(|| {
                (self.requests - self.errors.min(self.requests)) as f64 / self.requests as f64
            }),
            p50_ms: self.latency.quantile(0.5),
            p99_ms: self.latency.quantile(0.99),
        }
    }
}
