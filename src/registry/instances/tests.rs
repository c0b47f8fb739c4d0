use super::*;
use crate::config::model::WorkloadEntry;
use crate::translate::fixtures::*;

fn view<'a>(si: &'a ServiceInstances, name: &str) -> &'a ServiceView {
    &si.services[&host(name)]
}

#[test]
fn static_endpoint_port_resolution() {
    let mut target = port(80, "http", Protocol::Http);
    target.target_port = Some(8000);
    let mut ep_named = endpoint("10.0.0.1", &[]);
    ep_named.ports.insert("http".into(), 9090);
    let ep_plain = endpoint("10.0.0.2", &[]);
    let svc = service(
        "a",
        vec![target, port(81, "admin", Protocol::Http)],
        vec![ep_named, ep_plain],
    );
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
    let si = instances(&mesh, &Registry::new());
    let got: Vec<(&str, u16, u16)> = view(&si, "a")
        .instances
        .iter()
        .map(|i| (i.address.as_str(), i.service_port, i.port))
        .collect();
    assert_eq!(
        got,
        vec![
            ("10.0.0.1", 80, 9090), // endpoint ports[name]
            ("10.0.0.1", 81, 81),   // service port
            ("10.0.0.2", 80, 8000), // targetPort
            ("10.0.0.2", 81, 81),
        ]
    );
}

#[test]
fn workload_entries_selected_in_namespace() {
    let mut svc = service("a", vec![port(80, "http", Protocol::Http)], vec![]);
    svc.workload_selector = Some(labels(&[("app", "a")]));
    let we = |addr: &str, app: &str, ns: &str| {
        let mut origin = origin("WorkloadEntry", addr);
        origin.namespace = ns.into();
        WorkloadEntry {
            endpoint: endpoint(addr, &[("app", app), ("version", "v1")]),
            service_account: None,
            origin,
        }
    };
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
    mesh.workload_entries = vec![
        we("10.0.0.1", "a", "default"),
        we("10.0.0.2", "b", "default"),
        we("10.0.0.3", "a", "other"),
    ];
    let si = instances(&mesh, &Registry::new());
    let addrs: Vec<&str> = view(&si, "a")
        .instances
        .iter()
        .map(|i| i.address.as_str())
        .collect();
    assert_eq!(addrs, vec!["10.0.0.1"]);
    assert_eq!(view(&si, "a").instances[0].labels["version"], "v1");
}

#[test]
fn sidecar_joins_by_host_and_by_selector() {
    let by_host = service("a", vec![port(8080, "http", Protocol::Http)], vec![]);
    let mut by_selector = service("b", vec![port(80, "http", Protocol::Http)], vec![]);
    by_selector.workload_selector = Some(labels(&[("version", "v2")]));
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(by_host.host.clone(), by_host);
    std::sync::Arc::make_mut(&mut mesh.services).insert(by_selector.host.clone(), by_selector);
    let si = instances(&mesh, &two_versions(&["a"]));
    let a = view(&si, "a");
    assert_eq!(a.instances.len(), 2);
    assert!(a
        .instances
        .iter()
        .all(|i| i.sidecar && i.service_port == 8080));
    assert_eq!(a.instances[0].port, 16000, "sidecar inbound port");
    let b = view(&si, "b");
    assert_eq!(b.instances.len(), 1, "only the v2 sidecar matches");
    assert_eq!(b.instances[0].labels["version"], "v2");
}

#[test]
fn sidecar_only_service_is_implicit_http() {
    let si = instances(&MeshConfig::default(), &two_versions(&["ledger"]));
    let v = view(&si, "ledger");
    assert_eq!(v.ports, vec![implicit_http_port()]);
    assert_eq!(v.resolution, Resolution::Static);
    assert_eq!(v.instances.len(), 2);
    assert_eq!(v.namespace, "default");
}

#[test]
fn named_cluster_local_hosts_exist_without_instances() {
    let mut mesh = canary_mesh();
    let external = Host("api.example.com".into());
    let mut ext_vs = vs("x", vec![]);
    ext_vs.hosts = vec![external.clone()];
    mesh.virtual_services
        .insert(external.clone(), std::sync::Arc::new(ext_vs));
    let si = instances(&mesh, &Registry::new());
    let v = view(&si, "payment-service");
    assert!(v.instances.is_empty());
    assert_eq!(v.ports[0].number, 80);
    assert!(
        !si.services.contains_key(&external),
        "not cluster-local: needs a ServiceEntry"
    );
}

#[test]
fn dns_service_without_endpoints_resolves_its_host() {
    let mut svc = service("ext", vec![port(443, "tls", Protocol::Tls)], vec![]);
    svc.host = Host("api.example.com".into());
    svc.resolution = Resolution::Dns;
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
    let si = instances(&mesh, &Registry::new());
    let v = &si.services[&Host("api.example.com".into())];
    assert_eq!(v.instances.len(), 1);
    assert_eq!(
        (v.instances[0].address.as_str(), v.instances[0].port),
        ("api.example.com", 443)
    );
}

