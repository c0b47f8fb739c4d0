//! Gateway API kinds: Gateway, HTTPRoute, GRPCRoute, ReferenceGrant and
//! GAMMA mesh routes, loaded into the model and their errors positioned.

use std::path::Path;

use super::{errors, load, load_rel};
use crate::config::model::{RouteAction, StringMatch};

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - {name: http, port: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web-v2
spec:
  ports:
  - {name: http, port: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: other
  namespace: team-b
spec:
  ports:
  - {name: http, port: 8080}
";

/// A Gateway with one HTTP listener; `from` is its allowedRoutes.
fn gateway(from: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces: {{from: {from}}}
"
    )
}

/// An HTTPRoute `r` in `ns` whose rules start on line 11.
fn route(ns: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  namespace: {ns}
spec:
  parentRefs:
  - {{name: gw, namespace: default}}
  hostnames: [web.example.com]
  rules:
{rules}"
    )
}

const SPLIT: &str = "  - backendRefs:
    - {name: web, port: 8080, weight: 7}
    - {name: web-v2, port: 8080, weight: 3}
";

#[test]
fn examples_load_into_gateways_and_virtual_services() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples");
    let cfg = load_rel(&root.join("gateway-api")).unwrap();
    let gw = &cfg.gateways[0];
    let label = gw.selector.get("gateway.networking.k8s.io/gateway-name");
    assert_eq!(label.map(String::as_str), Some("shop-gateway"));
    assert_eq!(gw.servers.len(), 3);
    let names: Vec<&str> = (cfg.gateway_virtual_services.iter())
        .map(|v| v.origin.name.as_str())
        .collect();
    // `shop` and `shop-redirect` serve one host: one VirtualService, each
    // rule on its listener's port, the redirect's catch-all last.
    assert_eq!(names, ["catalog", "shop"]);
    let shop = &cfg.gateway_virtual_services[1];
    assert_eq!(shop.hosts[0].as_str(), "shop.example.com");
    let redirect = shop.http.last().unwrap();
    assert_eq!(redirect.matches[0].port, Some(80));
    assert!(matches!(redirect.action, RouteAction::Redirect(_)));
    assert!(shop.http[..shop.http.len() - 1]
        .iter()
        .all(|r| r.matches[0].port == Some(443)));
    // The more specific gRPC method comes first.
    let grpc = &cfg.gateway_virtual_services[0].http;
    let path = |i: usize| grpc[i].matches[0].uri.clone();
    assert_eq!(
        path(0),
        Some(StringMatch::Exact("/catalog.Catalog/Search".into()))
    );
    assert_eq!(
        path(1),
        Some(StringMatch::Prefix("/catalog.Catalog/".into()))
    );
    let mesh = load_rel(&root.join("gateway-api-mesh")).unwrap();
    let reviews = crate::config::model::Host("reviews.default.svc.cluster.local".into());
    let vs = &mesh.virtual_services[&reviews];
    assert_eq!(vs.origin.kind, "HTTPRoute");
    assert_eq!(vs.origin.name, "reviews");
    // The consumer route first, for `frontend` only; then the producer
    // routes merged, the newer route's longer prefix first.
    let ns = |i: usize| vs.http[i].matches[0].source_namespace.as_deref();
    assert_eq!(ns(0), Some("frontend"));
    assert_eq!(
        vs.http[1].matches[0].uri,
        Some(StringMatch::Prefix("/api/v2".into()))
    );
    assert!(
        (vs.http[1..].iter()).all(|r| r.matches[0].excluded_source_namespaces.contains("frontend"))
    );
    let ratings = crate::config::model::Host("ratings.default.svc.cluster.local".into());
    assert_eq!(mesh.virtual_services[&ratings].origin.kind, "GRPCRoute");
}

