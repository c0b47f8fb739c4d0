//! `configPatches[].match`: context and the object match of the kind
//! `applyTo` names.

use super::super::{join, Cx};
use crate::config::model::{
    ApplyTo, ClusterMatch, FilterChainMatch, ListenerMatch, ObjectMatch, PatchContext,
    RouteActionMatch, RouteConfigurationMatch, RouteMatch, VirtualHostMatch,
};
use crate::config::raw::envoy_filter as raw;

/// The context and object match; `None` (with errors) when wrong.
pub(super) fn object_match(
    cx: &mut Cx<'_>,
    path: &str,
    apply_to: ApplyTo,
    m: Option<&raw::ObjectMatch>,
) -> Option<(PatchContext, ObjectMatch)> {
    let Some(m) = m else {
        return Some((PatchContext::Any, ObjectMatch::None));
    };
    let at = join(path, "match");
    let context = super::context(cx, &join(&at, "context"), m.context.as_deref());
    if m.proxy.is_some() {
        let msg = "match.proxy matches Istio proxy versions and node metadata, which Trellis \
                   sidecars do not carry: remove it";
        cx.err(&join(&at, "proxy"), msg);
        return None;
    }
    let given = [
        m.listener.is_some(),
        m.route_configuration.is_some(),
        m.cluster.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        cx.err(&at, "give one of listener, routeConfiguration or cluster");
        return None;
    }
    let object = if let Some(l) = &m.listener {
        expect(cx, &join(&at, "listener"), apply_to, Kind::Listener)?;
        ObjectMatch::Listener(listener(cx, &join(&at, "listener"), apply_to, l)?)
    } else if let Some(r) = &m.route_configuration {
        let p = join(&at, "routeConfiguration");
        expect(cx, &p, apply_to, Kind::Route)?;
        ObjectMatch::RouteConfiguration(route_configuration(cx, &p, r)?)
    } else if let Some(c) = &m.cluster {
        expect(cx, &join(&at, "cluster"), apply_to, Kind::Cluster)?;
        ObjectMatch::Cluster(cluster(cx, &join(&at, "cluster"), c)?)
    } else {
        ObjectMatch::None
    };
    Some((context?, object))
}

#[derive(PartialEq)]
enum Kind {
    Listener,
    Route,
    Cluster,
}

/// An object match must be of the kind `applyTo` patches (Istio's rule).
fn expect(cx: &mut Cx<'_>, path: &str, apply_to: ApplyTo, kind: Kind) -> Option<()> {
    let want = match apply_to {
        ApplyTo::Listener
        | ApplyTo::ListenerFilter
        | ApplyTo::FilterChain
        | ApplyTo::NetworkFilter
        | ApplyTo::HttpFilter => Kind::Listener,
        ApplyTo::RouteConfiguration | ApplyTo::VirtualHost | ApplyTo::HttpRoute => Kind::Route,
        ApplyTo::Cluster => Kind::Cluster,
    };
    if want == kind {
        return Some(());
    }
    let name = match want {
        Kind::Listener => "listener",
        Kind::Route => "routeConfiguration",
        Kind::Cluster => "cluster",
    };
    cx.err(path, format!("applyTo {apply_to:?} takes a `{name}` match"));
    None
}

fn listener(
    cx: &mut Cx<'_>,
    path: &str,
    apply_to: ApplyTo,
    l: &raw::ListenerMatch,
) -> Option<ListenerMatch> {
    if l.port_name.is_some() {
        let msg = "listener.portName is not implemented by Istio (its API marks it so and \
                   hides it): match the listener by portNumber";
        cx.err(&join(path, "portName"), msg);
    }
    if l.port_name.is_some() {
        return None;
    }
    let listener_filter = !l.listener_filter.is_empty();
    if listener_filter && apply_to != ApplyTo::ListenerFilter {
        let msg = "a listenerFilter match applies to applyTo LISTENER_FILTER only";
        cx.err(&join(path, "listenerFilter"), msg);
        return None;
    }
    if apply_to == ApplyTo::ListenerFilter && l.filter_chain.is_some() {
        let msg = "a filterChain match does not apply to LISTENER_FILTER (listener filters \
                   run before a chain is chosen): match the listener and listenerFilter";
        cx.err(&join(path, "filterChain"), msg);
        return None;
    }
    let filter_chain = match &l.filter_chain {
        Some(fc) => Some(filter_chain(cx, &join(path, "filterChain"), apply_to, fc)?),
        None => None,
    };
    Some(ListenerMatch {
        name: l.name.clone(),
        port_number: port(cx, &join(path, "portNumber"), l.port_number)?,
        listener_filter: l.listener_filter.clone(),
        filter_chain,
    })
}

fn port(cx: &mut Cx<'_>, path: &str, n: u32) -> Option<u32> {
    if n > u32::from(u16::MAX) {
        cx.err(path, format!("port {n} is out of range"));
        return None;
    }
    Some(n)
}

