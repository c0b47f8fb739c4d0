//! `HTTPRoute` → VirtualService-like rules: one rule per match, sorted in
//! the API's precedence, with parents and hostnames for attachment.

use std::sync::Arc;
use std::time::Duration;

use super::super::{join, Cx};
use super::filters::{self, PathChange, RuleFilters};
use super::{backends, matches, CrossRef, KubeRoute, Parent, ParentTarget, Rank, GROUP};
use crate::config::model::{
    Host, HttpMatch, HttpRoute, Retries, Rewrite, RouteAction, RuleSource, StringMatch,
    WeightedDestination,
};
use crate::config::raw::gateway_api as raw;

/// A converted route and its references into other namespaces.
pub(crate) struct Converted {
    pub route: KubeRoute,
    pub cross: Vec<CrossRef>,
}

/// Istio's retry attempts when a route sets none (its default policy).
const ISTIO_DEFAULT_ATTEMPTS: u32 = 2;

/// Converts an `HTTPRoute`.
pub(crate) fn http_route(cx: &mut Cx<'_>, r: &raw::Route<raw::HttpRule>) -> Option<Converted> {
    let before = cx.diags.len();
    let mut cross = Vec::new();
    let (parents, hostnames) = attachment(cx, r);
    let mut ranked = Vec::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        ranked.extend(http_rule(cx, &path, rule, &mut cross));
    }
    (cx.diags.len() == before).then(|| Converted {
        route: KubeRoute {
            parents,
            hostnames,
            http: sorted(ranked),
            created: None,
        },
        cross,
    })
}

/// Stable sort by rank, highest first: rules keep their order on ties.
pub(super) fn sorted(mut ranked: Vec<(Rank, HttpRoute)>) -> Vec<(Rank, HttpRoute)> {
    ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
    ranked
}

/// `metadata.creationTimestamp` of a route, checked: it orders routes
/// whose matches tie (the oldest first), so a value that cannot be
/// compared is an error rather than ignored.
pub(crate) fn creation_timestamp(
    cx: &mut Cx<'_>,
    value: Option<&yaml_serde::Value>,
) -> Option<String> {
    const PATH: &str = "metadata.creationTimestamp";
    let v = value.filter(|v| !v.is_null())?;
    let re = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$").ok()?;
    match v.as_str() {
        Some(t) if re.is_match(t) => Some(t.to_string()),
        _ => {
            let msg = "creationTimestamp must be a UTC RFC 3339 time such as 2024-01-02T15:04:05Z: it orders routes whose matches tie";
            cx.err(PATH, msg);
            None
        }
    }
}

fn http_rule(
    cx: &mut Cx<'_>,
    path: &str,
    rule: &raw::HttpRule,
    cross: &mut Vec<CrossRef>,
) -> Vec<(Rank, HttpRoute)> {
    let at = |f: &str| join(path, f);
    cx.unsupported(path, "sessionPersistence", &rule.session_persistence);
    let filters = filters::rule_filters(
        cx,
        &at("filters"),
        &rule.filters,
        filters::HTTP_FILTERS,
        cross,
    );
    let backends = backends::backend_refs(cx, &at("backendRefs"), &rule.backend_refs, cross);
    let (timeout, retries) = policy(cx, path, rule);
    let mut out = Vec::new();
    let defaults = [raw::HttpMatch {
        path: None,
        headers: vec![],
        query_params: vec![],
        method: None,
    }];
    let list = if rule.matches.is_empty() {
        &defaults[..]
    } else {
        &rule.matches[..]
    };
    for (j, m) in list.iter().enumerate() {
        let mpath = format!("{path}.matches[{j}]");
        let Some(m) = matches::http_match(cx, &mpath, m) else {
            continue;
        };
        let rank = rank(&m);
        let parts = Parts {
            name: rule.name.clone(),
            timeout,
            retries: retries.clone(),
            at: mpath,
        };
        let built = assemble(cx, path, m, &filters, backends.as_deref(), parts);
        out.extend(built.map(|r| (rank, r)));
    }
    out
}

fn rank(m: &HttpMatch) -> Rank {
    let (kind, len) = match &m.uri {
        Some(StringMatch::Exact(p)) => (3, p.len()),
        Some(StringMatch::Regex(r)) => (2, r.len()),
        Some(StringMatch::Prefix(p)) => (1, p.len()),
        _ => (0, 0),
    };
    (
        kind,
        len,
        usize::from(m.method.is_some()),
        m.headers.len(),
        m.query_params.len(),
    )
}