#[test]
fn relative_weights_become_percentages_and_prefixes_whole_segments() {
    let rules = format!("{SPLIT}  - matches:\n    - path: {{type: PathPrefix, value: /api/}}\n    backendRefs: [{{name: web, port: 8080}}]\n");
    let cfg = load(&[
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("r.yaml", &route("default", &rules)),
    ])
    .unwrap();
    let vs = &cfg.gateway_virtual_services[0];
    assert_eq!(vs.gateways, ["default/gw"]);
    let m = &vs.http[0].matches[0];
    assert_eq!(m.uri, Some(StringMatch::Prefix("/api".into())));
    assert!(m.path_separated_prefix);
    let RouteAction::Route(split) = &vs.http[1].action else {
        panic!("not a route")
    };
    let weights: Vec<u32> = split.iter().map(|d| d.weight).collect();
    assert_eq!(weights, [70, 30]);
}

#[test]
fn cross_namespace_backend_needs_a_reference_grant() {
    let rules = "  - backendRefs:\n    - {name: other, namespace: team-b, port: 8080}\n";
    let files = [
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("r.yaml", &route("default", rules)),
    ];
    assert_eq!(
        load(&files).unwrap_err(),
        ["r.yaml:12:7: error: HTTPRoute/r: spec.rules[0].backendRefs[0]: HTTPRoute default/r may not refer to Service team-b/other in another namespace: no ReferenceGrant in namespace team-b allows HTTPRoutes of namespace default to"]
    );
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: team-b}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: \"\", kind: Service, name: other}]
";
    let granted = [files[0], files[1], files[2], ("grant.yaml", grant)];
    load(&granted).unwrap();
    let wrong = grant.replace("name: other", "name: someone-else");
    let refused = [files[0], files[1], files[2], ("grant.yaml", &wrong)];
    assert_eq!(load(&refused).unwrap_err().len(), 1);
}

#[test]
fn allowed_routes_refuse_other_namespaces_and_kinds() {
    let other_ns = route("team-b", "  - backendRefs: [{name: other, port: 8080}]\n");
    let files = [
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("r.yaml", &other_ns),
    ];
    assert_eq!(
        load(&files).unwrap_err(),
        ["r.yaml:8:5: error: HTTPRoute/r: spec.parentRefs[0]: no listener of Gateway default/gw (http) admits a HTTPRoute of namespace team-b (see their allowedRoutes: kinds, namespaces)"]
    );
    let all = gateway("All");
    load(&[files[0], ("g.yaml", &all), files[2]]).unwrap();
    let tcp = "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: t}\nspec: {}\n";
    let e = errors(tcp);
    assert!(
        e[0].starts_with("f.yaml:2:1: error: TCPRoute/t: kind: kind TCPRoute is not supported yet"),
        "{e:?}"
    );
}

#[test]
fn unsupported_fields_are_positioned() {
    let gw = gateway("Same").replace(
        "  listeners:",
        "  addresses: [{value: 10.0.0.1}]\n  listeners:",
    );
    assert_eq!(
        errors(&gw),
        ["f.yaml:7:3: error: Gateway/gw: spec.addresses: field `addresses` is not supported yet"]
    );
    let class = gateway("Same").replace("istio", "nginx");
    let e = errors(&class);
    assert!(
        e[0].starts_with(
            "f.yaml:6:3: error: Gateway/gw: spec.gatewayClassName: gatewayClassName \"nginx\""
        ),
        "{e:?}"
    );
    let selector = gateway("Selector");
    let e = errors(&selector);
    assert!(e[0].starts_with("f.yaml:12:20: error: Gateway/gw: spec.listeners[0].allowedRoutes.namespaces.from: from \"Selector\" is not supported"), "{e:?}");
    let ext = "  - filters:\n    - type: ExtensionRef\n      extensionRef: {group: x, kind: Y, name: z}\n    backendRefs: [{name: web, port: 8080}]\n";
    let e = load(&[
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("r.yaml", &route("default", ext)),
    ])
    .unwrap_err();
    assert!(e[0].starts_with("r.yaml:12:7: error: HTTPRoute/r: spec.rules[0].filters[0].type: filter type \"ExtensionRef\" is not supported"), "{e:?}");
    let sticky = format!("{SPLIT}    sessionPersistence: {{sessionName: s}}\n");
    let e = load(&[
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("r.yaml", &route("default", &sticky)),
    ])
    .unwrap_err();
    assert_eq!(e, ["r.yaml:14:5: error: HTTPRoute/r: spec.rules[0].sessionPersistence: field `sessionPersistence` is not supported yet"]);
    let bad_regex = "  - matches: [{path: {type: RegularExpression, value: \"(\"}}]\n    backendRefs: [{name: web, port: 8080}]\n";
    let e = load(&[
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("r.yaml", &route("default", bad_regex)),
    ])
    .unwrap_err();
    assert!(e[0].starts_with("r.yaml:11:48: error: HTTPRoute/r: spec.rules[0].matches[0].path.value: invalid regular expression"), "{e:?}");
}

