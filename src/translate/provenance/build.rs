//! Building a [`Provenance`] from a config: the outbound route
//! configuration's virtual hosts and routes (VirtualService rules and
//! matches), and the outbound clusters and their endpoints (ServiceEntry
//! ports, DestinationRule subsets and policy).

use std::sync::Arc;
use std::time::Duration;

use super::{Field, Provenance, ResourceProvenance, RouteProvenance, VirtualHostProvenance};
use crate::config::model::{
    DestinationRule, HeaderOps, HttpMatch, HttpRoute, MeshConfig, Origin, Service, StringMatch,
    TrafficPolicy, VirtualService,
};
use crate::config::SourceIndex;
use crate::translate::{cluster_name, OUTBOUND_ROUTE};

/// Positions fields of one object.
struct Locator<'a> {
    source: &'a SourceIndex,
    origin: Arc<Origin>,
}

impl Locator<'_> {
    fn field(&self, path: &str, needle: Option<String>) -> Field {
        let (line, column) = if path.is_empty() {
            (self.origin.line.max(1), 1)
        } else {
            self.source.locate(&self.origin, path)
        };
        Field {
            origin: Arc::clone(&self.origin),
            path: path.to_string(),
            line,
            column,
            needle: needle.filter(|n| !n.is_empty()),
        }
    }
}

pub(super) fn build(mesh: &MeshConfig, source: &SourceIndex) -> Provenance {
    let mut out = Provenance::default();
    for service in mesh.services.values() {
        let se = Locator {
            source,
            origin: Arc::new(service.origin.clone()),
        };
        let vs = mesh.virtual_services.get(&service.host);
        let vs = vs.map(|vs| (vs.as_ref(), locator(source, &vs.origin)));
        let dr = mesh.destination_rules.get(&service.host);
        let dr = dr.map(|dr| (dr.as_ref(), locator(source, &dr.origin)));
        for (k, port) in service.ports.iter().enumerate() {
            let port_field = se.field(&format!("spec.ports[{k}]"), None);
            let vhost = virtual_host(service, port.number, &port_field, vs.as_ref());
            out.virtual_hosts
                .entry(OUTBOUND_ROUTE.to_string())
                .or_default()
                .insert(format!("{}:{}", service.host, port.number), vhost);
            clusters(&mut out, service, port.number, &port_field, dr.as_ref());
        }
    }
    out.resources.insert(
        ("rds", OUTBOUND_ROUTE.to_string()),
        ResourceProvenance::default(),
    );
    out
}

fn locator<'a>(source: &'a SourceIndex, origin: &Origin) -> Locator<'a> {
    Locator {
        source,
        origin: Arc::new(origin.clone()),
    }
}

/// The virtual host `HOST:PORT`: the VirtualService's rules for the host
/// (all of them: which apply at this port is decided per request match),
/// and the ServiceEntry port.
fn virtual_host(
    service: &Service,
    port: u16,
    port_field: &Field,
    vs: Option<&(&VirtualService, Locator<'_>)>,
) -> VirtualHostProvenance {
    let mut vhost = VirtualHostProvenance::default();
    if let Some((vs, at)) = vs {
        let i = vs.hosts.iter().position(|h| h == &service.host);
        let path = i.map_or_else(|| "spec.hosts".to_string(), |i| format!("spec.hosts[{i}]"));
        vhost.objects.push(at.field(&path, None));
        for (i, rule) in vs.http.iter().enumerate() {
            let applies = |m: &HttpMatch| m.port.is_none_or(|p| p == port);
            vhost.routes.extend(rule_routes(at, i, rule, applies));
        }
    }
    vhost.objects.push(port_field.clone());
    vhost
}

/// One route per match of rule `i` (one for a rule without matches).
fn rule_routes(
    at: &Locator<'_>,
    i: usize,
    rule: &HttpRoute,
    applies: impl Fn(&HttpMatch) -> bool,
) -> Vec<RouteProvenance> {
    let rule_path = format!("spec.http[{i}]");
    let mut common = vec![at.field(&rule_path, None)];
    common.extend(rule_fields(at, &rule_path, rule));
    let base = rule.name.clone().unwrap_or_default();
    if rule.matches.is_empty() {
        return vec![RouteProvenance {
            name: base,
            fields: common,
        }];
    }
    let matches = rule.matches.iter().enumerate();
    matches
        .filter(|(_, m)| applies(m))
        .map(|(j, m)| {
            let path = format!("{rule_path}.match[{j}]");
            let mut fields = common.clone();
            fields.extend(match_fields(at, &path, m));
            let name = match &m.name {
                Some(n) => format!("{base}.{n}"),
                None => base.clone(),
            };
            RouteProvenance { name, fields }
        })
        .collect()
}

/// The text of a string match as Envoy prints it, and its field.
fn string_match(path: &str, sm: &StringMatch) -> (String, String) {
    let (field, text) = match sm {
        StringMatch::Exact(s) => ("exact", s),
        StringMatch::Prefix(s) => ("prefix", s),
        StringMatch::Regex(s) => ("regex", s),
    };
    (format!("{path}.{field}"), text.clone())
}

fn match_fields(at: &Locator<'_>, path: &str, m: &HttpMatch) -> Vec<Field> {
    let mut out = vec![at.field(path, None)];
    let mut push = |p: &str, sm: &StringMatch| {
        let (p, text) = string_match(p, sm);
        out.push(at.field(&p, Some(text)));
    };
    if let Some(uri) = &m.uri {
        push(&format!("{path}.uri"), uri);
    }
    if let Some(method) = &m.method {
        push(&format!("{path}.method"), method);
    }
    for (group, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
        ("queryParams", &m.query_params),
    ] {
        for (name, sm) in map {
            push(&format!("{path}.{group}.{name}"), sm);
        }
    }
    out
}

/// Fields of a rule Envoy may quote: header names and values it changes,
/// rewrites, redirects, and its timeout.
fn rule_fields(at: &Locator<'_>, path: &str, rule: &HttpRoute) -> Vec<Field> {
    let mut out = Vec::new();
    let headers = format!("{path}.headers");
    header_ops(
        at,
        &format!("{headers}.request"),
        &rule.headers.request,
        &mut out,
    );
    header_ops(
        at,
        &format!("{headers}.response"),
        &rule.headers.response,
        &mut out,
    );
    if let Some(r) = &rule.rewrite {
        for (f, v) in [("uri", &r.uri), ("authority", &r.authority)] {
            if let Some(v) = v {
                out.push(at.field(&format!("{path}.rewrite.{f}"), Some(v.clone())));
            }
        }
    }
    if let Some(t) = rule.timeout {
        out.push(at.field(&format!("{path}.timeout"), duration_needle(t)));
    }
    out
}

fn header_ops(at: &Locator<'_>, path: &str, ops: &HeaderOps, out: &mut Vec<Field>) {
    for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let p = format!("{path}.{op}.{name}");
            out.push(at.field(&p, Some(name.clone())));
            out.push(at.field(&p, Some(value.clone())));
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        out.push(at.field(&format!("{path}.remove[{i}]"), Some(name.clone())));
    }
}

