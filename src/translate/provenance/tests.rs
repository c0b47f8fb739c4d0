use std::path::Path;

use super::*;
use crate::config::load_dir;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

const SERVICE: &str = "apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: payment
spec:
  hosts:
  - payment
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    labels:
      version: v1
";

/// Line 13: the regex; line 17: the named rule.
const ROUTES_YAML: &str = "apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payment
  namespace: default
spec:
  hosts:
  - payment
  http:
  - name: fast
    match:
    - uri:
        regex: \"/(alpha|beta|gamma|delta){1,30}\"
    route:
    - destination:
        host: payment
  - name: rest
    route:
    - destination:
        host: payment
";

/// Line 13: the connect timeout.
const POLICY: &str = "apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: payment
spec:
  host: payment
  subsets:
  - name: v1
    labels:
      version: v1
  trafficPolicy:
    connectionPool:
      tcp:
        connectTimeout: 3000000h
";

fn provenance(dir: &Path) -> Provenance {
    std::fs::write(dir.join("service.yaml"), SERVICE).unwrap();
    sidecar_only(dir)
}

/// Without a ServiceEntry: `payment` is a service its sidecars declare.
fn sidecar_only(dir: &Path) -> Provenance {
    built(
        dir,
        &[("routes.yaml", ROUTES_YAML), ("policy.yaml", POLICY)],
    )
}

/// The provenance of `files` written into `dir` (and what it held).
fn built(dir: &Path, files: &[(&str, &str)]) -> Provenance {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mesh = load_dir(dir).unwrap();
    let source = SourceIndex::read(&mesh.files).unwrap();
    Provenance::build(&mesh, &source)
}

/// What Envoy 1.40 answers to a route with that regex (captured from a
/// sidecar's NACK).
const RE2_NACK: &str = "regex '/(alpha|beta|gamma|delta){1,30}' RE2 program size of 664 > max program size of 100 set for the error level threshold. Increase configured max program size if necessary.";

/// What Envoy 1.40 answers to a cluster whose connect timeout is over
/// its limit (captured from a sidecar's NACK).
const DURATION_NACK: &str =
    "Invalid duration: Duration out-of-range: goo.gle/debugstr    \nseconds: 10800000000\n";

#[test]
fn a_regex_nack_points_at_the_regex() {
    let dir = tempfile::tempdir().unwrap();
    let p = provenance(dir.path());
    let b = p.blame(ROUTES, RE2_NACK).unwrap();
    assert_eq!(
        (b.kind.as_str(), b.name.as_str()),
        ("VirtualService", "payment")
    );
    assert_eq!(b.file, dir.path().join("routes.yaml"));
    assert_eq!((b.line, b.column), (13, 9));
    assert_eq!(b.field, "spec.http[0].match[0].uri.regex");
    assert_eq!(b.resource, "outbound");
}

#[test]
fn a_cluster_nack_points_at_the_destination_rule_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = provenance(dir.path());
    let b = p.blame(CLUSTER, DURATION_NACK).unwrap();
    assert_eq!(
        (b.kind.as_str(), b.name.as_str()),
        ("DestinationRule", "payment")
    );
    assert_eq!(b.file, dir.path().join("policy.yaml"));
    assert_eq!((b.line, b.column), (14, 9));
    assert_eq!(
        b.resource,
        "outbound|80|v1|payment.default.svc.cluster.local"
    );
}

#[test]
fn a_cluster_nack_points_at_the_wildcard_rule_that_reached_it() {
    let dir = tempfile::tempdir().unwrap();
    let wide = POLICY.replace("host: payment", "host: \"*.default.svc.cluster.local\"");
    let files = [
        ("service.yaml", SERVICE),
        ("routes.yaml", ROUTES_YAML),
        ("policy.yaml", &wide),
    ];
    let b = built(dir.path(), &files)
        .blame(CLUSTER, DURATION_NACK)
        .unwrap();
    assert_eq!(
        (b.kind.as_str(), b.name.as_str()),
        ("DestinationRule", "payment")
    );
    assert_eq!(b.file, dir.path().join("policy.yaml"));
    assert_eq!((b.line, b.column), (14, 9));
    assert_eq!(
        b.resource,
        "outbound|80|v1|payment.default.svc.cluster.local"
    );
}