#[test]
fn workload_entries_in_the_hosts_namespace_are_selected() {
    let mut svc = service("a", vec![port(80, "http", Protocol::Http)], vec![]);
    svc.host = Host::canonical("billing.legacy", "default");
    svc.workload_selector = Some(labels(&[("app", "billing")]));
    let mut origin = origin("WorkloadEntry", "vm");
    origin.namespace = "legacy".into();
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc.clone());
    mesh.workload_entries = vec![WorkloadEntry {
        endpoint: endpoint("10.0.0.11", &[("app", "billing")]),
        service_account: None,
        origin,
    }];
    let si = instances(&mesh, &Registry::new());
    assert_eq!(si.services[&svc.host].instances.len(), 1);
}

#[test]
fn sidecar_instances_carry_identity_and_their_mtls_mode() {
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(
        host("a"),
        service(
            "a",
            vec![port(80, "http", Protocol::Http)],
            vec![endpoint("10.0.0.9", &[])],
        ),
    );
    let mut reg = Registry::new();
    reg.register(sidecar("a", "a-v1", "v1", 16000));
    let si = instances(&mesh, &reg);
    let inst = &view(&si, "a").instances;
    let plain = inst.iter().find(|i| !i.sidecar).unwrap();
    assert_eq!((plain.identity.as_ref(), plain.mtls), (None, false));
    let side = inst.iter().find(|i| i.sidecar).unwrap();
    let id = side.identity.as_ref().unwrap();
    assert_eq!(id.spiffe_id("td"), "spiffe://td/ns/default/sa/a");
    assert!(side.mtls, "PERMISSIVE by default");
    // DISABLE on the sidecar's app port: clients must not send mTLS.
    mesh.peer_authentications
        .push(crate::config::model::PeerAuthentication {
            selector: Some(labels(&[("app", "a")])),
            mode: crate::config::model::MtlsMode::Strict,
            port_level: [(8080, crate::config::model::MtlsMode::Disable)].into(),
            origin: origin("PeerAuthentication", "a"),
        });
    let si = instances(&mesh, &reg);
    assert!(!view(&si, "a").instances.iter().any(|i| i.mtls));
}

/// East-west gateways by network: those with a network port and an
/// endpoint address, on their own network or else this cluster's.
#[test]
fn network_gateways_are_gateways_with_a_network_port_and_an_address() {
    use crate::registry::GatewayNode;
    let gw = |id: &str, network: &str, address: Option<&str>, port: Option<u16>| Proxy {
        id: id.into(),
        service: "istio-eastwestgateway".into(),
        namespace: "istio-system".into(),
        gateway: Some(GatewayNode {
            listen_address: "0.0.0.0".into(),
            endpoint_address: address.map(str::to_string),
            network_port: port,
            ..Default::default()
        }),
        topology: crate::config::model::Topology {
            network: network.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut reg = Registry::new();
    reg.register(gw("w1", "net-west", Some("192.0.2.1"), Some(15443)));
    reg.register(gw("w2", "net-west", Some("192.0.2.2"), Some(15443)));
    reg.register(gw("own", "", Some("192.0.2.9"), Some(25443)));
    reg.register(gw("no-address", "net-west", None, Some(15443)));
    reg.register(gw("ingress", "net-west", Some("192.0.2.3"), None));
    let mut mesh = MeshConfig::default();
    mesh.mesh.multi_cluster.network = "net-east".into();
    let got = instances(&mesh, &reg).network_gateways;
    let list = |net: &str| -> Vec<(String, u16)> {
        got[net]
            .iter()
            .map(|g| (g.address.clone(), g.port))
            .collect()
    };
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        list("net-west"),
        [
            ("192.0.2.1".to_string(), 15443),
            ("192.0.2.2".to_string(), 15443)
        ]
    );
    assert_eq!(list("net-east"), [("192.0.2.9".to_string(), 25443)]);
}

/// With `Sidecar.ingress`, a service port reaches the ingress listener
/// whose number is its `targetPort` (else its number), on that listener's
/// address; a port no listener serves has no instance on that sidecar;
/// a port with its own `tls` takes no mesh mTLS.
#[test]
fn ingress_ports_are_the_endpoint_ports() {
    let text = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api]
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 9080}
  - {number: 443, name: https, protocol: HTTPS, targetPort: 9443}
  - {number: 9000, name: tcp, protocol: TCP}
  - {number: 81, name: http-other, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: api, namespace: default}
spec:
  workloadSelector: {labels: {app: api}}
  ingress:
  - port: {number: 9080, protocol: HTTP}
    defaultEndpoint: 127.0.0.1:8080
  - port: {number: 9443, protocol: HTTPS}
    bind: 127.0.0.9
    defaultEndpoint: 127.0.0.1:8443
    tls: {mode: SIMPLE, credentialName: api-cert}
  - port: {number: 9000, protocol: TCP}
    bind: 0.0.0.0
    defaultEndpoint: 127.0.0.1:5432
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), text).unwrap();
    let mesh = crate::config::load_dir(dir.path()).unwrap();
    let mut reg = Registry::new();
    let mut proxy = crate::translate::fixtures::sidecar("api", "api-1", "v1", 15006);
    proxy.inbound_address = "10.0.0.7".into();
    reg.register(proxy);
    let view = &instances(&mesh, &reg).services[&Host::canonical("api", "default")];
    let got: Vec<(u16, &str, u16, bool)> = (view.instances.iter())
        .map(|i| (i.service_port, i.address.as_str(), i.port, i.mtls))
        .collect();
    assert_eq!(
        got,
        [
            (80, "10.0.0.7", 9080, true),
            (443, "127.0.0.9", 9443, false),
            (9000, "10.0.0.7", 9000, true),
        ]
    );
}
