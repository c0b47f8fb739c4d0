//! `HTTPRouteMatch` and `GRPCRouteMatch` → the model's `HttpMatch`.

use std::collections::BTreeMap;

use super::super::values::is_header_name;
use super::super::{join, Cx};
use crate::config::model::{HttpMatch, StringMatch};
use crate::config::raw::gateway_api as raw;

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// One `matches[]` entry of an HTTPRoute rule.
pub(super) fn http_match(cx: &mut Cx<'_>, path: &str, m: &raw::HttpMatch) -> Option<HttpMatch> {
    let before = cx.diags.len();
    let (uri, separated) = match &m.path {
        Some(p) => path_match(cx, &join(path, "path"), p)?,
        None => (StringMatch::Prefix("/".into()), false),
    };
    let headers = value_matches(cx, &join(path, "headers"), &m.headers, true);
    let query_params = value_matches(cx, &join(path, "queryParams"), &m.query_params, false);
    let method = m.method.as_deref().and_then(|meth| {
        if METHODS.contains(&meth) {
            return Some(StringMatch::Exact(meth.to_string()));
        }
        let msg = format!("method {meth:?} is not one of {}", METHODS.join(", "));
        cx.err(&join(path, "method"), msg);
        None
    });
    (cx.diags.len() == before).then(|| HttpMatch {
        uri: Some(uri),
        path_separated_prefix: separated,
        headers,
        method,
        query_params,
        ..HttpMatch::default()
    })
}

/// `path`: the match, and whether a prefix matches whole segments only
/// (Gateway API's PathPrefix: `/foo` takes `/foo/bar`, not `/foobar`).
fn path_match(cx: &mut Cx<'_>, path: &str, p: &raw::PathMatch) -> Option<(StringMatch, bool)> {
    let value = p.value.clone().unwrap_or_else(|| "/".to_string());
    let kind = p.kind.as_deref().unwrap_or("PathPrefix");
    if kind != "RegularExpression" && !value.starts_with('/') {
        cx.err(
            &join(path, "value"),
            format!("path {value:?} must start with `/`"),
        );
        return None;
    }
    match kind {
        "Exact" => Some((StringMatch::Exact(value), false)),
        "PathPrefix" => {
            let trimmed = value.trim_end_matches('/');
            let prefix = if trimmed.is_empty() { "/" } else { trimmed };
            Some((StringMatch::Prefix(prefix.to_string()), prefix != "/"))
        }
        "RegularExpression" => regex(cx, &join(path, "value"), &value).map(|r| (r, false)),
        other => {
            let msg =
                format!("path type {other:?} is not one of Exact, PathPrefix, RegularExpression");
            cx.err(&join(path, "type"), msg);
            None
        }
    }
}

/// A regular expression, checked to compile (RE2 syntax, as Envoy's).
pub(super) fn regex(cx: &mut Cx<'_>, path: &str, r: &str) -> Option<StringMatch> {
    match regex::Regex::new(r) {
        Ok(_) => Some(StringMatch::Regex(r.to_string())),
        Err(e) => {
            let first = e.to_string();
            let first = first.lines().last().unwrap_or_default().to_string();
            cx.err(path, format!("invalid regular expression {r:?}: {first}"));
            None
        }
    }
}

/// `headers` (names case-insensitive) or `queryParams` (case-sensitive):
/// Exact or RegularExpression; a name twice is an error (the API takes
/// the first and drops the rest).
pub(super) fn value_matches(
    cx: &mut Cx<'_>,
    path: &str,
    list: &[raw::ValueMatch],
    header: bool,
) -> BTreeMap<String, StringMatch> {
    let mut out = BTreeMap::new();
    for (i, v) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let name = if header {
            v.name.to_ascii_lowercase()
        } else {
            v.name.clone()
        };
        if name.is_empty() || (header && !is_header_name(&name)) {
            cx.err(
                &join(&p, "name"),
                format!("{:?} is not a valid name", v.name),
            );
            continue;
        }
        if out.contains_key(&name) {
            cx.err(&join(&p, "name"), format!("{name:?} is matched twice"));
            continue;
        }
        let sm = match v.kind.as_deref().unwrap_or("Exact") {
            "Exact" => Some(StringMatch::Exact(v.value.clone())),
            "RegularExpression" => regex(cx, &join(&p, "value"), &v.value),
            other => {
                let msg = format!("type {other:?} is not one of Exact, RegularExpression");
                cx.err(&join(&p, "type"), msg);
                None
            }
        };
        out.extend(sm.map(|sm| (name, sm)));
    }
    out
}

/// One `matches[]` entry of a GRPCRoute rule: the method becomes a path
/// match on `/SERVICE/METHOD`.
pub(super) fn grpc_match(cx: &mut Cx<'_>, path: &str, m: &raw::GrpcMatch) -> Option<HttpMatch> {
    let before = cx.diags.len();
    let headers = value_matches(cx, &join(path, "headers"), &m.headers, true);
    let uri = match &m.method {
        Some(meth) => grpc_method(cx, &join(path, "method"), meth),
        None => Some(StringMatch::Prefix("/".into())),
    };
    (cx.diags.len() == before).then(|| HttpMatch {
        uri,
        headers,
        ..HttpMatch::default()
    })
}

fn grpc_method(cx: &mut Cx<'_>, path: &str, m: &raw::GrpcMethod) -> Option<StringMatch> {
    let (service, method) = (m.service.as_deref(), m.method.as_deref());
    if service.is_none() && method.is_none() {
        cx.err(path, "one of service and method is required");
        return None;
    }
    match m.kind.as_deref().unwrap_or("Exact") {
        "Exact" => {
            let bad = |s: &str| s.is_empty() || s.contains('/');
            if service.is_some_and(bad) || method.is_some_and(bad) {
                cx.err(
                    path,
                    "service and method must be non-empty names without `/`",
                );
                return None;
            }
            Some(match (service, method) {
                (Some(s), Some(m)) => StringMatch::Exact(format!("/{s}/{m}")),
                (Some(s), None) => StringMatch::Prefix(format!("/{s}/")),
                (_, Some(m)) => StringMatch::Regex(format!("/[^/]+/{}", regex::escape(m))),
                (None, None) => return None,
            })
        }
        "RegularExpression" => {
            let s = service.unwrap_or("[^/]+");
            let m = method.unwrap_or("[^/]+");
            regex(cx, path, &format!("/({s})/({m})"))
        }
        other => {
            let msg = format!("type {other:?} is not one of Exact, RegularExpression");
            cx.err(&join(path, "type"), msg);
            None
        }
    }
}
