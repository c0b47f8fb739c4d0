use super::*;
use crate::config::load_dir;
use crate::xds::{LISTENER_TYPE, SECRET_TYPE};

#[test]
fn proxy_specs_parse() {
    let w = parse_proxy_spec("payment.shop:version=v2,zone=a").unwrap();
    assert_eq!(w.proxy.service, "payment");
    assert_eq!(w.proxy.namespace, "shop");
    assert_eq!(
        w.proxy.labels.get("version").map(String::as_str),
        Some("v2")
    );
    assert!(w.endpoint);
    assert!(parse_proxy_spec("payment:version").is_err());
    assert!(parse_proxy_spec(":a=b").is_err());
}

#[test]
fn debug_view_gives_proxies() {
    let v = serde_json::json!({"p-1": {"service": "payment", "namespace": "shop",
        "labels": {"version": "v1"}, "connected": true}});
    let w = workloads_from_debug(&v).unwrap();
    assert_eq!(w[0].proxy.id, "p-1");
    assert_eq!(w[0].proxy.namespace, "shop");
    assert!(workloads_from_debug(&serde_json::json!([])).is_err());
}

#[test]
fn declared_workloads_render_with_listeners_and_secrets() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("m.yaml"),
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment}
spec:
  hosts: [payment]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: payment}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: payment-1}
spec: {address: 10.0.0.7, labels: {app: payment}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
",
    )
    .unwrap();
    let mesh = load_dir(d.path()).unwrap();
    let workloads = declared_workloads(&mesh);
    let ids: Vec<&str> = workloads.iter().map(|w| w.proxy.id.as_str()).collect();
    assert_eq!(ids, ["payment-1.default~0", "reviews.default~v1"]);
    assert!(!workloads[0].endpoint && workloads[1].endpoint);
    let rendered = Renderer::new().unwrap().render(&mesh, &workloads);
    let p = &rendered["payment-1.default~0"];
    assert_eq!(p.proxy.service, "payment");
    assert!(!p.snapshot.resources(&LISTENER_TYPE).items().is_empty());
    assert!(!p.snapshot.resources(&SECRET_TYPE).items().is_empty());
}
