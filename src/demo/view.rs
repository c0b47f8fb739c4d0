//! Demo traffic and the live view: requests per payment version, retries
//! and outlier ejections as Envoy itself counts them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::http::HttpClient;

/// Requests sent so far, by outcome and by the payment version that answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Answered 2xx.
    pub ok: u64,
    /// Any other answer, or none.
    pub failed: u64,
    /// Successful answers by payment version.
    pub by_version: BTreeMap<String, u64>,
    /// The caller identity payment last reported (from the XFCC its
    /// sidecar set: the frontend's SPIFFE ID under mTLS).
    pub payment_saw: Option<String>,
}

impl Tally {
    /// Counts one answer of the frontend.
    pub fn record(&mut self, status: Option<u16>, body: &str) {
        match status {
            Some(s) if (200..300).contains(&s) => {
                self.ok += 1;
                let version = payment_version(body).unwrap_or_else(|| "?".into());
                *self.by_version.entry(version).or_default() += 1;
                if let Some(caller) = payment_caller(body) {
                    self.payment_saw = Some(caller);
                }
            }
            _ => self.failed += 1,
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Tally) -> Tally {
        let by_version = self
            .by_version
            .iter()
            .map(|(v, n)| {
                (
                    v.clone(),
                    n - earlier.by_version.get(v).copied().unwrap_or(0),
                )
            })
            .collect();
        Tally {
            ok: self.ok - earlier.ok,
            failed: self.failed - earlier.failed,
            by_version,
            payment_saw: self.payment_saw.clone(),
        }
    }

    /// Percent of successful answers that came from `version`.
    pub fn share(&self, version: &str) -> f64 {
        let n = self.by_version.get(version).copied().unwrap_or(0);
        if self.ok == 0 {
            0.0
        } else {
            100.0 * n as f64 / self.ok as f64
        }
    }
}

/// The payment version inside a frontend answer (`upstream.body.version`).
fn payment_version(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(v["upstream"]["body"]["version"].as_str()?.to_string())
}

/// The caller payment saw (`upstream.body.caller`).
fn payment_caller(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(v["upstream"]["body"]["caller"].as_str()?.to_string())
}

/// Shared tally written by the traffic workers.
pub type SharedTally = Arc<Mutex<Tally>>;

/// Reads the tally (a poisoned lock still holds valid counts).
pub fn read(tally: &SharedTally) -> Tally {
    tally.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Sends requests to `url` with `client` from `workers` loops, each
/// pausing `pause` between requests, until the task is aborted.
pub async fn drive(
    client: HttpClient,
    url: String,
    workers: usize,
    pause: Duration,
    tally: SharedTally,
) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
        set.spawn(async move {
            loop {
                let reply = client.get(&url, None).await.ok();
                let (status, body) =
                    reply.map_or((None, String::new()), |r| (Some(r.status), r.body));
                tally
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(status, &body);
                tokio::time::sleep(pause).await;
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Envoy's own counters for the payment clusters, from one sidecar's `/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvoyCounters {
    /// `upstream_rq_retry` summed over the payment clusters.
    pub retries: u64,
    /// `outlier_detection.ejections_active`.
    pub ejections_active: u64,
    /// `outlier_detection.ejections_enforced_total`.
    pub ejections_total: u64,
}

/// Sums the payment clusters' counters in Envoy's `/stats` text.
pub fn parse_stats(text: &str) -> EnvoyCounters {
    let mut c = EnvoyCounters::default();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(": ") else {
            continue;
        };
        if !name.starts_with("cluster.outbound|") || !name.contains("|payment-service.") {
            continue;
        }
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        if name.ends_with(".upstream_rq_retry") {
            c.retries += value;
        } else if name.ends_with(".outlier_detection.ejections_active") {
            c.ejections_active += value;
        } else if name.ends_with(".outlier_detection.ejections_enforced_total") {
            c.ejections_total += value;
        }
    }
    c
}

/// Fetches [`EnvoyCounters`] from the sidecar admin on `admin_port`.
pub async fn envoy_counters(client: &HttpClient, admin_port: u16) -> Option<EnvoyCounters> {
    let url = format!("http://127.0.0.1:{admin_port}/stats?filter=payment-service");
    let reply = client.get(&url, None).await.ok()?;
    (reply.status == 200).then(|| parse_stats(&reply.body))
}

/// The live view's column headings.
pub fn header() -> String {
    format!(
        "{:>5}  {:>6}  {:>8}  {:>10}  {:>10}  {:>9}  {:>15}  {:<6}  caller seen by payment",
        "time",
        "req/s",
        "errors/s",
        "payment v1",
        "payment v2",
        "retries/s",
        "ejected now/all",
        "config"
    )
}

/// One line of the live view: the last second's traffic, the retries Envoy
/// made in it, and the ejections in force and so far.
pub fn line(
    secs: u64,
    window: &Tally,
    (before, now): (EnvoyCounters, EnvoyCounters),
    split: &str,
) -> String {
    format!(
        "{:>4}s  {:>6}  {:>8}  {:>9.1}%  {:>9.1}%  {:>9}  {:>9}/{:<5}  {split:<6}  {}",
        secs,
        window.ok + window.failed,
        window.failed,
        window.share("v1"),
        window.share("v2"),
        now.retries.saturating_sub(before.retries),
        now.ejections_active,
        now.ejections_total,
        window.payment_saw.as_deref().unwrap_or("-"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_versions_and_windows() {
        let mut t = Tally::default();
        let v1 = r#"{"service":"frontend","upstream":{"status":200,"body":{"version":"v1"}}}"#;
        let v2 = r#"{"service":"frontend","upstream":{"status":200,"body":{"version":"v2"}}}"#;
        t.record(Some(200), v1);
        let before = t.clone();
        t.record(Some(200), v1);
        t.record(Some(200), v1);
        t.record(Some(200), v2);
        t.record(Some(503), "");
        t.record(None, "");
        let w = t.since(&before);
        assert_eq!((w.ok, w.failed), (3, 2));
        assert!((w.share("v1") - 66.666).abs() < 0.1);
        assert!((w.share("v2") - 33.333).abs() < 0.1);
        assert_eq!(Tally::default().share("v1"), 0.0);
    }

    #[test]
    fn stats_of_payment_clusters_are_summed() {
        let text = "\
cluster.outbound|80|stable|payment-service.default.svc.cluster.local.upstream_rq_retry: 4
cluster.outbound|80|canary|payment-service.default.svc.cluster.local.upstream_rq_retry: 2
cluster.outbound|80|stable|payment-service.default.svc.cluster.local.outlier_detection.ejections_active: 1
cluster.outbound|80|stable|payment-service.default.svc.cluster.local.outlier_detection.ejections_enforced_total: 3
cluster.outbound|80||ledger.default.svc.cluster.local.upstream_rq_retry: 9
cluster.outbound|80|stable|payment-service.default.svc.cluster.local.upstream_rq_retry_limit_exceeded: 7
";
        assert_eq!(
            parse_stats(text),
            EnvoyCounters {
                retries: 6,
                ejections_active: 1,
                ejections_total: 3
            }
        );
    }
}
