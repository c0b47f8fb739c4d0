//! The proxies a config declares, given with `--proxy`, or reported by a
//! running control plane.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{RenderError, Workload};
use crate::config::model::{Host, Labels, Location, MeshConfig, Service};
use crate::registry::{labels_match, GatewayNode, Proxy};

/// Ports every synthesized sidecar uses (`trellis bootstrap`'s defaults):
/// they only name listeners, so any fixed values compare equal across
/// renders.
const INBOUND_PORT: u16 = 15006;
const OUTBOUND_PORT: u16 = 15001;
/// The app port of a sidecar whose service declares no port.
const DEFAULT_APP_PORT: u16 = 8080;
/// The address of synthesized sidecars that have none of their own.
const LOOPBACK: &str = "127.0.0.1";

/// Every workload `mesh` declares, sorted by node id:
/// - each `WorkloadEntry` (as a sidecar of the services selecting it);
/// - each in-mesh `ServiceEntry` with no `WorkloadEntry`: one sidecar per
///   distinct label set of its endpoints;
/// - each host routed or given subsets but declared by no `ServiceEntry`
///   (a service of registered sidecars): one sidecar per subset (or one
///   without labels), registered as an endpoint as a live sidecar is;
/// - each `Gateway`: one gateway proxy carrying its selector's labels.
pub fn declared_workloads(mesh: &MeshConfig) -> Vec<Workload> {
    let mut out = BTreeMap::new();
    let mut covered = BTreeSet::new();
    for (i, we) in mesh.workload_entries.iter().enumerate() {
        let ns = &we.origin.namespace;
        let service = mesh.services.values().find(|s| {
            &s.namespace == ns
                && (s.workload_selector.as_ref())
                    .is_some_and(|sel| labels_match(sel, &we.endpoint.labels))
        });
        let name = service.map_or(we.origin.name.clone(), short_name);
        if let Some(s) = service {
            covered.insert(s.host.clone());
        }
        let mut proxy = sidecar(&name, ns, we.endpoint.labels.clone(), service);
        proxy.id = format!("{}.{ns}~{i}", we.origin.name);
        proxy.inbound_address = we.endpoint.address.clone();
        if let Some(sa) = &we.service_account {
            proxy.service_account = sa.clone();
        }
        insert(&mut out, proxy, false);
    }
    for s in mesh.services.values() {
        if s.location == Location::MeshInternal && !covered.contains(&s.host) {
            covered.insert(s.host.clone());
            for proxy in endpoint_sidecars(s) {
                insert(&mut out, proxy, false);
            }
        }
    }
    for (host, labels) in implicit_hosts(mesh, &covered) {
        let Some((name, ns)) = host.cluster_local_parts() else {
            continue;
        };
        let mut proxy = sidecar(name, ns, labels, None);
        proxy.id = node_id(name, ns, &proxy.labels);
        insert(&mut out, proxy, true);
    }
    for gw in &mesh.gateways {
        insert(
            &mut out,
            gateway(&gw.origin.name, &gw.origin.namespace, &gw.selector),
            false,
        );
    }
    out.into_values().collect()
}

fn insert(out: &mut BTreeMap<String, Workload>, proxy: Proxy, endpoint: bool) {
    out.entry(proxy.id.clone())
        .or_insert(Workload { proxy, endpoint });
}

/// The short name of a cluster-local service (else its host).
fn short_name(s: &Service) -> String {
    s.host
        .cluster_local_parts()
        .map_or_else(|| s.host.to_string(), |(n, _)| n.to_string())
}

/// One sidecar per distinct label set of `s`'s static endpoints (one
/// without labels when it has none).
fn endpoint_sidecars(s: &Service) -> Vec<Proxy> {
    let name = short_name(s);
    let mut seen = BTreeMap::new();
    for ep in &s.endpoints {
        seen.entry(ep.labels.clone())
            .or_insert_with(|| ep.address.clone());
    }
    if seen.is_empty() {
        seen.insert(Labels::new(), LOOPBACK.to_string());
    }
    seen.into_iter()
        .map(|(labels, address)| {
            let mut proxy = sidecar(&name, &s.namespace, labels, Some(s));
            proxy.id = node_id(&name, &s.namespace, &proxy.labels);
            proxy.inbound_address = address;
            proxy
        })
        .collect()
}