#[test]
fn an_unquoted_field_falls_back_to_the_named_resource_or_route() {
    let dir = tempfile::tempdir().unwrap();
    let p = provenance(dir.path());
    let msg = "Error adding/updating cluster(s) outbound|80||payment.default.svc.cluster.local: something else";
    let b = p.blame(CLUSTER, msg).unwrap();
    assert_eq!(b.kind, "ServiceEntry");
    assert_eq!(b.field, "spec.ports[0]");
    assert_eq!((b.line, b.column), (9, 5));
    let msg = "route 'rest': something wrong in virtual host payment.default.svc.cluster.local:80";
    let b = p.blame(ROUTES, msg).unwrap();
    assert_eq!(
        (b.kind.as_str(), b.line, b.field.as_str()),
        ("VirtualService", 17, "spec.http[1]")
    );
    assert_eq!(p.blame(LISTENER, "listener virtualInbound: bad"), None);
    assert_eq!(p.blame(CLUSTER, "nothing we know"), None);
}

#[test]
fn lookups_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = provenance(dir.path());
    let vhost = p
        .virtual_host("outbound", "payment.default.svc.cluster.local:80")
        .unwrap();
    assert_eq!(vhost.routes.len(), 2);
    assert_eq!(vhost.objects[0].origin.kind, "VirtualService");
    let route = p
        .route("outbound", "payment.default.svc.cluster.local:80", "fast")
        .unwrap();
    assert_eq!(route.fields[0].line, 10);
    let eds = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    let cla = p
        .resource(eds, "outbound|80||payment.default.svc.cluster.local")
        .unwrap();
    assert_eq!(cla.objects[0].origin.kind, "ServiceEntry");
}

#[test]
fn needles_must_stand_alone() {
    assert!(blame::contains_bounded("seconds: 10 x", "seconds: 10"));
    assert!(!blame::contains_bounded("seconds: 10800", "seconds: 10"));
    assert!(!blame::contains_bounded("aa.com", "a.com"));
    assert!(blame::contains_bounded("regex '/(a|b)' RE2", "/(a|b)"));
}

#[test]
fn the_report_has_validate_s_format() {
    let b = Blame {
        kind: "VirtualService".into(),
        namespace: "default".into(),
        name: "payment".into(),
        file: "c/routes.yaml".into(),
        line: 13,
        column: 9,
        resource: "outbound".into(),
        field: "spec.http[0].match[0].uri.regex".into(),
        generated_by: None,
    };
    assert_eq!(
        b.report("client-1", "bad regex\n"),
        "c/routes.yaml:13:9: error: VirtualService/payment: spec.http[0].match[0].uri.regex: Envoy rejected outbound (rejected by proxy client-1: bad regex)"
    );
}

#[test]
fn services_without_a_service_entry_match_any_port() {
    let dir = tempfile::tempdir().unwrap();
    let p = sidecar_only(dir.path());
    let b = p.blame(ROUTES, RE2_NACK).unwrap();
    assert_eq!((b.line, b.column), (13, 9));
    let b = p.blame(CLUSTER, DURATION_NACK).unwrap();
    assert_eq!(
        (b.kind.as_str(), b.line, b.column),
        ("DestinationRule", 14, 9)
    );
    let name = "outbound|8080|v1|payment.default.svc.cluster.local";
    let cluster = p.resource(CLUSTER, name).unwrap();
    assert_eq!(cluster.objects[0].path, "spec.subsets[0]");
    let msg = format!("Error adding/updating cluster(s) {name}: unknown problem");
    let b = p.blame(CLUSTER, &msg).unwrap();
    assert_eq!((b.field.as_str(), b.line), ("spec.subsets[0]", 8));
    let msg =
        "Error adding/updating cluster(s) outbound|8080|v1|payment.default.svc.cluster.localx: no";
    assert_eq!(p.blame(CLUSTER, msg), None);
    let vhost = p.virtual_host("outbound", "payment.default.svc.cluster.local:8080");
    assert_eq!(vhost.unwrap().routes.len(), 2);
}

