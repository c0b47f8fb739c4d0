//! `VirtualService` conversion: hosts, rules and route destinations.

use super::values::check_host;
use super::{http, join, l4, Cx};
use crate::config::model::{Host, HttpRoute, RouteAction, VirtualService, WeightedDestination};
use crate::config::raw::virtual_service as raw;

pub(crate) use delegate::Delegation;

mod delegate;
pub(super) mod export;

/// A gateway a VirtualService binds to: the path it is written at and
/// its `NAMESPACE/NAME`, checked once every Gateway is known.
pub(crate) type GatewayRef = (String, String);

/// A converted `VirtualService` and what the cross-resource checks need.
pub(crate) struct Converted {
    /// The VirtualService; a delegate's has no hosts.
    pub vs: VirtualService,
    /// The path of each host.
    pub paths: Vec<String>,
    /// The gateways it names.
    pub gateway_refs: Vec<GatewayRef>,
    /// Its rules that delegate, to be replaced by the delegates' rules.
    pub delegations: Vec<Delegation>,
    /// True for a delegate (no `hosts`): only a root's rules reach it.
    pub is_delegate: bool,
}

/// Converts a `VirtualService`.
pub(crate) fn virtual_service(cx: &mut Cx<'_>, vs: &raw::VirtualService) -> Converted {
    let export_to = export::export_to(cx, vs.export_to.as_deref());
    let is_delegate = vs.hosts.is_empty();
    if is_delegate {
        delegate::check_delegate(cx, vs);
    }
    let (mut refs, mesh) = gateways(cx, vs.gateways.as_deref());
    let gateways = refs.iter().map(|(_, g)| g.clone()).collect();
    // A match naming `mesh` brings the VirtualService to sidecars too,
    // whose hosts must be services.
    let (paths, hosts) = if mesh || names_mesh(vs) {
        super::hosts(cx, &vs.hosts).into_iter().unzip()
    } else {
        gateway_hosts(cx, &vs.hosts)
    };
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        cx.err(
            "spec",
            "at least one `http`, `tcp` or `tls` rule is required",
        );
    }
    let mut delegations = Vec::new();
    let mut http = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        let path = format!("spec.http[{i}]");
        let Some(rule) = http_route(cx, &path, r, &mut refs) else {
            continue;
        };
        if let Some(d) = &r.delegate {
            let target = delegate::target(cx, &path, d);
            delegations.extend(target.map(|target| Delegation {
                index: http.len(),
                path: path.clone(),
                target,
                root: rule.clone(),
            }));
        }
        http.push(rule);
    }
    let tcp: Vec<_> = (vs.tcp.iter())
        .map(|r| (r.matches.as_slice(), r.route.as_slice()))
        .collect();
    let tcp = l4::routes(cx, "spec.tcp", l4::Kind::Tcp, &tcp, &mut refs);
    let tls: Vec<_> = (vs.tls.iter())
        .map(|r| (r.matches.as_slice(), r.route.as_slice()))
        .collect();
    let tls = l4::routes(cx, "spec.tls", l4::Kind::Tls, &tls, &mut refs);
    let vs = VirtualService {
        hosts,
        http,
        tcp,
        tls,
        gateways,
        mesh,
        export_to,
        origin: cx.doc.origin(),
    };
    Converted {
        vs,
        paths,
        gateway_refs: refs,
        delegations,
        is_delegate,
    }
}

/// True when a match of any rule names `mesh` in its `gateways`.
fn names_mesh(vs: &raw::VirtualService) -> bool {
    let mesh = |g: &Option<Vec<String>>| g.iter().flatten().any(|g| g == "mesh");
    let http = (vs.http.iter()).any(|r| r.matches.iter().any(|m| mesh(&m.gateways)));
    let tcp = (vs.tcp.iter()).any(|r| r.matches.iter().any(|m| mesh(&m.gateways)));
    http || tcp || (vs.tls.iter()).any(|r| r.matches.iter().any(|m| mesh(&m.gateways)))
}

