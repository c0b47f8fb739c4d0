use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{route, route_action::ClusterSpecifier};

use super::*;
use crate::config::model::Protocol;
use crate::registry::instances;
use crate::translate::fixtures::*;

fn config(mesh: &MeshConfig, reg: &crate::registry::Registry) -> RouteConfiguration {
    let si = instances(mesh, reg);
    outbound(Ctx {
        mesh,
        services: &si,
        overrides: None,
    })
}

fn vhost<'a>(rc: &'a RouteConfiguration, name: &str) -> &'a VirtualHost {
    rc.virtual_hosts.iter().find(|v| v.name == name).unwrap()
}

fn action(r: &Route) -> &RouteAction {
    match &r.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn domains_of_a_cluster_local_service() {
    let rc = config(&MeshConfig::default(), &two_versions(&["ledger"]));
    assert_eq!(rc.name, "outbound");
    let vh = vhost(&rc, "ledger.default.svc.cluster.local:80");
    assert_eq!(
        vh.domains,
        vec![
            "ledger.default.svc.cluster.local:80",
            "ledger.default.svc.cluster.local",
            "ledger.default.svc:80",
            "ledger.default.svc",
            "ledger.default:80",
            "ledger.default",
            "ledger:80",
            "ledger",
        ]
    );
}

#[test]
fn default_route_has_istio_retries_and_no_timeout() {
    let rc = config(&MeshConfig::default(), &two_versions(&["ledger"]));
    // routes[0] tunnels CONNECT; the default route follows.
    let r = &vhost(&rc, "ledger.default.svc.cluster.local:80").routes[1];
    let a = action(r);
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|80||ledger.default.svc.cluster.local".into()
        ))
    );
    assert_eq!(a.timeout.unwrap().seconds, 0);
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries.unwrap().value, 2);
    assert_eq!(retry.retry_on, crate::translate::DEFAULT_RETRY_ON);
}

#[test]
fn multi_port_service_gets_a_vhost_per_port() {
    let svc = service(
        "api",
        vec![
            port(8080, "http", Protocol::Http),
            port(9090, "grpc", Protocol::Grpc),
            port(5432, "db", Protocol::Tcp),
        ],
        vec![endpoint("10.0.0.1", &[])],
    );
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
    let rc = config(&mesh, &Default::default());
    assert_eq!(rc.virtual_hosts.len(), 3);
    let tcp = vhost(&rc, "api.default.svc.cluster.local:5432");
    assert_eq!(tcp.routes.len(), 1, "TCP ports only take CONNECT");
    assert!(!tcp.domains.contains(&"api".to_string()));
    let http = vhost(&rc, "api.default.svc.cluster.local:8080");
    assert!(
        http.domains.contains(&"api".to_string()),
        "first HTTP port takes bare names"
    );
    assert!(http.domains.contains(&"api:8080".to_string()));
    let grpc = vhost(&rc, "api.default.svc.cluster.local:9090");
    assert!(grpc.domains.contains(&"api:9090".to_string()));
    assert!(!grpc.domains.contains(&"api".to_string()));
    let a = action(&grpc.routes[1]);
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|9090||api.default.svc.cluster.local".into()
        ))
    );
}

#[test]
fn short_names_are_not_duplicated_across_namespaces() {
    let mut other = sidecar("ledger", "ledger-other", "v1", 17000);
    other.namespace = "other".into();
    let mut reg = two_versions(&["ledger"]);
    reg.register(other);
    let rc = config(&MeshConfig::default(), &reg);
    let dflt = vhost(&rc, "ledger.default.svc.cluster.local:80");
    let oth = vhost(&rc, "ledger.other.svc.cluster.local:80");
    assert!(dflt.domains.contains(&"ledger".to_string()));
    assert!(!oth.domains.contains(&"ledger".to_string()));
    assert!(oth.domains.contains(&"ledger.other".to_string()));
}