#[test]
fn unknown_listener_and_gateway_are_positioned() {
    let r = route("default", SPLIT).replace(
        "{name: gw, namespace: default}",
        "{name: gw, sectionName: https}",
    );
    let e = load(&[
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("r.yaml", &r),
    ])
    .unwrap_err();
    assert_eq!(e, ["r.yaml:8:5: error: HTTPRoute/r: spec.parentRefs[0]: Gateway default/gw has no listener named Some(\"https\") on port None"]);
    let e = load(&[("s.yaml", SERVICES), ("r.yaml", &route("default", SPLIT))]).unwrap_err();
    assert_eq!(e, ["r.yaml:8:5: error: HTTPRoute/r: spec.parentRefs[0]: unknown Gateway default/gw: no gateway.networking.k8s.io Gateway of that namespace and name"]);
}

const GAMMA: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web-split
spec:
  parentRefs:
  - {group: \"\", kind: Service, name: web, port: 8080}
  rules:
  - backendRefs:
    - {name: web, port: 8080, weight: 1}
    - {name: web-v2, port: 8080, weight: 1}
";

#[test]
fn a_service_parent_routes_mesh_traffic_and_conflicts_with_a_virtual_service() {
    let cfg = load(&[("s.yaml", SERVICES), ("r.yaml", GAMMA)]).unwrap();
    let vs =
        &cfg.virtual_services[&crate::config::model::Host("web.default.svc.cluster.local".into())];
    assert!(vs.mesh);
    assert_eq!(vs.http[0].matches[0].port, Some(8080));
    let virtual_service = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route: [{destination: {host: web}}]
";
    let e = load(&[
        ("s.yaml", SERVICES),
        ("r.yaml", GAMMA),
        ("v.yaml", virtual_service),
    ])
    .unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("is already routed by"), "{e:?}");
    assert!(
        e[0].contains("HTTPRoute default/web-split") || e[0].contains("VirtualService default/web"),
        "{e:?}"
    );
}

#[test]
fn grpc_route_backends_must_speak_http2() {
    let g = gateway("Same");
    let grpc = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: pkg.Svc}}]
    backendRefs: [{name: web, port: 8080}]
";
    let e = load(&[("s.yaml", SERVICES), ("g.yaml", &g), ("r.yaml", grpc)]).unwrap_err();
    assert_eq!(e, ["r.yaml:8:19: error: GRPCRoute/g: spec.rules[0].backendRefs[0]: port 8080 of web.default.svc.cluster.local is not gRPC or HTTP/2 (name it `grpc-…` or set appProtocol: grpc): a GRPCRoute backend must speak HTTP/2"]);
    let h2 = SERVICES.replace("{name: http, port: 8080}", "{name: grpc, port: 8080}");
    load(&[("s.yaml", &h2), ("g.yaml", &g), ("r.yaml", grpc)]).unwrap();
}

#[test]
fn filters_map_to_rule_settings() {
    let rules = "  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: new.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-A, value: a}], remove: [x-b]}
    backendRefs: [{name: web, port: 8080}]
    retry: {codes: [503], attempts: 0}
    timeouts: {request: 0s}
";
    let cfg = load(&[
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("r.yaml", &route("default", rules)),
    ])
    .unwrap();
    let r = &cfg.gateway_virtual_services[0].http[0];
    let rw = r.rewrite.as_ref().unwrap();
    assert_eq!(rw.authority.as_deref(), Some("new.example.com"));
    assert_eq!(rw.uri_regex, Some(("^/old/*".into(), "/".into())));
    assert_eq!(r.headers.request.set["x-a"], "a");
    assert_eq!(r.headers.request.remove, ["x-b"]);
    assert_eq!(r.retries.as_ref().unwrap().attempts, 0);
    assert_eq!(r.timeout, None);
}