/// What a rule gives each of its matches besides match and action.
pub(super) struct Parts {
    pub name: Option<String>,
    pub timeout: Option<Duration>,
    pub retries: Option<Retries>,
    /// The match's path (`spec.rules[i].matches[j]`), where provenance
    /// blames the rule made of it.
    pub at: String,
}

/// One model rule for one match.
pub(super) fn assemble(
    cx: &mut Cx<'_>,
    path: &str,
    m: HttpMatch,
    f: &RuleFilters,
    backends: Option<&[WeightedDestination]>,
    parts: Parts,
) -> Option<HttpRoute> {
    let action = match &f.redirect {
        Some((redirect, change)) => {
            if backends.is_some_and(|b| !b.is_empty()) {
                cx.err(
                    &join(path, "backendRefs"),
                    "a rule that redirects answers itself: it takes no backendRefs",
                );
                return None;
            }
            let mut redirect = redirect.clone();
            match change {
                Some(PathChange::Full(p)) => redirect.uri = Some(p.clone()),
                Some(PathChange::Prefix(p)) => redirect.prefix_rewrite = Some(p.clone()),
                None => {}
            }
            RouteAction::Redirect(redirect)
        }
        // No backend (or every weight 0): the API's answer is a 500.
        None => match backends? {
            [] => RouteAction::DirectResponse {
                status: 500,
                body: None,
            },
            b => RouteAction::Route(b.to_vec()),
        },
    };
    let rewrite = match &f.rewrite {
        Some(rw) => rewrite(cx, path, &m, rw)?,
        None => None,
    };
    Some(HttpRoute {
        name: parts.name,
        matches: vec![m],
        action,
        rewrite,
        timeout: parts.timeout,
        retries: parts.retries,
        fault: None,
        headers: f.headers.clone(),
        mirrors: f.mirrors.clone(),
        cors: f.cors.clone(),
        source: Some(Arc::new(RuleSource {
            origin: cx.doc.origin(),
            path: parts.at,
        })),
    })
}

/// `URLRewrite` for one match: a full path replaces the whole path; a
/// prefix replaces the matched prefix, whole segments.
fn rewrite(
    cx: &mut Cx<'_>,
    path: &str,
    m: &HttpMatch,
    rw: &filters::UrlRewrite,
) -> Option<Option<Rewrite>> {
    let mut out = Rewrite {
        uri: None,
        authority: rw.hostname.clone(),
        uri_regex: None,
    };
    match (&rw.path, &m.uri) {
        (None, _) => {}
        (Some(PathChange::Full(p)), _) => out.uri_regex = Some(("^/.*$".into(), p.clone())),
        (Some(PathChange::Prefix(v)), Some(StringMatch::Prefix(prefix))) => {
            let v = v.trim_end_matches('/');
            match (prefix.as_str(), v) {
                ("/", "") => {}
                ("/", v) => out.uri_regex = Some(("^/".into(), format!("{v}/"))),
                // Envoy would leave `//rest`: drop the prefix and its slashes.
                (p, "") => out.uri_regex = Some((format!("^{}/*", regex::escape(p)), "/".into())),
                (_, v) => out.uri = Some(v.to_string()),
            }
        }
        (Some(PathChange::Prefix(_)), _) => {
            let msg = "ReplacePrefixMatch needs a PathPrefix path match";
            cx.err(&join(path, "filters"), msg);
            return None;
        }
    }
    let empty = out.uri.is_none() && out.authority.is_none() && out.uri_regex.is_none();
    Some((!empty).then_some(out))
}

/// `timeouts` and `retry`. `request` is the route timeout; `backendRequest`
/// bounds each try (Envoy's per-try timeout), under Istio's default retry
/// policy unless `retry` says otherwise. `0s` means no timeout.
fn policy(
    cx: &mut Cx<'_>,
    path: &str,
    rule: &raw::HttpRule,
) -> (Option<Duration>, Option<Retries>) {
    let t = rule.timeouts.as_ref();
    let dur = |cx: &mut Cx<'_>, field: &str, v: Option<&String>| {
        let v = v?;
        let p = join(path, &format!("timeouts.{field}"));
        match super::super::values::parse_duration(v) {
            Ok(d) if d.is_zero() => None,
            _ => cx.duration(&p, v),
        }
    };
    let request = dur(cx, "request", t.and_then(|t| t.request.as_ref()));
    let backend = dur(
        cx,
        "backendRequest",
        t.and_then(|t| t.backend_request.as_ref()),
    );
    if let (Some(r), Some(b)) = (request, backend) {
        if b > r {
            let msg = "backendRequest must not exceed request";
            cx.err(&join(path, "timeouts.backendRequest"), msg);
        }
    }
    let mut retries = rule
        .retry
        .as_ref()
        .and_then(|r| retry(cx, &join(path, "retry"), r));
    if let Some(b) = backend {
        let r = retries.get_or_insert_with(|| Retries {
            attempts: ISTIO_DEFAULT_ATTEMPTS,
            per_try_timeout: None,
            retry_on: None,
            retriable_status_codes: Vec::new(),
            retry_remote_localities: None,
            retry_ignore_previous_hosts: None,
            backoff: None,
        });
        r.per_try_timeout = Some(b);
    }
    (request, retries)
}

