//! Per-proxy DestinationRules on the example `config-examples/destination-rule-export`.

use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::route::v3::{route, RouteAction};

use crate::config::model::MeshConfig;
use crate::registry::{instances, Proxy, Registry};
use crate::translate::fixtures::sidecar;
use crate::translate::scope::scope_key;
use crate::translate::{for_proxy, shared, shared_from, ProxyResources, ProxySecurity};

const HOST: &str = "payment.pay.svc.cluster.local";

fn example() -> MeshConfig {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples/destination-rule-export");
    crate::config::load_dir(&dir).unwrap()
}

fn client(service: &str, namespace: &str, port: u16) -> Proxy {
    let mut p = sidecar(service, &format!("{service}.{namespace}"), "v1", port);
    p.namespace = namespace.into();
    p
}

fn registry() -> Registry {
    let mut reg = Registry::new();
    for (i, v) in ["v1", "v2"].iter().enumerate() {
        let mut p = sidecar("payment", &format!("payment-{v}"), v, 16000 + i as u16);
        p.namespace = "pay".into();
        reg.register(p);
    }
    reg
}

fn cluster<'a>(r: &'a ProxyResources, subset: &str) -> &'a Cluster {
    let port = r.clusters.iter().find_map(|c| {
        let rest = c.name.strip_prefix("outbound|")?;
        rest.ends_with(&format!("||{HOST}"))
            .then(|| rest.split('|').next().unwrap().to_string())
    });
    let name = format!("outbound|{}|{subset}|{HOST}", port.unwrap());
    r.clusters.iter().find(|c| c.name == name).unwrap()
}

fn max_connections(c: &Cluster) -> Option<u32> {
    let t = c.circuit_breakers.as_ref()?.thresholds.first()?;
    t.max_connections.as_ref().map(|v| v.value)
}

fn route_hashes(r: &ProxyResources) -> usize {
    let vh = (r.routes[0].virtual_hosts.iter())
        .find(|v| v.name.starts_with(HOST))
        .unwrap();
    let action = |rt: &&envoy_types::pb::envoy::config::route::v3::Route| match &rt.action {
        Some(route::Action::Route(a)) => Some(a.clone()),
        _ => None,
    };
    let actions: Vec<RouteAction> = vh.routes.iter().filter_map(|r| action(&r)).collect();
    actions.iter().map(|a| a.hash_policy.len()).sum()
}

#[test]
fn each_proxy_gets_the_rule_it_sees() {
    let mesh = example();
    let si = instances(&mesh, &registry());
    let s = shared(&mesh, &si);
    let sec = ProxySecurity::default();
    let sticky = for_proxy(&s, &client("golden-client", "default", 15100), &sec);
    let callers = for_proxy(&s, &client("web", "default", 15101), &sec);
    let elsewhere = for_proxy(&s, &client("web", "shop", 15102), &sec);
    for subset in ["", "v1", "v2"] {
        assert_eq!(
            cluster(&sticky, subset).lb_policy,
            2,
            "RING_HASH for the selected workload"
        );
        assert_ne!(max_connections(cluster(&sticky, subset)), Some(10));
        assert_eq!(
            max_connections(cluster(&callers, subset)),
            Some(10),
            "default's `.` rule"
        );
        assert_ne!(cluster(&callers, subset).lb_policy, 2);
        assert_eq!(
            cluster(&elsewhere, subset).lb_policy,
            0,
            "pay's rule: ROUND_ROBIN"
        );
        assert_ne!(max_connections(cluster(&elsewhere, subset)), Some(10));
    }
    // Both weighted destinations hash by x-user, for the selected workload only.
    assert_eq!(route_hashes(&sticky), 2);
    assert_eq!(route_hashes(&callers), 0);
    assert_eq!(route_hashes(&elsewhere), 0);
}

#[test]
fn proxies_that_see_the_default_rule_keep_sharing() {
    let mesh = example();
    let si = instances(&mesh, &registry());
    let s = shared(&mesh, &si);
    let key = |p: &Proxy| scope_key(&s, p);
    let (shop_a, shop_b) = (client("a", "shop", 15100), client("b", "shop", 15101));
    assert!(key(&shop_a).rules.is_empty());
    assert_eq!(key(&shop_a), key(&shop_b));
    let (web, api) = (
        client("web", "default", 15102),
        client("api", "default", 15103),
    );
    assert_eq!(
        key(&web),
        key(&api),
        "one `.` rule for the namespace: one view"
    );
    assert_ne!(key(&web), key(&client("golden-client", "default", 15104)));
    assert_ne!(key(&web).rules, key(&shop_a).rules);
}

#[test]
fn each_rule_is_translated_once_and_reused_while_unchanged() {
    let mesh = example();
    let si = instances(&mesh, &registry());
    let first = shared(&mesh, &si);
    let variants = &first.rule_variants.hosts;
    assert_eq!(variants.len(), 1, "one contested host");
    // default/payment-callers, default/payment-sticky, and no rule.
    assert_eq!(variants[0].variants.len(), 3);
    let again = shared_from(&mesh, &si, Some(&first));
    let same = (first.rule_variants.hosts[0].variants.iter())
        .zip(&again.rule_variants.hosts[0].variants)
        .all(|(a, b)| Arc::ptr_eq(&a.1, &b.1));
    assert!(same, "an unchanged rule is not translated again");
}
