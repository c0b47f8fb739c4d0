//! DestinationRule load balancing, slow start and PROXY protocol: what
//! loads, and one positioned error per rejected case.

use std::time::Duration;

use super::{dr, errors, load};
use crate::config::model::{
    HashAlgorithm, HashKey, Host, LoadBalancer, ProxyProtocolVersion, SimpleLb, Warmup,
};

fn policy(tp: &str) -> String {
    format!("{}  trafficPolicy:\n{tp}", dr("d", "pay"))
}

fn loaded(tp: &str) -> crate::config::model::TrafficPolicy {
    let mesh = load(&[("f.yaml", &policy(tp))]).unwrap();
    let host = Host::canonical("pay", "default");
    mesh.destination_rules[&host]
        .traffic_policy
        .clone()
        .unwrap()
}

#[test]
fn every_consistent_hash_form_loads() {
    let lb =
        |ch: &str| loaded(&format!("    loadBalancer:\n      consistentHash:\n{ch}")).load_balancer;
    let ring = |m| HashAlgorithm::RingHash {
        minimum_ring_size: m,
    };
    assert_eq!(
        lb("        httpHeaderName: X-User\n        ringHash:\n          minimumRingSize: 4096\n"),
        Some(LoadBalancer::ConsistentHash(
            HashKey::Header("x-user".into()),
            ring(Some(4096))
        ))
    );
    assert_eq!(
        lb("        useSourceIp: true\n        maglev:\n          tableSize: 65537\n"),
        Some(LoadBalancer::ConsistentHash(
            HashKey::SourceIp,
            HashAlgorithm::Maglev {
                table_size: Some(65537)
            }
        ))
    );
    assert_eq!(
        lb("        httpQueryParameterName: user\n        minimumRingSize: 2048\n"),
        Some(LoadBalancer::ConsistentHash(
            HashKey::QueryParameter("user".into()),
            ring(Some(2048))
        ))
    );
    let cookie = lb("        httpCookie:\n          name: s\n          path: /\n          ttl: 10s\n          attributes:\n          - name: SameSite\n            value: Strict\n          - name: Secure\n");
    let Some(LoadBalancer::ConsistentHash(
        HashKey::Cookie {
            ttl, attributes, ..
        },
        _,
    )) = cookie
    else {
        panic!("{cookie:?}")
    };
    assert_eq!(ttl, Some(Duration::from_secs(10)));
    assert_eq!(
        (attributes[1].name.as_str(), attributes[1].value.as_str()),
        ("Secure", "")
    );
}

#[test]
fn warmup_loads_with_istio_defaults() {
    let tp = loaded("    loadBalancer:\n      simple: ROUND_ROBIN\n      warmup:\n        duration: 30s\n        aggression: 2\n");
    assert_eq!(
        tp.load_balancer,
        Some(LoadBalancer::Simple(SimpleLb::RoundRobin))
    );
    let want = Warmup {
        duration: Duration::from_secs(30),
        minimum_percent: 10.0,
        aggression: 2.0,
    };
    assert_eq!(tp.warmup, Some(want));
    let old = loaded("    loadBalancer:\n      warmupDurationSecs: 30s\n");
    assert_eq!(old.load_balancer, None);
    assert_eq!(
        old.warmup.map(|w| w.duration),
        Some(Duration::from_secs(30))
    );
}

#[test]
fn proxy_protocol_loads() {
    assert_eq!(
        loaded("    proxyProtocol:\n      version: V2\n").proxy_protocol,
        Some(ProxyProtocolVersion::V2)
    );
    assert_eq!(
        loaded("    proxyProtocol: {}\n").proxy_protocol,
        Some(ProxyProtocolVersion::V1)
    );
}