/// `retry` (experimental in the API): status codes to retry besides
/// connection failures, attempts, and the back-off base (Istio's mapping).
fn retry(cx: &mut Cx<'_>, path: &str, r: &raw::Retry) -> Option<Retries> {
    let before = cx.diags.len();
    let mut codes = Vec::new();
    for (i, c) in r.codes.iter().enumerate() {
        if (400..=599).contains(c) {
            codes.push(*c as u32);
        } else {
            cx.err(
                &format!("{path}.codes[{i}]"),
                format!("code {c} is not in 400..599"),
            );
        }
    }
    let attempts = match r.attempts {
        Some(a) => cx.count(&join(path, "attempts"), a),
        None => Some(ISTIO_DEFAULT_ATTEMPTS),
    };
    let backoff = r
        .backoff
        .as_ref()
        .and_then(|b| cx.duration(&join(path, "backoff"), b));
    let on = [
        "connect-failure",
        "refused-stream",
        "unavailable",
        "cancelled",
    ];
    (cx.diags.len() == before).then(|| Retries {
        attempts: attempts.unwrap_or_default(),
        per_try_timeout: None,
        retry_on: Some(on.map(String::from).to_vec()),
        retriable_status_codes: codes,
        retry_remote_localities: None,
        retry_ignore_previous_hosts: None,
        backoff,
    })
}

/// `parentRefs` and `hostnames`, shared by HTTPRoute and GRPCRoute.
pub(super) fn attachment<R>(
    cx: &mut Cx<'_>,
    r: &raw::Route<R>,
) -> (Vec<Parent>, Vec<(String, String)>) {
    if r.parent_refs.is_empty() {
        cx.err(
            "spec",
            "at least one parentRef is required (a Gateway, or a Service for mesh routing)",
        );
    }
    let parents = (r.parent_refs.iter().enumerate())
        .filter_map(|(i, p)| parent(cx, &format!("spec.parentRefs[{i}]"), p))
        .collect();
    let mut hostnames = Vec::new();
    for (i, h) in r.hostnames.iter().enumerate() {
        let p = format!("spec.hostnames[{i}]");
        match super::listener::check_hostname(h) {
            Ok(h) => hostnames.push((p, h)),
            Err(msg) => cx.err(&p, msg),
        }
    }
    (parents, hostnames)
}

fn parent(cx: &mut Cx<'_>, path: &str, p: &raw::ObjectRef) -> Option<Parent> {
    let group = p.group.as_deref().unwrap_or(GROUP);
    let kind = p.kind.as_deref().unwrap_or("Gateway");
    let ns = p
        .namespace
        .clone()
        .unwrap_or_else(|| cx.doc.namespace.clone());
    let port = p.port.and_then(|n| cx.port(&join(path, "port"), n));
    if !super::super::is_dns_label(&ns) || !super::super::is_dns_subdomain(&p.name) {
        cx.err(
            path,
            format!(
                "parentRef {ns}/{} is not a valid namespace and name",
                p.name
            ),
        );
        return None;
    }
    let target = match (group, kind) {
        (GROUP, "Gateway") => ParentTarget::Gateway {
            qualified: format!("{ns}/{}", p.name),
            section: p.section_name.clone(),
            port,
        },
        ("", "Service") => {
            if p.section_name.is_some() {
                cx.err(
                    &join(path, "sectionName"),
                    "a Service parent takes `port`, not `sectionName`",
                );
                return None;
            }
            ParentTarget::Service {
                host: Host::canonical(&format!("{}.{ns}", p.name), &ns),
                namespace: ns,
                port,
            }
        }
        _ => {
            let msg = format!("parent {group:?}/{kind}: a route attaches to a {GROUP} Gateway or a core Service (mesh routing)");
            cx.err(path, msg);
            return None;
        }
    };
    Some(Parent {
        path: path.to_string(),
        target,
    })
}
