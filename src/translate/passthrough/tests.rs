use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{route, route_match, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;

use super::*;
use crate::config::model::{EgressHost, EgressNamespace, MeshConfig, Protocol, SidecarScope};
use crate::registry::instances;
use crate::translate::fixtures::*;
use crate::translate::{for_proxy, shared, ProxyResources, ProxySecurity};

fn resources(mesh: &MeshConfig) -> ProxyResources {
    let si = instances(mesh, &two_versions(&["payment-service", "frontend"]));
    let proxy = sidecar("frontend", "frontend-v1", "v1", 16000);
    for_proxy(&shared(mesh, &si), &proxy, &ProxySecurity::default())
}

fn outbound_hcm(r: &ProxyResources) -> HttpConnectionManager {
    let l: &Listener = r.listeners.iter().find(|l| l.name == "outbound").unwrap();
    match &l.filter_chains[0].filters[0].config_type {
        Some(ConfigType::TypedConfig(any)) => {
            HttpConnectionManager::decode(any.value.as_slice()).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

fn outbound_routes(r: &ProxyResources) -> &RouteConfiguration {
    r.routes.iter().find(|r| r.name == "outbound").unwrap()
}

fn has_passthrough(r: &ProxyResources) -> bool {
    r.clusters.iter().any(|c| c.name == PASSTHROUGH_CLUSTER)
}

fn filters(r: &ProxyResources) -> Vec<String> {
    outbound_hcm(r)
        .http_filters
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

/// A namespace-wide Sidecar in `default` with only a policy.
fn policy_sidecar(policy: OutboundTrafficPolicy) -> SidecarScope {
    SidecarScope {
        namespace: "default".into(),
        selector: None,
        egress: vec![EgressHost {
            namespace: EgressNamespace::Any,
            host: "*".into(),
        }],
        ports: Vec::new(),
        ingress: Vec::new(),
        inbound_pool: None,
        outbound_policy: Some(policy),
        egress_proxy: None,
        origin: origin("Sidecar", "default"),
    }
}

#[test]
fn allow_any_by_default_forwards_unknown_hosts() {
    let r = resources(&canary_mesh());
    assert!(has_passthrough(&r));
    assert_eq!(
        filters(&r),
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            DFP_FILTER,
            "envoy.filters.http.router"
        ]
    );
    let hcm = outbound_hcm(&r);
    assert_eq!(hcm.upgrade_configs[0].upgrade_type, "CONNECT");
    let last = outbound_routes(&r).virtual_hosts.last().unwrap().clone();
    assert_eq!(
        (last.name.as_str(), last.domains),
        ("allow_any", vec!["*".into()])
    );
    let clusters: Vec<_> = last.routes.iter().map(route_cluster).collect();
    let want = Some(PASSTHROUGH_CLUSTER.to_string());
    assert_eq!(clusters, [want.clone(), want]);
    assert!(is_connect(&last.routes[0]));
}

#[test]
fn registry_only_refuses_with_502_and_has_no_forward_proxy() {
    let mut mesh = canary_mesh();
    mesh.sidecars
        .push(policy_sidecar(OutboundTrafficPolicy::RegistryOnly));
    let r = resources(&mesh);
    assert!(!has_passthrough(&r));
    assert!(!filters(&r).iter().any(|f| f == DFP_FILTER));
    // CONNECT to mesh hosts still works under REGISTRY_ONLY.
    let upgrades = &outbound_hcm(&r).upgrade_configs;
    assert!(upgrades.iter().any(|u| u.upgrade_type == "CONNECT"));
    let last = outbound_routes(&r).virtual_hosts.last().unwrap().clone();
    assert_eq!(last.name, "block_all");
    for route in &last.routes {
        match &route.action {
            Some(route::Action::DirectResponse(d)) => assert_eq!(d.status, 502),
            other => panic!("{other:?}"),
        }
    }
    assert!(is_connect(&last.routes[0]));
}

#[test]
fn a_sidecar_policy_overrides_the_mesh_default() {
    let mut mesh = canary_mesh();
    mesh.mesh.outbound_traffic_policy = OutboundTrafficPolicy::RegistryOnly;
    assert!(!has_passthrough(&resources(&mesh)));
    mesh.sidecars
        .push(policy_sidecar(OutboundTrafficPolicy::AllowAny));
    assert!(has_passthrough(&resources(&mesh)));
    // A Sidecar without a policy leaves the mesh's.
    mesh.sidecars[0].outbound_policy = None;
    let r = resources(&mesh);
    assert!(!has_passthrough(&r));
    let last = outbound_routes(&r).virtual_hosts.last().unwrap().clone();
    assert_eq!(last.name, "block_all");
}

#[test]
fn every_service_port_tunnels_connect_to_its_cluster() {
    let mut mesh = canary_mesh();
    let tcp = service(
        "db",
        vec![port(5432, "tcp", Protocol::Tcp)],
        vec![endpoint("127.0.0.1", &[])],
    );
    std::sync::Arc::make_mut(&mut mesh.services).insert(host("db"), tcp);
    let si = instances(&mesh, &two_versions(&["payment-service", "frontend"]));
    let proxy = sidecar("frontend", "frontend-v1", "v1", 16000);
    let r = for_proxy(&shared(&mesh, &si), &proxy, &ProxySecurity::default());
    let routes = outbound_routes(&r);
    for vh in routes.virtual_hosts.iter().filter(|v| v.name.contains(':')) {
        let (host, port) = vh.name.rsplit_once(':').unwrap();
        let want = format!("outbound|{port}||{host}");
        assert!(is_connect(&vh.routes[0]), "{}", vh.name);
        assert_eq!(route_cluster(&vh.routes[0]), Some(want), "{}", vh.name);
    }
    let db = "db.default.svc.cluster.local";
    let vh = (routes.virtual_hosts.iter())
        .find(|v| v.name == format!("{db}:5432"))
        .expect("a virtual host for the TCP port");
    assert_eq!(vh.routes.len(), 1, "only CONNECT on a TCP port");
    assert!(vh.domains.contains(&"db:5432".to_string()));
    assert!(
        vh.domains.iter().all(|d| d.ends_with(":5432")),
        "{:?}",
        vh.domains
    );
}

fn is_connect(r: &Route) -> bool {
    matches!(
        r.r#match.as_ref().and_then(|m| m.path_specifier.as_ref()),
        Some(route_match::PathSpecifier::ConnectMatcher(_))
    )
}

fn route_cluster(r: &Route) -> Option<String> {
    match &r.action {
        Some(route::Action::Route(a)) => match &a.cluster_specifier {
            Some(route_action::ClusterSpecifier::Cluster(c)) => Some(c.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn a_dynamic_cluster_with_http_options_validates_sni_and_san_as_envoy_requires() {
    let key = HttpProtocolOptions::full_name();
    let options = HttpProtocolOptions {
        common_http_protocol_options: Some(Default::default()),
        ..Default::default()
    };
    let mut c = Cluster {
        name: "outbound|80||*.cdn.example.com".into(),
        typed_extension_protocol_options: [(key.clone(), pack_any(options))].into(),
        ..Default::default()
    };
    make_dynamic(&mut c);
    let written =
        HttpProtocolOptions::decode(c.typed_extension_protocol_options[&key].value.as_slice())
            .unwrap();
    let upstream = written.upstream_http_protocol_options.unwrap();
    assert!(upstream.auto_sni && upstream.auto_san_validation);
    assert!(
        written.common_http_protocol_options.is_some(),
        "the rule's options stay"
    );
    // Plaintext without options: nothing to add.
    let mut plain = Cluster::default();
    make_dynamic(&mut plain);
    assert!(plain.typed_extension_protocol_options.is_empty());
}
