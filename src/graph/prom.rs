//! Reads a sidecar's outbound counters from Envoy's Prometheus text.
//!
//! The stat tags of `trellis bootstrap` (`bootstrap::stats`) put the whole
//! cluster name in the `cluster_name` label, so `outbound|80|v1|HOST`
//! names its destination host, dots and all; response classes arrive as
//! `envoy_response_code_class`.

use std::collections::BTreeMap;

use super::{DestStats, Histogram};

/// What the scraper asks a stats port for: only the stats used so far, and
/// of those only the outbound clusters' response classes and request
/// times. Envoy matches `filter` against the stat's full name (before tag
/// extraction: `cluster.outbound|80||HOST.upstream_rq_5xx`), which keeps a
/// sidecar with many clusters to a few kilobytes per scrape.
pub const STATS_PATH: &str = "/stats/prometheus?usedonly&filter=\
    %5Ecluster%5C.outbound%5C%7C.*%5C.upstream_rq_(time%7C%5B1-5%5Dxx)%24";

const RQ_XX: &str = "envoy_cluster_upstream_rq_xx";
const RQ_TIME: &str = "envoy_cluster_upstream_rq_time";

/// One outbound cluster's series, as read.
#[derive(Default)]
struct ClusterSeries {
    requests: u64,
    errors: u64,
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum_ms: f64,
}

/// The outbound counters in `text`, per destination host (summed over the
/// destination's ports and subsets). Lines it does not know are skipped.
pub fn parse_outbound(text: &str) -> BTreeMap<String, DestStats> {
    let mut clusters: BTreeMap<String, ClusterSeries> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("envoy_cluster_")) {
        let Some((name, labels, value)) = split_line(line) else {
            continue;
        };
        let Some(cluster) = label(&labels, "cluster_name") else {
            continue;
        };
        if !cluster.starts_with("outbound|") {
            continue;
        }
        let series = clusters.entry(cluster.to_string()).or_default();
        read_series(series, name, &labels, value);
    }
    let mut out: BTreeMap<String, DestStats> = BTreeMap::new();
    for (cluster, series) in clusters {
        if let Some(host) = cluster.split('|').nth(3).filter(|h| !h.is_empty()) {
            out.entry(host.to_string())
                .or_default()
                .add(&series.into_stats());
        }
    }
    out
}

/// Adds one sample line to its cluster's series.
fn read_series(series: &mut ClusterSeries, name: &str, labels: &[(String, String)], value: f64) {
    let count = value.max(0.0).round() as u64;
    match name.strip_prefix(RQ_TIME) {
        Some("_bucket") => {
            let le = label(labels, "le").and_then(parse_bound);
            if let Some(le) = le {
                series.buckets.push((le, count));
            }
        }
        Some("_count") => series.count = count,
        Some("_sum") => series.sum_ms = value,
        _ if name == RQ_XX => {
            series.requests += count;
            if label(labels, "envoy_response_code_class") == Some("5") {
                series.errors += count;
            }
        }
        _ => {}
    }
}

impl ClusterSeries {
    fn into_stats(mut self) -> DestStats {
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (bounds_ms, cumulative) = self.buckets.into_iter().unzip();
        DestStats {
            requests: self.requests,
            errors: self.errors,
            latency: Histogram {
                bounds_ms,
                cumulative,
                count: self.count,
                sum_ms: self.sum_ms,
            },
        }
    }
}

fn parse_bound(le: &str) -> Option<f64> {
    match le {
        "+Inf" => Some(f64::INFINITY),
        _ => le.parse().ok(),
    }
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `name{k="v",...} value` → its parts; `None` for a malformed line.
fn split_line(line: &str) -> Option<(&str, Vec<(String, String)>, f64)> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (name, value) = line.split_once(' ')?;
            return Some((name, Vec::new(), value.trim().parse().ok()?));
        }
    };
    let (labels, rest) = parse_labels(rest)?;
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

/// Labels up to the closing `}`, and what follows it.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = s.split_once("=\"")?;
        let (value, rest) = quoted(rest)?;
        labels.push((key.to_string(), value));
        s = rest;
    }
}

/// A label value up to its closing quote, with Prometheus' escapes.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_envoy_1_40_output() {
        let text = include_str!("testdata/envoy-1.40-outbound.prom");
        let out = parse_outbound(text);
        let pay = &out["payment.default.svc.cluster.local"];
        assert_eq!((pay.requests, pay.errors), (6, 1));
        assert_eq!(pay.latency.count, 6);
        assert_eq!(pay.latency.bounds_ms.len(), 20);
        assert_eq!(pay.latency.bounds_ms[0], 0.5);
        assert!(pay.latency.bounds_ms[19].is_infinite());
        assert_eq!(pay.latency.cumulative_at(0.5), 5);
        assert_eq!(pay.latency.cumulative_at(f64::INFINITY), 6);
        assert_eq!(out.len(), 1, "external_ series are not counted twice");
    }

    #[test]
    fn sums_subsets_and_skips_inbound_and_junk() {
        let text = "\
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",cluster_name=\"outbound|80|v1|a.b.svc.cluster.local\"} 7
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",cluster_name=\"outbound|80|v2|a.b.svc.cluster.local\"} 3
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",cluster_name=\"inbound|8080||\"} 100
envoy_cluster_upstream_rq_xx{cluster_name=\"outbound|80||x\\\"y\"} 1
envoy_cluster_upstream_rq_xx{broken
";
        let out = parse_outbound(text);
        let a = &out["a.b.svc.cluster.local"];
        assert_eq!((a.requests, a.errors), (10, 3));
        assert_eq!(out["x\"y"].requests, 1);
        assert_eq!(out.len(), 2);
    }
}
