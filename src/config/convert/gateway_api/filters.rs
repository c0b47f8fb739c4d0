//! Rule `filters`: header modifiers, redirect, URL rewrite, mirror, CORS.

use std::time::Duration;

use super::super::values::is_header_name;
use super::super::{join, Cx};
use super::{backends, CrossRef};
use crate::config::model::{CorsPolicy, HeaderOps, Headers, Mirror, Redirect, StringMatch};
use crate::config::raw::gateway_api as raw;

/// A path modifier, applied per match (a prefix replacement needs the
/// matched prefix).
#[derive(Debug, Clone)]
pub(super) enum PathChange {
    /// `ReplaceFullPath`.
    Full(String),
    /// `ReplacePrefixMatch`.
    Prefix(String),
}

/// `URLRewrite`.
#[derive(Debug, Clone, Default)]
pub(super) struct UrlRewrite {
    pub hostname: Option<String>,
    pub path: Option<PathChange>,
}

/// What a rule's filters do.
#[derive(Debug, Default)]
pub(super) struct RuleFilters {
    pub headers: Headers,
    /// The redirect and its path change.
    pub redirect: Option<(Redirect, Option<PathChange>)>,
    pub rewrite: Option<UrlRewrite>,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<CorsPolicy>,
}

/// The filter types a route kind takes.
pub(super) const HTTP_FILTERS: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
    "RequestMirror",
    "CORS",
];
pub(super) const GRPC_FILTERS: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
];

/// Converts `filters`; `allowed` are the types of the route's kind.
pub(super) fn rule_filters(
    cx: &mut Cx<'_>,
    path: &str,
    list: &[raw::Filter],
    allowed: &[&str],
    cross: &mut Vec<CrossRef>,
) -> RuleFilters {
    let mut out = RuleFilters::default();
    for (i, f) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if !allowed.contains(&f.kind.as_str()) {
            let why = match f.kind.as_str() {
                "ExtensionRef" => {
                    "extension filters name implementation objects Trellis does not have"
                }
                "ExternalAuth" => "use an AuthorizationPolicy with a CUSTOM provider instead",
                _ => "unknown for this route kind",
            };
            let msg = format!(
                "filter type {:?} is not supported ({why}); supported: {}",
                f.kind,
                allowed.join(", ")
            );
            cx.err(&join(&p, "type"), msg);
            continue;
        }
        only_own_field(cx, &p, f);
        match f.kind.as_str() {
            "RequestHeaderModifier" | "ResponseHeaderModifier" => {
                header_filter(cx, &p, f, &mut out.headers)
            }
            "RequestRedirect" => {
                let v = (f.request_redirect.as_ref())
                    .and_then(|r| redirect(cx, &join(&p, "requestRedirect"), r));
                once(cx, &p, &mut out.redirect, v)
            }
            "URLRewrite" => {
                let v =
                    (f.url_rewrite.as_ref()).and_then(|r| rewrite(cx, &join(&p, "urlRewrite"), r));
                once(cx, &p, &mut out.rewrite, v)
            }
            "RequestMirror" => {
                let v = (f.request_mirror.as_ref())
                    .and_then(|m| mirror(cx, &join(&p, "requestMirror"), m, cross));
                out.mirrors.extend(v)
            }
            _ => {
                let v = f.cors.as_ref().map(|c| cors(cx, &join(&p, "cors"), c));
                once(cx, &p, &mut out.cors, v)
            }
        }
    }
    if out.redirect.is_some() && out.rewrite.is_some() {
        cx.err(
            path,
            "RequestRedirect and URLRewrite cannot both be used on one rule",
        );
    }
    out
}

/// A filter type that may appear once per rule.
fn once<T>(cx: &mut Cx<'_>, path: &str, slot: &mut Option<T>, value: Option<T>) {
    if slot.is_some() {
        cx.err(
            &join(path, "type"),
            "this filter type may appear once per rule",
        );
    } else {
        *slot = value;
    }
}

