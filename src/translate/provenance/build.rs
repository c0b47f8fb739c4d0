//! Building a [`Provenance`] from a config: the outbound route
//! configuration's virtual hosts and routes (VirtualService rules and
//! matches), and the outbound clusters and their endpoints (ServiceEntry
//! ports, DestinationRule subsets and policy); the rest in `listeners`.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeSet;

use super::{
    Field, Provenance, ResourceProvenance, RouteProvenance, VirtualHostProvenance, ANY_PORT,
};
use crate::config::model::{
    DestinationRule, HeaderOps, Host, HttpMatch, HttpRoute, MeshConfig, Origin, StringMatch,
    TrafficPolicy, VirtualService,
};
use crate::config::SourceIndex;
use crate::translate::OUTBOUND_ROUTE;

/// Positions fields of one object.
pub(super) struct Locator<'a> {
    source: &'a SourceIndex,
    pub(super) origin: Arc<Origin>,
}

impl Locator<'_> {
    pub(super) fn field(&self, path: &str, needle: Option<String>) -> Field {
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
    let mut hosts: BTreeSet<&Host> = mesh.services.keys().collect();
    hosts.extend(mesh.virtual_services.keys());
    // A wildcard rule names no service of its own: it is found through
    // the services it covers.
    let services = (mesh.destination_rules.keys())
        .filter(|h| !h.is_wildcard() || mesh.services.contains_key(*h));
    hosts.extend(services);
    let resolved = mesh.with_wildcard_rules(hosts.iter().copied());
    let mesh = &*resolved;
    for host in hosts {
        let vs = mesh.virtual_services.get(host);
        let vs = vs.map(|vs| (vs.as_ref(), locator(source, &vs.origin)));
        let dr = mesh.destination_rules.get(host);
        let dr = dr.map(|dr| (dr.as_ref(), locator(source, &dr.origin)));
        // A service only sidecars declare (no ServiceEntry) has the ports
        // its sidecars register, unknown here: its names take `*`.
        let ports: Vec<(String, Option<Field>)> = match mesh.services.get(host) {
            Some(service) => {
                let se = locator(source, &service.origin);
                let ports = service.ports.iter().enumerate();
                ports
                    .map(|(k, p)| {
                        (
                            p.number.to_string(),
                            Some(se.field(&format!("spec.ports[{k}]"), None)),
                        )
                    })
                    .collect()
            }
            None => vec![(ANY_PORT.to_string(), None)],
        };
        // The rules some proxies see instead of the default one.
        let others: Vec<_> = (mesh.destination_rule_set.by_host.get(host))
            .filter(|rules| rules.varies(&mesh.mesh.root_namespace))
            .into_iter()
            .flat_map(|rules| rules.rules.iter())
            .filter(|r| {
                dr.as_ref()
                    .is_none_or(|(d, _)| !std::ptr::eq(*d, r.as_ref()))
            })
            .map(|r| (r.as_ref(), locator(source, &r.origin)))
            .collect();
        for (port, port_field) in ports {
            let vhost = virtual_host(host, port_field.as_ref(), vs.as_ref());
            out.virtual_hosts
                .entry(OUTBOUND_ROUTE.to_string())
                .or_default()
                .insert(format!("{host}:{port}"), vhost);
            clusters(&mut out, (host, &port), port_field.as_ref(), dr.as_ref());
            // Their fields join the clusters' (the port is recorded once).
            for other in &others {
                clusters(&mut out, (host, &port), None, Some(other));
            }
        }
    }
    out.resources.insert(
        ("rds", OUTBOUND_ROUTE.to_string()),
        ResourceProvenance::default(),
    );
    out.root_namespace = mesh.mesh.root_namespace.clone();
    super::listeners::build(&mut out, mesh, source);
    out
}

pub(super) fn locator<'a>(source: &'a SourceIndex, origin: &Origin) -> Locator<'a> {
    Locator {
        source,
        origin: Arc::new(origin.clone()),
    }
}

/// The virtual host `HOST:PORT`: the VirtualService's rules for the host
/// (all of them: which apply at this port is decided per request match),
/// and the ServiceEntry port.
fn virtual_host(
    host: &Host,
    port_field: Option<&Field>,
    vs: Option<&(&VirtualService, Locator<'_>)>,
) -> VirtualHostProvenance {
    let mut vhost = VirtualHostProvenance::default();
    if let Some((vs, at)) = vs {
        let i = vs.hosts.iter().position(|h| h == host);
        let path = i.map_or_else(|| "spec.hosts".to_string(), |i| format!("spec.hosts[{i}]"));
        vhost.objects.push(at.field(&path, None));
        for (i, rule) in vs.http.iter().enumerate() {
            vhost.routes.extend(rule_routes(at, i, rule));
        }
    }
    vhost.objects.extend(port_field.cloned());
    vhost
}

/// One route per match of rule `i` (one for a rule without matches).
pub(super) fn rule_routes(at: &Locator<'_>, i: usize, rule: &HttpRoute) -> Vec<RouteProvenance> {
    // A rule written elsewhere (a delegate's, a Gateway API route's) is
    // located where it is written.
    let written;
    let (at, rule_path) = match &rule.source {
        Some(s) => {
            written = locator(at.source, &s.origin);
            (&written, s.path.clone())
        }
        None => (at, format!("spec.http[{i}]")),
    };
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
/// A presence match (`{}`) has no text Envoy could quote: only its path.
fn string_match(path: &str, sm: &StringMatch) -> (String, Option<String>) {
    let (field, text) = match sm {
        StringMatch::Exact(s) => ("exact", s),
        StringMatch::Prefix(s) => ("prefix", s),
        StringMatch::Regex(s) => ("regex", s),
        StringMatch::Present => return (path.to_string(), None),
    };
    (format!("{path}.{field}"), Some(text.clone()))
}

fn match_fields(at: &Locator<'_>, path: &str, m: &HttpMatch) -> Vec<Field> {
    let mut out = vec![at.field(path, None)];
    let mut push = |p: &str, sm: &StringMatch| {
        let (p, text) = string_match(p, sm);
        out.push(at.field(&p, text));
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
    (host, port): (&Host, &str),
    port_field: Option<&Field>,
    dr: Option<&(&DestinationRule, Locator<'_>)>,
) {
    let name = |subset: &str| format!("outbound|{port}|{subset}|{host}");
    // Several rules may make one cluster (for proxies that see different
    // ones): each adds its fields; `blame` keeps those of the rule the
    // rejecting proxy sees.
    let mut add = |name: String, objects: Vec<Field>, fields: Vec<Field>| {
        let eds = out.resources.entry(("eds", name.clone())).or_default();
        eds.objects.extend(objects.iter().cloned());
        let cds = out.resources.entry(("cds", name)).or_default();
        cds.objects.extend(objects);
        cds.fields.extend(fields);
    };
    let Some((dr, at)) = dr else {
        add(name(""), port_field.into_iter().cloned().collect(), vec![]);
        return;
    };
    let top = policy_fields(at, "spec.trafficPolicy", dr.traffic_policy.as_ref());
    let mut objects: Vec<Field> = port_field.into_iter().cloned().collect();
    objects.push(at.field("spec.host", None));
    add(name(""), objects, top.clone());
    for (k, subset) in dr.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{k}]");
        let policy = subset.traffic_policy.as_ref();
        let mut fields = policy_fields(at, &format!("{path}.trafficPolicy"), policy);
        fields.extend(top.iter().cloned());
        let mut objects = vec![at.field(&path, None)];
        objects.extend(port_field.cloned());
        add(name(&subset.name), objects, fields);
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
