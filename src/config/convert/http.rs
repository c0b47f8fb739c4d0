//! Parts of a `VirtualService` HTTP rule: match, rewrite, redirect, direct
//! response, headers and mirror. Retries and faults are in `policy`.

mod cors;
mod policy;

use std::collections::BTreeMap;

pub(super) use cors::cors;
pub(super) use policy::{fault, retries};

use super::l4::match_gateways;
use super::values::is_header_name;
use super::virtual_service::GatewayRef;
use super::{join, Cx};
use crate::config::model::{
    HeaderOps, Headers, HttpMatch, Mirror, Redirect, Rewrite, RouteAction, StringMatch,
};
use crate::config::raw::{self, virtual_service as vs};

/// `match` entries; `None` if any is invalid. The gateways they name
/// join `refs`, to be checked once every Gateway is known.
pub(super) fn matches(
    cx: &mut Cx<'_>,
    path: &str,
    raw: &[vs::HttpMatch],
    refs: &mut Vec<GatewayRef>,
) -> Option<Vec<HttpMatch>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, m) in raw.iter().enumerate() {
        match one_match(cx, &format!("{path}[{i}]"), m, refs) {
            Some(m) => out.push(m),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn one_match(
    cx: &mut Cx<'_>,
    path: &str,
    m: &vs::HttpMatch,
    refs: &mut Vec<GatewayRef>,
) -> Option<HttpMatch> {
    let errors_before = cx.diags.len();
    cx.unsupported(path, "statPrefix", &m.stat_prefix);
    let port = m.port.and_then(|p| cx.port(&join(path, "port"), p));
    let source_labels = m.source_labels.clone().unwrap_or_default();
    cx.labels(&join(path, "sourceLabels"), &source_labels);
    let source_namespace = source_namespace(cx, path, m.source_namespace.as_deref());
    let gateways = match_gateways(cx, path, m.gateways.as_deref(), refs);
    let uri = m
        .uri
        .as_ref()
        .and_then(|u| string_match(cx, &join(path, "uri"), u));
    let [method, scheme, authority] = [
        ("method", &m.method),
        ("scheme", &m.scheme),
        ("authority", &m.authority),
    ]
    .map(|(f, sm)| (sm.as_ref()).and_then(|sm| string_match(cx, &join(path, f), sm)));
    let headers = header_matches(cx, &join(path, "headers"), &m.headers);
    let without_headers = header_matches(cx, &join(path, "withoutHeaders"), &m.without_headers);
    let mut query_params = BTreeMap::new();
    for (name, sm) in &m.query_params {
        let p = join(&join(path, "queryParams"), name);
        if let Some(sm) = value_match(cx, &p, sm) {
            query_params.insert(name.clone(), sm);
        }
    }
    (cx.diags.len() == errors_before).then(|| HttpMatch {
        name: m.name.clone(),
        uri,
        path_separated_prefix: false,
        headers,
        without_headers,
        method,
        scheme,
        authority,
        query_params,
        ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
        port,
        source_labels,
        source_namespace,
        excluded_source_namespaces: Default::default(),
        gateways,
    })
}

/// `sourceNamespace`: a namespace name (a DNS label).
pub(super) fn source_namespace(cx: &mut Cx<'_>, path: &str, ns: Option<&str>) -> Option<String> {
    let ns = ns?;
    if !super::is_dns_label(ns) {
        let msg = format!("sourceNamespace {ns:?} is not a namespace name (a DNS label)");
        cx.err(&join(path, "sourceNamespace"), msg);
        return None;
    }
    Some(ns.to_string())
}

pub(super) fn header_matches(
    cx: &mut Cx<'_>,
    path: &str,
    raw: &BTreeMap<String, raw::StringMatch>,
) -> BTreeMap<String, StringMatch> {
    let mut out = BTreeMap::new();
    for (name, sm) in raw {
        let p = join(path, name);
        if !is_header_name(name) {
            cx.err(&p, format!("{name:?} is not a valid header name"));
        } else if let Some(sm) = value_match(cx, &p, sm) {
            out.insert(name.to_ascii_lowercase(), sm);
        }
    }
    out
}

/// A header or query parameter match: `{}` (no exact, prefix or regex)
/// is Istio's presence match.
fn value_match(cx: &mut Cx<'_>, path: &str, sm: &raw::StringMatch) -> Option<StringMatch> {
    if sm.exact.is_none() && sm.prefix.is_none() && sm.regex.is_none() {
        return Some(StringMatch::Present);
    }
    string_match(cx, path, sm)
}

/// A `StringMatch`: exactly one of exact, prefix, regex (RE2, checked
/// with the `regex` crate, which accepts the same syntax minus a few
/// rarely used features).
pub(super) fn string_match(
    cx: &mut Cx<'_>,
    path: &str,
    sm: &raw::StringMatch,
) -> Option<StringMatch> {
    let m = match (&sm.exact, &sm.prefix, &sm.regex) {
        (Some(e), None, None) => StringMatch::Exact(e.clone()),
        (None, Some(p), None) if p.is_empty() => {
            cx.err(&join(path, "prefix"), "prefix must not be empty");
            return None;
        }
        (None, Some(p), None) => StringMatch::Prefix(p.clone()),
        (None, None, Some(r)) => {
            let p = join(path, "regex");
            if r.is_empty() || r.len() > 1024 {
                cx.err(&p, "regex must be 1 to 1024 characters long");
                return None;
            }
            if let Err(e) = regex::Regex::new(r) {
                cx.err(
                    &p,
                    format!("invalid regex {r:?}: {}", first_line(&e.to_string())),
                );
                return None;
            }
            StringMatch::Regex(r.clone())
        }
        (None, None, None) => {
            cx.err(path, "one of exact, prefix or regex is required");
            return None;
        }
        _ => {
            cx.err(path, "only one of exact, prefix or regex is allowed");
            return None;
        }
    };
    Some(m)
}

/// The regex crate's errors span several lines with a caret diagram; a
/// diagnostic is one line.
fn first_line(msg: &str) -> String {
    let lines: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .last()
        .copied()
        .unwrap_or(msg)
        .trim_start_matches("error: ")
        .to_string()
}

/// `rewrite`.
pub(super) fn rewrite(cx: &mut Cx<'_>, path: &str, rw: &vs::Rewrite) -> Option<Rewrite> {
    let regex = rw.uri_regex_rewrite.as_ref();
    if rw.uri.is_none() && rw.authority.is_none() && regex.is_none() {
        cx.err(
            path,
            "rewrite must specify uri, authority or uriRegexRewrite",
        );
        return None;
    }
    if rw.uri.is_some() && regex.is_some() {
        cx.err(
            path,
            "rewrite may only contain one of uri or uriRegexRewrite",
        );
        return None;
    }
    let uri_regex = match regex {
        Some(r) => Some(regex_rewrite(cx, &join(path, "uriRegexRewrite"), r)?),
        None => None,
    };
    Some(Rewrite {
        uri: rw.uri.clone(),
        authority: rw.authority.clone(),
        uri_regex,
    })
}

/// `uriRegexRewrite`: the pattern must compile (RE2); the substitution
/// may use `\1`-style groups.
fn regex_rewrite(cx: &mut Cx<'_>, path: &str, r: &vs::RegexRewrite) -> Option<(String, String)> {
    let p = join(path, "match");
    if r.pattern.is_empty() {
        cx.err(&p, "match is required (an RE2 pattern)");
        return None;
    }
    if let Err(e) = regex::Regex::new(&r.pattern) {
        let msg = format!(
            "invalid regex {:?}: {}",
            r.pattern,
            first_line(&e.to_string())
        );
        cx.err(&p, msg);
        return None;
    }
    Some((r.pattern.clone(), r.rewrite.clone()))
}

/// `redirect`.
pub(super) fn redirect(cx: &mut Cx<'_>, path: &str, r: &vs::Redirect) -> Option<Redirect> {
    let before = cx.diags.len();
    let given = [r.authority.is_some(), r.port.is_some(), r.scheme.is_some()];
    if r.uri.is_none()
        && r.prefix_rewrite.is_none()
        && r.derive_port.is_none()
        && !given.contains(&true)
    {
        cx.err(
            path,
            "redirect must specify uri, prefixRewrite, authority, scheme, port or derivePort",
        );
    }
    if r.uri.is_some() && r.prefix_rewrite.is_some() {
        cx.err(
            path,
            "redirect may only contain one of uri or prefixRewrite",
        );
    }
    if r.port.is_some() && r.derive_port.is_some() {
        cx.err(path, "redirect may only contain one of port or derivePort");
    }
    let derive_port = match r.derive_port.as_deref() {
        None => None,
        Some("FROM_PROTOCOL_DEFAULT") => Some(false),
        Some("FROM_REQUEST_PORT") => Some(true),
        Some(other) => {
            let msg =
                format!("derivePort {other:?}: use FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT");
            cx.err(&join(path, "derivePort"), msg);
            None
        }
    };
    let port = r.port.and_then(|p| cx.port(&join(path, "port"), p));
    if let Some(code) = r.redirect_code {
        if !(300..=399).contains(&code) {
            cx.err(
                &join(path, "redirectCode"),
                format!("{code} is not a valid redirect code, must be 3xx"),
            );
        }
    }
    if let Some(s) = &r.scheme {
        if s != "http" && s != "https" {
            cx.err(
                &join(path, "scheme"),
                "invalid redirect scheme, must be \"http\" or \"https\"",
            );
        }
    }
    (cx.diags.len() == before).then(|| Redirect {
        uri: r.uri.clone(),
        authority: r.authority.clone(),
        port,
        scheme: r.scheme.clone(),
        redirect_code: r.redirect_code.map(|c| c as u16),
        prefix_rewrite: r.prefix_rewrite.clone(),
        derive_port,
    })
}

/// `directResponse`.
pub(super) fn direct_response(
    cx: &mut Cx<'_>,
    path: &str,
    d: &vs::DirectResponse,
) -> Option<RouteAction> {
    if !(200..=599).contains(&d.status) {
        cx.err(
            &join(path, "status"),
            format!("HTTP status {} is not in range 200-599", d.status),
        );
        return None;
    }
    let body = match &d.body {
        Some(b) => Some(body(cx, &join(path, "body"), b)?),
        None => None,
    };
    Some(RouteAction::DirectResponse {
        status: d.status as u16,
        body,
    })
}

/// Envoy's default `max_direct_response_body_size_bytes`: a longer body
/// makes Envoy reject the whole route configuration.
const MAX_BODY: usize = 4096;

/// `body`: `string`, or `bytes` (base64, as protobuf JSON writes bytes).
fn body(cx: &mut Cx<'_>, path: &str, b: &vs::Body) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let bytes = match (&b.string, &b.bytes) {
        (Some(s), None) => s.clone().into_bytes(),
        (None, Some(text)) => match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(bytes) => bytes,
            Err(e) => {
                cx.err(&join(path, "bytes"), format!("bytes must be base64: {e}"));
                return None;
            }
        },
        _ => {
            cx.err(path, "exactly one of string or bytes is required");
            return None;
        }
    };
    if bytes.len() > MAX_BODY {
        let msg = format!(
            "body is {} bytes: Envoy answers at most {MAX_BODY}",
            bytes.len()
        );
        cx.err(path, msg);
        return None;
    }
    Some(bytes)
}

