use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    HttpConnectionManager,
};
use prost::Message;

use super::*;
use crate::config::model::MeshConfig;
use crate::registry::instances;
use crate::translate::fixtures::*;

fn hcm(l: &Listener) -> HttpConnectionManager {
    match &l.filter_chains[0].filters[0].config_type {
        Some(ConfigType::TypedConfig(any)) => {
            assert_eq!(any.type_url, HttpConnectionManager::type_url());
            HttpConnectionManager::decode(any.value.as_slice()).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

fn resources() -> ProxyResources {
    let mesh = canary_mesh();
    let si = instances(&mesh, &two_versions(&["payment-service", "frontend"]));
    let shared = shared(&mesh, &si);
    for_proxy(
        &shared,
        &sidecar("frontend", "frontend-v1", "v1", 16000),
        &ProxySecurity::default(),
    )
}

#[test]
fn proxy_gets_listeners_and_inbound_cluster() {
    let r = resources();
    let names: Vec<&str> = r.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["inbound", "outbound"]);
    let inbound = hcm(&r.listeners[0]);
    assert_eq!(inbound.codec_type, CodecType::Auto as i32);
    match inbound.route_specifier {
        Some(RouteSpecifier::RouteConfig(rc)) => {
            assert_eq!(rc.virtual_hosts[0].domains, vec!["*"]);
        }
        other => panic!("{other:?}"),
    }
    let outbound = hcm(&r.listeners[1]);
    match outbound.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => assert_eq!(rds.route_config_name, "outbound"),
        other => panic!("{other:?}"),
    }
    let filters: Vec<&str> = outbound
        .http_filters
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    // ALLOW_ANY (the default) forwards unknown hosts: the dynamic forward
    // proxy filter resolves them.
    assert_eq!(
        filters,
        vec![
            FAULT_FILTER,
            super::CORS_FILTER,
            "envoy.filters.http.dynamic_forward_proxy",
            "envoy.filters.http.router"
        ]
    );
    assert!(r.clusters.iter().any(|c| c.name == "inbound|8080||"));
    assert_eq!(r.routes.len(), 1);
}

#[test]
fn packed_resources_are_sorted_and_typed() {
    let packed = resources().packed();
    let keys: Vec<(String, String)> = packed
        .iter()
        .map(|p| (p.type_url.clone(), p.name.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(packed.iter().all(|p| p.type_url == p.resource.type_url));
    // Every EDS cluster has its assignment.
    let clas: Vec<&str> = packed
        .iter()
        .filter(|p| p.type_url.ends_with("ClusterLoadAssignment"))
        .map(|p| p.name.as_str())
        .collect();
    assert!(clas.contains(&"outbound|80|canary|payment-service.default.svc.cluster.local"));
}

#[test]
fn every_resource_renders_as_json() {
    for p in resources().packed() {
        crate::envoy_json::to_json(&p.resource).unwrap();
    }
}

#[test]
fn inbound_cluster_speaks_h2_for_grpc_services() {
    use crate::config::model::Protocol;
    let svc = service("grpc-api", vec![port(9090, "grpc", Protocol::Grpc)], vec![]);
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
    let proxy = sidecar("grpc-api", "grpc-api-v1", "v1", 16000);
    let mut reg = crate::registry::Registry::new();
    reg.register(proxy.clone());
    let r = for_proxy(
        &shared(&mesh, &instances(&mesh, &reg)),
        &proxy,
        &ProxySecurity::default(),
    );
    let inbound = r
        .clusters
        .iter()
        .find(|c| c.name == "inbound|8080||")
        .unwrap();
    assert_eq!(inbound.typed_extension_protocol_options.len(), 1);
    let plain = resources();
    let inbound = plain
        .clusters
        .iter()
        .find(|c| c.name == "inbound|8080||")
        .unwrap();
    assert!(
        inbound.typed_extension_protocol_options.is_empty(),
        "HTTP/1 app"
    );
}

#[test]
fn listeners_bind_where_the_proxy_says() {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    let mut proxy = sidecar("frontend", "frontend-v1", "v1", 16000);
    proxy.inbound_address = "127.0.0.7".into();
    proxy.outbound_port = 15555;
    let r = for_proxy(&Shared::default(), &proxy, &ProxySecurity::default());
    let bound: Vec<(String, u32)> = r
        .listeners
        .iter()
        .map(|l| match &l.address.as_ref().unwrap().address {
            Some(address::Address::SocketAddress(sa)) => match sa.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(p)) => (sa.address.clone(), p),
                _ => panic!(),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        bound,
        vec![
            ("127.0.0.7".to_string(), 16000),
            ("127.0.0.1".to_string(), 15555)
        ]
    );
}

#[test]
fn no_domain_is_claimed_twice() {
    let mut reg = two_versions(&["a", "b", "payment-service"]);
    let mut other = sidecar("a", "a-other", "v1", 17000);
    other.namespace = "other".into();
    reg.register(other);
    let mesh = canary_mesh();
    let s = shared(&mesh, &instances(&mesh, &reg));
    let mut all: Vec<&String> = s.routes[0]
        .virtual_hosts
        .iter()
        .flat_map(|v| &v.domains)
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
}

#[test]
fn certificates_become_the_proxys_secrets_and_never_its_debug_output() {
    let mesh = canary_mesh();
    let reg = two_versions(&["payment-service"]);
    let proxy = sidecar("frontend", "frontend-v1", "v1", 16100);
    let certs = WorkloadCerts {
        cert_chain_pem: "CHAIN".into(),
        key_pem: "PRIVATE-KEY".into(),
        trust_bundle_pem: "BUNDLE".into(),
    };
    let security = ProxySecurity {
        mtls: true,
        certs: Some(std::sync::Arc::new(certs)),
    };
    let r = for_proxy(&shared(&mesh, &instances(&mesh, &reg)), &proxy, &security);
    let names: Vec<&str> = r.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [WORKLOAD_SECRET, ROOT_CA_SECRET]);
    assert!(r.packed().iter().any(|p| p.name == ROOT_CA_SECRET));
    assert!(!format!("{r:?}").contains("PRIVATE-KEY"));
}

#[test]
fn without_mesh_tls_leaves_plain_clusters() {
    let mesh = canary_mesh();
    let mut s = shared(
        &mesh,
        &instances(&mesh, &two_versions(&["payment-service"])),
    );
    assert!(s
        .clusters
        .iter()
        .any(|c| !c.transport_socket_matches.is_empty()));
    s.without_mesh_tls();
    for c in &s.clusters {
        assert!(c.transport_socket_matches.is_empty() && c.transport_socket.is_none());
    }
}

#[test]
fn shared_from_reuses_what_a_change_did_not_touch_and_equals_a_fresh_build() {
    use crate::registry::instances;
    use crate::translate::fixtures::*;
    let mesh = canary_mesh();
    let registry = two_versions(&["payment-service", "frontend", "ledger"]);
    let first = super::shared(&mesh, &instances(&mesh, &registry));
    // A sidecar of one service leaves: only that service is re-translated,
    // the routes (no route input changed) are reused, and the result is
    // what a fresh build gives.
    let mut fewer = registry.clone();
    let gone = fewer
        .sidecars()
        .keys()
        .find(|id| id.contains("ledger"))
        .cloned()
        .unwrap();
    fewer.deregister(&gone);
    let si = instances(&mesh, &fewer);
    let next = super::shared_from(&mesh, &si, Some(&first));
    assert_eq!(next, super::shared(&mesh, &si));
    let same = |host: &str| {
        let h = crate::config::model::Host(host.to_string());
        std::sync::Arc::ptr_eq(&first.per_service[&h], &next.per_service[&h])
    };
    assert!(same("payment-service.default.svc.cluster.local"));
    assert!(!same("ledger.default.svc.cluster.local"));
}