/// How Envoy prints a duration it rejects (protobuf debug string): whole
/// seconds only, which is what an out-of-range duration is about.
fn duration_needle(d: Duration) -> Option<String> {
    (d.as_secs() > 0).then(|| format!("seconds: {}", d.as_secs()))
}

/// The clusters of one service port (and their endpoints): the port's own
/// and one per DestinationRule subset.
fn clusters(
    out: &mut Provenance,
    service: &Service,
    port: u16,
    port_field: &Field,
    dr: Option<&(&DestinationRule, Locator<'_>)>,
) {
    let host = service.host.as_str();
    let mut add = |name: String, objects: Vec<Field>, fields: Vec<Field>| {
        let eds = ResourceProvenance {
            objects: objects.clone(),
            fields: Vec::new(),
        };
        out.resources.insert(("eds", name.clone()), eds);
        out.resources
            .insert(("cds", name), ResourceProvenance { objects, fields });
    };
    let Some((dr, at)) = dr else {
        add(
            cluster_name(port, None, host),
            vec![port_field.clone()],
            vec![],
        );
        return;
    };
    let top = policy_fields(at, "spec.trafficPolicy", dr.traffic_policy.as_ref());
    let objects = vec![port_field.clone(), at.field("spec.host", None)];
    add(cluster_name(port, None, host), objects, top.clone());
    for (k, subset) in dr.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{k}]");
        let mut fields = policy_fields(
            at,
            &format!("{path}.trafficPolicy"),
            subset.traffic_policy.as_ref(),
        );
        fields.extend(top.iter().cloned());
        let objects = vec![at.field(&path, None), port_field.clone()];
        add(
            cluster_name(port, Some(&subset.name), host),
            objects,
            fields,
        );
    }
}

/// The cluster settings a traffic policy sets that Envoy may quote.
fn policy_fields(at: &Locator<'_>, path: &str, tp: Option<&TrafficPolicy>) -> Vec<Field> {
    let Some(tp) = tp else {
        return Vec::new();
    };
    let mut durations: Vec<(String, Duration)> = Vec::new();
    if let Some(cp) = &tp.connection_pool {
        let p = format!("{path}.connectionPool");
        durations.extend(
            cp.connect_timeout
                .map(|d| (format!("{p}.tcp.connectTimeout"), d)),
        );
        durations.extend(
            cp.idle_timeout
                .map(|d| (format!("{p}.http.idleTimeout"), d)),
        );
    }
    if let Some(od) = &tp.outlier_detection {
        let p = format!("{path}.outlierDetection");
        durations.extend(od.interval.map(|d| (format!("{p}.interval"), d)));
        durations.extend(
            od.base_ejection_time
                .map(|d| (format!("{p}.baseEjectionTime"), d)),
        );
    }
    durations
        .into_iter()
        .map(|(p, d)| at.field(&p, duration_needle(d)))
        .collect()
}
