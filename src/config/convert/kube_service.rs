//! Kubernetes `v1 Service` → a mesh service `NAME.NAMESPACE.svc.cluster.local`,
//! as istiod converts one (`pilot/pkg/serviceregistry/kube/conversion.go`):
//! its ports with Istio's protocol selection, its `selector` choosing the
//! sidecars (and `WorkloadEntry`s) of its namespace by label.

use std::collections::BTreeSet;

use super::{join, Cx};
use crate::config::model::{
    Host, Location, Protocol, Resolution, Service, ServicePort, StaticEndpoint, Topology,
};
use crate::config::raw::kube_service as raw;

/// The service a `Service` manifest defines, with the path of its name.
pub(crate) fn kube_service(cx: &mut Cx<'_>, svc: &raw::KubeService) -> Vec<(String, Service)> {
    if !super::is_dns_label(&cx.doc.name) {
        let msg = "a Service name must be a DNS-1123 label (Kubernetes' rule): it becomes NAME.NAMESPACE.svc.cluster.local";
        cx.err("metadata.name", msg);
        return Vec::new();
    }
    rejected(cx, svc);
    let ports = ports(cx, &svc.ports);
    let external = external_name(cx, svc);
    let host = Host::canonical(&cx.doc.name, &cx.doc.namespace);
    // An empty selector selects nothing in Kubernetes (endpoints are
    // managed by hand); sidecars still join by their service name.
    let selector = (!svc.selector.is_empty()).then(|| svc.selector.clone());
    cx.labels("spec.selector", &svc.selector);
    let (resolution, location, endpoints) = match external {
        Some(ep) => (Resolution::Dns, Location::MeshExternal, vec![ep]),
        None => (Resolution::Static, Location::MeshInternal, Vec::new()),
    };
    let service = Service {
        host,
        namespace: cx.doc.namespace.clone(),
        ports,
        resolution,
        location,
        endpoints,
        workload_selector: selector,
        addresses: Vec::new(),
        export_to: Default::default(),
        subject_alt_names: Vec::new(),
        origin: cx.doc.origin(),
    };
    vec![("metadata.name".to_string(), service)]
}

/// Fields whose meaning Trellis cannot give, each with what to use.
fn rejected(cx: &mut Cx<'_>, svc: &raw::KubeService) {
    if let Some(a) = svc.session_affinity.as_deref().filter(|a| *a != "None") {
        let msg = format!("sessionAffinity {a} is kube-proxy's: write a DestinationRule with loadBalancer.consistentHash.useSourceIp: true");
        cx.err("spec.sessionAffinity", msg);
    }
    cx.unsupported(
        "spec",
        "sessionAffinityConfig",
        &svc.session_affinity_config,
    );
    if let Some(p) = svc
        .internal_traffic_policy
        .as_deref()
        .filter(|p| *p != "Cluster")
    {
        let msg = format!("internalTrafficPolicy {p} needs the node of each endpoint, which Trellis does not know: use Cluster, or a DestinationRule localityLbSetting");
        cx.err("spec.internalTrafficPolicy", msg);
    }
    if svc.publish_not_ready_addresses == Some(true) {
        let msg = "publishNotReadyAddresses needs Kubernetes readiness, which Trellis does not see: sidecars are endpoints while connected";
        cx.err("spec.publishNotReadyAddresses", msg);
    }
    cx.unsupported("spec", "trafficDistribution", &svc.traffic_distribution);
}

/// `type: ExternalName` is a DNS service of the external name, as in
/// Istio; the other types are all cluster-internal services to a sidecar.
fn external_name(cx: &mut Cx<'_>, svc: &raw::KubeService) -> Option<StaticEndpoint> {
    match (svc.service_type.as_deref(), &svc.external_name) {
        (Some("ExternalName"), Some(name)) if super::values::check_host(name).is_ok() => {
            Some(StaticEndpoint {
                address: name.trim_end_matches('.').to_ascii_lowercase(),
                ports: Default::default(),
                labels: Default::default(),
                weight: None,
                topology: Topology::default(),
            })
        }
        (Some("ExternalName"), Some(name)) => {
            let msg = format!("externalName {name:?} is not a valid DNS name");
            cx.err("spec.externalName", msg);
            None
        }
        (Some("ExternalName"), None) => {
            cx.err("spec", "type ExternalName needs externalName");
            None
        }
        (None | Some("ClusterIP" | "NodePort" | "LoadBalancer"), None) => None,
        (_, Some(_)) => {
            cx.err("spec.externalName", "externalName needs type: ExternalName");
            None
        }
        (Some(other), None) => {
            let msg = format!("unknown Service type {other:?}: use ClusterIP, NodePort, LoadBalancer or ExternalName");
            cx.err("spec.type", msg);
            None
        }
    }
}

