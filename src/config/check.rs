//! Cross-resource checks and assembly of the `MeshConfig`: duplicate
//! names, conflicting claims on a host, unknown destination hosts, subsets
//! and ports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

mod delegate;
mod dynamic;
mod gateway;
mod gateway_api;
mod locality;
mod rate_limit;
mod security;
mod telemetry;

use super::convert::{DestRef, DocInfo};
use super::diag::{Diagnostic, Diagnostics};
use super::load::Loader;
use super::model::{
    service_namespace, DestinationRule, DestinationRules, Host, HostRules, MeshConfig, Service,
    VirtualService,
};

/// Runs every cross-resource check and builds the config, or returns every
/// error found (sorted).
pub(crate) fn finish(loader: Loader, files: Vec<PathBuf>) -> Result<MeshConfig, Diagnostics> {
    let Loader {
        mut diags,
        warnings: convert_warnings,
        refs,
        resources,
        services: raw_services,
        workload_entries,
        virtual_services: mut raw_vs,
        delegates,
        delegations,
        destination_rules: raw_dr,
        salvaged_hosts,
        mut authorization_policies,
        peer_authentications,
        mut request_authentications,
        meshes,
        telemetries,
        mut sidecars,
        gateways,
        gateway_refs,
        rate_limits,
        mut envoy_filters,
        rollout_policies,
        gateway_api: api,
        // The source index keeps them, per file.
        docs: _,
    } = loader;
    let mut gateway_refs = gateway_refs;
    duplicates(&resources, &mut diags);
    authorization_policies.sort_by(|a, b| {
        let (a, b) = (&a.origin, &b.origin);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    request_authentications.sort_by(|a, b| {
        let (a, b) = (&a.origin, &b.origin);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    let (mesh, peer_authentications) = security::security(meshes, peer_authentications, &mut diags);
    let mut warnings = convert_warnings;
    let telemetries = telemetry::telemetries(&mesh, telemetries, &mut diags, &mut warnings);
    let services = services(raw_services, &mut diags);
    let (routed, route_refs) =
        gateway_api::attach(api, &services, &refs, &mut diags, &mut warnings);
    raw_vs.extend(routed);
    gateway_refs.extend(route_refs);
    warnings.extend(gateway::unbound(&gateways, &gateway_refs));
    let gateways = gateway::gateways(gateways, &mut diags);
    gateway::check_refs(&gateway_refs, &gateways, &mut diags);
    delegate::resolve(
        &mut raw_vs,
        &delegations,
        &delegates,
        &mut diags,
        &mut warnings,
    );
    let gateway_virtual_services = gateway_bound(&raw_vs);
    let virtual_services = virtual_services(raw_vs, &mut diags);
    let destination_rules = destination_rules(raw_dr, &mut diags);
    for layer in layers(&destination_rules) {
        locality::dns_hosts(&layer, &services, &mut diags);
        dynamic::balancing(&layer, &services, &mut diags);
    }
    let known_targets = rate_limit::Known {
        services: &services,
        destination_rules: &destination_rules,
        gateways: &gateways,
    };
    let rate_limits = rate_limit::rate_limits(rate_limits, &known_targets, &mut diags);
    let rollout = single_rollout_policy(rollout_policies, &mut diags);
    let mut known: BTreeSet<&Host> = services.keys().collect();
    known.extend(virtual_services.keys());
    known.extend(destination_rules.keys());
    // A reference to a resource that is itself broken gets no second error.
    for r in refs
        .iter()
        .filter(|r| !salvaged_hosts.contains(&r.destination.host))
    {
        check_ref(r, &known, &services, &destination_rules, &mut diags);
    }
    let rule_set = rule_set(&destination_rules, &services);
    if !diags.is_empty() {
        let mut d = Diagnostics(diags);
        d.sort();
        return Err(d);
    }
    Ok(MeshConfig {
        services: Arc::new(services),
        workload_entries,
        virtual_services: virtual_services
            .into_iter()
            .map(|(h, (_, vs))| (h, vs))
            .collect(),
        gateway_virtual_services,
        gateways,
        destination_rules: rule_set.defaults(&mesh.root_namespace),
        destination_rule_set: rule_set,
        files,
        warnings: {
            let mut w = Diagnostics(warnings);
            w.sort();
            std::mem::take(&mut w.0)
        },
        mesh,
        peer_authentications,
        authorization_policies: authorization_policies.into_iter().map(Arc::new).collect(),
        request_authentications: request_authentications.into_iter().map(Arc::new).collect(),
        telemetries,
        sidecars: {
            sidecars.sort_by(|a, b| {
                let (a, b) = (&a.origin, &b.origin);
                (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
            });
            sidecars
        },
        rate_limits,
        envoy_filters: {
            envoy_filters.sort_by(|a, b| {
                let (a, b) = (&a.origin, &b.origin);
                (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
            });
            envoy_filters.into_iter().map(Arc::new).collect()
        },
        rollout,
    })
}

/// A mesh has at most one rollout policy: two would disagree on which
/// proxies are the canary.
fn single_rollout_policy(
    policies: Vec<(Arc<DocInfo>, super::model::RolloutPolicy)>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Arc<super::model::RolloutPolicy>> {
    let mut policies = policies.into_iter();
    let (first_doc, first) = policies.next()?;
    for (doc, _) in policies {
        let msg = format!(
            "only one RolloutPolicy per mesh: another is defined at {}",
            first_doc.place()
        );
        diags.push(doc.diagnostic("metadata.name", msg));
    }
    Some(Arc::new(first))
}

fn duplicates(resources: &[Arc<DocInfo>], diags: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(&str, &str, &str), &DocInfo> = HashMap::new();
    for r in resources {
        let key = (r.kind.as_str(), r.namespace.as_str(), r.name.as_str());
        if let Some(first) = seen.get(&key) {
            let msg = format!(
                "duplicate {} {}: also defined at {}",
                r.kind,
                r.qualified(),
                first.place()
            );
            diags.push(r.diagnostic("metadata.name", msg));
        } else {
            seen.insert(key, r);
        }
    }
}

fn services(
    raw: Vec<(Arc<DocInfo>, String, Service)>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<Host, Service> {
    let mut out: BTreeMap<Host, Service> = BTreeMap::new();
    for (doc, path, service) in raw {
        if let Some(first) = out.get(&service.host) {
            let o = &first.origin;
            let msg = format!(
                "host {} is already declared by ServiceEntry {}/{} ({}:{})",
                service.host,
                o.namespace,
                o.name,
                o.file.display(),
                o.line
            );
            diags.push(doc.diagnostic(&path, msg));
            continue;
        }
        out.insert(service.host.clone(), service);
    }
    out
}

/// The VirtualServices bound to gateways, sorted by namespace and name.
fn gateway_bound(raw: &[(Arc<DocInfo>, Vec<String>, VirtualService)]) -> Vec<Arc<VirtualService>> {
    let mut out: Vec<Arc<VirtualService>> = (raw.iter())
        .filter(|(_, _, vs)| vs.binds_any_gateway())
        .map(|(_, _, vs)| Arc::new(vs.clone()))
        .collect();
    out.sort_by(|a, b| {
        let (a, b) = (&a.origin, &b.origin);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    out
}

type Claimed<T> = BTreeMap<Host, (Arc<DocInfo>, Arc<T>)>;

fn virtual_services(
    raw: Vec<(Arc<DocInfo>, Vec<String>, VirtualService)>,
    diags: &mut Vec<Diagnostic>,
) -> Claimed<VirtualService> {
    let mut out: Claimed<VirtualService> = BTreeMap::new();
    // Only sidecar routing claims a host: gateways bind hosts per server.
    for (doc, paths, vs) in raw.into_iter().filter(|(_, _, vs)| vs.binds_mesh()) {
        let vs = Arc::new(vs);
        for (path, host) in paths.iter().zip(&vs.hosts) {
            if let Some((first, _)) = out.get(host) {
                // Istio merges them only on gateways; for sidecars its
                // analyzer reports the conflict (IST0109).
                let msg = format!(
                    "host {host} is already routed by {} {} ({}): sidecars take one VirtualService per host (Istio's IST0109 conflict); merge the rules, or bind both to a gateway, where they merge",
                    first.kind,
                    first.qualified(),
                    first.place()
                );
                diags.push(doc.diagnostic(path, msg));
                continue;
            }
            out.insert(host.clone(), (doc.clone(), vs.clone()));
        }
    }
    out
}

/// Every `DestinationRule` by host, sorted by namespace and name.
type Rules = BTreeMap<Host, Vec<(Arc<DocInfo>, Arc<DestinationRule>)>>;

/// Every `DestinationRule` by host. Rules of several namespaces may name
/// one host (each proxy sees one: `HostRules::visible`); within one
/// namespace, a second rule for a host is an error, but for
/// workload-selected rules with different selectors. Istio merges such
/// rules in creation order, which files do not have.
fn destination_rules(
    mut raw: Vec<(Arc<DocInfo>, DestinationRule)>,
    diags: &mut Vec<Diagnostic>,
) -> Rules {
    raw.sort_by(|(_, a), (_, b)| {
        let (a, b) = (&a.origin, &b.origin);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    let mut out: Rules = BTreeMap::new();
    for (doc, dr) in raw {
        let same = out.entry(dr.host.clone()).or_default();
        let clash = same.iter().find(|(_, other)| {
            other.origin.namespace == dr.origin.namespace
                && other.workload_selector == dr.workload_selector
        });
        if let Some((first, _)) = clash {
            let what = match &dr.workload_selector {
                None => "one DestinationRule per host and namespace (add a workloadSelector to apply one to some workloads only)",
                Some(_) => "two DestinationRules of one namespace select the same workloads",
            };
            let msg = format!(
                "host {} already has DestinationRule {} ({}): {what}",
                dr.host,
                first.qualified(),
                first.place()
            );
            diags.push(doc.diagnostic("spec.host", msg));
            continue;
        }
        same.push((doc, Arc::new(dr)));
    }
    out
}

/// The rules split so that each map holds at most one rule per host, for
/// the checks that look at one rule at a time.
fn layers(rules: &Rules) -> Vec<Claimed<DestinationRule>> {
    let mut out: Vec<Claimed<DestinationRule>> = Vec::new();
    for (host, list) in rules {
        for (i, (doc, dr)) in list.iter().enumerate() {
            if out.len() <= i {
                out.push(BTreeMap::new());
            }
            out[i].insert(host.clone(), (Arc::clone(doc), Arc::clone(dr)));
        }
    }
    out
}

/// The rules with the namespace of each host's service, for the
/// per-proxy lookup.
fn rule_set(rules: &Rules, services: &BTreeMap<Host, Service>) -> DestinationRules {
    let by_host = rules.iter().map(|(host, list)| {
        let namespace = service_namespace(services, host).map(str::to_string);
        let rules = list.iter().map(|(_, dr)| Arc::clone(dr)).collect();
        (
            host.clone(),
            HostRules {
                service_namespace: namespace,
                rules,
            },
        )
    });
    DestinationRules {
        by_host: by_host.collect(),
    }
}

fn check_ref(
    r: &DestRef,
    known: &BTreeSet<&Host>,
    services: &BTreeMap<Host, Service>,
    rules: &Rules,
    diags: &mut Vec<Diagnostic>,
) {
    let d = &r.destination;
    let at = |field: &str| format!("{}.{field}", r.path);
    if !known.contains(&d.host) {
        let msg = format!(
            "unknown destination host {:?} ({}): no ServiceEntry, DestinationRule or VirtualService names it",
            r.written, d.host
        );
        diags.push(r.doc.diagnostic(&at("host"), msg));
        return;
    }
    if let Some(subset) = &d.subset {
        if let Some(msg) = unknown_subset(&d.host, subset, rules) {
            diags.push(r.doc.diagnostic(&at("subset"), msg));
        }
    }
    let Some(service) = services.get(&d.host) else {
        return;
    };
    let ports: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
    let (host, ports) = (&d.host, ports.join(", "));
    match d.port {
        Some(port) if !service.ports.iter().any(|p| p.number == port) => {
            let msg = format!("port {port} is not a port of {host} (it has {ports})");
            diags.push(r.doc.diagnostic(&at("port.number"), msg));
        }
        // Istio: the port may be omitted only when the service has one.
        None if service.ports.len() > 1 => {
            let msg = format!("port.number is required: {host} has several ports ({ports})");
            diags.push(r.doc.diagnostic(&r.path, msg));
        }
        _ => {}
    }
}

/// The rules for `host` and for every wildcard host covering it.
fn rules_for<'a>(
    host: &'a Host,
    rules: &'a Rules,
) -> impl Iterator<Item = &'a (Arc<DocInfo>, Arc<DestinationRule>)> {
    let covering = (rules.range(Host::wildcards())).filter(|(w, _)| w.covers(host));
    (rules.get(host).into_iter())
        .chain(covering.map(|(_, l)| l))
        .flatten()
}

/// The error for a subset the host's DestinationRule does not define.
/// A subset is known when some rule for the host, or for a wildcard host
/// covering it, defines it: which rule a proxy sees depends on its
/// namespace and labels.
fn unknown_subset(host: &Host, subset: &str, rules: &Rules) -> Option<String> {
    let list: Vec<&(Arc<DocInfo>, Arc<DestinationRule>)> = rules_for(host, rules).collect();
    if list.is_empty() {
        return Some(format!(
            "unknown subset {subset:?}: no DestinationRule for host {host} defines subsets"
        ));
    }
    let defines = |dr: &DestinationRule| dr.subsets.iter().any(|s| s.name == subset);
    if list.iter().any(|(_, dr)| defines(dr)) {
        return None;
    }
    let (doc, dr) = list[0];
    let defined: Vec<&str> = dr.subsets.iter().map(|s| s.name.as_str()).collect();
    let list = if defined.is_empty() {
        "none".to_string()
    } else {
        defined.join(", ")
    };
    Some(format!(
        "unknown subset {subset:?} of host {host}: DestinationRule {} defines {list}",
        doc.qualified()
    ))
}
