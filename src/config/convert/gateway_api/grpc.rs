//! `GRPCRoute` → VirtualService-like rules: a method match is a path
//! match on `/SERVICE/METHOD`; backends must speak HTTP/2 (checked with
//! the Services).

use super::super::{join, Cx};
use super::route::{self, Converted, Parts};
use super::{backends, filters, matches, CrossRef, KubeRoute, Rank};
use crate::config::model::HttpRoute;
use crate::config::raw::gateway_api as raw;

/// Converts a `GRPCRoute`.
pub(crate) fn grpc_route(cx: &mut Cx<'_>, r: &raw::Route<raw::GrpcRule>) -> Option<Converted> {
    let before = cx.diags.len();
    let mut cross = Vec::new();
    let (parents, hostnames) = route::attachment(cx, r);
    let mut ranked = Vec::new();
    for (i, rule) in r.rules.iter().enumerate() {
        ranked.extend(grpc_rule(cx, &format!("spec.rules[{i}]"), rule, &mut cross));
    }
    (cx.diags.len() == before).then(|| Converted {
        route: KubeRoute {
            parents,
            hostnames,
            http: route::sorted(ranked),
            created: None,
        },
        cross,
    })
}

fn grpc_rule(
    cx: &mut Cx<'_>,
    path: &str,
    rule: &raw::GrpcRule,
    cross: &mut Vec<CrossRef>,
) -> Vec<(Rank, HttpRoute)> {
    let at = |f: &str| join(path, f);
    cx.unsupported(path, "sessionPersistence", &rule.session_persistence);
    let filters = filters::rule_filters(
        cx,
        &at("filters"),
        &rule.filters,
        filters::GRPC_FILTERS,
        cross,
    );
    let backends = backends::backend_refs(cx, &at("backendRefs"), &rule.backend_refs, cross);
    let defaults = [raw::GrpcMatch {
        method: None,
        headers: vec![],
    }];
    let list = if rule.matches.is_empty() {
        &defaults[..]
    } else {
        &rule.matches[..]
    };
    let mut out = Vec::new();
    for (j, m) in list.iter().enumerate() {
        let at = format!("{path}.matches[{j}]");
        let Some(hm) = matches::grpc_match(cx, &at, m) else {
            continue;
        };
        let method = m.method.as_ref();
        let len = |f: Option<&String>| f.map_or(0, String::len);
        // The API's precedence: longest service, then method, then headers.
        let rank = (
            0,
            len(method.and_then(|x| x.service.as_ref())),
            len(method.and_then(|x| x.method.as_ref())),
            m.headers.len(),
            0,
        );
        let parts = Parts {
            name: rule.name.clone(),
            timeout: None,
            retries: None,
            at,
        };
        out.extend(
            route::assemble(cx, path, hm, &filters, backends.as_deref(), parts).map(|r| (rank, r)),
        );
    }
    out
}