/// Hosts that virtual services or destination rules name and no
/// `ServiceEntry` declares, once per subset's labels (once without labels
/// when the host has no subsets). A rule's wildcard host names no service.
fn implicit_hosts(mesh: &MeshConfig, covered: &BTreeSet<Host>) -> Vec<(Host, Labels)> {
    let routed = mesh.virtual_services.keys();
    let hosts: BTreeSet<&Host> = routed
        .chain(mesh.destination_rules.keys())
        .filter(|h| !h.is_wildcard() && !covered.contains(*h) && !mesh.services.contains_key(*h))
        .collect();
    let mut out = Vec::new();
    for host in hosts {
        let subsets = mesh.destination_rules.get(host).map(|dr| &dr.subsets);
        let labels: BTreeSet<Labels> = subsets
            .map(|s| s.iter().map(|s| s.labels.clone()).collect())
            .unwrap_or_default();
        if labels.is_empty() {
            out.push((host.clone(), Labels::new()));
        }
        out.extend(labels.into_iter().map(|l| (host.clone(), l)));
    }
    out
}

/// `SERVICE.NAMESPACE` and its labels' values, e.g. `payment.default~v2`.
fn node_id(service: &str, namespace: &str, labels: &Labels) -> String {
    let mut id = format!("{service}.{namespace}");
    for v in labels.values() {
        id.push('~');
        id.push_str(v);
    }
    id
}

/// A sidecar of `service` as `trellis bootstrap` describes one.
fn sidecar(service: &str, namespace: &str, labels: Labels, declared: Option<&Service>) -> Proxy {
    let app_port = declared
        .and_then(|s| s.ports.first())
        .map_or(DEFAULT_APP_PORT, |p| p.target_port.unwrap_or(p.number));
    Proxy {
        id: node_id(service, namespace, &labels),
        service: service.to_string(),
        namespace: namespace.to_string(),
        labels,
        service_account: service.to_string(),
        app_port,
        inbound_address: LOOPBACK.to_string(),
        inbound_port: INBOUND_PORT,
        outbound_port: OUTBOUND_PORT,
        ..Proxy::default()
    }
}

/// A gateway proxy that `Gateway` `name` selects.
fn gateway(name: &str, namespace: &str, selector: &Labels) -> Proxy {
    Proxy {
        id: format!("gateway-{name}.{namespace}"),
        service: name.to_string(),
        namespace: namespace.to_string(),
        labels: selector.clone(),
        service_account: name.to_string(),
        gateway: Some(GatewayNode {
            listen_address: "0.0.0.0".into(),
            ..GatewayNode::default()
        }),
        ..Proxy::default()
    }
}

/// A sidecar from `--proxy SERVICE[.NAMESPACE][:k=v,...]`, registered as an
/// endpoint of its service as a connected sidecar would be.
pub fn parse_proxy_spec(spec: &str) -> Result<Workload, RenderError> {
    let bad = |why: &str| RenderError::ProxySpec {
        spec: spec.to_string(),
        why: why.to_string(),
    };
    let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let (service, namespace) = name.split_once('.').unwrap_or((name, "default"));
    if service.is_empty() || namespace.is_empty() {
        return Err(bad("expected SERVICE[.NAMESPACE][:k=v,...]"));
    }
    let mut labels = Labels::new();
    for pair in rest.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad("a label without `=`"))?;
        if k.is_empty() {
            return Err(bad("a label with an empty key"));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    let mut proxy = sidecar(service, namespace, labels, None);
    proxy.id = format!("{}~cli", proxy.id);
    Ok(Workload {
        proxy,
        endpoint: true,
    })
}

/// The proxies of a running control plane, from its `/debug/proxies` JSON
/// (node id → `service`, `namespace`, `labels`). Only what that view
/// reports is known: ports and addresses are the synthesized defaults.
pub fn workloads_from_debug(view: &Value) -> Result<Vec<Workload>, RenderError> {
    let map = view
        .as_object()
        .ok_or_else(|| RenderError::DebugProxies("expected an object by node id".into()))?;
    let mut out = Vec::with_capacity(map.len());
    for (id, p) in map {
        let Some(service) = p.get("service").and_then(Value::as_str) else {
            return Err(RenderError::DebugProxies(format!("{id}: no service")));
        };
        let namespace = p.get("namespace").and_then(Value::as_str);
        let labels = p
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let mut proxy = sidecar(service, namespace.unwrap_or("default"), labels, None);
        proxy.id = id.clone();
        out.push(Workload {
            proxy,
            endpoint: true,
        });
    }
    Ok(out)
}
