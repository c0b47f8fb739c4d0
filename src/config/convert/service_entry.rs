//! `ServiceEntry` and `WorkloadEntry` conversion.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::virtual_service::export::export_to;
use super::{join, Cx};
use crate::config::model::{
    Host, Locality, Location, Protocol, Resolution, Service, ServicePort, StaticEndpoint, Topology,
    WorkloadEntry, NETWORK_LABEL,
};
use crate::config::raw::service_entry as raw;

/// One `Service` per host of the entry, each with the path of its host.
pub(crate) fn service_entry(cx: &mut Cx<'_>, se: &raw::ServiceEntry) -> Vec<(String, Service)> {
    let export_to = export_to(cx, se.export_to.as_deref());
    if se.hosts.is_empty() {
        cx.err("spec.hosts", "at least one host is required");
    }
    let hosts = hosts(cx, &se.hosts);
    let ports = ports(cx, &se.ports);
    let resolution = resolution(cx, se.resolution.as_deref());
    let location = location(cx, se.location.as_deref());
    let endpoints = endpoints(cx, se, resolution == Some(Resolution::Static));
    let workload_selector = se.workload_selector.as_ref().map(|ws| {
        cx.labels("spec.workloadSelector.labels", &ws.labels);
        if !se.endpoints.is_empty() {
            let msg = "only one of workloadSelector or endpoints is allowed";
            cx.err("spec.workloadSelector", msg);
        }
        ws.labels.clone()
    });
    let subject_alt_names = sans(cx, &se.subject_alt_names);
    let addresses = addresses::addresses(cx, &se.addresses, &ports);
    let Some(resolution) = resolution else {
        return Vec::new();
    };
    addresses::check_resolution(cx, se, resolution, &ports, &addresses);
    let service = |host| Service {
        host,
        namespace: cx.doc.namespace.clone(),
        ports: ports.clone(),
        resolution,
        location,
        endpoints: endpoints.clone(),
        workload_selector: workload_selector.clone(),
        subject_alt_names: subject_alt_names.clone(),
        addresses: addresses.clone(),
        export_to: export_to.clone(),
        origin: cx.doc.origin(),
    };
    (hosts.into_iter())
        .map(|(path, host)| (path, service(host)))
        .collect()
}

/// The entry's hosts: DNS names (short ones made canonical) and wildcards
/// `*.DOMAIN`, kept as written (lowercase): Envoy matches them as suffixes.
fn hosts(cx: &mut Cx<'_>, raw: &[String]) -> Vec<(String, Host)> {
    let mut out: Vec<(String, Host)> = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        let Some(host) = cx.service_host(&path, h) else {
            continue;
        };
        if out.iter().any(|(_, seen)| *seen == host) {
            cx.err(&path, format!("duplicate host {host}"));
            continue;
        }
        out.push((path, host));
    }
    out
}

fn location(cx: &mut Cx<'_>, written: Option<&str>) -> Location {
    match written {
        None | Some("MESH_INTERNAL") => Location::MeshInternal,
        Some("MESH_EXTERNAL") => Location::MeshExternal,
        Some(other) => {
            let msg = format!("unknown location {other:?}: use MESH_INTERNAL or MESH_EXTERNAL");
            cx.err("spec.location", msg);
            Location::MeshInternal
        }
    }
}

fn endpoints(cx: &mut Cx<'_>, se: &raw::ServiceEntry, is_static: bool) -> Vec<StaticEndpoint> {
    let port_names: BTreeSet<&str> = se.ports.iter().map(|p| p.name.as_str()).collect();
    let mut out = Vec::new();
    for (i, e) in se.endpoints.iter().enumerate() {
        let path = format!("spec.endpoints[{i}]");
        let account = e.service_account.clone().map(Into::into);
        cx.unsupported(&path, "serviceAccount", &account);
        out.extend(endpoint(cx, &path, e, Some(&port_names), is_static));
    }
    out
}

fn resolution(cx: &mut Cx<'_>, written: Option<&str>) -> Option<Resolution> {
    let path = "spec.resolution";
    match written {
        Some("STATIC") => Some(Resolution::Static),
        Some("DNS") => Some(Resolution::Dns),
        Some("DNS_ROUND_ROBIN") => Some(Resolution::DnsRoundRobin),
        // Istio's default.
        None | Some("NONE") => Some(Resolution::None),
        Some("DYNAMIC_DNS") => {
            let msg = "resolution DYNAMIC_DNS is hidden in Istio's API and not implemented by Istio: use DNS";
            cx.err(path, msg);
            None
        }
        Some(other) => {
            let msg =
                format!("unknown resolution {other:?}: use NONE, STATIC, DNS or DNS_ROUND_ROBIN");
            cx.err(path, msg);
            None
        }
    }
}

fn ports(cx: &mut Cx<'_>, raw: &[raw::Port]) -> Vec<ServicePort> {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    let mut out = Vec::new();
    for (i, port) in raw.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let number = cx.port(&join(&path, "number"), port.number);
        if port.name.is_empty() {
            cx.err(&path, "port name is required");
        } else if !names.insert(port.name.as_str()) {
            cx.err(
                &join(&path, "name"),
                format!("duplicate port name {:?}", port.name),
            );
        }
        if number.is_some_and(|n| !numbers.insert(n)) {
            cx.err(
                &join(&path, "number"),
                format!("duplicate port number {}", port.number),
            );
        }
        let target = port
            .target_port
            .and_then(|t| cx.port(&join(&path, "targetPort"), t));
        let protocol = protocol(cx, &path, port);
        if let (Some(number), Some(protocol)) = (number, protocol) {
            out.push(ServicePort {
                number,
                name: port.name.clone(),
                protocol,
                target_port: target,
            });
        }
    }
    out
}