/// `headers` (absent: nothing to change).
pub(super) fn headers(cx: &mut Cx<'_>, path: &str, h: Option<&raw::Headers>) -> Headers {
    let Some(h) = h else {
        return Headers::default();
    };
    Headers {
        request: header_ops(cx, &join(path, "request"), h.request.as_ref()),
        response: header_ops(cx, &join(path, "response"), h.response.as_ref()),
    }
}

fn header_ops(cx: &mut Cx<'_>, path: &str, ops: Option<&raw::HeaderOps>) -> HeaderOps {
    let Some(ops) = ops else {
        return HeaderOps::default();
    };
    for (op, names) in [("set", &ops.set), ("add", &ops.add)] {
        for name in names.keys() {
            check_header_op(cx, &join(&join(path, op), name), name);
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        check_header_op(cx, &format!("{path}.remove[{i}]"), name);
    }
    HeaderOps {
        set: ops.set.clone(),
        add: ops.add.clone(),
        remove: ops.remove.clone(),
    }
}

fn check_header_op(cx: &mut Cx<'_>, path: &str, name: &str) {
    if !is_header_name(name) {
        cx.err(path, format!("{name:?} is not a valid header name"));
    } else if name.eq_ignore_ascii_case("host") {
        cx.err(
            path,
            "the host header cannot be changed here: use rewrite.authority",
        );
    }
}

/// `mirror` with `mirrorPercentage` (or the deprecated `mirrorPercent`,
/// with a warning), or `mirrors`, each with its own `percentage`
/// (default 100%).
pub(super) fn mirrors(cx: &mut Cx<'_>, path: &str, r: &vs::HttpRoute) -> Vec<Mirror> {
    if let Some(list) = &r.mirrors {
        if r.mirror.is_some() {
            cx.err(
                &join(path, "mirrors"),
                "give either mirror or mirrors, not both",
            );
            return Vec::new();
        }
        return (list.iter().enumerate())
            .filter_map(|(i, m)| mirror_policy(cx, &format!("{path}.mirrors[{i}]"), m))
            .collect();
    }
    mirror(cx, path, r).into_iter().collect()
}

fn mirror_policy(cx: &mut Cx<'_>, path: &str, m: &vs::MirrorPolicy) -> Option<Mirror> {
    let percentage = match &m.percentage {
        Some(p) => cx.percent(&join(path, "percentage.value"), p.value)?,
        None => 100.0,
    };
    let Some(d) = &m.destination else {
        cx.err(path, "destination is required");
        return None;
    };
    let destination = cx.destination(&join(path, "destination"), d)?;
    Some(Mirror {
        destination,
        percentage,
    })
}

fn mirror(cx: &mut Cx<'_>, path: &str, r: &vs::HttpRoute) -> Option<Mirror> {
    let percentage = match (&r.mirror_percentage, r.mirror_percent) {
        (Some(p), _) => cx.percent(&join(path, "mirrorPercentage.value"), p.value)?,
        (None, Some(p)) => {
            let msg =
                "`mirrorPercent` is deprecated in Istio: write `mirrorPercentage: {value: N}`";
            cx.warn(&join(path, "mirrorPercent"), msg);
            cx.percent(&join(path, "mirrorPercent"), p as f64)?
        }
        (None, None) => 100.0,
    };
    let Some(d) = &r.mirror else {
        if r.mirror_percentage.is_some() || r.mirror_percent.is_some() {
            cx.err(
                &join(path, "mirrorPercentage"),
                "mirrorPercentage needs a mirror",
            );
        }
        return None;
    };
    let destination = cx.destination(&join(path, "mirror"), d)?;
    Some(Mirror {
        destination,
        percentage,
    })
}
