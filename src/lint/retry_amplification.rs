//! Retry amplification: when the last service of a call path fails, every
//! hop retries, so the attempts multiply (the mesh notes' retry storm:
//! "a request hitting 3 services deep generates 5^3 = 125 backend calls").

use super::graph::{show_path, CallGraph};
use super::routes::{retries, At};
use super::{short, Check, Finding, Input, Severity};
use crate::config::model::Host;

/// Paths reported at most, worst first.
const TOP_PATHS: usize = 5;
/// Calls per user request from which a path is reported.
const WARN_AT: u64 = 10;
/// ... and from which it is an error.
const ERROR_AT: u64 = 100;

/// One hop of a path: the callee, its retries and where they are set.
struct Hop<'a> {
    callee: &'a Host,
    retries: u32,
    at: Option<At>,
}

/// The worst call paths, each with its multiplier.
pub fn check(input: &Input<'_>, graph: &CallGraph) -> Vec<Finding> {
    let mut scored: Vec<(u64, Vec<Host>)> = (graph.paths().into_iter())
        .map(|p| (multiplier(input, &p), p))
        .filter(|(m, _)| *m >= WARN_AT)
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.truncate(TOP_PATHS);
    (scored.iter())
        .filter_map(|(m, path)| finding(input, graph, path, *m))
        .collect()
}

fn hops<'a>(input: &Input<'_>, path: &'a [Host]) -> Vec<Hop<'a>> {
    (path.iter().skip(1))
        .map(|callee| {
            let (retries, at) = retries(input.mesh, callee);
            Hop {
                callee,
                retries,
                at,
            }
        })
        .collect()
}

/// Calls the last service of `path` may receive per request to the first.
fn multiplier(input: &Input<'_>, path: &[Host]) -> u64 {
    (hops(input, path).iter())
        .map(|h| u64::from(h.retries) + 1)
        .fold(1u64, u64::saturating_mul)
}

fn finding(input: &Input<'_>, graph: &CallGraph, path: &[Host], m: u64) -> Option<Finding> {
    let hops = hops(input, path);
    let worst = (hops.iter())
        .filter(|h| h.at.is_some())
        .max_by_key(|h| h.retries);
    let (origin, field) = match worst.and_then(|h| h.at.clone()) {
        Some(At { origin, path }) => (origin, path),
        None => (
            graph.declared_by.get(&path[0])?.clone(),
            "spec.egress".into(),
        ),
    };
    let severity = if m >= ERROR_AT {
        Severity::Error
    } else {
        Severity::Warning
    };
    let each: Vec<String> = (hops.iter())
        .map(|h| {
            let how = if h.at.is_some() {
                ""
            } else {
                " [Istio's default]"
            };
            format!("{} {}{how}", short(h.callee), h.retries + 1)
        })
        .collect();
    let last = path.last().map(short).unwrap_or_default();
    let msg = format!(
        "{}: up to {m} calls to {last} per request to {} (tries per hop: {})",
        show_path(path),
        short(&path[0]),
        each.join(", ")
    );
    let why = "When a downstream service fails, every hop retries and the attempts multiply, \
               so a partial outage becomes a load multiple on the failing service (a retry storm).";
    let fix = "Retry at one hop only (usually the caller nearest the user): set `retries.attempts: 0` \
               or 1 on the inner hops' VirtualService routes, each with a `perTryTimeout` and a route `timeout`."
        .to_string();
    Some(
        input
            .finding(Check::RetryAmplification, severity, &origin, &field)
            .says(msg, why, fix),
    )
}