#[test]
fn virtual_service_rules_replace_the_default_route() {
    let rc = config(&canary_mesh(), &two_versions(&["payment-service"]));
    let vh = vhost(&rc, "payment-service.default.svc.cluster.local:80");
    assert_eq!(
        vh.routes.len(),
        2,
        "CONNECT, then the VirtualService's rule"
    );
    let a = action(&vh.routes[1]);
    match &a.cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let got: Vec<(&str, u32)> = w
                .clusters
                .iter()
                .map(|c| (c.name.as_str(), c.weight.unwrap().value))
                .collect();
            assert_eq!(
                got,
                vec![
                    (
                        "outbound|80|stable|payment-service.default.svc.cluster.local",
                        90
                    ),
                    (
                        "outbound|80|canary|payment-service.default.svc.cluster.local",
                        10
                    ),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries.unwrap().value, 3);
    assert_eq!(retry.retry_on, "5xx,reset,connect-failure");
    assert_eq!(retry.per_try_timeout.unwrap().seconds, 2);
}

#[test]
fn destination_port_resolution() {
    let svc = service(
        "api",
        vec![
            port(8080, "http", Protocol::Http),
            port(9090, "grpc", Protocol::Grpc),
        ],
        vec![],
    );
    let mut mesh = MeshConfig::default();
    std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
    let si = instances(&mesh, &Default::default());
    let ctx = Ctx {
        mesh: &mesh,
        services: &si,
        overrides: None,
    };
    let mut d = dest("api", None);
    assert_eq!(ctx.dest_port(&d, 9090), 9090, "the routed port");
    assert_eq!(
        ctx.dest_port(&d, 80),
        8080,
        "first port when the routed one is absent"
    );
    d.port = Some(8080);
    assert_eq!(ctx.dest_port(&d, 9090), 8080, "explicit");
    let single = dest("nosuch", None);
    assert_eq!(ctx.dest_port(&single, 80), 80);
}

/// The outbound routes of `mesh`, fresh and from `last`'s translation,
/// which must be equal; returns the fresh one with its inputs for the
/// next step.
fn reused_equals_fresh(
    mesh: &MeshConfig,
    last: Option<&(MeshConfig, SharedRoutes, SourceRoutes)>,
) -> (SharedRoutes, SourceRoutes) {
    let si = instances(mesh, &Default::default());
    let ctx = Ctx {
        mesh,
        services: &si,
        overrides: None,
    };
    let fresh = outbound_with_sources(ctx, None);
    let Some((last_mesh, config, sources)) = last else {
        return fresh;
    };
    let last_si = instances(last_mesh, &Default::default());
    let service_ports = (last_si.services.values())
        .map(|v| (v.host.clone(), v.ports.clone()))
        .collect();
    let service_addresses = (last_mesh.services.values())
        .filter(|s| !s.addresses.is_empty())
        .map(|s| (s.host.clone(), s.addresses.clone()))
        .collect();
    let previous = Previous {
        config,
        sources,
        virtual_services: &last_mesh.virtual_services,
        destination_rules: &last_mesh.destination_rules,
        service_ports: &service_ports,
        service_addresses: &service_addresses,
    };
    let reused = outbound_with_sources(ctx, Some(previous));
    assert_eq!(reused, fresh);
    // What did not change is the last translation's, not a copy.
    let same = mesh.services == last_mesh.services
        && mesh.virtual_services == last_mesh.virtual_services
        && mesh.destination_rules == last_mesh.destination_rules;
    if same {
        let (now, then) = (&reused.0.virtual_hosts, &config.virtual_hosts);
        assert!(now.iter().zip(then).all(|(a, b)| Arc::ptr_eq(a, b)));
    }
    reused
}

#[test]
fn virtual_hosts_taken_from_the_last_translation_equal_fresh_ones() {
    let http80 = || vec![port(80, "http", Protocol::Http)];
    let mut mesh = canary_mesh();
    for name in ["payment-service", "ledger", "orders"] {
        let svc = service(name, http80(), vec![endpoint("10.0.0.1", &[])]);
        std::sync::Arc::make_mut(&mut mesh.services).insert(svc.host.clone(), svc);
    }
    let step = |mesh: &MeshConfig, last: &mut Option<(MeshConfig, SharedRoutes, SourceRoutes)>| {
        let (config, sources) = reused_equals_fresh(mesh, last.as_ref());
        let whole = config.to_config();
        *last = Some((mesh.clone(), config, sources));
        whole
    };
    let mut last = None;
    let first = step(&mesh, &mut last);
    // `ledger` now routes to `payment-service` (no port: its only one).
    let to_payment = rule(crate::config::model::RouteAction::Route(vec![weighted(
        "payment-service",
        None,
        100,
    )]));
    mesh.virtual_services
        .insert(host("ledger"), Arc::new(vs("ledger", vec![to_payment])));
    let routed = step(&mesh, &mut last);
    let ledger = "ledger.default.svc.cluster.local:80";
    assert_ne!(vhost(&first, ledger), vhost(&routed, ledger));
    // A change of the routed-to service alone changes `ledger`'s routes:
    // its cluster follows `payment-service`'s port.
    let payment = host("payment-service");
    let svc = std::sync::Arc::make_mut(&mut mesh.services)
        .get_mut(&payment)
        .unwrap();
    svc.ports = vec![port(8080, "http", Protocol::Http)];
    let moved = step(&mesh, &mut last);
    assert_ne!(vhost(&routed, ledger), vhost(&moved, ledger));
    // So does a consistent hash in its DestinationRule (a hash policy).
    let mut dr = (**mesh.destination_rules.get(&payment).unwrap()).clone();
    let lb = LoadBalancer::ConsistentHash(
        HashKey::Header("x-user".into()),
        crate::config::model::HashAlgorithm::RingHash {
            minimum_ring_size: None,
        },
    );
    dr.traffic_policy.as_mut().unwrap().load_balancer = Some(lb);
    mesh.destination_rules.insert(payment, Arc::new(dr));
    let hashed = step(&mesh, &mut last);
    assert_ne!(vhost(&moved, ledger), vhost(&hashed, ledger));
    // Nothing changed: everything is taken, and still equal.
    step(&mesh, &mut last);
    // A VIP on `orders` adds its domains, though no route changed.
    let orders = std::sync::Arc::make_mut(&mut mesh.services)
        .get_mut(&host("orders"))
        .unwrap();
    orders.addresses = vec![crate::config::model::Cidr {
        addr: "10.9.0.1".parse().unwrap(),
        prefix_len: 32,
    }];
    let vip = step(&mesh, &mut last);
    let with_vip = &vhost(&vip, "orders.default.svc.cluster.local:80").domains;
    assert!(with_vip.iter().any(|d| d == "10.9.0.1"), "{with_vip:?}");
    step(&mesh, &mut last);
    mesh.virtual_services.remove(&host("ledger"));
    step(&mesh, &mut last);
}