/// A GAMMA HTTPRoute `name` in `ns` for Service `web` of `default`,
/// created at `created`, with `rules`.
fn gamma(ns: &str, name: &str, created: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {ns}
  creationTimestamp: {created}
spec:
  parentRefs:
  - {{group: \"\", kind: Service, name: web, namespace: default}}
  rules:
{rules}"
    )
}

fn rule_paths(vs: &crate::config::model::VirtualService) -> Vec<String> {
    (vs.http.iter())
        .map(|r| match &r.matches[0].uri {
            Some(StringMatch::Exact(p)) => format!("={p}"),
            Some(StringMatch::Prefix(p)) => p.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

const ROOT: &str = "  - backendRefs: [{name: web-v2, port: 8080}]\n";
const API: &str =
    "  - matches: [{path: {value: /api}}]\n    backendRefs: [{name: web-v2, port: 8080}]\n";
const EXACT: &str =
    "  - matches: [{path: {type: Exact, value: /api/x}}]\n    backendRefs: [{name: web, port: 8080}]\n";

#[test]
fn several_gamma_routes_for_a_service_merge_by_precedence() {
    // `a` is older and first by name, yet its catch-all comes last.
    let a = gamma("default", "a", "2024-01-01T00:00:00Z", ROOT);
    let b = gamma(
        "default",
        "b",
        "2025-01-01T00:00:00Z",
        &format!("{API}{EXACT}"),
    );
    let cfg = load(&[("s.yaml", SERVICES), ("a.yaml", &a), ("b.yaml", &b)]).unwrap();
    let vs =
        &cfg.virtual_services[&crate::config::model::Host("web.default.svc.cluster.local".into())];
    assert_eq!(rule_paths(vs), ["=/api/x", "/api", "/"]);
    assert_eq!(vs.origin.name, "a");
    // Equal matches: the older route wins, then namespace/name.
    let old = gamma("default", "z", "2020-01-01T00:00:00Z", API);
    let young = gamma(
        "default",
        "y",
        "2021-01-01T00:00:00Z",
        API.replace("web-v2", "web").as_str(),
    );
    let cfg = load(&[("s.yaml", SERVICES), ("a.yaml", &old), ("b.yaml", &young)]).unwrap();
    let vs = cfg.virtual_services.values().next().unwrap();
    let RouteAction::Route(first) = &vs.http[0].action else {
        panic!("not a route")
    };
    assert_eq!(
        first[0].destination.host.as_str(),
        "web-v2.default.svc.cluster.local"
    );
}

#[test]
fn a_consumer_route_routes_only_its_namespace() {
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: front}]
  to: [{group: \"\", kind: Service}]
";
    let consumer = gamma(
        "front",
        "mine",
        "2024-01-01T00:00:00Z",
        "  - backendRefs: [{name: web-v2, namespace: default, port: 8080}]\n",
    );
    let producer = gamma("default", "all", "2024-01-01T00:00:00Z", ROOT);
    let files = [
        ("s.yaml", SERVICES),
        ("c.yaml", consumer.as_str()),
        ("p.yaml", producer.as_str()),
        ("g.yaml", grant),
    ];
    let cfg = load(&files).unwrap();
    let vs = cfg.virtual_services.values().next().unwrap();
    assert_eq!(vs.origin.name, "all");
    assert_eq!(
        vs.http[0].matches[0].source_namespace.as_deref(),
        Some("front")
    );
    assert!(vs.http[1].matches[0]
        .excluded_source_namespaces
        .contains("front"));
    assert!(vs.export_to.admits("elsewhere"));
    // Alone, it is exported to its namespace only.
    let cfg = load(
        &files[..2]
            .iter()
            .chain(&files[3..])
            .copied()
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let vs = cfg.virtual_services.values().next().unwrap();
    assert!(vs.export_to.admits("front") && !vs.export_to.admits("default"));
    // Its backend in the Service's namespace needs the grant.
    let e = load(&files[..3]).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("c.yaml:11:19: error: HTTPRoute/mine: spec.rules[0].backendRefs[0]: HTTPRoute front/mine may not refer to Service default/web-v2"), "{e:?}");
}

#[test]
fn routes_on_one_gateway_host_merge_by_precedence() {
    let named = |name: &str, rules: &str| {
        route("default", rules).replace("  name: r\n", &format!("  name: {name}\n"))
    };
    let cfg = load(&[
        ("s.yaml", SERVICES),
        ("g.yaml", &gateway("Same")),
        ("a.yaml", &named("a", ROOT)),
        ("b.yaml", &named("b", &format!("{API}{EXACT}"))),
    ])
    .unwrap();
    assert_eq!(cfg.gateway_virtual_services.len(), 1);
    let vs = &cfg.gateway_virtual_services[0];
    assert_eq!(rule_paths(vs), ["=/api/x", "/api", "/"]);
    assert_eq!(vs.gateways, ["default/gw"]);
}

#[test]
fn a_creation_timestamp_must_be_rfc_3339() {
    let bad = gamma("default", "a", "yesterday", ROOT);
    let e = load(&[("s.yaml", SERVICES), ("a.yaml", &bad)]).unwrap_err();
    assert_eq!(e, ["a.yaml:6:3: error: HTTPRoute/a: metadata.creationTimestamp: creationTimestamp must be a UTC RFC 3339 time such as 2024-01-02T15:04:05Z: it orders routes whose matches tie"]);
}

#[test]
fn a_virtual_service_and_a_consumer_route_for_one_host_conflict() {
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route: [{destination: {host: web}}]
";
    let consumer = gamma(
        "front",
        "mine",
        "2024-01-01T00:00:00Z",
        "  - backendRefs: [{name: web-v2, namespace: default, port: 8080}]\n",
    );
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: front}]\n  to: [{group: \"\", kind: Service}]\n";
    let e = load(&[
        ("s.yaml", SERVICES),
        ("v.yaml", vs),
        ("c.yaml", &consumer),
        ("g.yaml", grant),
    ])
    .unwrap_err();
    assert_eq!(e, ["c.yaml:9:5: error: HTTPRoute/mine: spec.parentRefs[0]: host web.default.svc.cluster.local is already routed by VirtualService default/web (v.yaml:1): sidecars take one VirtualService per host (Istio's IST0109 conflict); merge the rules, or bind both to a gateway, where they merge"]);
}

/// A GRPCRoute `name` created at `created` on `parent` (a parentRef).
fn grpc_route(name: &str, created: &str, parent: &str, hostnames: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: {name}
  creationTimestamp: {created}
spec:
  parentRefs: [{parent}]
{hostnames}  rules:
  - matches: [{{method: {{service: pkg.Svc}}}}]
    backendRefs: [{{name: web, port: 8080}}]
"
    )
}

#[test]
fn an_http_route_and_a_grpc_route_on_one_gateway_hostname_do_not_merge() {
    let h2 = SERVICES.replace("{name: http, port: 8080}", "{name: grpc, port: 8080}");
    let http = |created: &str| {
        route("default", ROOT).replace(
            "  namespace: default\n",
            &format!("  namespace: default\n  creationTimestamp: {created}\n"),
        )
    };
    let hosts = "  hostnames: [web.example.com]\n";
    let grpc = grpc_route("g", "2024-01-02T00:00:00Z", "{name: gw}", hosts);
    let load_with = |http: &str| {
        let files = [
            ("s.yaml", h2.as_str()),
            ("g.yaml", &gateway("Same")),
            ("h.yaml", http),
            ("r.yaml", &grpc),
        ];
        load(&files).unwrap()
    };
    // The GRPCRoute is older: the HTTPRoute is left out there, with a warning.
    let cfg = load_with(&http("2024-01-03T00:00:00Z"));
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.warning()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("HTTPRoute/r: spec.hostnames: not accepted on Gateway default/gw: GRPCRoute default/g also serves hostname web.example.com there and is older"),
        "{w:?}"
    );
    let vs = &cfg.gateway_virtual_services[0];
    assert_eq!(vs.origin.kind, "GRPCRoute");
    assert_eq!(vs.http.len(), 1, "only the GRPCRoute's rule: {vs:?}");
    // The HTTPRoute is older: the GRPCRoute is left out.
    let cfg = load_with(&http("2024-01-01T00:00:00Z"));
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.warning()).collect();
    assert!(
        w.len() == 1 && w[0].contains("GRPCRoute/g: spec.hostnames: not accepted"),
        "{w:?}"
    );
    let vs = &cfg.gateway_virtual_services[0];
    assert_eq!(rule_paths(vs), ["/"]);
}

#[test]
fn on_a_service_a_grpc_route_takes_precedence_over_an_http_route() {
    let h2 = SERVICES.replace(
        "  name: web\nspec:\n  ports:\n  - {name: http, port: 8080}\n",
        "  name: web\nspec:\n  ports:\n  - {name: grpc, port: 8080}\n  - {name: http, port: 9090}\n",
    );
    let service = "{group: \"\", kind: Service, name: web, port: 8080}";
    let grpc = grpc_route("g", "2024-01-09T00:00:00Z", service, "");
    let http = gamma("default", "h", "2024-01-01T00:00:00Z", ROOT);
    let cfg = load(&[
        ("s.yaml", h2.as_str()),
        ("h.yaml", &http),
        ("g.yaml", &grpc),
    ])
    .unwrap();
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.warning()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("HTTPRoute/h: spec.parentRefs[0]: ignored for Service web.default.svc.cluster.local port 8080: GRPCRoute default/g routes it there"),
        "{w:?}"
    );
    // The HTTPRoute keeps the Service's other port.
    let web = crate::config::model::Host("web.default.svc.cluster.local".into());
    let vs = &cfg.virtual_services[&web];
    let ports: Vec<Option<u16>> = (vs.http.iter())
        .flat_map(|r| r.matches.iter().map(|m| m.port))
        .collect();
    assert!(
        ports.contains(&Some(9090)) && ports.contains(&Some(8080)),
        "{ports:?}"
    );
    let http_rules = (vs.http.iter()).filter(|r| r.matches.iter().all(|m| m.port == Some(9090)));
    assert_eq!(http_rules.count(), 1, "{vs:?}");
}