fn ports(cx: &mut Cx<'_>, raw: &[raw::KubePort]) -> Vec<ServicePort> {
    let mut numbers = BTreeSet::new();
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let Some(n) = p.port else {
            cx.err(&path, "port is required");
            continue;
        };
        let number = cx.port(&join(&path, "port"), n);
        if number.is_some_and(|n| !numbers.insert(n)) {
            cx.err(&join(&path, "port"), format!("duplicate port {n}"));
        }
        let target = target_port(cx, &join(&path, "targetPort"), p.target_port.as_ref());
        let protocol = protocol(cx, &path, p, n);
        if let (Some(number), Some(protocol), Ok(target_port)) = (number, protocol, target) {
            // Istio names an unnamed port by its protocol; endpoint port
            // maps refer to the name.
            let name = if p.name.is_empty() {
                format!("{}-{number}", format!("{protocol:?}").to_ascii_lowercase())
            } else {
                p.name.clone()
            };
            out.push(ServicePort {
                number,
                name,
                protocol,
                target_port,
            });
        }
    }
    out
}

/// A number; a named target port needs the pod's container ports, which
/// only Kubernetes has.
fn target_port(
    cx: &mut Cx<'_>,
    path: &str,
    written: Option<&yaml_serde::Value>,
) -> Result<Option<u16>, ()> {
    match written {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) => cx.port(path, n).map(Some).ok_or(()),
            None => {
                let msg = format!("a named targetPort ({}) needs the pod's container ports, which only Kubernetes knows: write the port number", yaml_text(v));
                cx.err(path, msg);
                Err(())
            }
        },
    }
}

fn yaml_text(v: &yaml_serde::Value) -> String {
    v.as_str()
        .map_or_else(|| format!("{v:?}"), |s| format!("{s:?}"))
}

/// Istio's `kube.ConvertProtocol`: UDP and SCTP are not proxied; then
/// `appProtocol`, then the port name's prefix (`http-web`, `grpc`).
fn protocol(cx: &mut Cx<'_>, path: &str, p: &raw::KubePort, n: i64) -> Option<Protocol> {
    match p.protocol.as_deref() {
        None | Some("TCP") => {}
        Some(other) => {
            let msg = format!("protocol {other} is not supported: Envoy's sidecar proxies TCP only (Kubernetes' TCP, the default)");
            cx.err(&join(path, "protocol"), msg);
            return None;
        }
    }
    if let Some(app) = &p.app_protocol {
        let found = by_app_protocol(app);
        if found.is_none() {
            let msg = format!("appProtocol {app:?} is not one Istio knows: use http, http2, grpc, grpc-web, tcp, tls, https, mongo, mysql, redis, kubernetes.io/h2c, kubernetes.io/ws or kubernetes.io/wss");
            cx.err(&join(path, "appProtocol"), msg);
        }
        return found;
    }
    let prefix = p.name.split('-').next().unwrap_or_default();
    let found = by_name(&p.name).or_else(|| by_name(prefix));
    if found.is_none() {
        let msg = format!("the protocol of port {n} cannot be told: Istio would sniff it, Trellis does not; name the port `http-…`, `http2-…`, `grpc-…`, `tcp-…`, `tls-…` or `https-…`, or set appProtocol");
        cx.err(path, msg);
    }
    found
}

fn by_app_protocol(app: &str) -> Option<Protocol> {
    match app {
        "kubernetes.io/h2c" => Some(Protocol::Http2),
        "kubernetes.io/ws" => Some(Protocol::Http),
        "kubernetes.io/wss" => Some(Protocol::Tls),
        other => by_name(other),
    }
}

/// Istio's `protocol.Parse`, case-insensitive, for the protocols Trellis
/// proxies (MONGO, MYSQL, REDIS as opaque TCP, as Istio does without their
/// filters).
fn by_name(name: &str) -> Option<Protocol> {
    Some(match name.to_ascii_lowercase().as_str() {
        "http" | "grpc-web" => Protocol::Http,
        "http2" => Protocol::Http2,
        "grpc" => Protocol::Grpc,
        "tcp" | "mongo" | "mysql" | "redis" => Protocol::Tcp,
        "tls" | "https" => Protocol::Tls,
        _ => return None,
    })
}