fn protocol(cx: &mut Cx<'_>, path: &str, port: &raw::Port) -> Option<Protocol> {
    // Istio's convention: a port named `<protocol>[-<suffix>]` declares its protocol.
    let written = port
        .protocol
        .clone()
        .unwrap_or_else(|| port.name.split('-').next().unwrap_or_default().to_string());
    let protocol = match written.to_ascii_uppercase().as_str() {
        "HTTP" => Protocol::Http,
        "HTTP2" => Protocol::Http2,
        "GRPC" => Protocol::Grpc,
        // Istio proxies these as opaque TCP unless a protocol-specific
        // filter is enabled, which Trellis does not do.
        "TCP" | "MONGO" | "MYSQL" | "REDIS" | "THRIFT" | "DUBBO" => Protocol::Tcp,
        "TLS" | "HTTPS" => Protocol::Tls,
        "UDP" => {
            let p = join(path, "protocol");
            cx.err(
                &p,
                "protocol UDP is not supported: Envoy's tcp_proxy carries TCP only",
            );
            return None;
        }
        _ if port.protocol.is_none() => {
            cx.err(path, "protocol is required (HTTP, HTTP2, GRPC, TCP, TLS or HTTPS) unless the port name starts with one");
            return None;
        }
        other => {
            let p = join(path, "protocol");
            cx.err(&p, format!("protocol {other} is not supported yet: use HTTP, HTTP2, GRPC, TCP (or MONGO, MYSQL, REDIS, THRIFT, DUBBO: proxied as TCP), TLS or HTTPS"));
            return None;
        }
    };
    Some(protocol)
}

/// An endpoint; `port_names` are the service's port names when known.
fn endpoint(
    cx: &mut Cx<'_>,
    path: &str,
    e: &raw::WorkloadEntry,
    port_names: Option<&BTreeSet<&str>>,
    static_resolution: bool,
) -> Option<StaticEndpoint> {
    let address = e.address.clone().unwrap_or_default();
    if address.is_empty() {
        cx.err(path, "address is required");
        return None;
    }
    check_address(cx, &join(path, "address"), &address, static_resolution);
    let mut ports = BTreeMap::new();
    for (name, number) in &e.ports {
        let p = join(&join(path, "ports"), name);
        if port_names.is_some_and(|names| !names.contains(name.as_str())) {
            cx.err(
                &p,
                format!("endpoint port {name:?} is not a port name of the ServiceEntry"),
            );
        }
        if let Some(n) = cx.port(&p, *number) {
            ports.insert(name.clone(), n);
        }
    }
    cx.labels(&join(path, "labels"), &e.labels);
    let weight = match e.weight {
        None | Some(0) => None,
        Some(w) => cx.count(&join(path, "weight"), w),
    };
    Some(StaticEndpoint {
        address,
        ports,
        topology: topology(cx, path, e),
        labels: e.labels.clone(),
        weight,
    })
}

/// `locality` (else the topology labels) and `network` (else its label).
fn topology(cx: &mut Cx<'_>, path: &str, e: &raw::WorkloadEntry) -> Topology {
    let locality = match &e.locality {
        Some(text) => Locality::parse(text).unwrap_or_else(|msg| {
            cx.err(&join(path, "locality"), msg);
            Locality::default()
        }),
        None => Locality::from_labels(&e.labels),
    };
    let network = (e.network.clone())
        .or_else(|| e.labels.get(NETWORK_LABEL).cloned())
        .unwrap_or_default();
    Topology {
        locality,
        network,
        cluster: String::new(),
    }
}

fn check_address(cx: &mut Cx<'_>, path: &str, address: &str, static_resolution: bool) {
    let is_ip = address.parse::<IpAddr>().is_ok();
    if static_resolution && !is_ip {
        let msg = format!("endpoint address {address:?} is not an IP address (resolution STATIC)");
        cx.err(path, msg);
    } else if !is_ip && !super::is_dns_subdomain(&address.to_ascii_lowercase()) {
        let msg = format!("endpoint address {address:?} is not a valid IP address or DNS name");
        cx.err(path, msg);
    }
}

/// A `WorkloadEntry`.
pub(crate) fn workload_entry(cx: &mut Cx<'_>, we: &raw::WorkloadEntry) -> Option<WorkloadEntry> {
    let endpoint = endpoint(cx, "spec", we, None, false)?;
    if let Some(sa) = &we.service_account {
        if !super::is_dns_subdomain(sa) {
            cx.err(
                "spec.serviceAccount",
                format!("service account {sa:?} is not a valid DNS-1123 name"),
            );
        }
    }
    Some(WorkloadEntry {
        endpoint,
        service_account: we.service_account.clone(),
        origin: cx.doc.origin(),
    })
}

/// `subjectAltNames`: SPIFFE IDs (or other URIs), DNS names or IPs the
/// service's servers may present; none empty.
fn sans(cx: &mut Cx<'_>, written: &[String]) -> Vec<String> {
    for (i, san) in written.iter().enumerate() {
        if san.is_empty() || san.chars().any(|c| c.is_whitespace()) {
            let msg = format!("subject alt name {san:?} must be a non-empty name without spaces");
            cx.err(&format!("spec.subjectAltNames[{i}]"), msg);
        }
    }
    written.to_vec()
}

mod addresses;