#[test]
fn a_route_applies_only_on_the_listeners_that_admit_it() {
    let gw = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners:
  - {name: web, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}]}}
  - {name: rpc, port: 9090, protocol: HTTP, allowedRoutes: {kinds: [{kind: GRPCRoute}]}}
";
    let r = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: web, port: 8080}]
";
    let cfg = load(&[("s.yaml", SERVICES), ("g.yaml", gw), ("r.yaml", r)]).unwrap();
    let vs = &cfg.gateway_virtual_services[0];
    let ports: Vec<Option<u16>> = (vs.http.iter())
        .flat_map(|r| r.matches.iter().map(|m| m.port))
        .collect();
    assert_eq!(
        ports,
        [Some(80)],
        "not on the GRPCRoute-only listener: {vs:?}"
    );
}

#[test]
fn a_wildcard_hostname_clashes_with_the_hostnames_it_covers() {
    let h2 = SERVICES.replace("{name: http, port: 8080}", "{name: grpc, port: 8080}");
    let http = route("default", ROOT)
        .replace(
            "hostnames: [web.example.com]",
            "hostnames: [\"*.example.com\"]",
        )
        .replace(
            "  namespace: default\n",
            "  namespace: default\n  creationTimestamp: 2024-01-03T00:00:00Z\n",
        );
    let hosts = "  hostnames: [web.example.com]\n";
    let grpc = grpc_route("g", "2024-01-02T00:00:00Z", "{name: gw}", hosts);
    let files = [
        ("s.yaml", h2.as_str()),
        ("g.yaml", &gateway("Same")),
        ("h.yaml", &http),
        ("r.yaml", &grpc),
    ];
    let cfg = load(&files).unwrap();
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.warning()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("HTTPRoute/r: spec.hostnames: not accepted on Gateway default/gw: GRPCRoute default/g also serves hostname web.example.com"),
        "{w:?}"
    );
    // The HTTPRoute is left out on the listener, for its wildcard too.
    let kinds: Vec<&str> = (cfg.gateway_virtual_services.iter())
        .filter(|vs| !vs.http.is_empty())
        .map(|vs| vs.origin.kind.as_str())
        .collect();
    assert_eq!(kinds, ["GRPCRoute"], "{:?}", cfg.gateway_virtual_services);
}