/// `spec.gateways`: each as `NAMESPACE/NAME` (a bare name is in the
/// VirtualService's namespace), and whether `mesh` is among them (Istio:
/// no `gateways` means `mesh` only).
fn gateways(cx: &mut Cx<'_>, raw: Option<&[String]>) -> (Vec<GatewayRef>, bool) {
    let Some(raw) = raw.filter(|g| !g.is_empty()) else {
        return (Vec::new(), true);
    };
    let mut out = Vec::new();
    let mut mesh = false;
    for (i, g) in raw.iter().enumerate() {
        let path = format!("spec.gateways[{i}]");
        match gateway_ref(cx, &path, g) {
            Some(q) if q == "mesh" => mesh = true,
            Some(q) if !out.iter().any(|(_, o)| *o == q) => out.push((path, q)),
            _ => {}
        }
    }
    (out, mesh)
}

/// One gateway name: `mesh`, or `NAMESPACE/NAME` (a bare name is in the
/// VirtualService's namespace); `None` after an error.
pub(super) fn gateway_ref(cx: &mut Cx<'_>, path: &str, g: &str) -> Option<String> {
    let (ns, name) = match g.split_once('/') {
        _ if g == "mesh" => return Some(g.to_string()),
        Some((ns, name)) => (ns, name),
        None => (cx.doc.namespace.as_str(), g),
    };
    if !super::is_dns_label(ns) || !super::is_dns_subdomain(name) {
        let msg = format!("gateway {g:?} must be `mesh`, NAME or NAMESPACE/NAME");
        cx.err(path, msg);
        return None;
    }
    Some(format!("{ns}/{name}"))
}

/// Hosts of a VirtualService bound only to gateways: as for sidecars, and
/// also `*` and `*.SUFFIX`, which only a gateway's server hosts can match.
fn gateway_hosts(cx: &mut Cx<'_>, raw: &[String]) -> (Vec<String>, Vec<Host>) {
    let (mut paths, mut hosts) = (Vec::new(), Vec::<Host>::new());
    for (i, h) in raw.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        let lower = h.trim().to_ascii_lowercase();
        let host = match lower.strip_prefix('*') {
            Some("") => Host(lower.clone()),
            Some(s) if s.strip_prefix('.').is_some_and(|s| check_host(s).is_ok()) => {
                Host(lower.clone())
            }
            Some(_) => {
                cx.err(
                    &path,
                    format!("host {h:?}: a wildcard must be `*` or `*.SUFFIX`"),
                );
                continue;
            }
            None => match cx.host(&path, h) {
                Some(host) => host,
                None => continue,
            },
        };
        if hosts.contains(&host) {
            cx.err(&path, format!("duplicate host {host}"));
            continue;
        }
        paths.push(path);
        hosts.push(host);
    }
    (paths, hosts)
}

fn http_route(
    cx: &mut Cx<'_>,
    path: &str,
    r: &raw::HttpRoute,
    refs: &mut Vec<GatewayRef>,
) -> Option<HttpRoute> {
    unsupported_rule_fields(cx, path, r);
    let at = |field: &str| join(path, field);
    let matches = http::matches(cx, &at("match"), &r.matches, refs);
    let action = action(cx, path, r);
    let rewrite = (r.rewrite.as_ref()).and_then(|rw| http::rewrite(cx, &at("rewrite"), rw));
    let timeout = (r.timeout.as_ref()).and_then(|t| cx.duration(&at("timeout"), t));
    let retries = (r.retries.as_ref()).and_then(|rt| http::retries(cx, &at("retries"), rt));
    let fault = (r.fault.as_ref()).and_then(|f| http::fault(cx, &at("fault"), f));
    let headers = http::headers(cx, &at("headers"), r.headers.as_ref());
    let mirrors = http::mirrors(cx, path, r);
    let cors = (r.cors_policy.as_ref()).and_then(|c| http::cors(cx, &at("corsPolicy"), c));
    Some(HttpRoute {
        name: r.name.clone(),
        matches: matches?,
        action: action?,
        rewrite,
        timeout,
        retries,
        fault,
        headers,
        mirrors,
        cors,
        // The VirtualService's own `spec.http[i]`.
        source: None,
    })
}

