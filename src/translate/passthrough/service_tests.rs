//! Services that forward to the host a request names (resolution NONE,
//! wildcard DNS hosts), `addresses`, `exportTo` and `egressProxy`.

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{route, route_action, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;

use super::*;
use crate::config::model::*;
use crate::registry::{instances, Registry};
use crate::translate::fixtures::*;
use crate::translate::{for_proxy, shared, ProxyResources, ProxySecurity};

fn external(h: &str, p: ServicePort, resolution: Resolution) -> Service {
    let mut s = service("x", vec![p], Vec::new());
    s.host = Host(h.into());
    s.resolution = resolution;
    s.location = Location::MeshExternal;
    s
}

fn add(mesh: &mut MeshConfig, s: Service) {
    std::sync::Arc::make_mut(&mut mesh.services).insert(s.host.clone(), s);
}

fn resources(mesh: &MeshConfig) -> ProxyResources {
    let si = instances(mesh, &Registry::new());
    let proxy = sidecar("client", "client-v1", "v1", 16000);
    for_proxy(&shared(mesh, &si), &proxy, &ProxySecurity::default())
}

fn cluster<'a>(r: &'a ProxyResources, name: &str) -> Option<&'a Cluster> {
    r.clusters.iter().find(|c| c.name == name)
}

fn is_dfp(c: &Cluster) -> bool {
    matches!(&c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::ClusterType(t)) if t.name == DFP_CLUSTER_TYPE)
        && c.lb_policy == cluster::LbPolicy::ClusterProvided as i32
        && c.load_assignment.is_none()
        && c.eds_cluster_config.is_none()
}

fn routes(r: &ProxyResources) -> &RouteConfiguration {
    r.routes.iter().find(|r| r.name == "outbound").unwrap()
}

fn domains(r: &ProxyResources, vhost: &str) -> Vec<String> {
    let vh = routes(r).virtual_hosts.iter().find(|v| v.name == vhost);
    vh.map(|v| v.domains.clone()).unwrap_or_default()
}

fn registry_only() -> MeshConfig {
    let mut mesh = MeshConfig::default();
    mesh.mesh.outbound_traffic_policy = OutboundTrafficPolicy::RegistryOnly;
    mesh
}

#[test]
fn none_and_wildcard_dns_hosts_are_dynamic_forward_proxies() {
    let mut mesh = registry_only();
    let http = port(80, "http", Protocol::Http);
    add(
        &mut mesh,
        external("api.example.com", http.clone(), Resolution::None),
    );
    add(
        &mut mesh,
        external("*.example.org", http.clone(), Resolution::Dns),
    );
    let mut fixed = external("*.example.net", http, Resolution::Dns);
    fixed.endpoints = vec![endpoint("egress.example.net", &[])];
    add(&mut mesh, fixed);
    let r = resources(&mesh);
    for name in ["outbound|80||api.example.com", "outbound|80||*.example.org"] {
        assert!(cluster(&r, name).is_some_and(is_dfp), "{name}");
    }
    // A wildcard with an endpoint resolves that endpoint.
    let net = cluster(&r, "outbound|80||*.example.net").unwrap();
    assert!(!is_dfp(net));
    let dns = cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::StrictDns as i32);
    assert_eq!(net.cluster_discovery_type, Some(dns));
    // Under REGISTRY_ONLY the filter is there for these services, and
    // the passthrough cluster is not.
    let l: &Listener = r.listeners.iter().find(|l| l.name == "outbound").unwrap();
    let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!("{l:?}")
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    assert!(hcm.http_filters.iter().any(|f| f.name == DFP_FILTER));
    assert!(cluster(&r, PASSTHROUGH_CLUSTER).is_none());
    assert_eq!(
        domains(&r, "*.example.org:80"),
        ["*.example.org:80", "*.example.org"]
    );
}

#[test]
fn addresses_of_http_ports_are_host_names() {
    let mut mesh = MeshConfig::default();
    let mut s = external(
        "api.example.com",
        port(8080, "http", Protocol::Http),
        Resolution::Dns,
    );
    s.addresses = vec![
        Cidr::parse("10.0.0.5").unwrap(),
        Cidr::parse("fd00::5").unwrap(),
    ];
    add(&mut mesh, s);
    let r = resources(&mesh);
    let got = domains(&r, "api.example.com:8080");
    for want in ["10.0.0.5:8080", "10.0.0.5", "[fd00::5]:8080", "[fd00::5]"] {
        assert!(got.iter().any(|d| d == want), "{want} in {got:?}");
    }
}

#[test]
fn a_service_exported_elsewhere_is_out_of_view() {
    let mut mesh = MeshConfig::default();
    let http = port(80, "http", Protocol::Http);
    let mut hidden = external("hidden.example.com", http.clone(), Resolution::None);
    hidden.export_to.namespaces = Some(["other".to_string()].into());
    add(&mut mesh, hidden);
    let mut mine = external("mine.example.com", http, Resolution::None);
    mine.export_to.namespaces = Some(["default".to_string()].into());
    add(&mut mesh, mine);
    let r = resources(&mesh);
    assert!(cluster(&r, "outbound|80||mine.example.com").is_some());
    assert!(cluster(&r, "outbound|80||hidden.example.com").is_none());
    assert!(domains(&r, "hidden.example.com:80").is_empty());
    assert!(!domains(&r, "mine.example.com:80").is_empty());
}

#[test]
fn egress_proxy_takes_unknown_hosts() {
    let mut mesh = MeshConfig::default();
    let gw = service(
        "egress",
        vec![port(8080, "http", Protocol::Http)],
        vec![endpoint("127.0.0.9", &[])],
    );
    add(&mut mesh, gw);
    mesh.sidecars.push(SidecarScope {
        namespace: "default".into(),
        selector: None,
        // The egress proxy is out of this scope: it is kept all the same.
        egress: vec![EgressHost {
            namespace: EgressNamespace::Named("default".into()),
            host: "nothing.example.com".into(),
        }],
        ports: Vec::new(),
        ingress: Vec::new(),
        inbound_pool: None,
        outbound_policy: Some(OutboundTrafficPolicy::AllowAny),
        egress_proxy: Some(Destination {
            host: host("egress"),
            subset: None,
            port: Some(8080),
        }),
        origin: origin("Sidecar", "default"),
    });
    let r = resources(&mesh);
    let egress = "outbound|8080||egress.default.svc.cluster.local";
    assert!(cluster(&r, egress).is_some());
    assert!(r.load_assignments.iter().any(|c| c.cluster_name == egress));
    let last = routes(&r).virtual_hosts.last().unwrap();
    assert_eq!(last.name, "allow_any");
    for rt in &last.routes {
        let Some(route::Action::Route(a)) = &rt.action else {
            panic!("{rt:?}")
        };
        let want = route_action::ClusterSpecifier::Cluster(egress.into());
        assert_eq!(a.cluster_specifier, Some(want));
    }
}
