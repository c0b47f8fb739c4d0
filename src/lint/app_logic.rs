//! The mesh as application logic: routes that decide on who the user is or
//! what the request says (many header and query matches on values that are
//! not infrastructure) belong in the application. The mesh notes: "The
//! mesh handles transport; applications handle business rules."

use super::{Check, Finding, Input, Severity};
use crate::config::model::{HttpMatch, VirtualService};

/// Business conditions in one rule from which it is reported.
const REPORT_FROM: usize = 3;

/// Header names (or prefixes) that carry transport, tracing or release
/// plumbing rather than business data.
const INFRA_PREFIXES: [&str; 9] = [
    ":",
    "x-envoy-",
    "x-b3-",
    "x-request-",
    "x-forwarded-",
    "x-istio-",
    "x-ot-",
    "grpc-",
    "x-amzn-trace",
];
const INFRA_NAMES: [&str; 9] = [
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "host",
    "content-type",
    "accept",
    "te",
    "upgrade",
];
/// Words in a header name that mark release or debug routing (canary,
/// version pinning, test traffic), which is the mesh's job.
const INFRA_WORDS: [&str; 5] = ["canary", "version", "debug", "test", "trace"];

fn is_infrastructure(header: &str) -> bool {
    INFRA_PREFIXES.iter().any(|p| header.starts_with(p))
        || INFRA_NAMES.contains(&header)
        || INFRA_WORDS.iter().any(|w| header.contains(w))
}

/// The business conditions of one match: non-infrastructure headers
/// (matched or excluded) and every query parameter.
fn business(m: &HttpMatch) -> Vec<String> {
    let headers = (m.headers.keys().chain(m.without_headers.keys()))
        .filter(|h| !is_infrastructure(h))
        .map(|h| format!("header {h}"));
    let query = m.query_params.keys().map(|q| format!("query {q}"));
    headers.chain(query).collect()
}

/// Every rule with [`REPORT_FROM`] or more business conditions.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let mesh = input.mesh;
    let vss = mesh
        .virtual_services
        .values()
        .chain(&mesh.gateway_virtual_services);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for vs in vss.filter(|vs| seen.insert((&vs.origin.file, vs.origin.line))) {
        out.extend(rules(input, vs));
    }
    out
}

fn rules<'a>(input: &'a Input<'_>, vs: &'a VirtualService) -> impl Iterator<Item = Finding> + 'a {
    vs.http.iter().enumerate().filter_map(move |(i, rule)| {
        let mut names: Vec<String> = rule.matches.iter().flat_map(business).collect();
        names.sort();
        names.dedup();
        if names.len() < REPORT_FROM {
            return None;
        }
        let msg = format!(
            "rule matches on {} business values: {}",
            names.len(),
            names.join(", ")
        );
        let why = "Routing on who the user is or what the request says moves business rules into \
                   mesh config, where they are not tested with the code and are hard to debug.";
        let fix = "Route in the application (or a feature-flag service) and keep mesh matches to \
                   transport concerns: versions, canary headers, paths."
            .to_string();
        let f = input.finding(
            Check::MeshAsAppLogic,
            Severity::Info,
            &vs.origin,
            &format!("spec.http[{i}].match"),
        );
        Some(f.says(msg, why, fix))
    })
}
