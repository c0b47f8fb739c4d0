use super::bootstrap::{bootstrap, Part};
use super::*;
use crate::config::load_dir;
use crate::render::{parse_proxy_spec, Renderer};

#[test]
fn envoy_message_is_the_reason() {
    let out = "[x][critical][main] [server.cc:76] error initializing configuration '/t/b.json': regex 'a' too big\n";
    assert_eq!(envoy_message(out), "regex 'a' too big");
    assert_eq!(envoy_message("boom\n\n"), "boom");
    let out = "[x][critical][main] [server.cc:76] error initializing configuration '/t/b.json': Invalid duration: out-of-range  \nseconds: 10800000000\n[x][info][main] exiting\n";
    assert_eq!(
        envoy_message(out),
        "Invalid duration: out-of-range  \nseconds: 10800000000"
    );
}

#[test]
fn bootstrap_inlines_routes_endpoints_and_secrets() {
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
  endpoints: [{address: 10.0.0.1}]
",
    )
    .unwrap();
    let mesh = load_dir(d.path()).unwrap();
    let w = [parse_proxy_spec("client").unwrap()];
    let mut renderer = Renderer::new().unwrap();
    let r = renderer.render(&mesh, &w);
    let certs = renderer.placeholder_certs().unwrap();
    let p = r.values().next().unwrap();
    let b = bootstrap(&p.proxy, &p.snapshot, Part::All, certs).unwrap();
    let text = b.to_string();
    assert!(!text.contains("\"rds\""), "{text}");
    assert!(!text.contains("sds_config"), "{text}");
    assert!(!text.contains("eds_cluster_config"), "{text}");
    assert!(text.contains("\"route_config\""));
    assert!(text.contains("10.0.0.1"));
    assert!(!b["static_resources"]["secrets"]
        .as_array()
        .unwrap()
        .is_empty());
    let clusters = bootstrap(&p.proxy, &p.snapshot, Part::Clusters, certs).unwrap();
    assert!(clusters["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .is_empty());
}
