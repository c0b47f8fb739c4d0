//! VirtualService `tcp` and `tls` rules and ServiceEntry TCP-family protocols.

use super::{errors, load};
use crate::config::model::{Host, L4Match, Protocol};

const SERVICES: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db]
  ports: [{number: 3306, name: mysql, protocol: MYSQL}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache}
spec:
  hosts: [cache]
  ports: [{number: 6379, name: redis-main}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: [\"*\"], tls: {mode: PASSTHROUGH}}]
---
";

#[test]
fn tcp_and_tls_rules_convert_without_http() {
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 3306, sourceLabels: {app: shop}, gateways: [mesh]}]
    route: [{destination: {host: db, port: {number: 3306}}}]
  tls:
  - match: [{sniHosts: [DB.example.com, \"*.db.example.com\"], gateways: [edge]}]
    route: [{destination: {host: db}, weight: 60}, {destination: {host: db}, weight: 40}]
";
    let mesh = load(&[("f.yaml", &format!("{SERVICES}{vs}"))]).unwrap();
    let db = Host::canonical("db", "default");
    let cache = Host::canonical("cache", "default");
    assert_eq!(mesh.services[&db].ports[0].protocol, Protocol::Tcp);
    assert_eq!(mesh.services[&cache].ports[0].protocol, Protocol::Tcp);
    let v = &mesh.virtual_services[&db];
    assert!(v.http.is_empty());
    assert_eq!(
        v.tcp[0].matches,
        [L4Match {
            port: Some(3306),
            source_labels: [("app".to_string(), "shop".to_string())].into(),
            gateways: Some(vec!["mesh".into()]),
            ..Default::default()
        }]
    );
    assert_eq!(
        v.tls[0].matches[0].sni_hosts,
        ["db.example.com", "*.db.example.com"]
    );
    assert_eq!(
        v.tls[0].matches[0].gateways,
        Some(vec!["default/edge".into()])
    );
    let weights: Vec<_> = v.tls[0].route.iter().map(|d| d.weight).collect();
    assert_eq!(weights, [60, 40]);
}

#[test]
fn l4_rule_errors_are_positioned() {
    let head = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: db}\nspec:\n  hosts: [db]\n";
    let e = |body: &str| errors(&format!("{SERVICES}{head}{body}"));
    assert_eq!(
        e("  tls:\n  - route: [{destination: {host: db}}]\n"),
        ["f.yaml:30:5: error: VirtualService/db: spec.tls[0].match: a tls rule needs a match with sniHosts"]
    );
    assert_eq!(
        e("  tcp:\n  - match: [{sniHosts: [a.example.com]}]\n    route: [{destination: {host: db}}]\n"),
        ["f.yaml:30:14: error: VirtualService/db: spec.tcp[0].match[0].sniHosts: sniHosts belongs to tls rules: a tcp rule cannot see the SNI"]
    );
    assert_eq!(
        e("  tcp:\n  - route: [{destination: {host: db}, headers: {request: {set: {a: b}}}}]\n"),
        ["f.yaml:30:39: error: VirtualService/db: spec.tcp[0].route[0].headers: `headers` apply to http rules only: a tcp or tls rule routes connections"]
    );
    assert_eq!(
        e("  tcp:\n  - match: [{gateways: [nowhere]}]\n    route: [{destination: {host: db}}]\n"),
        ["f.yaml:30:25: error: VirtualService/db: spec.tcp[0].match[0].gateways[0]: unknown gateway default/nowhere: no Gateway of that namespace and name"]
    );
    assert_eq!(
        e("  tcp:\n  - route: [{destination: {host: db}, weight: 70}, {destination: {host: db}, weight: 20}]\n"),
        ["f.yaml:30:5: error: VirtualService/db: spec.tcp[0].route: route weights must sum to 100, not 90"]
    );
}
