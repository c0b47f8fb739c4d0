//! The starter config for the "start with mTLS only" verdict: the services
//! found, mesh-wide mTLS and observability (access logs, tracing), and no
//! traffic management. The mesh notes: "Start by enabling mTLS and
//! observability. These provide immediate value with minimal configuration
//! complexity."

use serde_json::{json, Map, Value};

use crate::config::model::{
    Location, MeshConfig, Protocol, Resolution, Service, StaticEndpoint, WorkloadEntry,
};

/// Why a starter config could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("rendering the starter config: {0}")]
pub struct RenderError(#[from] yaml_serde::Error);

/// The files of the starter config: `(file name, YAML text)`.
pub fn files(mesh: &MeshConfig) -> Result<Vec<(String, String)>, RenderError> {
    let mut services = String::from(
        "# The services `trellis assess` found, as ServiceEntry and WorkloadEntry\n\
         # resources (hosts, ports, endpoints, labels): no routing, no policies.\n",
    );
    for svc in mesh.services.values() {
        services.push_str("---\n");
        services.push_str(&yaml_serde::to_string(&service_entry(svc))?);
    }
    // Hosts only sidecars serve (named by routes) get a ServiceEntry of
    // their ports, so the starter names every service without the routes.
    let instances = crate::registry::instances(mesh, &crate::registry::Registry::new());
    let sidecar_only = (instances.services.values())
        .filter(|v| v.location == Location::MeshInternal && !mesh.services.contains_key(&v.host));
    for view in sidecar_only {
        services.push_str("---\n");
        services.push_str(&yaml_serde::to_string(&sidecar_service(view))?);
    }
    for we in &mesh.workload_entries {
        services.push_str("---\n");
        services.push_str(&yaml_serde::to_string(&workload_entry(we))?);
    }
    let root = &mesh.mesh.root_namespace;
    Ok(vec![
        ("services.yaml".into(), services),
        ("mtls.yaml".into(), mtls(root)),
        ("observability.yaml".into(), observability(mesh, root)),
    ])
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "HTTP",
        Protocol::Http2 => "HTTP2",
        Protocol::Grpc => "GRPC",
        Protocol::Tcp => "TCP",
        Protocol::Tls => "TLS",
    }
}

fn endpoint(e: &StaticEndpoint) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("address".into(), json!(e.address));
    if !e.ports.is_empty() {
        m.insert("ports".into(), json!(e.ports));
    }
    if !e.labels.is_empty() {
        m.insert("labels".into(), json!(e.labels));
    }
    if let Some(w) = e.weight {
        m.insert("weight".into(), json!(w));
    }
    m
}

fn service_entry(svc: &Service) -> Value {
    let mut spec = json!({
        "hosts": [svc.host.as_str()],
        "ports": ports(&svc.ports),
        "location": if svc.location == Location::MeshInternal { "MESH_INTERNAL" } else { "MESH_EXTERNAL" },
        "resolution": match svc.resolution {
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Resolution::None => "NONE",
        },
    });
    if !svc.endpoints.is_empty() {
        spec["endpoints"] = Value::Array(
            svc.endpoints
                .iter()
                .map(|e| Value::Object(endpoint(e)))
                .collect(),
        );
    }
    if let Some(sel) = &svc.workload_selector {
        spec["workloadSelector"] = json!({"labels": sel});
    }
    resource(
        "networking.istio.io/v1",
        "ServiceEntry",
        &svc.origin.name,
        &svc.namespace,
        spec,
    )
}

fn ports(ports: &[crate::config::model::ServicePort]) -> Vec<Value> {
    (ports.iter())
        .map(|p| {
            let mut m =
                json!({"number": p.number, "name": p.name, "protocol": protocol(p.protocol)});
            if let Some(t) = p.target_port {
                m["targetPort"] = json!(t);
            }
            m
        })
        .collect()
}

fn sidecar_service(view: &crate::registry::ServiceView) -> Value {
    let name = (view.host.cluster_local_parts()).map_or(view.host.as_str(), |(n, _)| n);
    let spec = json!({
        "hosts": [view.host.as_str()],
        "ports": ports(&view.ports),
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
    });
    resource(
        "networking.istio.io/v1",
        "ServiceEntry",
        name,
        &view.namespace,
        spec,
    )
}

fn workload_entry(we: &WorkloadEntry) -> Value {
    let mut spec = endpoint(&we.endpoint);
    if let Some(sa) = &we.service_account {
        spec.insert("serviceAccount".into(), json!(sa));
    }
    let o = &we.origin;
    resource(
        "networking.istio.io/v1",
        "WorkloadEntry",
        &o.name,
        &o.namespace,
        Value::Object(spec),
    )
}

fn resource(api: &str, kind: &str, name: &str, namespace: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

fn mtls(root: &str) -> String {
    format!(
        "# Mesh-wide mTLS. PERMISSIVE accepts plaintext too, so services join one at a\n\
         # time (sidecars already send mTLS to each other); switch to STRICT once every\n\
         # client runs a sidecar.\n\
         apiVersion: security.istio.io/v1\n\
         kind: PeerAuthentication\n\
         metadata:\n  name: default\n  namespace: {root}\n\
         spec:\n  mtls:\n    mode: PERMISSIVE\n"
    )
}

fn observability(mesh: &MeshConfig, root: &str) -> String {
    let td = &mesh.mesh.trust_domain;
    format!(
        "# Observability: every sidecar writes JSON access logs to stdout and sends\n\
         # 1% of traces to a Zipkin-compatible collector (Jaeger's Zipkin port);\n\
         # point `service`/`port` at yours.\n\
         apiVersion: trellis.dev/v1alpha1\n\
         kind: Mesh\n\
         metadata:\n  name: mesh\n\
         spec:\n  trustDomain: {td}\n  rootNamespace: {root}\n\
         \x20 extensionProviders:\n  - name: zipkin\n    zipkin:\n      service: 127.0.0.1\n      port: 9411\n      path: /api/v2/spans\n\
         \x20 defaultProviders:\n    accessLogging: [envoy]\n    tracing: [zipkin]\n\
         ---\n\
         apiVersion: telemetry.istio.io/v1alpha1\n\
         kind: Telemetry\n\
         metadata:\n  name: mesh-default\n  namespace: {root}\n\
         spec:\n  tracing:\n  - randomSamplingPercentage: 1\n"
    )
}