/// The field named by `type` must be the one set.
fn only_own_field(cx: &mut Cx<'_>, path: &str, f: &raw::Filter) {
    let set = [
        (
            "RequestHeaderModifier",
            "requestHeaderModifier",
            f.request_header_modifier.is_some(),
        ),
        (
            "ResponseHeaderModifier",
            "responseHeaderModifier",
            f.response_header_modifier.is_some(),
        ),
        (
            "RequestRedirect",
            "requestRedirect",
            f.request_redirect.is_some(),
        ),
        ("URLRewrite", "urlRewrite", f.url_rewrite.is_some()),
        ("RequestMirror", "requestMirror", f.request_mirror.is_some()),
        ("CORS", "cors", f.cors.is_some()),
        ("ExtensionRef", "extensionRef", f.extension_ref.is_some()),
        ("ExternalAuth", "externalAuth", f.external_auth.is_some()),
    ];
    for (kind, field, present) in set {
        if present != (kind == f.kind) {
            let msg = if present {
                format!("`{field}` does not go with type {}", f.kind)
            } else {
                format!("type {kind} needs `{field}`")
            };
            cx.err(&join(path, field), msg);
        }
    }
}

/// `requestHeaderModifier` / `responseHeaderModifier` into `headers`.
pub(super) fn header_filter(cx: &mut Cx<'_>, path: &str, f: &raw::Filter, headers: &mut Headers) {
    let (field, h, ops) = if f.kind == "RequestHeaderModifier" {
        (
            "requestHeaderModifier",
            &f.request_header_modifier,
            &mut headers.request,
        )
    } else {
        (
            "responseHeaderModifier",
            &f.response_header_modifier,
            &mut headers.response,
        )
    };
    let Some(h) = h else { return };
    let path = join(path, field);
    if !ops.set.is_empty() || !ops.add.is_empty() || !ops.remove.is_empty() {
        cx.err(
            &join(&path, "type"),
            "this filter type may appear once per rule",
        );
        return;
    }
    *ops = header_ops(cx, &path, h);
}

fn header_ops(cx: &mut Cx<'_>, path: &str, h: &raw::HeaderFilter) -> HeaderOps {
    let mut out = HeaderOps::default();
    for (field, list, map) in [("set", &h.set, &mut out.set), ("add", &h.add, &mut out.add)] {
        for (i, kv) in list.iter().enumerate() {
            let p = format!("{path}.{field}[{i}]");
            let name = kv.name.to_ascii_lowercase();
            if !is_header_name(&name) {
                cx.err(
                    &join(&p, "name"),
                    format!("{:?} is not a valid header name", kv.name),
                );
            } else if map.insert(name, kv.value.clone()).is_some() {
                cx.err(
                    &join(&p, "name"),
                    format!("header {:?} is named twice", kv.name),
                );
            }
        }
    }
    for (i, name) in h.remove.iter().enumerate() {
        if !is_header_name(name) {
            cx.err(
                &format!("{path}.remove[{i}]"),
                format!("{name:?} is not a valid header name"),
            );
        }
        out.remove.push(name.to_ascii_lowercase());
    }
    out
}

fn path_change(cx: &mut Cx<'_>, path: &str, m: &raw::PathModifier) -> Option<PathChange> {
    let (value, change): (Option<&String>, fn(String) -> PathChange) = match m.kind.as_str() {
        "ReplaceFullPath" => (m.replace_full_path.as_ref(), PathChange::Full),
        "ReplacePrefixMatch" => (m.replace_prefix_match.as_ref(), PathChange::Prefix),
        other => {
            let msg =
                format!("path type {other:?} is not one of ReplaceFullPath, ReplacePrefixMatch");
            cx.err(&join(path, "type"), msg);
            return None;
        }
    };
    let other_set = match m.kind.as_str() {
        "ReplaceFullPath" => m.replace_prefix_match.is_some(),
        _ => m.replace_full_path.is_some(),
    };
    match value {
        Some(v) if v.starts_with('/') && !other_set => Some(change(v.clone())),
        _ => {
            let msg = format!(
                "type {} needs its own value (a path starting with `/`) and no other",
                m.kind
            );
            cx.err(path, msg);
            None
        }
    }
}

