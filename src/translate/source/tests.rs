//! Per-match `gateways`, `port`, `sourceLabels` and `sourceNamespace` on
//! sidecars: which routes each client's `outbound` configuration keeps.

use std::sync::Arc;

use crate::config::model::{HttpMatch, MeshConfig, RouteAction, StringMatch};
use crate::registry::instances;
use crate::translate::fixtures::*;
use crate::translate::scope::{outbound_view, scope_key};
use crate::translate::shared;

fn matching(path: &str, edit: impl FnOnce(&mut HttpMatch)) -> HttpMatch {
    let mut m = HttpMatch {
        uri: Some(StringMatch::Prefix(path.into())),
        ..Default::default()
    };
    edit(&mut m);
    m
}

/// `ledger` with four rules: for v2 clients, for clients in `other`, on
/// a gateway only, on port 9999 only, then a catch-all.
fn mesh() -> MeshConfig {
    let to = |subset| RouteAction::Route(vec![weighted("ledger", Some(subset), 100)]);
    let mut v2 = rule(to("v2"));
    v2.name = Some("v2-clients".into());
    v2.matches = vec![matching("/", |m| {
        m.source_labels = labels(&[("version", "v2")])
    })];
    let mut other_ns = rule(to("v2"));
    other_ns.name = Some("other-ns".into());
    other_ns.matches = vec![matching("/", |m| m.source_namespace = Some("other".into()))];
    let mut gateway_only = rule(to("v2"));
    gateway_only.name = Some("gateway-only".into());
    gateway_only.matches = vec![matching("/", |m| {
        m.gateways = Some(vec!["default/edge".into()])
    })];
    let mut other_port = rule(to("v2"));
    other_port.name = Some("other-port".into());
    other_port.matches = vec![matching("/", |m| m.port = Some(9999))];
    let mut all = rule(to("v1"));
    all.name = Some("all".into());
    let mut mesh = MeshConfig::default();
    let v = vs("ledger", vec![v2, other_ns, gateway_only, other_port, all]);
    mesh.virtual_services.insert(host("ledger"), Arc::new(v));
    mesh
}

fn configs_of(
    s: &crate::translate::Shared,
) -> Vec<envoy_types::pb::envoy::config::route::v3::RouteConfiguration> {
    s.routes.iter().map(|r| r.to_config()).collect()
}

