//! `tcp`/`tls` rule selection and the `tcp_proxy` they become.

use envoy_types::pb::envoy::config::listener::v3::{filter, FilterChain};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier, TcpProxy,
};
use prost::Message;

use super::*;
use crate::config::model::{Labels, Protocol, VirtualService};
use crate::translate::fixtures::{host, labels, port, vs};

fn dest(name: &str, subset: Option<&str>, weight: u32) -> WeightedDestination {
    WeightedDestination {
        destination: Destination {
            host: host(name),
            subset: subset.map(String::from),
            port: None,
        },
        weight,
        headers: Default::default(),
    }
}

fn rule(matches: Vec<L4Match>, route: Vec<WeightedDestination>) -> L4Route {
    L4Route { matches, route }
}

fn ports() -> PortsByHost {
    [
        (host("echo"), vec![port(9000, "tcp", Protocol::Tcp)]),
        (
            host("db"),
            vec![
                port(5432, "tcp", Protocol::Tcp),
                port(6000, "tcp2", Protocol::Tcp),
            ],
        ),
    ]
    .into()
}

/// The `tcp_proxy` of a chain and its server names.
fn proxy_of(c: &FilterChain) -> (Vec<String>, ClusterSpecifier) {
    let Some(filter::ConfigType::TypedConfig(any)) = &c.filters[0].config_type else {
        panic!("no typed config")
    };
    let p = TcpProxy::decode(any.value.as_slice()).unwrap();
    let names = (c.filter_chain_match.as_ref()).map_or(Vec::new(), |m| m.server_names.clone());
    (names, p.cluster_specifier.unwrap())
}

fn sidecar_place(lbls: &Labels) -> Place<'_> {
    Place {
        port: 9000,
        labels: lbls,
        namespace: "default",
        gateway: None,
    }
}

#[test]
fn the_first_tcp_rule_that_applies_wins_and_weights_split() {
    let mut v: VirtualService = vs("echo", Vec::new());
    let other_port = L4Match {
        port: Some(9999),
        ..Default::default()
    };
    let for_v2_clients = L4Match {
        source_labels: labels(&[("version", "v2")]),
        ..Default::default()
    };
    v.tcp = vec![
        rule(vec![other_port], vec![dest("echo", Some("never"), 100)]),
        rule(vec![for_v2_clients], vec![dest("echo", Some("v2"), 100)]),
        rule(
            Vec::new(),
            vec![
                dest("echo", Some("v1"), 80),
                dest("echo", Some("v2"), 20),
                dest("echo", None, 0),
            ],
        ),
    ];
    let v1 = labels(&[("version", "v1")]);
    let got = chains(&[&v], &sidecar_place(&v1), false, &ports());
    let [c] = got.as_slice() else {
        panic!("{got:?}")
    };
    let (names, spec) = proxy_of(c);
    assert!(names.is_empty());
    let ClusterSpecifier::WeightedClusters(w) = spec else {
        panic!("{spec:?}")
    };
    let got: Vec<_> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    // The weight-0 destination is left out: Envoy requires weights >= 1.
    assert_eq!(
        got,
        [
            ("outbound|9000|v1|echo.default.svc.cluster.local", 80),
            ("outbound|9000|v2|echo.default.svc.cluster.local", 20)
        ]
    );

    let v2 = labels(&[("version", "v2")]);
    let got = chains(&[&v], &sidecar_place(&v2), false, &ports());
    assert_eq!(
        proxy_of(&got[0]).1,
        ClusterSpecifier::Cluster("outbound|9000|v2|echo.default.svc.cluster.local".into())
    );
}

#[test]
fn tls_rules_become_sni_chains_a_name_going_to_the_first() {
    let mut v = vs("echo", Vec::new());
    let sni = |names: &[&str]| L4Match {
        sni_hosts: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    };
    v.tls = vec![
        rule(
            vec![sni(&["a.example.com"])],
            vec![dest("echo", Some("a"), 100)],
        ),
        rule(
            vec![sni(&["a.example.com", "b.example.com"])],
            vec![dest("echo", Some("b"), 100)],
        ),
    ];
    v.tcp = vec![rule(Vec::new(), vec![dest("echo", None, 100)])];
    let none = Labels::new();
    let got: Vec<_> = chains(&[&v], &sidecar_place(&none), true, &ports())
        .iter()
        .map(proxy_of)
        .collect();
    let cluster = |s: &str| {
        ClusterSpecifier::Cluster(format!("outbound|9000|{s}|echo.default.svc.cluster.local"))
    };
    assert_eq!(
        got,
        [
            (vec!["a.example.com".to_string()], cluster("a")),
            (vec!["b.example.com".to_string()], cluster("b")),
            (Vec::new(), cluster("")),
        ]
    );
    // Without SNI (a TCP port) the tls rules do not apply.
    assert_eq!(
        chains(&[&v], &sidecar_place(&none), false, &ports()).len(),
        1
    );
}

#[test]
fn gateways_decide_where_a_rule_applies() {
    let mut v = vs("echo", Vec::new());
    v.mesh = false;
    v.gateways = vec!["default/edge".into()];
    v.tcp = vec![rule(Vec::new(), vec![dest("echo", None, 100)])];
    let none = Labels::new();
    let at = |gateway| Place {
        port: 31400,
        labels: &none,
        namespace: "default",
        gateway,
    };
    assert!(chains(&[&v], &at(None), false, &ports()).is_empty());
    assert_eq!(
        chains(&[&v], &at(Some("default/edge")), false, &ports()).len(),
        1
    );
    assert!(chains(&[&v], &at(Some("default/other")), false, &ports()).is_empty());
    // A match naming `mesh` applies on sidecars, whatever the VirtualService's own.
    v.tcp[0].matches = vec![L4Match {
        gateways: Some(vec!["mesh".into()]),
        ..Default::default()
    }];
    assert_eq!(chains(&[&v], &at(None), false, &ports()).len(), 1);
    assert!(chains(&[&v], &at(Some("default/edge")), false, &ports()).is_empty());
}

#[test]
fn destination_ports_resolve_like_istio() {
    let d = |name: &str, port: Option<u16>| Destination {
        host: host(name),
        subset: None,
        port,
    };
    let p = ports();
    assert_eq!(
        cluster_for(&d("echo", None), 1, &p),
        "outbound|9000||echo.default.svc.cluster.local"
    );
    assert_eq!(
        cluster_for(&d("db", None), 6000, &p),
        "outbound|6000||db.default.svc.cluster.local"
    );
    assert_eq!(
        cluster_for(&d("db", None), 1, &p),
        "outbound|5432||db.default.svc.cluster.local"
    );
    assert_eq!(
        cluster_for(&d("db", Some(7)), 1, &p),
        "outbound|7||db.default.svc.cluster.local"
    );
}