fn filter_chain(
    cx: &mut Cx<'_>,
    path: &str,
    apply_to: ApplyTo,
    fc: &raw::FilterChainMatch,
) -> Option<FilterChainMatch> {
    let (filter, sub_filter) = match &fc.filter {
        Some(f) => filter(cx, &join(path, "filter"), apply_to, f)?,
        None => (None, None),
    };
    Some(FilterChainMatch {
        name: fc.name.clone(),
        sni: fc.sni.clone(),
        transport_protocol: fc.transport_protocol.clone(),
        application_protocols: fc.application_protocols.clone(),
        destination_port: port(cx, &join(path, "destinationPort"), fc.destination_port)?,
        filter,
        sub_filter,
    })
}

type FilterNames = (Option<String>, Option<String>);

/// `filter` and `subFilter` names, with Envoy's deprecated names
/// (`envoy.http_connection_manager`, `envoy.router`, ...) read as the
/// current ones, which are what Trellis's resources carry.
fn filter(
    cx: &mut Cx<'_>,
    path: &str,
    apply_to: ApplyTo,
    f: &raw::FilterMatch,
) -> Option<FilterNames> {
    if f.name.is_empty() {
        cx.err(&join(path, "name"), "filter match has no name to match on");
        return None;
    }
    let name = current_name(&f.name);
    let Some(sub) = &f.sub_filter else {
        return Some((Some(name), None));
    };
    let at = join(path, "subFilter");
    if apply_to != ApplyTo::HttpFilter {
        cx.err(&at, "a subFilter match applies to applyTo HTTP_FILTER only");
        return None;
    }
    if name != HCM {
        let msg = format!("a subFilter match needs the filter match {HCM}");
        cx.err(&join(path, "name"), msg);
        return None;
    }
    if sub.name.is_empty() {
        cx.err(
            &join(&at, "name"),
            "subFilter match has no name to match on",
        );
        return None;
    }
    Some((Some(name), Some(current_name(&sub.name))))
}

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// Envoy's current name for a filter written with a deprecated one.
fn current_name(name: &str) -> String {
    let current = match name {
        "envoy.http_connection_manager" => HCM,
        "envoy.tcp_proxy" => "envoy.filters.network.tcp_proxy",
        "envoy.router" => "envoy.filters.http.router",
        "envoy.fault" => "envoy.filters.http.fault",
        "envoy.cors" => "envoy.filters.http.cors",
        "envoy.lua" => "envoy.filters.http.lua",
        "envoy.filters.http.jwt_authn" | "envoy.jwt_authn" => "envoy.filters.http.jwt_authn",
        "envoy.ext_authz" => "envoy.filters.http.ext_authz",
        "envoy.rate_limit" => "envoy.filters.http.ratelimit",
        "envoy.grpc_web" => "envoy.filters.http.grpc_web",
        "envoy.health_check" => "envoy.filters.http.health_check",
        other => other,
    };
    current.to_string()
}

fn route_configuration(
    cx: &mut Cx<'_>,
    path: &str,
    r: &raw::RouteConfigurationMatch,
) -> Option<RouteConfigurationMatch> {
    for (field, given) in [("portName", &r.port_name), ("gateway", &r.gateway)] {
        if !given.is_empty() {
            let msg = format!(
                "field `{field}` is not supported yet: Trellis names a gateway's route \
                 configurations `http.PORT`; match by `portNumber` or `name`"
            );
            cx.err(&join(path, field), msg);
            return None;
        }
    }
    let vhost = match &r.vhost {
        Some(v) => Some(vhost(cx, &join(path, "vhost"), v)?),
        None => None,
    };
    Some(RouteConfigurationMatch {
        name: r.name.clone(),
        port_number: port(cx, &join(path, "portNumber"), r.port_number)?,
        vhost,
    })
}

fn vhost(cx: &mut Cx<'_>, path: &str, v: &raw::VirtualHostMatch) -> Option<VirtualHostMatch> {
    let route = match &v.route {
        Some(r) => Some(route(cx, &join(path, "route"), r)?),
        None => None,
    };
    Some(VirtualHostMatch {
        name: v.name.clone(),
        domain_name: v.domain_name.clone(),
        route,
    })
}

fn route(cx: &mut Cx<'_>, path: &str, r: &raw::RouteMatch) -> Option<RouteMatch> {
    let action = match r.action.as_deref() {
        None | Some("ANY") => RouteActionMatch::Any,
        Some("ROUTE") => RouteActionMatch::Route,
        Some("REDIRECT") => RouteActionMatch::Redirect,
        Some("DIRECT_RESPONSE") => RouteActionMatch::DirectResponse,
        Some(other) => {
            let msg = format!(
                "unknown route action {other:?}: use ANY, ROUTE, REDIRECT or DIRECT_RESPONSE"
            );
            cx.err(&join(path, "action"), msg);
            return None;
        }
    };
    Some(RouteMatch {
        name: r.name.clone(),
        action,
    })
}

/// `service` is a host as written in this resource's namespace.
fn cluster(cx: &mut Cx<'_>, path: &str, c: &raw::ClusterMatch) -> Option<ClusterMatch> {
    let service = match c.service.as_str() {
        "" => String::new(),
        s => cx.host(&join(path, "service"), s)?.0,
    };
    Some(ClusterMatch {
        name: c.name.clone(),
        port_number: port(cx, &join(path, "portNumber"), c.port_number)?,
        service,
        subset: c.subset.clone(),
    })
}
