//! Sidecar egress port listeners: which get built and where they route.

use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::route::v3::route;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier, TcpProxy,
};
use prost::Message;

use crate::config::model::*;
use crate::registry::{instances, Registry};
use crate::translate::fixtures::*;
use crate::translate::{for_proxy, shared, ProxySecurity};

fn mesh(port_hosts: &[&str]) -> MeshConfig {
    let mut mesh = MeshConfig::default();
    for (name, p) in [("echo", 9000), ("db", 9000), ("web", 80)] {
        let protocol = if p == 80 {
            Protocol::Http
        } else {
            Protocol::Tcp
        };
        let svc = service(
            name,
            vec![port(p, "p", protocol)],
            vec![endpoint("10.0.0.1", &[])],
        );
        std::sync::Arc::make_mut(&mut mesh.services).insert(host(name), svc);
    }
    let named = |h: &str| EgressHost {
        namespace: EgressNamespace::Named("default".into()),
        host: h.to_string(),
    };
    mesh.sidecars.push(SidecarScope {
        namespace: "default".into(),
        selector: None,
        egress: vec![named("*")],
        ports: vec![EgressPort {
            number: 9000,
            name: "tcp".into(),
            protocol: EgressProtocol::Tcp,
            bind: "127.0.0.2".into(),
            hosts: port_hosts.iter().map(|h| named(&host(h).0)).collect(),
        }],
        ingress: Vec::new(),
        inbound_pool: None,
        outbound_policy: None,
        egress_proxy: None,
        origin: origin("Sidecar", "default"),
    });
    mesh
}

/// The egress listener's clusters (one chain each), if it exists.
fn egress(mesh: &MeshConfig) -> Option<Vec<ClusterSpecifier>> {
    let si = instances(mesh, &Registry::new());
    let proxy = sidecar("client", "client-v1", "v1", 16000);
    let r = for_proxy(&shared(mesh, &si), &proxy, &ProxySecurity::default());
    let l = r.listeners.iter().find(|l| l.name == "127.0.0.2_9000")?;
    let specs = l
        .filter_chains
        .iter()
        .map(|c| match &c.filters[0].config_type {
            Some(ConfigType::TypedConfig(any)) => {
                let p = TcpProxy::decode(any.value.as_slice()).unwrap();
                p.cluster_specifier.unwrap()
            }
            other => panic!("{other:?}"),
        });
    Some(specs.collect())
}

#[test]
fn one_service_on_the_port_takes_every_connection_without_a_rule() {
    let want = ClusterSpecifier::Cluster("outbound|9000||echo.default.svc.cluster.local".into());
    assert_eq!(egress(&mesh(&["echo"])), Some(vec![want]));
}

#[test]
fn two_services_on_the_port_and_no_rule_give_no_listener() {
    assert_eq!(egress(&mesh(&["echo", "db"])), None);
}

#[test]
fn a_tcp_rule_routes_the_port() {
    let mut m = mesh(&["echo", "db"]);
    let mut v = vs("echo", Vec::new());
    v.tcp = vec![L4Route {
        matches: vec![L4Match {
            port: Some(9000),
            ..Default::default()
        }],
        route: vec![weighted("db", None, 100)],
    }];
    m.virtual_services.insert(host("echo"), Arc::new(v));
    let want = ClusterSpecifier::Cluster("outbound|9000||db.default.svc.cluster.local".into());
    assert_eq!(egress(&m), Some(vec![want]));
}

#[test]
fn a_virtual_service_with_only_tcp_rules_leaves_http_on_the_default_route() {
    let mut m = mesh(&["echo"]);
    let mut v = vs("web", Vec::new());
    v.tcp = vec![L4Route {
        matches: Vec::new(),
        route: vec![weighted("echo", None, 100)],
    }];
    m.virtual_services.insert(host("web"), Arc::new(v));
    let si = instances(&m, &Registry::new());
    let routes = shared(&m, &si).routes;
    let vh = (routes[0].virtual_hosts.iter())
        .find(|v| v.name == "web.default.svc.cluster.local:80")
        .unwrap();
    let Some(route::Action::Route(a)) = &vh.routes[0].action else {
        panic!("{vh:?}")
    };
    assert_eq!(
        format!("{:?}", a.cluster_specifier),
        "Some(Cluster(\"outbound|80||web.default.svc.cluster.local\"))"
    );
}

#[test]
fn only_tcp_and_tls_rules_are_inputs_of_a_proxys_own_listeners() {
    let base = mesh(&["echo"]);
    let build = |m: &MeshConfig| shared(m, &instances(m, &Registry::new()));
    let mut http_only = base.clone();
    http_only
        .virtual_services
        .insert(host("web"), Arc::new(vs("web", Vec::new())));
    assert!(build(&base).same_proxy_inputs(&build(&http_only)));
    let mut tcp = base.clone();
    let mut v = vs("echo", Vec::new());
    v.tcp = vec![L4Route {
        matches: Vec::new(),
        route: vec![weighted("echo", None, 100)],
    }];
    tcp.virtual_services.insert(host("echo"), Arc::new(v));
    assert!(!build(&base).same_proxy_inputs(&build(&tcp)));
}

#[test]
fn services_with_addresses_are_matched_by_destination() {
    let mut m = mesh(&["echo", "db"]);
    let set = |m: &mut MeshConfig, name: &str, a: &str| {
        let svc = std::sync::Arc::make_mut(&mut m.services)
            .get_mut(&host(name))
            .unwrap();
        svc.addresses = vec![Cidr::parse(a).unwrap()];
    };
    set(&mut m, "echo", "127.0.0.10");
    set(&mut m, "db", "10.1.0.0/16");
    let si = instances(&m, &Registry::new());
    let proxy = sidecar("client", "client-v1", "v1", 16000);
    let r = for_proxy(&shared(&m, &si), &proxy, &ProxySecurity::default());
    let l = r
        .listeners
        .iter()
        .find(|l| l.name == "127.0.0.2_9000")
        .unwrap();
    let ranges: Vec<(String, u32)> = (l.filter_chains.iter())
        .flat_map(|c| c.filter_chain_match.as_ref().unwrap().prefix_ranges.clone())
        .map(|r| (r.address_prefix, r.prefix_len.unwrap().value))
        .collect();
    // By host: db first, then echo; no default chain (both have addresses).
    assert_eq!(
        ranges,
        [("10.1.0.0".to_string(), 16), ("127.0.0.10".to_string(), 32)]
    );
    let clusters = egress(&m).unwrap();
    let want = |h: &str| {
        ClusterSpecifier::Cluster(format!("outbound|9000||{h}.default.svc.cluster.local"))
    };
    assert_eq!(clusters, [want("db"), want("echo")]);
}
