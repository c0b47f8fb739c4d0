use super::*;
use crate::translate::fixtures::labels;

fn loc(text: &str) -> Locality {
    Locality::parse(text).unwrap()
}

fn inst(addr: &str, locality: &str, lbls: &[(&str, &str)]) -> Instance {
    Instance {
        address: addr.into(),
        port: 9000,
        service_port: 80,
        labels: labels(lbls),
        weight: 1,
        sidecar: true,
        identity: None,
        mtls: false,
        topology: Topology {
            locality: loc(locality),
            ..Default::default()
        },
    }
}

fn failover_rule(failover: &[(&str, &str)], priority: &[&str]) -> LocalityRule {
    LocalityRule::Failover {
        failover: (failover.iter())
            .map(|(f, t)| LocalityFailover {
                from: f.to_string(),
                to: t.to_string(),
            })
            .collect(),
        priority: priority.iter().map(|p| p.to_string()).collect(),
    }
}

/// Each endpoint address with its priority, in address order.
fn priorities(cla: &ClusterLoadAssignment) -> Vec<(String, u32)> {
    use envoy_types::pb::envoy::config::core::v3::{address::Address, socket_address};
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
    let mut out: Vec<(String, u32)> = (cla.endpoints.iter())
        .flat_map(|l| l.lb_endpoints.iter().map(move |e| (e, l.priority)))
        .filter_map(|(e, p)| match &e.host_identifier {
            Some(HostIdentifier::Endpoint(ep)) => match ep.address.as_ref()?.address.as_ref()? {
                Address::SocketAddress(sa) => match sa.port_specifier {
                    Some(socket_address::PortSpecifier::PortValue(_)) => {
                        Some((sa.address.clone(), p))
                    }
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn client<'a>(topology: &'a Topology, labels: &'a Labels) -> Client<'a> {
    Client {
        topology,
        labels,
        network: "",
        via_gateways: true,
    }
}

/// [`super::localize`] without gateways (every endpoint on the client's
/// network).
fn localize(lc: &LocalityCluster, client: Client<'_>) -> ClusterLoadAssignment {
    let (cla, unreachable) = super::localize(lc, client, &NetworkGateways::new());
    assert!(unreachable.is_empty());
    cla
}

#[test]
fn default_failover_orders_subzone_zone_region_other() {
    let eps = vec![
        inst("10.0.0.1", "r1/z1/s1", &[]),
        inst("10.0.0.2", "r1/z1/s2", &[]),
        inst("10.0.0.3", "r1/z2", &[]),
        inst("10.0.0.4", "r2/z9", &[]),
    ];
    let lc = LocalityCluster::new("c", Some(failover_rule(&[], &[])), eps).unwrap();
    let me = Topology {
        locality: loc("r1/z1/s1"),
        ..Default::default()
    };
    let cla = localize(&lc, client(&me, &Labels::new()));
    assert_eq!(
        priorities(&cla),
        [
            ("10.0.0.1".into(), 0),
            ("10.0.0.2".into(), 1),
            ("10.0.0.3".into(), 2),
            ("10.0.0.4".into(), 3)
        ]
    );
    // Another client: its own zone first, and no gaps in the priorities.
    let other = Topology {
        locality: loc("r2/z9"),
        ..Default::default()
    };
    let cla = localize(&lc, client(&other, &Labels::new()));
    let got = priorities(&cla);
    assert_eq!(got[3], ("10.0.0.4".into(), 0));
    assert!(got[..3].iter().all(|(_, p)| *p == 1), "{got:?}");
    assert!(cla.endpoints.iter().all(|l| l.locality.is_some()));
}

#[test]
fn failover_moves_other_regions_below_the_target() {
    let f = [("r1", "r3")];
    let f: Vec<LocalityFailover> = f
        .iter()
        .map(|(a, b)| LocalityFailover {
            from: a.to_string(),
            to: b.to_string(),
        })
        .collect();
    assert_eq!(locality_priority(&loc("r1/z1"), &loc("r2/z1"), &f), 4);
    assert_eq!(locality_priority(&loc("r1/z1"), &loc("r3"), &f), 3);
    assert_eq!(locality_priority(&loc("r1/z1"), &loc("r1/z1"), &f), 0);
    assert_eq!(
        locality_priority(&loc("r2/z1"), &loc("r4"), &f),
        3,
        "rule is for r1"
    );
    assert_eq!(locality_priority(&loc("r1/z1"), &loc("r1/z2"), &[]), 2);
    assert_eq!(locality_priority(&loc("r1/z1"), &loc("r2"), &[]), 3);

    let eps = vec![
        inst("10.0.0.1", "r1/z1", &[]),
        inst("10.0.0.2", "r2/z1", &[]),
        inst("10.0.0.3", "r3/z1", &[]),
    ];
    let lc = LocalityCluster::new("c", Some(failover_rule(&[("r1", "r3")], &[])), eps).unwrap();
    let me = Topology {
        locality: loc("r1/z1"),
        ..Default::default()
    };
    let got = priorities(&localize(&lc, client(&me, &Labels::new())));
    let want: Vec<(String, u32)> = vec![
        ("10.0.0.1".into(), 0),
        ("10.0.0.2".into(), 2),
        ("10.0.0.3".into(), 1),
    ];
    assert_eq!(got, want);
}

#[test]
fn failover_priority_counts_leading_matching_labels() {
    let keys: Vec<String> = [
        "topology.istio.io/network",
        "topology.kubernetes.io/region",
        "app",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let me = Topology {
        locality: loc("r1/z1"),
        network: "n1".into(),
        ..Default::default()
    };
    let my_labels = labels(&[("app", "pay")]);
    let c = client(&me, &my_labels);
    let on = |net: &str, region: &str, app: &str| {
        let mut i = inst("10.0.0.1", region, &[("app", app)]);
        i.topology.network = net.into();
        i
    };
    assert_eq!(label_priority(c, &on("n1", "r1", "pay"), &keys), 0);
    assert_eq!(label_priority(c, &on("n1", "r1", "other"), &keys), 1);
    assert_eq!(
        label_priority(c, &on("n1", "r2", "pay"), &keys),
        2,
        "stops at the first mismatch"
    );
    assert_eq!(label_priority(c, &on("n2", "r1", "pay"), &keys), 3);
    // KEY=VALUE compares with the value written, not the client's.
    let pinned = vec!["topology.istio.io/network=n2".to_string()];
    assert_eq!(label_priority(c, &on("n2", "r1", "pay"), &pinned), 0);
    assert_eq!(label_priority(c, &on("n1", "r1", "pay"), &pinned), 1);
    // A label the client lacks matches nothing.
    let bare = Labels::new();
    let c = client(&me, &bare);
    assert_eq!(label_priority(c, &on("n1", "r1", "pay"), &keys), 1);
}

#[test]
fn failover_priority_with_failover_combines_both() {
    let eps = vec![
        inst("10.0.0.1", "r1/z1", &[("tier", "a")]),
        inst("10.0.0.2", "r2/z1", &[("tier", "a")]),
        inst("10.0.0.3", "r1/z1", &[("tier", "b")]),
    ];
    let rule = failover_rule(&[("r1", "r2")], &["tier"]);
    let lc = LocalityCluster::new("c", Some(rule), eps).unwrap();
    let me = Topology {
        locality: loc("r1/z1"),
        ..Default::default()
    };
    let mine = labels(&[("tier", "a")]);
    let got = priorities(&localize(&lc, client(&me, &mine)));
    // Label rank first (5 × 0 or 5 × 1), then locality.
    let want: Vec<(String, u32)> = vec![
        ("10.0.0.1".into(), 0),
        ("10.0.0.2".into(), 1),
        ("10.0.0.3".into(), 2),
    ];
    assert_eq!(got, want);
}

#[test]
fn distribute_sets_locality_weights_for_the_matching_client() {
    let eps = vec![
        inst("10.0.0.1", "r1/z1", &[]),
        inst("10.0.0.2", "r1/z1", &[]),
        inst("10.0.0.3", "r1/z2", &[]),
        inst("10.0.0.4", "r2/z1", &[]),
    ];
    let to: BTreeMap<String, u32> = [("r1/z1".to_string(), 80), ("r1/z2".to_string(), 20)].into();
    let rule = LocalityRule::Distribute(vec![LocalityDistribute {
        from: "r1/*".into(),
        to,
    }]);
    let lc = LocalityCluster::new("c", Some(rule), eps).unwrap();
    let me = Topology {
        locality: loc("r1/z1"),
        ..Default::default()
    };
    let cla = localize(&lc, client(&me, &Labels::new()));
    let weights: Vec<(String, u32)> = (cla.endpoints.iter())
        .map(|l| {
            let name = l
                .locality
                .as_ref()
                .map(|x| format!("{}/{}", x.region, x.zone));
            (
                name.unwrap_or_default(),
                l.load_balancing_weight.as_ref().unwrap().value,
            )
        })
        .collect();
    assert_eq!(
        weights,
        [("r1/z1".into(), 80), ("r1/z2".into(), 20)],
        "r2 gets nothing"
    );

    // A client no `from` matches: every locality by its endpoint weights.
    let other = Topology {
        locality: loc("r2/z1"),
        ..Default::default()
    };
    let cla = localize(&lc, client(&other, &Labels::new()));
    let w: Vec<u32> = (cla.endpoints.iter())
        .map(|l| l.load_balancing_weight.as_ref().unwrap().value)
        .collect();
    assert_eq!(w, [2, 1, 1]);
}

#[test]
fn one_locality_needs_no_per_client_endpoints() {
    let eps = vec![inst("10.0.0.1", "r1", &[]), inst("10.0.0.2", "r1", &[])];
    assert!(LocalityCluster::new("c", Some(failover_rule(&[], &[])), eps.clone()).is_none());
    assert!(LocalityCluster::new("c", Some(failover_rule(&[], &["app"])), eps).is_some());
}

#[test]
fn rule_follows_istio() {
    use crate::config::model::{LocalityLbSetting, OutlierDetection};
    let od = OutlierDetection::default();
    let off = LocalityLbSetting {
        enabled: Some(false),
        ..Default::default()
    };
    let plain = LocalityLbSetting::default();
    let policy =
        |lb: Option<&'static LocalityLbSetting>, od: Option<&'static OutlierDetection>| Policy {
            locality_lb: lb,
            outlier_detection: od,
            ..Default::default()
        };
    let od: &'static OutlierDetection = Box::leak(Box::new(od));
    let off: &'static LocalityLbSetting = Box::leak(Box::new(off));
    let plain: &'static LocalityLbSetting = Box::leak(Box::new(plain));
    assert!(
        rule(&policy(None, None)).is_none(),
        "no outlier detection: no failover"
    );
    assert!(matches!(
        rule(&policy(None, Some(od))),
        Some(LocalityRule::Failover { .. })
    ));
    assert!(rule(&policy(Some(off), Some(od))).is_none());
    assert!(rule(&policy(Some(plain), None)).is_none());
}