fn configs(
    views: &[crate::translate::scope::RouteView<'_>],
) -> Vec<envoy_types::pb::envoy::config::route::v3::RouteConfiguration> {
    views.iter().map(|v| v.to_config()).collect()
}

fn route_names(
    view: &[envoy_types::pb::envoy::config::route::v3::RouteConfiguration],
) -> Vec<String> {
    let vh = (view[0].virtual_hosts.iter())
        .find(|v| v.name.starts_with("ledger."))
        .unwrap();
    vh.routes.iter().map(|r| r.name.clone()).collect()
}

#[test]
fn each_client_keeps_the_routes_whose_source_conditions_hold() {
    let mesh = mesh();
    let reg = two_versions(&["ledger", "web"]);
    let si = instances(&mesh, &reg);
    let s = shared(&mesh, &si);
    // The shared configuration leaves out the gateway and port-9999 rules
    // and keeps the conditional ones for the per-proxy filter.
    let mut v1 = sidecar("web", "web-v1", "v1", 1);
    assert_eq!(
        route_names(&configs_of(&s)),
        ["connect", "v2-clients", "other-ns", "all"]
    );
    assert_eq!(
        route_names(&configs(&outbound_view(&s, &v1).routes)),
        ["connect", "all"]
    );
    let v2 = sidecar("web", "web-v2", "v2", 2);
    assert_eq!(
        route_names(&configs(&outbound_view(&s, &v2).routes)),
        ["connect", "v2-clients", "all"]
    );
    assert_ne!(scope_key(&s, &v1), scope_key(&s, &v2));
    // (Filtered directly: the mesh's default scope would hide `default`'s
    // services from a proxy in `other`.)
    v1.namespace = "other".into();
    let mut routes = configs_of(&s);
    s.source_routes.filter(&mut routes, &v1);
    assert_eq!(route_names(&routes), ["connect", "other-ns", "all"]);
}

#[test]
fn a_port_match_keeps_its_rule_on_that_port_only() {
    let mut mesh = mesh();
    let svc = service(
        "ledger",
        vec![
            port(80, "http", crate::config::model::Protocol::Http),
            port(9999, "http-alt", crate::config::model::Protocol::Http),
        ],
        Vec::new(),
    );
    std::sync::Arc::make_mut(&mut mesh.services).insert(host("ledger"), svc);
    let si = instances(&mesh, &two_versions(&[]));
    let s = shared(&mesh, &si);
    let vh = |name: &str| {
        let vh = (s.routes[0].virtual_hosts.iter())
            .find(|v| v.name == name)
            .unwrap();
        vh.routes.iter().map(|r| r.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        vh("ledger.default.svc.cluster.local:9999"),
        ["connect", "v2-clients", "other-ns", "other-port", "all"]
    );
    assert_eq!(
        vh("ledger.default.svc.cluster.local:80"),
        ["connect", "v2-clients", "other-ns", "all"]
    );
}

#[test]
fn a_virtual_service_with_no_rule_for_sidecars_leaves_the_default_route() {
    let mut mesh = mesh();
    let v = Arc::get_mut(mesh.virtual_services.get_mut(&host("ledger")).unwrap()).unwrap();
    v.http.retain(|r| r.name.as_deref() == Some("gateway-only"));
    let si = instances(&mesh, &two_versions(&["ledger"]));
    let s = shared(&mesh, &si);
    assert_eq!(route_names(&configs_of(&s)), ["connect", "default"]);
}

#[test]
fn outside_its_export_to_a_client_gets_the_default_route() {
    let mut mesh = mesh();
    let v = Arc::get_mut(mesh.virtual_services.get_mut(&host("ledger")).unwrap()).unwrap();
    v.http.retain(|r| r.name.as_deref() == Some("all"));
    v.export_to.namespaces = Some(["default".to_string()].into());
    let si = instances(&mesh, &two_versions(&["ledger", "web"]));
    let s = shared(&mesh, &si);
    assert_eq!(route_names(&configs_of(&s)), ["connect", "all", "default"]);
    let mut client = sidecar("web", "web-v1", "v1", 1);
    let mut routes = configs_of(&s);
    s.source_routes.filter(&mut routes, &client);
    assert_eq!(route_names(&routes), ["connect", "all"]);
    client.namespace = "other".into();
    let mut routes = configs_of(&s);
    s.source_routes.filter(&mut routes, &client);
    assert_eq!(route_names(&routes), ["connect", "default"]);
}

#[test]
fn a_consumer_namespace_skips_the_rules_that_exclude_it() {
    let to = |subset| RouteAction::Route(vec![weighted("ledger", Some(subset), 100)]);
    let mut consumer = rule(to("v2"));
    consumer.name = Some("consumer".into());
    consumer.matches = vec![matching("/", |m| m.source_namespace = Some("front".into()))];
    let mut producer = rule(to("v1"));
    producer.name = Some("producer".into());
    producer.matches = vec![matching("/", |m| {
        m.excluded_source_namespaces = ["front".to_string()].into()
    })];
    let mut mesh = MeshConfig::default();
    let v = vs("ledger", vec![consumer, producer]);
    mesh.virtual_services.insert(host("ledger"), Arc::new(v));
    let si = instances(&mesh, &two_versions(&["ledger", "web"]));
    let s = shared(&mesh, &si);
    let mut client = sidecar("web", "web-v1", "v1", 1);
    let seen = |client: &crate::registry::Proxy| {
        let mut routes = configs_of(&s);
        s.source_routes.filter(&mut routes, client);
        route_names(&routes)
    };
    assert_eq!(seen(&client), ["connect", "producer"]);
    client.namespace = "front".into();
    assert_eq!(seen(&client), ["connect", "consumer"]);
}
