use super::*;
use crate::config::model::Topology;
use crate::translate::locality::{localize, LocalityCluster, LocalityRule};

fn inst(addr: &str, network: &str, locality: &str) -> Instance {
    Instance {
        address: addr.into(),
        port: 15006,
        service_port: 80,
        labels: [("app".to_string(), "payment".to_string())].into(),
        weight: 1,
        sidecar: true,
        identity: None,
        mtls: true,
        topology: Topology {
            locality: Locality::parse(locality).unwrap(),
            network: network.into(),
            ..Default::default()
        },
    }
}

fn gw(address: &str) -> NetworkGateway {
    NetworkGateway {
        address: address.into(),
        port: 15443,
    }
}

const EAST: &str = "us-east/a";
const WEST: &str = "eu-west/b";

fn client<'a>(topology: &'a Topology, labels: &'a Labels, network: &'a str) -> Client<'a> {
    Client {
        topology,
        labels,
        network,
        via_gateways: true,
    }
}

/// (address, port, weight, locality) of each result, in order.
fn summary(instances: &[Instance]) -> Vec<(String, u16, u32, String)> {
    (instances.iter())
        .map(|i| {
            let loc = i.topology.locality.to_string();
            (i.address.clone(), i.port, i.weight, loc)
        })
        .collect()
}

#[test]
fn own_network_and_no_network_stay_as_they_are() {
    let eps = vec![
        inst("10.0.0.1", "net-east", EAST),
        inst("10.0.0.2", "", WEST),
    ];
    let (topo, labels) = (Topology::default(), Labels::new());
    let gws: NetworkGateways = [("net-west".to_string(), vec![gw("192.0.2.1")])].into();
    let (got, unreachable) = split_horizon(&eps, client(&topo, &labels, "net-east"), &gws);
    assert!(
        matches!(got, Cow::Borrowed(_)),
        "no copy when nothing changes"
    );
    assert_eq!(got.as_ref(), eps.as_slice());
    assert!(unreachable.is_empty());
}

#[test]
fn another_network_goes_through_its_gateway_weighted_and_in_its_locality() {
    let eps = vec![
        inst("10.0.0.1", "net-east", EAST),
        inst("10.1.0.1", "net-west", WEST),
        inst("10.1.0.2", "net-west", WEST),
        inst("10.1.0.3", "net-west", EAST),
    ];
    let (topo, labels) = (Topology::default(), Labels::new());
    let gws: NetworkGateways = [("net-west".to_string(), vec![gw("192.0.2.1")])].into();
    let (got, unreachable) = split_horizon(&eps, client(&topo, &labels, "net-east"), &gws);
    assert!(unreachable.is_empty());
    let want = [
        ("10.0.0.1", 15006, 1, EAST),
        // By network then locality: eu-west before us-east.
        ("192.0.2.1", 15443, 2, WEST),
        ("192.0.2.1", 15443, 1, EAST),
    ];
    let want: Vec<_> = (want.iter())
        .map(|(a, p, w, l)| (a.to_string(), *p, *w, l.to_string()))
        .collect();
    assert_eq!(summary(&got), want);
    // mTLS to the sidecars behind the gateway, with their common labels.
    assert!(got.iter().all(|i| i.mtls && i.labels["app"] == "payment"));
    assert!(got
        .iter()
        .all(|i| i.topology.network != "net-east" || i.address == "10.0.0.1"));
}

#[test]
fn a_network_without_a_gateway_is_left_out_and_reported() {
    let eps = vec![
        inst("10.0.0.1", "net-east", EAST),
        inst("10.1.0.1", "net-west", WEST),
        inst("10.2.0.1", "net-south", WEST),
    ];
    let (topo, labels) = (Topology::default(), Labels::new());
    let gws: NetworkGateways = [("net-west".to_string(), vec![gw("192.0.2.1")])].into();
    let (got, unreachable) = split_horizon(&eps, client(&topo, &labels, "net-east"), &gws);
    let addrs: Vec<&str> = got.iter().map(|i| i.address.as_str()).collect();
    assert_eq!(addrs, ["10.0.0.1", "192.0.2.1"]);
    assert_eq!(unreachable, BTreeSet::from(["net-south".to_string()]));

    // A client on the default network "" dials named networks through
    // their gateways too: net-east has none.
    let (got, unreachable) = split_horizon(&eps, client(&topo, &labels, ""), &gws);
    let addrs: Vec<&str> = got.iter().map(|i| i.address.as_str()).collect();
    assert_eq!(addrs, ["192.0.2.1"]);
    assert_eq!(unreachable.len(), 2, "{unreachable:?}");
}