/// `POLICY` as team-a's own rule for payment (lines shift by two: the
/// namespace and `exportTo`; the connect timeout is at line 16).
fn team_a_policy() -> String {
    POLICY
        .replace(
            "  name: payment\n",
            "  name: payment-a\n  namespace: team-a\n",
        )
        .replace(
            "  host: payment\n",
            "  host: payment.default.svc.cluster.local\n  exportTo: [\".\"]\n",
        )
}

#[test]
fn a_cluster_nack_is_blamed_on_the_rule_the_rejecting_proxy_sees() {
    let dir = tempfile::tempdir().unwrap();
    let fine = POLICY.replace("3000000h", "1s");
    let team_a = team_a_policy();
    let files = [
        ("service.yaml", SERVICE),
        ("policy.yaml", fine.as_str()),
        ("team-a.yaml", team_a.as_str()),
    ];
    let p = built(dir.path(), &files);
    let mesh = load_dir(dir.path()).unwrap();
    let proxy = |ns: &str| crate::registry::Proxy {
        namespace: ns.into(),
        ..Default::default()
    };
    let who = |ns: &str| PatchIndex::default().rejecter(&mesh, &proxy(ns));
    let host = "payment.default.svc.cluster.local";
    assert_eq!(
        who("team-a").rules.get(host),
        Some(&Some("team-a/payment-a".to_string()))
    );
    let b = p.blame_for(CLUSTER, DURATION_NACK, &who("team-a")).unwrap();
    assert_eq!(
        (b.kind.as_str(), b.namespace.as_str(), b.name.as_str()),
        ("DestinationRule", "team-a", "payment-a")
    );
    assert_eq!(b.file, dir.path().join("team-a.yaml"));
    assert_eq!((b.line, b.column), (16, 9));
    // A proxy that sees the default rule sent nothing of team-a's: its
    // fields are not blamed, whatever the message quotes.
    let b = p.blame_for(CLUSTER, DURATION_NACK, &who("default"));
    assert!(b.as_ref().is_none_or(|b| b.namespace != "team-a"), "{b:?}");
}

/// A delegate (line 9: its regex), whose rule the root VirtualService
/// takes in place of its own.
const DELEGATE: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: payment-api
spec:
  http:
  - match:
    - uri:
        regex: \"/(alpha|beta|gamma|delta){1,30}\"
    route:
    - destination:
        host: payment
";

const ROOT: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - match:
    - headers:
        x-api: {exact: \"yes\"}
    delegate: {name: payment-api}
";

#[test]
fn a_delegated_rule_is_blamed_where_the_delegate_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("service.yaml", SERVICE),
        ("root.yaml", ROOT),
        ("delegate.yaml", DELEGATE),
    ];
    let b = built(dir.path(), &files).blame(ROUTES, RE2_NACK).unwrap();
    assert_eq!(
        (b.kind.as_str(), b.name.as_str()),
        ("VirtualService", "payment-api")
    );
    assert_eq!(b.file, dir.path().join("delegate.yaml"));
    assert_eq!((b.line, b.column), (9, 9));
}

/// An HTTPRoute `name` on Gateway `gw` for shop.example.com, created at
/// `created`, with one rule matching `path`.
fn http_route(name: &str, created: &str, path: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  creationTimestamp: {created}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [shop.example.com]
  rules:
  - matches:
    - path: {path}
    backendRefs: [{{name: payment, port: 80}}]
"
    )
}

#[test]
fn a_merged_gateway_api_rule_is_blamed_in_its_own_route() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
";
    let older = http_route("a", "2024-01-01T00:00:00Z", "{type: PathPrefix, value: /}");
    let regex = "{type: RegularExpression, value: \"/(alpha|beta|gamma|delta){1,30}\"}";
    let younger = http_route("b", "2024-02-01T00:00:00Z", regex);
    let files = [
        ("service.yaml", SERVICE),
        ("gateway.yaml", gateway),
        ("a.yaml", older.as_str()),
        ("b.yaml", younger.as_str()),
    ];
    let b = built(dir.path(), &files).blame(ROUTES, RE2_NACK).unwrap();
    assert_eq!((b.kind.as_str(), b.name.as_str()), ("HTTPRoute", "b"));
    assert_eq!(b.file, dir.path().join("b.yaml"));
    assert_eq!(b.line, 11, "{b:?}");
}