#[test]
fn consistent_hash_errors_are_positioned() {
    let e = |ch: &str| {
        errors(&policy(&format!(
            "    loadBalancer:\n      consistentHash:\n{ch}"
        )))
    };
    assert_eq!(
        e("        httpHeaderName: x\n        ringHash: {}\n        maglev: {}\n"),
        ["f.yaml:9:7: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.consistentHash: only one of ringHash, maglev or minimumRingSize (deprecated: use ringHash.minimumRingSize) is allowed"]
    );
    assert_eq!(
        e("        httpHeaderName: x\n        maglev:\n          tableSize: 1000\n"),
        ["f.yaml:12:11: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: 1000 must be a prime number no larger than 5000011 (Envoy's rule), e.g. 65537"]
    );
    assert_eq!(
        e("        httpHeaderName: x\n        ringHash:\n          minimumRingSize: 0\n"),
        ["f.yaml:12:11: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize: 0 is not in 1..8388608 (Envoy's largest ring)"]
    );
    assert_eq!(
        e("        httpCookie:\n          name: s\n          attributes:\n          - name: \"Same Site\"\n"),
        [r#"f.yaml:13:13: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[0].name: cookie attribute name "Same Site" must be a non-empty token (letters, digits and !#$%&'*+-.^_`|~)"#]
    );
    assert_eq!(
        e("        httpCookie:\n          name: s\n          attributes:\n          - name: Path\n            value: \"/;x\"\n"),
        [r#"f.yaml:14:13: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[0].value: cookie attribute value "/;x" must not hold `;` or control characters"#]
    );
}

#[test]
fn warmup_errors_are_positioned() {
    let e = |lb: &str| errors(&policy(&format!("    loadBalancer:\n{lb}")));
    assert_eq!(
        e("      simple: RANDOM\n      warmup:\n        duration: 10s\n"),
        ["f.yaml:10:7: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.warmup: warmup needs simple: ROUND_ROBIN or LEAST_REQUEST (Envoy has slow start for these only)"]
    );
    assert_eq!(
        e("      warmup:\n        minimumPercent: 5\n"),
        ["f.yaml:9:7: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.warmup: warmup.duration is required"]
    );
    assert_eq!(
        e("      warmup:\n        duration: 10s\n        aggression: 0.5\n        minimumPercent: 120\n"),
        [
            "f.yaml:11:9: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.warmup.aggression: aggression 0.5 must be at least 1",
            "f.yaml:12:9: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.warmup.minimumPercent: percentage 120 is not in 0..100",
        ]
    );
    assert_eq!(
        e("      warmupDurationSecs: 10s\n      warmup:\n        duration: 10s\n"),
        ["f.yaml:8:5: error: DestinationRule/d: spec.trafficPolicy.loadBalancer: only one of warmup or warmupDurationSecs (deprecated) is allowed"]
    );
}

#[test]
fn proxy_protocol_errors_are_positioned() {
    assert_eq!(
        errors(&policy("    proxyProtocol:\n      version: V3\n")),
        [
            r#"f.yaml:9:7: error: DestinationRule/d: spec.trafficPolicy.proxyProtocol.version: unknown proxyProtocol version "V3": use V1 or V2"#
        ]
    );
}

/// A DestinationRule `name` of namespace `ns` for `host`, up to its host
/// (line 7); tests append the rest.
fn dr_in(name: &str, ns: &str, host: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  host: {host}\n")
}

#[test]
fn export_to_and_workload_selector_load() {
    let text = format!(
        "{}  exportTo: [\".\", shop]\n---\n{}  workloadSelector:\n    matchLabels: {{app: cart}}\n",
        dr_in("a", "pay", "pay"),
        dr_in("b", "pay", "pay"),
    );
    let mesh = load(&[("f.yaml", &text)]).unwrap();
    let host = Host::canonical("pay", "pay");
    let rules = &mesh.destination_rule_set.by_host[&host];
    assert_eq!(rules.service_namespace.as_deref(), Some("pay"));
    let names: Vec<&str> = rules.rules.iter().map(|r| r.origin.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let export = |i: usize| rules.rules[i].export_to.namespaces.clone().unwrap();
    assert_eq!(export(0), ["pay".to_string(), "shop".to_string()].into());
    assert_eq!(
        export(1),
        ["pay".to_string()].into(),
        "a selected rule is private"
    );
    let selector = rules.rules[1].workload_selector.clone().unwrap();
    assert_eq!(selector, [("app".to_string(), "cart".to_string())].into());
    // Exported to `.` and `shop` only: no default for other namespaces.
    assert!(!mesh.destination_rules.contains_key(&host));
}

#[test]
fn export_to_and_workload_selector_errors_are_positioned() {
    let with = |rest: &str| format!("{}{rest}", dr("d", "pay"));
    assert_eq!(
        errors(&with("  exportTo: [\"~\", \".\"]\n")),
        ["f.yaml:7:14: error: DestinationRule/d: spec.exportTo[0]: `~` (exported nowhere) must be alone"]
    );
    assert_eq!(
        errors(&with("  exportTo: [Bad_NS]\n")),
        [
            r#"f.yaml:7:14: error: DestinationRule/d: spec.exportTo[0]: exportTo "Bad_NS" must be `*`, `.`, `~` or a namespace"#
        ]
    );
    assert_eq!(
        errors(&with("  exportTo: [\"*\"]\n  workloadSelector:\n    matchLabels: {app: a}\n")),
        ["f.yaml:7:3: error: DestinationRule/d: spec.exportTo: a DestinationRule with a workloadSelector applies only to workloads of its own namespace: exportTo must be absent or `.`"]
    );
    assert_eq!(
        errors(&with("  workloadSelector: {}\n")),
        ["f.yaml:7:3: error: DestinationRule/d: spec.workloadSelector.matchLabels: workloadSelector needs matchLabels (omit workloadSelector to apply to every workload)"]
    );
}

#[test]
fn rules_of_one_namespace_conflict_and_of_two_do_not() {
    let two_ns = format!(
        "{}---\n{}",
        dr_in("a", "pay", "pay"),
        dr_in("b", "shop", "pay.pay")
    );
    assert!(load(&[("f.yaml", &two_ns)]).is_ok());
    let selected = |name: &str, app: &str| {
        let head = dr_in(name, "shop", "pay.pay");
        format!("{head}  workloadSelector:\n    matchLabels: {{app: {app}}}\n")
    };
    let distinct = format!("{}---\n{}", selected("a", "x"), selected("b", "y"));
    assert!(load(&[("f.yaml", &distinct)]).is_ok());
    assert_eq!(
        load(&[("a.yaml", &selected("a", "x")), ("b.yaml", &selected("b", "x"))]).unwrap_err(),
        ["b.yaml:7:3: error: DestinationRule/b: spec.host: host pay.pay.svc.cluster.local already has DestinationRule shop/a (a.yaml:1): two DestinationRules of one namespace select the same workloads"]
    );
}

#[test]
fn wildcard_hosts_load_and_their_subsets_are_known_to_the_hosts_they_cover() {
    let wide = format!(
        "{}  subsets:\n  - name: v1\n    labels: {{version: v1}}\n",
        dr("wide", "\"*.default.svc.cluster.local\"")
    );
    let everything = dr("all", "\"*\"");
    let route = |subset: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: pay\nspec:\n  hosts: [pay]\n  http:\n  - route:\n    - destination: {{host: pay, subset: {subset}}}\n")
    };
    let text = format!("{wide}---\n{everything}---\n{}", route("v1"));
    let mesh = load(&[("f.yaml", &text)]).unwrap();
    let set = &mesh.destination_rule_set.by_host;
    assert!(set.contains_key(&Host("*.default.svc.cluster.local".into())));
    // `*` stays `*`: every host, whatever the rule's namespace.
    assert!(set.contains_key(&Host("*".into())));
    let text = format!("{wide}---\n{}", route("v2"));
    assert_eq!(
        load(&[("f.yaml", &text)]).unwrap_err(),
        ["f.yaml:19:32: error: VirtualService/pay: spec.http[0].route[0].destination.subset: unknown subset \"v2\" of host pay.default.svc.cluster.local: DestinationRule default/wide defines v1"]
    );
}
