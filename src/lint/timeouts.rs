//! Timeouts: retries the route timeout cuts off before they can start, a
//! callee allowed to run longer than its caller waits, and call paths with
//! no bound at all.

use std::time::Duration;

use super::graph::{show_path, CallGraph};
use super::routes::{has_timeout, timeout, At};
use super::{short, show_duration, Check, Finding, Input, Severity};
use crate::config::model::{HttpRoute, VirtualService};

/// Unbounded paths reported at most.
const TOP_PATHS: usize = 5;

/// Every timeout finding.
pub fn check(input: &Input<'_>, graph: &CallGraph) -> Vec<Finding> {
    let mut out = Vec::new();
    let vss = (input.mesh.virtual_services.values()).chain(&input.mesh.gateway_virtual_services);
    let mut seen = std::collections::BTreeSet::new();
    for vs in vss {
        if !seen.insert((&vs.origin.file, vs.origin.line)) {
            continue; // one VirtualService may serve several hosts
        }
        for (i, rule) in vs.http.iter().enumerate() {
            out.extend(retries_cut_off(input, vs, i, rule));
        }
    }
    out.extend(inverted(input, graph));
    out.extend(unbounded(input, graph));
    out
}

/// `perTryTimeout × attempts` at or above the route `timeout`: the last
/// retries would start after the route has already given up.
fn retries_cut_off(
    input: &Input<'_>,
    vs: &VirtualService,
    i: usize,
    rule: &HttpRoute,
) -> Option<Finding> {
    let (timeout, r) = (rule.timeout?, rule.retries.as_ref()?);
    let per_try = r.per_try_timeout?;
    if r.attempts == 0 || per_try.is_zero() || per_try * r.attempts < timeout {
        return None;
    }
    // Retry k starts at k × perTryTimeout at the earliest (every try timed out).
    let possible = (1..=r.attempts).filter(|k| per_try * *k < timeout).count();
    let never = r.attempts as usize - possible;
    let msg = format!(
        "perTryTimeout {} × attempts {} = {} is not below the route timeout {}: {never} of the {} retries can never start",
        show_duration(per_try),
        r.attempts,
        show_duration(per_try * r.attempts),
        show_duration(timeout),
        r.attempts,
    );
    let why =
        "Retries configured but cut off by the route timeout give a false sense of resilience, \
               and the budget reads as larger than it is.";
    let fix = format!(
        "Set `retries.attempts: {possible}`, or raise `timeout` to at least {} (perTryTimeout × (attempts + 1)), or lower `perTryTimeout`.",
        show_duration(per_try * (r.attempts + 1))
    );
    let path = format!("spec.http[{i}].retries.perTryTimeout");
    Some(
        input
            .finding(Check::Timeouts, Severity::Warning, &vs.origin, &path)
            .says(msg, why, fix),
    )
}

/// A callee whose calls may last longer than its own caller waits for it.
fn inverted(input: &Input<'_>, graph: &CallGraph) -> Vec<Finding> {
    let mut out = Vec::new();
    for (caller, callees) in &graph.calls {
        let Some((outer, _)) = timeout(input.mesh, caller) else {
            continue;
        };
        for callee in callees {
            let Some((inner, at)) = timeout(input.mesh, callee) else {
                continue;
            };
            if inner > outer {
                out.push(inverted_finding(
                    input,
                    (caller, outer),
                    (callee, inner),
                    at,
                ));
            }
        }
    }
    out
}

fn inverted_finding(
    input: &Input<'_>,
    (caller, outer): (&crate::config::model::Host, Duration),
    (callee, inner): (&crate::config::model::Host, Duration),
    at: At,
) -> Finding {
    let msg = format!(
        "{}→{}: calls to {} may take {} but {}'s own callers give up after {}",
        short(caller),
        short(callee),
        short(callee),
        show_duration(inner),
        short(caller),
        show_duration(outer)
    );
    let why = "Work continues downstream after the request upstream has already failed: \
               it holds connections and retries for an answer nobody reads.";
    let fix = format!(
        "Make timeouts shrink along the call path: give calls to {} a timeout below {} (leave room for {}'s own work).",
        short(callee),
        show_duration(outer),
        short(caller)
    );
    input
        .finding(Check::Timeouts, Severity::Warning, &at.origin, &at.path)
        .says(msg, why, fix)
}

/// Call paths on which no hop bounds the time a call may take.
fn unbounded(input: &Input<'_>, graph: &CallGraph) -> Vec<Finding> {
    let paths = graph.paths();
    let open = paths
        .iter()
        .filter(|p| p.iter().skip(1).all(|h| !has_timeout(input.mesh, h)));
    (open.take(TOP_PATHS))
        .filter_map(|path| {
            let origin = graph.declared_by.get(&path[0])?;
            let msg = format!("{}: no timeout on any hop", show_path(path));
            let why = "Without a timeout a stuck service holds every caller's connections and \
                       threads up the path until clients give up; nothing sheds the load.";
            let fix = format!(
                "Set a route `timeout` on the VirtualService of {} (the first hop), and shorter ones further down.",
                short(&path[1])
            );
            let f = input.finding(Check::Timeouts, Severity::Warning, origin, "spec.egress");
            Some(f.says(msg, why, fix))
        })
        .collect()
}
