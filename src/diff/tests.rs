use serde_json::json;

use super::summary::{fields, summarize};
use super::*;
use crate::config::load_dir;
use crate::render::{declared_workloads, parse_proxy_spec, Renderer};

fn vh(name: &str, weights: &[u32], timeout: &str) -> serde_json::Value {
    let clusters: Vec<_> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"name": format!("outbound|80|v{}|{name}", i + 1), "weight": w}))
        .collect();
    json!({"name": name, "routes": [{"match": {"prefix": "/"},
        "route": {"weighted_clusters": {"clusters": clusters}, "timeout": timeout}}]})
}

#[test]
fn route_weights_and_timeout_are_summarized() {
    let old = json!({"name": "outbound", "virtual_hosts": [vh("payment:80", &[90, 10], "2s")]});
    let new = json!({"name": "outbound", "virtual_hosts": [vh("payment:80", &[50, 50], "5s")]});
    assert_eq!(
        summarize("route", "outbound", Some(&old), Some(&new)),
        [
            "route payment:80: weights 90/10 → 50/50",
            "route payment:80: timeout 2s → 5s"
        ]
    );
}

#[test]
fn virtual_hosts_added_and_removed() {
    let old = json!({"name": "outbound", "virtual_hosts": [vh("a:80", &[100], "1s")]});
    let new = json!({"name": "outbound", "virtual_hosts": [vh("b:80", &[100], "1s")]});
    assert_eq!(
        summarize("route", "outbound", Some(&old), Some(&new)),
        ["route a:80: removed", "route b:80: added"]
    );
}

#[test]
fn retries_are_summarized() {
    let r = |n: u32| {
        json!({"name": "o", "virtual_hosts": [{"name": "p:80", "routes": [{"route": {
            "cluster": "c", "retry_policy": {"num_retries": n, "retry_on": "5xx"}}}]}]})
    };
    assert_eq!(
        summarize("route", "o", Some(&r(3)), Some(&r(5))),
        ["route p:80: retries attempts 3 → 5"]
    );
}

#[test]
fn endpoints_added_and_removed() {
    let cla = |ips: &[&str]| {
        let lb: Vec<_> = ips
            .iter()
            .map(|ip| json!({"endpoint": {"address": {"socket_address": {"address": ip, "port_value": 80}}}}))
            .collect();
        json!({"cluster_name": "c", "endpoints": [{"lb_endpoints": lb}]})
    };
    let (old, new) = (
        cla(&["10.0.0.1", "10.0.0.2"]),
        cla(&["10.0.0.2", "10.0.0.3"]),
    );
    assert_eq!(
        summarize("endpoints", "c", Some(&old), Some(&new)),
        [
            "endpoints c: added 10.0.0.3:80",
            "endpoints c: removed 10.0.0.1:80"
        ]
    );
}

#[test]
fn added_removed_and_generic_fields() {
    let c = json!({"name": "x", "connect_timeout": "1s"});
    assert_eq!(
        summarize("cluster", "x", None, Some(&c)),
        ["cluster x: added"]
    );
    assert_eq!(
        summarize("cluster", "x", Some(&c), None),
        ["cluster x: removed"]
    );
    let d = json!({"name": "x", "connect_timeout": "2s", "outlier_detection": {}});
    assert_eq!(
        fields(&c, &d),
        ["connect_timeout 1s → 2s", "outlier_detection added"]
    );
}

const SERVICES: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment}
spec:
  hosts: [payment]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: other}
spec:
  hosts: [other]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.1.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment}
spec:
  host: payment
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

fn routes(v1: u32, v2: u32) -> String {
    format!(
        "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: payment}}
spec:
  hosts: [payment]
  http:
  - route:
    - {{destination: {{host: payment, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: payment, subset: v2}}, weight: {v2}}}
"
    )
}

fn dir(yaml: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("mesh.yaml"), yaml).unwrap();
    d
}

fn report(old: &str, new: &str, extra: &[&str]) -> Report {
    let (a, b) = (dir(old), dir(new));
    let (a, b) = (load_dir(a.path()).unwrap(), load_dir(b.path()).unwrap());
    let mut r = Renderer::new().unwrap();
    let with = |m| {
        let mut w = declared_workloads(m);
        w.extend(extra.iter().map(|s| parse_proxy_spec(s).unwrap()));
        w
    };
    let before = r.render(&a, &with(&a));
    let after = r.render(&b, &with(&b));
    diff(&before, &after).unwrap()
}

#[test]
fn a_weight_change_groups_the_proxies_that_see_it() {
    let old = format!("{SERVICES}{}", routes(90, 10));
    let new = format!("{SERVICES}{}", routes(50, 50));
    let r = report(&old, &new, &["client:app=web"]);
    // payment v1, payment v2 and the client are in `default` and see the
    // route; `other` (its own namespace) does not.
    assert_eq!(r.groups.len(), 1, "{}", r.render(Format::Text));
    let g = &r.groups[0];
    assert_eq!(g.proxies.len(), 3, "{:?}", g.proxies);
    assert_eq!(r.unaffected, 1);
    let summary: Vec<&String> = g.changes.iter().flat_map(|c| &c.summary).collect();
    assert!(
        summary.iter().any(|s| s.ends_with("weights 90/10 → 50/50")),
        "{summary:?}"
    );
    let removed = |l: &str| l.starts_with('-') && l[1..].trim() == "weight: 90";
    assert!(
        g.changes[0].diff.lines().any(removed),
        "{}",
        g.changes[0].diff
    );
}

#[test]
fn no_change_is_an_empty_report() {
    let yaml = format!("{SERVICES}{}", routes(90, 10));
    let r = report(&yaml, &yaml, &[]);
    assert!(r.is_empty());
    assert_eq!(r.unaffected, r.proxies);
    assert_eq!(r.proxies, 3);
}

#[test]
fn a_new_subset_adds_its_cluster() {
    let old = SERVICES.to_string();
    let new = SERVICES.replace(
        "  - {name: v2, labels: {version: v2}}\n",
        "  - {name: v2, labels: {version: v2}}\n  - {name: v3, labels: {version: v3}}\n",
    );
    let r = report(&old, &new, &[]);
    let lines: Vec<&String> = r
        .groups
        .iter()
        .flat_map(|g| &g.changes)
        .flat_map(|c| &c.summary)
        .collect();
    assert!(
        lines.contains(
            &&"cluster outbound|80|v3|payment.default.svc.cluster.local: added".to_string()
        ),
        "{lines:?}"
    );
}

#[test]
fn secrets_never_show_key_material() {
    let r = report("", SERVICES, &[]);
    let all = r.render(Format::Json);
    assert!(!all.contains("PRIVATE KEY"), "key material in the diff");
    assert_eq!(r.added_proxies.len(), 3, "{:?}", r.added_proxies);
}