fn redirect(
    cx: &mut Cx<'_>,
    path: &str,
    r: &raw::Redirect,
) -> Option<(Redirect, Option<PathChange>)> {
    let before = cx.diags.len();
    let scheme = r.scheme.clone().filter(|s| {
        let ok = s == "http" || s == "https";
        if !ok {
            cx.err(
                &join(path, "scheme"),
                format!("scheme {s:?} is not http or https"),
            );
        }
        ok
    });
    let authority = r.hostname.as_deref().and_then(|h| {
        super::listener::check_hostname(h)
            .map_err(|msg| cx.err(&join(path, "hostname"), msg))
            .ok()
    });
    let port = r.port.and_then(|p| cx.port(&join(path, "port"), p));
    let code = r.status_code.unwrap_or(302);
    if ![301, 302, 303, 307, 308].contains(&code) {
        cx.err(
            &join(path, "statusCode"),
            format!("statusCode {code} is not one of 301, 302, 303, 307, 308"),
        );
    }
    let change = r
        .path
        .as_ref()
        .and_then(|m| path_change(cx, &join(path, "path"), m));
    let redirect = Redirect {
        uri: None,
        authority,
        port,
        scheme,
        redirect_code: Some(code as u16),
        prefix_rewrite: None,
        derive_port: None,
    };
    (cx.diags.len() == before).then_some((redirect, change))
}

fn rewrite(cx: &mut Cx<'_>, path: &str, r: &raw::UrlRewrite) -> Option<UrlRewrite> {
    let before = cx.diags.len();
    let hostname = r.hostname.as_deref().and_then(|h| {
        super::listener::check_hostname(h)
            .map_err(|msg| cx.err(&join(path, "hostname"), msg))
            .ok()
    });
    let change = r
        .path
        .as_ref()
        .and_then(|m| path_change(cx, &join(path, "path"), m));
    (cx.diags.len() == before).then_some(UrlRewrite {
        hostname,
        path: change,
    })
}

fn mirror(
    cx: &mut Cx<'_>,
    path: &str,
    m: &raw::Mirror,
    cross: &mut Vec<CrossRef>,
) -> Option<Mirror> {
    let Some(b) = &m.backend_ref else {
        cx.err(path, "backendRef is required");
        return None;
    };
    let bpath = join(path, "backendRef");
    if b.section_name.is_some() {
        cx.err(
            &join(&bpath, "sectionName"),
            "a backendRef takes no sectionName",
        );
    }
    let r = (&b.group, &b.kind, b.name.as_str(), &b.namespace, b.port);
    let destination = backends::service(cx, &bpath, r, cross)?;
    let percentage = match (&m.percent, &m.fraction) {
        (Some(_), Some(_)) => {
            cx.err(path, "percent and fraction exclude each other");
            return None;
        }
        (Some(p), None) => cx.percent(&join(path, "percent"), *p as f64)?,
        (None, Some(f)) => {
            let d = f.denominator.unwrap_or(100);
            if d <= 0 || f.numerator < 0 || f.numerator > d {
                cx.err(
                    &join(path, "fraction"),
                    "fraction needs 0 <= numerator <= denominator, denominator > 0",
                );
                return None;
            }
            f.numerator as f64 * 100.0 / d as f64
        }
        (None, None) => 100.0,
    };
    Some(Mirror {
        destination,
        percentage,
    })
}

fn cors(cx: &mut Cx<'_>, path: &str, c: &raw::Cors) -> CorsPolicy {
    let allow_origins = c.allow_origins.iter().map(|o| origin(o)).collect();
    let max_age = c.max_age.and_then(|s| match u64::try_from(s) {
        Ok(s) if s > 0 => Some(Duration::from_secs(s)),
        _ => {
            cx.err(
                &join(path, "maxAge"),
                format!("maxAge {s} must be a positive number of seconds"),
            );
            None
        }
    });
    CorsPolicy {
        allow_origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age,
        allow_credentials: c.allow_credentials,
        forward_unmatched_preflights: None,
    }
}

/// A CORS origin: `*` wildcards (the API's) become a regex.
fn origin(o: &str) -> StringMatch {
    if !o.contains('*') {
        return StringMatch::Exact(o.to_string());
    }
    let parts: Vec<String> = o.split('*').map(regex::escape).collect();
    StringMatch::Regex(parts.join(".*"))
}
