//! The churn run's figures and its JSON line.

use std::time::Duration;

use serde_json::{json, Value};

use super::ledger::{Ledger, Outcome};
use super::ChurnArgs;
use crate::run::measure::percentiles;

/// What the window did and what the control plane cost.
#[derive(Debug, Default)]
pub struct Report {
    /// Window start and end, in ledger time.
    pub start: Duration,
    /// See `start`.
    pub end: Duration,
    /// Endpoint addresses registered in the window.
    pub opened: Vec<String>,
    /// Endpoint addresses closed in the window.
    pub closed: Vec<String>,
    /// Control-plane CPU seconds over the window.
    pub cpu_s: f64,
    /// Control-plane RSS at the end of the window.
    pub rss_kb: u64,
    /// Every update of the window was observed before the drain deadline.
    pub drained: bool,
    /// Streams that ended with an error.
    pub stream_errors: u64,
}

/// Lags in milliseconds: all, first half of the window, second half.
struct Lags {
    all: Vec<f64>,
    first: Vec<f64>,
    second: Vec<f64>,
    unobserved: usize,
}

impl Report {
    /// A window starting at `start`.
    pub fn new(start: Duration) -> Report {
        Report {
            start,
            ..Default::default()
        }
    }

    fn outcomes(&self, ledger: &Ledger) -> (Vec<Outcome>, Vec<Outcome>) {
        let reg = self.opened.iter().filter_map(|a| ledger.registration(a));
        let dereg = self.closed.iter().filter_map(|a| ledger.deregistration(a));
        (reg.collect(), dereg.collect())
    }

    /// True when every observer saw every registration and
    /// deregistration of the window.
    pub fn all_observed(&self, ledger: &Ledger) -> bool {
        let (reg, dereg) = self.outcomes(ledger);
        reg.len() == self.opened.len()
            && dereg.len() == self.closed.len()
            && reg.iter().chain(&dereg).all(|o| o.lag.is_some())
    }

    fn lags(&self, outcomes: &[Outcome]) -> Lags {
        let half = self.start + (self.end.saturating_sub(self.start)) / 2;
        let mut lags = Lags {
            all: Vec::new(),
            first: Vec::new(),
            second: Vec::new(),
            unobserved: 0,
        };
        for o in outcomes {
            let Some(lag) = o.lag else {
                lags.unobserved += 1;
                continue;
            };
            let ms = lag.as_secs_f64() * 1e3;
            lags.all.push(ms);
            match o.at < half {
                true => lags.first.push(ms),
                false => lags.second.push(ms),
            }
        }
        lags
    }

    /// The JSON line.
    pub fn json(&self, args: &ChurnArgs, population: usize, ledger: &Ledger) -> Value {
        let secs = self.end.saturating_sub(self.start).as_secs_f64().max(1e-9);
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let (reg, dereg) = self.outcomes(ledger);
        let mut out = json!({
            "mode": if args.delta { "delta" } else { "sotw" },
            "rate": args.rate, "duration_s": round(secs), "services": args.services.max(1),
            "observers": args.observers, "population": population, "grace_ms": args.grace_ms,
            "achieved_rate": round(self.opened.len() as f64 / secs),
            "achieved_deregistration_rate": round(self.closed.len() as f64 / secs),
            "registrations": self.opened.len(), "deregistrations": self.closed.len(),
            "cpu_s": round(self.cpu_s), "rss_kb": self.rss_kb, "flaps": ledger.flaps(),
            "drained": self.drained, "stream_errors": self.stream_errors,
        });
        put(&mut out, "registration", &self.lags(&reg));
        put(&mut out, "deregistration", &self.lags(&dereg));
        out
    }
}

fn put(out: &mut Value, key: &str, lags: &Lags) {
    let (p50, p99, max) = percentiles(lags.all.clone());
    out[format!("{key}_lag_p50_ms")] = p50.into();
    out[format!("{key}_lag_p99_ms")] = p99.into();
    out[format!("{key}_lag_max_ms")] = max.into();
    out[format!("{key}_lag_p99_first_half_ms")] = percentiles(lags.first.clone()).1.into();
    out[format!("{key}_lag_p99_second_half_ms")] = percentiles(lags.second.clone()).1.into();
    out[format!("{key}s_observed")] = lags.all.len().into();
    out[format!("{key}s_unobserved")] = lags.unobserved.into();
}
