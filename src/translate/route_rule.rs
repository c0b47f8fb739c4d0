//! One VirtualService `http` rule → Envoy routes (one per `match` entry),
//! following istiod's `TranslateRoute` (`route/route.go`).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{
    data_source, header_value_option::HeaderAppendAction, DataSource, HeaderValue,
    HeaderValueOption, RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::config::route::v3::{
    redirect_action, route, route_action, weighted_cluster, DirectResponseAction, RedirectAction,
    Route, RouteAction, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{fault_delay, FaultDelay};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort, FaultAbort, HttpFault,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::route_match::route_match;
use super::routes::Ctx;
use super::util::{duration, per_million, u32v};
use super::{retry, CORS_FILTER, FAULT_FILTER};
use crate::config::model::{
    AbortError, Fault, HashKey, HeaderOps, Headers, HttpMatch, HttpRoute, Mirror, Redirect,
    RouteAction as Action, WeightedDestination,
};

/// Routes for one rule on the virtual host of `port`.
#[cfg(test)]
pub fn routes(ctx: Ctx<'_>, rule: &HttpRoute, port: u16) -> Vec<Route> {
    let all = matched_routes(ctx, rule, port, |_| true);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Routes for the matches of one rule that `keep` admits (`None`: the
/// rule has no match), on the virtual host of `port`, each with its match.
pub fn matched_routes<'r>(
    ctx: Ctx<'_>,
    rule: &'r HttpRoute,
    port: u16,
    keep: impl Fn(Option<&HttpMatch>) -> bool,
) -> Vec<(Option<&'r HttpMatch>, Route)> {
    let matches: Vec<Option<&HttpMatch>> = if rule.matches.is_empty() {
        vec![None]
    } else {
        rule.matches.iter().map(Some).collect()
    };
    let kept: Vec<_> = matches.into_iter().filter(|m| keep(*m)).collect();
    if kept.is_empty() {
        return Vec::new();
    }
    let base = base_route(ctx, rule, port);
    kept.into_iter()
        .map(|m| {
            let route = Route {
                name: route_name(rule, m),
                r#match: Some(route_match(m)),
                ..base.clone()
            };
            (m, route)
        })
        .collect()
}

/// Istio: the rule's name, then `.` and the match's name if it has one.
fn route_name(rule: &HttpRoute, m: Option<&HttpMatch>) -> String {
    let mut name = rule.name.clone().unwrap_or_default();
    if let Some(match_name) = m.and_then(|m| m.name.as_deref()) {
        name = format!("{name}.{match_name}");
    }
    name
}

/// Everything but the name and match, shared by the rule's routes.
fn base_route(ctx: Ctx<'_>, rule: &HttpRoute, port: u16) -> Route {
    let ops = HeaderChanges::of(&rule.headers);
    let mut out = Route {
        request_headers_to_add: ops.request_add.clone(),
        request_headers_to_remove: ops.request_remove.clone(),
        response_headers_to_add: ops.response_add.clone(),
        response_headers_to_remove: ops.response_remove.clone(),
        ..Default::default()
    };
    out.action = Some(match &rule.action {
        Action::Redirect(r) => route::Action::Redirect(redirect(r, port)),
        Action::DirectResponse { status, body } => {
            route::Action::DirectResponse(DirectResponseAction {
                status: u32::from(*status),
                body: body.as_ref().map(|b| DataSource {
                    specifier: Some(body_source(b)),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
        Action::Route(dests) => {
            let action = forward(ctx, rule, dests, port, ops.authority, &mut out);
            route::Action::Route(action)
        }
    });
    if let Some(f) = &rule.fault {
        out.typed_per_filter_config
            .insert(FAULT_FILTER.to_string(), pack_any(http_fault(f)));
    }
    if let Some(c) = &rule.cors {
        out.typed_per_filter_config
            .insert(CORS_FILTER.to_string(), pack_any(super::cors::policy(c)));
    }
    out
}

/// A text body stays a string (readable in `/config_dump`); other bytes
/// go as bytes.
fn body_source(body: &[u8]) -> data_source::Specifier {
    match std::str::from_utf8(body) {
        Ok(text) => data_source::Specifier::InlineString(text.to_string()),
        Err(_) => data_source::Specifier::InlineBytes(body.to_vec()),
    }
}

/// The forwarding action: destinations, timeout, retries, rewrite, mirror.
fn forward(
    ctx: Ctx<'_>,
    rule: &HttpRoute,
    dests: &[WeightedDestination],
    port: u16,
    header_authority: Option<String>,
    out: &mut Route,
) -> RouteAction {
    let timeout = retry::route_timeout(rule.timeout);
    let mut action = RouteAction {
        timeout: Some(timeout),
        ..Default::default()
    };
    let mut authority = header_authority;
    if let Some(rw) = &rule.rewrite {
        if let Some(uri) = &rw.uri {
            action.prefix_rewrite = uri.clone();
        }
        action.regex_rewrite =
            rw.uri_regex
                .as_ref()
                .map(|(pattern, substitution)| RegexMatchAndSubstitute {
                    pattern: Some(RegexMatcher {
                        regex: pattern.clone(),
                        ..Default::default()
                    }),
                    substitution: substitution.clone(),
                });
        authority = rw.authority.clone().or(authority);
    }
    action.host_rewrite_specifier =
        authority.map(route_action::HostRewriteSpecifier::HostRewriteLiteral);
    action.request_mirror_policies = rule
        .mirrors
        .iter()
        .filter_map(|m| mirror(ctx, m, port))
        .collect();
    let consistent_hash = match dests {
        [single] => single_destination(ctx, single, port, &mut action, out),
        _ => {
            weighted_destinations(ctx, dests, port, &mut action);
            false
        }
    };
    action.retry_policy = retry::policy(rule.retries.as_ref(), consistent_hash);
    action
}

/// One destination: a plain cluster; its headers join the route's.
/// Returns whether the cluster hashes (Istio then keeps retries on the
/// same host).
fn single_destination(
    ctx: Ctx<'_>,
    wd: &WeightedDestination,
    port: u16,
    action: &mut RouteAction,
    out: &mut Route,
) -> bool {
    action.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(
        ctx.cluster(&wd.destination, port),
    ));
    let ops = HeaderChanges::of(&wd.headers);
    out.request_headers_to_add.extend(ops.request_add);
    out.request_headers_to_remove.extend(ops.request_remove);
    out.response_headers_to_add.extend(ops.response_add);
    out.response_headers_to_remove.extend(ops.response_remove);
    if action.host_rewrite_specifier.is_none() {
        action.host_rewrite_specifier = ops
            .authority
            .map(route_action::HostRewriteSpecifier::HostRewriteLiteral);
    }
    let hash = ctx.hash_key(&wd.destination, port);
    action.hash_policy.extend(hash.map(hash_policy));
    hash.is_some()
}

/// Several destinations: weighted clusters (zero weights dropped, as
/// Istio does), each with its own header changes.
fn weighted_destinations(
    ctx: Ctx<'_>,
    dests: &[WeightedDestination],
    port: u16,
    action: &mut RouteAction,
) {
    let clusters = dests
        .iter()
        .filter(|wd| wd.weight > 0)
        .map(|wd| {
            let ops = HeaderChanges::of(&wd.headers);
            action
                .hash_policy
                .extend(ctx.hash_key(&wd.destination, port).map(hash_policy));
            weighted_cluster::ClusterWeight {
                name: ctx.cluster(&wd.destination, port),
                weight: Some(u32v(wd.weight)),
                request_headers_to_add: ops.request_add,
                request_headers_to_remove: ops.request_remove,
                response_headers_to_add: ops.response_add,
                response_headers_to_remove: ops.response_remove,
                host_rewrite_specifier: ops.authority.map(
                    weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral,
                ),
                ..Default::default()
            }
        })
        .collect();
    action.cluster_specifier = Some(route_action::ClusterSpecifier::WeightedClusters(
        WeightedCluster {
            clusters,
            ..Default::default()
        },
    ));
}

fn mirror(ctx: Ctx<'_>, m: &Mirror, port: u16) -> Option<route_action::RequestMirrorPolicy> {
    // Istio: an explicit 0% means no mirroring.
    (m.percentage > 0.0).then(|| route_action::RequestMirrorPolicy {
        cluster: ctx.cluster(&m.destination, port),
        runtime_fraction: Some(RuntimeFractionalPercent {
            default_value: Some(per_million(m.percentage)),
            ..Default::default()
        }),
        trace_sampled: Some(BoolValue { value: false }),
        ..Default::default()
    })
}

/// `fault` → the fault filter's per-route config (the filter itself sits
/// in the outbound HCM before the router).
pub fn http_fault(f: &Fault) -> HttpFault {
    HttpFault {
        delay: f.delay.as_ref().map(|d| FaultDelay {
            percentage: Some(per_million(d.percentage)),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(duration(
                d.fixed_delay,
            ))),
        }),
        abort: f.abort.as_ref().map(|a| FaultAbort {
            percentage: Some(per_million(a.percentage)),
            error_type: Some(match a.error {
                AbortError::Http(status) => fault_abort::ErrorType::HttpStatus(u32::from(status)),
                AbortError::Grpc(code) => fault_abort::ErrorType::GrpcStatus(code),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Istio's `ApplyRedirect` (default code 301; no explicit :80 for http
/// or :443 for https; `derivePort: FROM_REQUEST_PORT` keeps the port the
/// request came to, `port`).
fn redirect(r: &Redirect, port: u16) -> RedirectAction {
    use envoy_types::pb::envoy::config::route::v3::redirect_action::RedirectResponseCode as Code;
    let code = match r.redirect_code.unwrap_or(301) {
        302 => Code::Found,
        303 => Code::SeeOther,
        307 => Code::TemporaryRedirect,
        308 => Code::PermanentRedirect,
        _ => Code::MovedPermanently,
    };
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let port = match r.port.or(r.derive_port.filter(|d| *d).map(|_| port)) {
        Some(80) if scheme == "http" => 0,
        Some(443) if scheme == "https" => 0,
        Some(p) => u32::from(p),
        None => 0,
    };
    let path = match (&r.uri, &r.prefix_rewrite) {
        (Some(uri), _) => Some(redirect_action::PathRewriteSpecifier::PathRedirect(
            uri.clone(),
        )),
        (None, Some(p)) => Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
            p.clone(),
        )),
        (None, None) => None,
    };
    RedirectAction {
        host_redirect: r.authority.clone().unwrap_or_default(),
        port_redirect: port,
        response_code: code as i32,
        scheme_rewrite_specifier: r
            .scheme
            .clone()
            .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: path,
        ..Default::default()
    }
}

/// Route hash policy for a consistent-hash load balancer
/// (Istio's `ConsistentHashToHashPolicy`).
pub fn hash_policy(key: &HashKey) -> route_action::HashPolicy {
    use route_action::hash_policy::{self as hp, PolicySpecifier};
    let spec = match key {
        HashKey::Header(name) => PolicySpecifier::Header(hp::Header {
            header_name: name.clone(),
            ..Default::default()
        }),
        HashKey::Cookie {
            name,
            path,
            ttl,
            attributes,
        } => PolicySpecifier::Cookie(hp::Cookie {
            name: name.clone(),
            path: path.clone().unwrap_or_default(),
            ttl: ttl.map(duration),
            attributes: (attributes.iter())
                .map(|a| hp::CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                })
                .collect(),
        }),
        HashKey::SourceIp => {
            PolicySpecifier::ConnectionProperties(hp::ConnectionProperties { source_ip: true })
        }
        HashKey::QueryParameter(name) => {
            PolicySpecifier::QueryParameter(hp::QueryParameter { name: name.clone() })
        }
    };
    route_action::HashPolicy {
        policy_specifier: Some(spec),
        ..Default::default()
    }
}

/// `headers` translated (Istio's `TranslateHeadersOperations`): `set`
/// overwrites, `add` appends, sorted by name; `:authority`/`host` become
/// a host rewrite (`set` wins over `add`); pseudo-headers are dropped.
#[derive(Default)]
struct HeaderChanges {
    request_add: Vec<HeaderValueOption>,
    request_remove: Vec<String>,
    response_add: Vec<HeaderValueOption>,
    response_remove: Vec<String>,
    authority: Option<String>,
}

impl HeaderChanges {
    fn of(h: &Headers) -> Self {
        let (request_add, authority) = ops_to_add(&h.request);
        let (response_add, _) = ops_to_add(&h.response);
        HeaderChanges {
            request_add,
            request_remove: keep_external(&h.request.remove),
            response_add,
            response_remove: keep_external(&h.response.remove),
            authority,
        }
    }
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn keep_external(names: &[String]) -> Vec<String> {
    names.iter().filter(|n| !is_internal(n)).cloned().collect()
}

fn ops_to_add(ops: &HeaderOps) -> (Vec<HeaderValueOption>, Option<String>) {
    let set = value_options(&ops.set, HeaderAppendAction::OverwriteIfExistsOrAdd);
    let add = value_options(&ops.add, HeaderAppendAction::AppendIfExistsOrAdd);
    let authority = |m: &BTreeMap<String, String>| {
        m.iter()
            .rev()
            .find(|(k, _)| is_authority(k))
            .map(|(_, v)| v.clone())
    };
    (
        set.into_iter().chain(add).collect(),
        authority(&ops.set).or(authority(&ops.add)),
    )
}

fn value_options(
    map: &BTreeMap<String, String>,
    action: HeaderAppendAction,
) -> Vec<HeaderValueOption> {
    map.iter()
        .filter(|(k, _)| !is_internal(k))
        .map(|(k, v)| HeaderValueOption {
            header: Some(HeaderValue {
                key: k.clone(),
                value: v.clone(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests;
