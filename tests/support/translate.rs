//! Shared by the golden and Envoy-validation tests: load an example
//! directory, add fake sidecars, translate for one fixed proxy.

use std::path::{Path, PathBuf};

use trellis::config::model::{Location, MeshConfig};
use trellis::registry::{instances, Proxy, Registry};
use trellis::translate::{for_proxy, shared, ProxyResources, ProxySecurity};

/// Every top-level directory under `config-examples/`, sorted.
pub fn example_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Translation-only fixtures (`tests/translate-fixtures/*`): every
/// feature at once, for Envoy's judgement; not examples to copy.
pub fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate-fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// A sidecar of `service` in `namespace` with a `version` label.
pub fn sidecar(service: &str, namespace: &str, version: &str, inbound_port: u16) -> Proxy {
    Proxy {
        id: format!("{service}-{version}.{namespace}"),
        service: service.to_string(),
        namespace: namespace.to_string(),
        labels: [
            ("app".to_string(), service.to_string()),
            ("version".to_string(), version.to_string()),
        ]
        .into(),
        service_account: service.to_string(),
        app_port: 8080,
        inbound_address: "127.0.0.1".to_string(),
        inbound_port,
        outbound_port: 15001,
        stats_port: None,
        admin_port: None,
        gateway: None,
        topology: Default::default(),
    }
}

/// Two sidecars (v1, v2) for every in-mesh cluster-local service that has
/// no instances from the config (those are served without sidecars).
pub fn fake_sidecars(mesh: &MeshConfig) -> Registry {
    let mut reg = Registry::new();
    let mut port = 16000;
    for view in instances(mesh, &Registry::new()).services.values() {
        let Some((name, ns)) = view.host.cluster_local_parts() else {
            continue;
        };
        if view.location == Location::MeshExternal || !view.instances.is_empty() {
            continue;
        }
        for version in ["v1", "v2"] {
            reg.register(sidecar(name, ns, version, port));
            port += 1;
        }
    }
    reg
}

/// The proxy every example is translated for. It runs in
/// us-east/us-east-1a (what locality load balancing reads).
pub fn client() -> Proxy {
    let mut p = sidecar("golden-client", "default", "v1", 15006);
    p.app_port = 9080;
    p.topology.locality = trellis::config::model::Locality::parse("us-east/us-east-1a")
        .unwrap_or_else(|e| panic!("{e}"));
    p
}

/// Loads `dir` and translates it for [`client`].
pub fn translate_dir(dir: &Path) -> ProxyResources {
    // mTLS on, without certificates: the resources name the SDS secrets.
    let security = ProxySecurity {
        mtls: true,
        certs: None,
    };
    let mesh = trellis::config::load_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    // A directory with Gateways shows what an ingress gateway gets.
    // One whose Gateway selects `istio: egressgateway` shows an egress
    // gateway's.
    let egress = (mesh.gateways.iter())
        .any(|g| g.selector.get("istio").map(String::as_str) == Some("egressgateway"));
    // A Gateway API Gateway is served by the proxies carrying its name.
    let label = "gateway.networking.k8s.io/gateway-name";
    let named = (mesh.gateways.iter()).find_map(|g| g.selector.get(label).cloned());
    if let Some(name) = named {
        let mut proxy = ingress_gateway();
        proxy.labels = [(label.to_string(), name)].into();
        return translate_for(dir, &proxy, &security);
    }
    match (mesh.gateways.is_empty(), egress) {
        (true, _) => translate_for(dir, &client(), &security),
        (false, false) => translate_for(dir, &ingress_gateway(), &security),
        (false, true) => translate_for(dir, &egress_gateway(), &security),
    }
}

/// A gateway proxy labelled `istio: egressgateway` in `istio-system`,
/// registered as the endpoints of its service.
pub fn egress_gateway() -> Proxy {
    let mut p = ingress_gateway();
    p.id = "egressgateway".to_string();
    p.service = "istio-egressgateway".to_string();
    p.namespace = "istio-system".to_string();
    p.service_account = "istio-egressgateway".to_string();
    p.labels = [("istio".to_string(), "egressgateway".to_string())].into();
    if let Some(gw) = p.gateway.as_mut() {
        gw.endpoint_address = Some("10.0.0.9".to_string());
    }
    p
}

/// A gateway proxy labelled `istio: ingressgateway`, listening on the
/// server ports themselves.
pub fn ingress_gateway() -> Proxy {
    Proxy {
        id: "ingressgateway".to_string(),
        service: "istio-ingressgateway".to_string(),
        namespace: "default".to_string(),
        labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
        service_account: "istio-ingressgateway".to_string(),
        gateway: Some(trellis::registry::GatewayNode {
            listen_address: "0.0.0.0".to_string(),
            port_map: Default::default(),
            endpoint_address: None,
            network_port: None,
        }),
        ..Default::default()
    }
}

/// Loads `dir` and translates it for `proxy`.
pub fn translate_for(dir: &Path, proxy: &Proxy, security: &ProxySecurity) -> ProxyResources {
    let mesh = trellis::config::load_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let services = instances(&mesh, &fake_sidecars(&mesh));
    for_proxy(&shared(&mesh, &services), proxy, security)
}
