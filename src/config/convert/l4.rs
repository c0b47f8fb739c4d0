//! `tcp` and `tls` rules of a `VirtualService` (Istio's `TCPRoute`,
//! `TLSRoute`, `L4MatchAttributes`, `TLSMatchAttributes`).

use super::virtual_service::{gateway_ref, route, GatewayRef};
use super::{is_dns_subdomain, join, Cx};
use crate::config::model::{L4Match, L4Route};
use crate::config::raw::virtual_service as raw;

/// Which kind of rule is converted: `tls` needs `sniHosts`, `tcp` has none.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tcp,
    Tls,
}

/// Converts the rules at `path` (`spec.tcp`, `spec.tls`); the gateways
/// named by their matches join `refs` to be checked with the others.
pub(crate) fn routes(
    cx: &mut Cx<'_>,
    path: &str,
    kind: Kind,
    rules: &[(&[raw::L4Match], &[raw::RouteDestination])],
    refs: &mut Vec<GatewayRef>,
) -> Vec<L4Route> {
    let mut out = Vec::new();
    for (i, (matches, dests)) in rules.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let m = l4_matches(cx, &join(&at, "match"), kind, matches, refs);
        if kind == Kind::Tls && matches.is_empty() {
            cx.err(
                &join(&at, "match"),
                "a tls rule needs a match with sniHosts",
            );
        }
        let r = destinations(cx, &join(&at, "route"), dests);
        if let (Some(matches), Some(route)) = (m, r) {
            out.push(L4Route { matches, route });
        }
    }
    out
}

fn destinations(
    cx: &mut Cx<'_>,
    path: &str,
    dests: &[raw::RouteDestination],
) -> Option<Vec<crate::config::model::WeightedDestination>> {
    if dests.is_empty() {
        cx.err(path, "at least one route destination is required");
        return None;
    }
    let mut ok = true;
    for (i, d) in dests.iter().enumerate() {
        if d.headers.is_some() {
            let msg = "`headers` apply to http rules only: a tcp or tls rule routes connections";
            cx.err(&format!("{path}[{i}].headers"), msg);
            ok = false;
        }
    }
    let out = route(cx, path, dests)?;
    ok.then_some(out)
}

fn l4_matches(
    cx: &mut Cx<'_>,
    path: &str,
    kind: Kind,
    raw: &[raw::L4Match],
    refs: &mut Vec<GatewayRef>,
) -> Option<Vec<L4Match>> {
    let before = cx.diags.len();
    let out: Vec<L4Match> = (raw.iter().enumerate())
        .map(|(i, m)| one_match(cx, &format!("{path}[{i}]"), kind, m, refs))
        .collect();
    (cx.diags.len() == before).then_some(out)
}

fn one_match(
    cx: &mut Cx<'_>,
    path: &str,
    kind: Kind,
    m: &raw::L4Match,
    refs: &mut Vec<GatewayRef>,
) -> L4Match {
    cx.unsupported(path, "sourceSubnet", &m.source_subnet);
    if m.destination_subnets.is_some() {
        let msg = "destinationSubnets needs transparent interception (the original destination \
                   address), which Trellis sidecars do not have: match on `port` (a Sidecar \
                   egress port) instead";
        cx.err(&join(path, "destinationSubnets"), msg);
    }
    let port = m.port.and_then(|p| cx.port(&join(path, "port"), p));
    let source_labels = m.source_labels.clone().unwrap_or_default();
    cx.labels(&join(path, "sourceLabels"), &source_labels);
    let gateways = match_gateways(cx, path, m.gateways.as_deref(), refs);
    L4Match {
        sni_hosts: sni_hosts(cx, path, kind, m.sni_hosts.as_deref()),
        port,
        source_labels,
        gateways,
        source_namespace: super::http::source_namespace(cx, path, m.source_namespace.as_deref()),
    }
}

/// A match's `gateways` (`mesh` or `NAMESPACE/NAME`); the named Gateways
/// join `refs`.
pub(super) fn match_gateways(
    cx: &mut Cx<'_>,
    path: &str,
    raw: Option<&[String]>,
    refs: &mut Vec<GatewayRef>,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for (i, g) in raw?.iter().enumerate() {
        let p = format!("{path}.gateways[{i}]");
        if let Some(q) = gateway_ref(cx, &p, g) {
            if q != "mesh" {
                refs.push((p, q.clone()));
            }
            out.push(q);
        }
    }
    Some(out)
}

/// `sniHosts`: required and non-empty on a tls rule, absent on a tcp one;
/// each a DNS name, `*` or `*.SUFFIX`, lowercase.
fn sni_hosts(cx: &mut Cx<'_>, path: &str, kind: Kind, raw: Option<&[String]>) -> Vec<String> {
    let at = join(path, "sniHosts");
    match (kind, raw) {
        (Kind::Tcp, Some(_)) => {
            cx.err(
                &at,
                "sniHosts belongs to tls rules: a tcp rule cannot see the SNI",
            );
            return Vec::new();
        }
        (Kind::Tcp, None) => return Vec::new(),
        (Kind::Tls, None | Some([])) => {
            cx.err(&at, "a tls rule match needs at least one sniHosts entry");
            return Vec::new();
        }
        (Kind::Tls, Some(_)) => {}
    }
    let mut out = Vec::new();
    for (i, h) in raw.unwrap_or_default().iter().enumerate() {
        let lower = h.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("*.").unwrap_or(&lower);
        if lower == "*" || is_dns_subdomain(bare) {
            out.push(lower);
        } else {
            let msg = format!("SNI host {h:?} is not `*`, `*.DOMAIN` or a DNS name");
            cx.err(&format!("{at}[{i}]"), msg);
        }
    }
    out
}