fn unsupported_rule_fields(cx: &mut Cx<'_>, path: &str, r: &raw::HttpRoute) {
    if r.websocket_upgrade.is_some() {
        let msg = "`websocketUpgrade` is deprecated in Istio and has no effect: WebSocket upgrades work on every route";
        cx.warn(&join(path, "websocketUpgrade"), msg);
    }
    if r.rewrite.is_some() && r.redirect.is_some() {
        let msg = "a rule cannot contain both rewrite and redirect";
        cx.err(&join(path, "rewrite"), msg);
    }
}

fn action(cx: &mut Cx<'_>, path: &str, r: &raw::HttpRoute) -> Option<RouteAction> {
    if r.delegate.is_some() {
        return delegate::placeholder(cx, path, r);
    }
    let given = [
        !r.route.is_empty(),
        r.redirect.is_some(),
        r.direct_response.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            cx.err(path, "one of route, redirect or directResponse is required");
            return None;
        }
        1 => {}
        _ => {
            cx.err(
                path,
                "only one of route, redirect or directResponse is allowed",
            );
            return None;
        }
    }
    if let Some(redirect) = &r.redirect {
        return http::redirect(cx, &join(path, "redirect"), redirect).map(RouteAction::Redirect);
    }
    if let Some(dr) = &r.direct_response {
        return http::direct_response(cx, &join(path, "directResponse"), dr);
    }
    route(cx, &join(path, "route"), &r.route).map(RouteAction::Route)
}

/// Route destinations and their weights: a lone destination may omit its
/// weight (100); several must sum to 100, an omitted weight counting 0.
pub(super) fn route(
    cx: &mut Cx<'_>,
    path: &str,
    raw: &[raw::RouteDestination],
) -> Option<Vec<WeightedDestination>> {
    let mut out = Vec::new();
    let mut ok = true;
    let mut sum = 0i64;
    for (i, rd) in raw.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let weight = rd.weight.unwrap_or(0);
        if !(0..=100).contains(&weight) {
            cx.err(
                &join(&p, "weight"),
                format!("weight {weight} is not in 0..100"),
            );
            ok = false;
        }
        sum += weight;
        let headers = http::headers(cx, &join(&p, "headers"), rd.headers.as_ref());
        let Some(d) = &rd.destination else {
            cx.err(&p, "destination is required");
            ok = false;
            continue;
        };
        match cx.destination(&join(&p, "destination"), d) {
            Some(destination) => out.push(WeightedDestination {
                destination,
                weight: weight.clamp(0, 100) as u32,
                headers,
            }),
            None => ok = false,
        }
    }
    ok &= weights_add_up(cx, path, raw, sum);
    if let ([d], true) = (out.as_mut_slice(), raw.len() == 1) {
        d.weight = 100;
    }
    ok.then_some(out)
}

/// A lone destination takes 100 (its weight omitted, 0 or 100); several
/// must sum to exactly 100. Weights out of 0..100 were reported already.
fn weights_add_up(cx: &mut Cx<'_>, path: &str, raw: &[raw::RouteDestination], sum: i64) -> bool {
    let in_range = raw
        .iter()
        .all(|rd| (0..=100).contains(&rd.weight.unwrap_or(0)));
    if let [lone] = raw {
        let w = lone.weight.unwrap_or(0);
        if (1..100).contains(&w) {
            let msg = format!(
                "a lone destination takes all traffic: weight must be 100 or omitted, not {w}"
            );
            cx.err(&format!("{path}[0].weight"), msg);
            return false;
        }
    } else if in_range && sum != 100 {
        cx.err(path, format!("route weights must sum to 100, not {sum}"));
        return false;
    }
    true
}
