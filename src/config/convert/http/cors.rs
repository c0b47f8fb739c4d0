//! `corsPolicy` of an HTTP rule (Istio's `validateCORSPolicy`).

use std::time::Duration;

use super::super::values::is_header_name;
use super::super::{join, Cx};
use super::string_match;
use crate::config::model::{CorsPolicy, StringMatch};
use crate::config::raw::virtual_service as vs;

/// The methods Istio's validation accepts in `allowMethods`.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `corsPolicy`; `None` after an error.
pub(in crate::config::convert) fn cors(
    cx: &mut Cx<'_>,
    path: &str,
    c: &vs::CorsPolicy,
) -> Option<CorsPolicy> {
    let before = cx.diags.len();
    let allow_origins = origins(cx, path, c);
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !METHODS.contains(&m.as_str()) {
            let msg = format!("{m:?} is not an HTTP method ({})", METHODS.join(", "));
            cx.err(&format!("{path}.allowMethods[{i}]"), msg);
        }
    }
    for (field, names) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, h) in names.iter().enumerate() {
            if !is_header_name(h) {
                let msg = format!("{h:?} is not a valid header name");
                cx.err(&format!("{path}.{field}[{i}]"), msg);
            }
        }
    }
    let max_age = c.max_age.as_ref().and_then(|t| max_age(cx, path, t));
    let forward = unmatched_preflights(cx, path, c.unmatched_preflights.as_deref());
    (cx.diags.len() == before).then(|| CorsPolicy {
        allow_origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age,
        allow_credentials: c.allow_credentials,
        forward_unmatched_preflights: forward,
    })
}

/// `allowOrigins`, then the deprecated `allowOrigin` (exact origins,
/// still read by istiod: accepted with a warning).
fn origins(cx: &mut Cx<'_>, path: &str, c: &vs::CorsPolicy) -> Vec<StringMatch> {
    let mut out = Vec::new();
    for (i, o) in c.allow_origins.iter().enumerate() {
        let p = format!("{path}.allowOrigins[{i}]");
        if o.exact.is_none() && o.prefix.is_none() && o.regex.is_none() {
            cx.err(&p, "one of exact, prefix or regex is required");
        } else if let Some(m) = string_match(cx, &p, o) {
            out.push(m);
        }
    }
    if let Some(list) = &c.allow_origin {
        let msg = "`allowOrigin` is deprecated in Istio: write `allowOrigins: [{exact: ORIGIN}]`";
        cx.warn(&join(path, "allowOrigin"), msg);
        out.extend(list.iter().map(|o| StringMatch::Exact(o.clone())));
    }
    out
}

/// `maxAge`: whole seconds (Envoy's `max_age` is a count of seconds).
fn max_age(cx: &mut Cx<'_>, path: &str, text: &str) -> Option<Duration> {
    let p = join(path, "maxAge");
    let d = cx.duration(&p, text)?;
    if d.subsec_nanos() != 0 {
        cx.err(&p, "maxAge is accurate only to seconds: give whole seconds");
        return None;
    }
    Some(d)
}

fn unmatched_preflights(cx: &mut Cx<'_>, path: &str, v: Option<&str>) -> Option<bool> {
    match v? {
        "UNSPECIFIED" => None,
        "FORWARD" => Some(true),
        "IGNORE" => Some(false),
        other => {
            let msg = format!("unmatchedPreflights {other:?}: use FORWARD or IGNORE");
            cx.err(&join(path, "unmatchedPreflights"), msg);
            None
        }
    }
}
