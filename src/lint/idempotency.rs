//! Retries on 5xx for routes that carry non-idempotent methods: a POST
//! that reached the service and failed with a 5xx may have taken effect,
//! and retrying it charges twice.

use super::{Check, Finding, Input, Severity};
use crate::config::model::{HttpMatch, HttpRoute, Retries, StringMatch};

/// Methods whose repetition is not harmless (RFC 9110 §9.2.2).
const NON_IDEMPOTENT: [&str; 2] = ["POST", "PATCH"];

/// Every mesh route that retries on a server error and may carry a
/// non-idempotent method.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for vs in input.mesh.virtual_services.values() {
        if !seen.insert((&vs.origin.file, vs.origin.line)) {
            continue;
        }
        for (i, rule) in vs.http.iter().enumerate() {
            let Some(r) = &rule.retries else { continue };
            let Some(on) = retries_5xx(r) else { continue };
            let Some(method) = carried(rule) else {
                continue;
            };
            let msg = format!(
                "retries on `{on}` (attempts: {}) for a route that {method}",
                r.attempts
            );
            let why =
                "A non-idempotent request that failed with a 5xx may already have taken effect \
                       upstream (a payment made, an order placed); retrying repeats it.";
            let fix =
                "Split the rule: match the idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) \
                       with these retries, and give POST/PATCH a rule with \
                       `retryOn: connect-failure,refused-stream` (no request was processed), \
                       or make the handlers idempotent with request keys."
                    .to_string();
            let path = format!("spec.http[{i}].retries.retryOn");
            let f = input.finding(
                Check::NonIdempotentRetry,
                Severity::Warning,
                &vs.origin,
                &path,
            );
            out.push(f.says(msg, why, fix));
        }
    }
    out
}

/// The `retryOn` entry that retries server errors, if any.
fn retries_5xx(r: &Retries) -> Option<String> {
    if r.attempts == 0 {
        return None;
    }
    if let Some(code) = r.retriable_status_codes.iter().find(|c| **c >= 500) {
        return Some(code.to_string());
    }
    let on = r.retry_on.as_ref()?;
    on.iter()
        .find(|n| matches!(n.as_str(), "5xx" | "gateway-error"))
        .cloned()
}

/// How the rule may carry a non-idempotent method, in words.
fn carried(rule: &HttpRoute) -> Option<String> {
    if rule.matches.is_empty() {
        return Some("matches every method".into());
    }
    rule.matches.iter().find_map(match_carries)
}

fn match_carries(m: &HttpMatch) -> Option<String> {
    let Some(method) = &m.method else {
        return Some("has a match without a method condition".into());
    };
    let hit = NON_IDEMPOTENT.iter().find(|name| match method {
        StringMatch::Exact(e) => e.eq_ignore_ascii_case(name),
        StringMatch::Prefix(p) => name.starts_with(p.to_ascii_uppercase().as_str()),
        StringMatch::Regex(r) => {
            regex::Regex::new(&format!("^(?:{r})$")).is_ok_and(|re| re.is_match(name))
        }
        StringMatch::Present => true,
    })?;
    Some(format!("matches method {hit}"))
}
