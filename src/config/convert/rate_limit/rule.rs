//! One rule of a `RateLimit`: its match, limit and response.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::r#type::v3::StatusCode;

use super::super::http::{header_matches, string_match};
use super::super::values::is_header_name;
use super::super::{is_dns_label, join, Cx};
use crate::config::model::{
    Limit, LimitResponse, LimitUnit, RateLimitRule, RuleMatch, SourceMatch,
};
use crate::config::raw::rate_limit as raw;

/// Converts `spec.rules[i]` at `path`; `None` after an error.
pub(super) fn rule(cx: &mut Cx<'_>, path: &str, r: &raw::Rule) -> Option<RateLimitRule> {
    let before = cx.diags.len();
    if !is_dns_label(&r.name) {
        let msg = format!(
            "rule name {:?} must be a DNS-1123 label (it names the bucket in stats)",
            r.name
        );
        cx.err(&join(path, "name"), msg);
    }
    let matches = match &r.matches {
        Some(m) => rule_match(cx, &join(path, "match"), m),
        None => RuleMatch::default(),
    };
    let limit = match &r.limit {
        Some(l) => limit(cx, &join(path, "limit"), l),
        None => {
            cx.err(path, "limit is required");
            None
        }
    };
    let response = match &r.response {
        Some(resp) => response(cx, &join(path, "response"), resp),
        None => Some(LimitResponse::default()),
    };
    if cx.diags.len() != before {
        return None;
    }
    Some(RateLimitRule {
        name: r.name.clone(),
        matches,
        limit: limit?,
        response: response?,
        shadow: r.shadow,
    })
}

fn rule_match(cx: &mut Cx<'_>, path: &str, m: &raw::Match) -> RuleMatch {
    let method = m.method.as_ref().and_then(|method| {
        let token = !method.is_empty() && method.bytes().all(|c| c.is_ascii_uppercase());
        if !token {
            let msg = format!("method {method:?} must be an upper-case HTTP method such as GET");
            cx.err(&join(path, "method"), msg);
        }
        token.then(|| method.clone())
    });
    RuleMatch {
        path: (m.path.as_ref()).and_then(|p| string_match(cx, &join(path, "path"), p)),
        method,
        headers: header_matches(cx, &join(path, "headers"), &m.headers),
        source: m
            .source
            .as_ref()
            .and_then(|s| source(cx, &join(path, "source"), s)),
    }
}

fn source(cx: &mut Cx<'_>, path: &str, s: &raw::Source) -> Option<SourceMatch> {
    match (&s.principal, &s.namespace) {
        (Some(p), None) => {
            let p = p.strip_prefix("spiffe://").unwrap_or(p);
            let parts: Vec<&str> = p.split('/').collect();
            if !matches!(parts.as_slice(), [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty())
            {
                let msg = format!("principal {p:?} is not TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT");
                cx.err(&join(path, "principal"), msg);
                return None;
            }
            Some(SourceMatch::Principal(p.to_string()))
        }
        (None, Some(ns)) if is_dns_label(ns) => Some(SourceMatch::Namespace(ns.clone())),
        (None, Some(ns)) => {
            let msg = format!("namespace {ns:?} is not a valid DNS-1123 label");
            cx.err(&join(path, "namespace"), msg);
            None
        }
        _ => {
            cx.err(path, "give exactly one of principal or namespace");
            None
        }
    }
}

fn limit(cx: &mut Cx<'_>, path: &str, l: &raw::Limit) -> Option<Limit> {
    let requests = match u32::try_from(l.requests) {
        Ok(n) if n > 0 => Some(n),
        _ if l.requests <= 0 => {
            let msg = format!("requests must be at least 1 (got {})", l.requests);
            cx.err(&join(path, "requests"), msg);
            None
        }
        _ => {
            cx.err(
                &join(path, "requests"),
                format!("{} is too large", l.requests),
            );
            None
        }
    };
    let unit = match l.unit.as_str() {
        "second" => Some(LimitUnit::Second),
        "minute" => Some(LimitUnit::Minute),
        "hour" => Some(LimitUnit::Hour),
        other => {
            let msg = format!("unknown unit {other:?}: use second, minute or hour");
            cx.err(&join(path, "unit"), msg);
            None
        }
    };
    let burst = match u32::try_from(l.burst) {
        Ok(b) => Some(b),
        Err(_) => {
            let msg = format!("burst must be 0 or more (got {})", l.burst);
            cx.err(&join(path, "burst"), msg);
            None
        }
    };
    Some(Limit {
        requests: requests?,
        unit: unit?,
        burst: burst?,
    })
}

fn response(cx: &mut Cx<'_>, path: &str, r: &raw::Response) -> Option<LimitResponse> {
    let status = match r.status {
        None => 429,
        // Envoy's `HttpStatus` takes the codes its `StatusCode` names.
        Some(s) if (400..=599).contains(&s) && StatusCode::try_from(s as i32).is_ok() => s as u16,
        Some(s) => {
            let msg = format!("status {s} is not an HTTP error status Envoy knows (4xx or 5xx)");
            cx.err(&join(path, "status"), msg);
            return None;
        }
    };
    let mut headers = BTreeMap::new();
    for (name, value) in &r.headers {
        let lower = name.to_ascii_lowercase();
        if !is_header_name(name) || lower.starts_with(':') {
            cx.err(
                &join(path, &format!("headers.{name}")),
                format!("{name:?} is not a valid header name"),
            );
            return None;
        }
        if lower.starts_with("x-ratelimit-") {
            let msg = format!("{name:?}: the x-ratelimit-* headers are set by the limiter");
            cx.err(&join(path, &format!("headers.{name}")), msg);
            return None;
        }
        headers.insert(lower, value.clone());
    }
    Some(LimitResponse { status, headers })
}