#[test]
fn plaintext_endpoints_and_gateway_clients_do_not_cross_networks() {
    let mut plain = inst("10.1.0.1", "net-west", WEST);
    plain.mtls = false;
    let eps = vec![plain, inst("10.1.0.2", "net-west", WEST)];
    let (topo, labels) = (Topology::default(), Labels::new());
    let gws: NetworkGateways = [("net-west".to_string(), vec![gw("192.0.2.1")])].into();
    let (got, unreachable) = split_horizon(&eps, client(&topo, &labels, "net-east"), &gws);
    // SNI routing needs the client's TLS: only the mTLS endpoint counts.
    assert_eq!(summary(&got)[0].2, 1);
    assert_eq!(got.len(), 1);
    assert!(unreachable.contains("net-west"));
    let mut gateway = client(&topo, &labels, "net-east");
    gateway.via_gateways = false;
    let (got, _) = split_horizon(&eps, gateway, &gws);
    assert!(
        got.is_empty(),
        "a gateway never forwards to another network's"
    );
}

#[test]
fn several_gateways_share_their_group_and_weights_scale_by_the_lcm() {
    let mut heavy = inst("10.0.0.1", "net-east", EAST);
    heavy.weight = 3;
    let eps = vec![
        heavy,
        inst("10.1.0.1", "net-west", WEST),
        inst("10.1.0.2", "net-west", WEST),
        inst("10.1.0.3", "net-west", WEST),
        inst("10.2.0.1", "net-south", WEST),
    ];
    let gws: NetworkGateways = [
        (
            "net-west".to_string(),
            vec![gw("192.0.2.1"), gw("192.0.2.2")],
        ),
        (
            "net-south".to_string(),
            vec![gw("192.0.2.3"), gw("192.0.2.4"), gw("192.0.2.5")],
        ),
    ]
    .into();
    let (topo, labels) = (Topology::default(), Labels::new());
    let (got, _) = split_horizon(&eps, client(&topo, &labels, "net-east"), &gws);
    let weights: Vec<(&str, u32)> = got.iter().map(|i| (i.address.as_str(), i.weight)).collect();
    // LCM(2, 3) = 6: the local endpoint 3×6; west's 3 endpoints 3×6 over
    // 2 gateways; south's 1 endpoint 1×6 over 3 gateways.
    assert_eq!(
        weights,
        [
            ("10.0.0.1", 18),
            ("192.0.2.3", 2),
            ("192.0.2.4", 2),
            ("192.0.2.5", 2),
            ("192.0.2.1", 9),
            ("192.0.2.2", 9),
        ]
    );
}

#[test]
fn failover_ranks_the_gateway_by_the_remote_locality() {
    let eps = vec![
        inst("10.0.0.1", "net-east", EAST),
        inst("10.1.0.1", "net-west", WEST),
    ];
    let rule = LocalityRule::Failover {
        failover: Vec::new(),
        priority: Vec::new(),
    };
    let lc = LocalityCluster::new("c", Some(rule), eps).unwrap();
    let me = Topology {
        locality: Locality::parse(EAST).unwrap(),
        ..Default::default()
    };
    let gws: NetworkGateways = [("net-west".to_string(), vec![gw("192.0.2.1")])].into();
    let labels = Labels::new();
    let (cla, _) = localize(&lc, client(&me, &labels, "net-east"), &gws);
    let by_priority: Vec<(u32, String)> = (cla.endpoints.iter())
        .map(|l| (l.priority, l.locality.clone().unwrap_or_default().region))
        .collect();
    assert_eq!(by_priority, [(0, "us-east".into()), (1, "eu-west".into())]);
    let tls = cla.endpoints[1].lb_endpoints[0].metadata.is_some();
    assert!(tls, "the gateway endpoint is labelled tlsMode: istio");
}

#[test]
fn a_cluster_varies_by_network_only_with_networked_instances() {
    let plain = vec![inst("10.0.0.1", "", EAST)];
    assert!(LocalityCluster::new("c", None, plain).is_none());
    let networked = vec![inst("10.0.0.1", "net-east", EAST)];
    let lc = LocalityCluster::new("c", None, networked).unwrap();
    let (topo, labels) = (Topology::default(), Labels::new());
    let south: NetworkGateways = [("net-south".to_string(), vec![gw("192.0.2.1")])].into();
    let (cla, unreachable) = localize(&lc, client(&topo, &labels, "net-west"), &south);
    assert!(cla.endpoints.is_empty(), "{cla:?}");
    assert_eq!(unreachable, BTreeSet::from(["net-east".to_string()]));
    // No gateway anywhere: not a multi-network mesh, endpoints as they are.
    let none = NetworkGateways::new();
    let (cla, unreachable) = localize(&lc, client(&topo, &labels, "net-west"), &none);
    assert_eq!(cla.endpoints.len(), 1);
    assert!(unreachable.is_empty());
}
