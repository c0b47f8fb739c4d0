//! Ingress listeners and clusters for a proxy whose Sidecar has
//! `ingress`, against what the default inbound listener does.

use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::listener::v3::Listener;

use crate::registry::{instances, Registry};
use crate::translate::fixtures::sidecar;
use crate::translate::{for_proxy, shared, ProxyResources, ProxySecurity};

const MESH: &str = r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: api, namespace: default}
spec:
  workloadSelector: {labels: {app: api}}
  inboundConnectionPool: {tcp: {maxConnections: 7}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: web}
    defaultEndpoint: 127.0.0.1:8080
  - port: {number: 9443, protocol: HTTPS, name: tls}
    bind: 0.0.0.0
    defaultEndpoint: 0.0.0.0:8443
    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}
  - port: {number: 9000, protocol: TCP, name: db}
    defaultEndpoint: unix:///run/db.sock
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: api, namespace: default}
spec:
  selector: {matchLabels: {app: api}}
  mtls: {mode: STRICT}
  portLevelMtls:
    9000: {mode: DISABLE}
"#;

fn resources(labels_app: &str) -> ProxyResources {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), MESH).unwrap();
    let mesh = crate::config::load_dir(dir.path()).unwrap();
    let si = instances(&mesh, &Registry::new());
    let mut proxy = sidecar("api", "api-v1", "v1", 15006);
    proxy.labels.insert("app".into(), labels_app.into());
    proxy.inbound_address = "10.0.0.7".into();
    let security = ProxySecurity {
        mtls: true,
        certs: None,
    };
    for_proxy(&shared(&mesh, &si), &proxy, &security)
}

fn listener<'a>(r: &'a ProxyResources, name: &str) -> &'a Listener {
    (r.listeners.iter().find(|l| l.name == name)).unwrap_or_else(|| panic!("no {name}"))
}

/// Every listener and cluster as proto3 JSON (nested `Any`s decoded).
fn json(r: &ProxyResources) -> String {
    (r.packed().iter())
        .map(|p| crate::envoy_json::to_json(&p.resource).unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn ingress_replaces_the_default_inbound_listener() {
    let r = resources("api");
    let names: Vec<&str> = r.listeners.iter().map(|l| l.name.as_str()).collect();
    assert!(!names.contains(&"inbound"), "{names:?}");
    for name in ["inbound_9080", "inbound_9443", "inbound_9000", "outbound"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let clusters: Vec<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
    for name in ["inbound|9080||", "inbound|9443||", "inbound|9000||"] {
        assert!(clusters.contains(&name), "{clusters:?}");
    }
    // Another workload keeps the default listener.
    let other = resources("web");
    assert!(other.listeners.iter().any(|l| l.name == "inbound"));
}

#[test]
fn each_port_gets_its_bind_tls_and_endpoint() {
    let r = resources("api");
    let addr = |l: &Listener| match l.address.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(s)) => s.address.clone(),
        other => panic!("{other:?}"),
    };
    // Default bind: the inbound address; `bind: 0.0.0.0` as written.
    assert_eq!(addr(listener(&r, "inbound_9080")), "10.0.0.7");
    assert_eq!(addr(listener(&r, "inbound_9443")), "0.0.0.0");
    // STRICT on 9080: one mTLS chain; the user's TLS on 9443; DISABLE on
    // 9000 (portLevelMtls keyed by the ingress port).
    let chains = |name: &str| {
        (listener(&r, name).filter_chains.iter())
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(chains("inbound_9080"), ["inbound-mtls"]);
    assert_eq!(chains("inbound_9443"), ["inbound-tls"]);
    assert_eq!(chains("inbound_9000"), ["inbound"]);
    let text = json(&r);
    assert!(text.contains("/c.pem") && text.contains("/k.pem"), "{text}");
    assert!(text.contains("envoy.filters.network.tcp_proxy"));
    // The endpoints: loopback, the instance address, a Unix socket.
    let cluster = |name: &str| {
        let c = r.clusters.iter().find(|c| c.name == name).unwrap();
        crate::envoy_json::to_json(&envoy_types::util::pack_any(c.clone()))
            .unwrap()
            .to_string()
    };
    assert!(cluster("inbound|9080||").contains("\"127.0.0.1\""));
    assert!(cluster("inbound|9443||").contains("\"10.0.0.7\""));
    assert!(cluster("inbound|9443||").contains("8443"));
    assert!(cluster("inbound|9000||").contains("/run/db.sock"));
    // The Sidecar's inboundConnectionPool applies to every port.
    assert!(cluster("inbound|9080||").contains("\"max_connections\":7"));
}

#[test]
fn ingress_listener_names_are_recognised() {
    assert!(super::is_ingress_listener("inbound_9080"));
    assert!(!super::is_ingress_listener("inbound"));
    assert!(!super::is_ingress_listener("127.0.0.1_9000"));
}
