//! One test per validation error case of issue 2: each asserts the exact
//! `FILE:LINE:COL: error: KIND/NAME: FIELD: message` lines.

use super::{errors, load};

/// A VirtualService for `pay` up to its `hosts`; tests append the rest
/// (its `http` starts on line 8).
const VS_HEAD: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pay
spec:
  hosts:
  - pay
";

/// `VS_HEAD` plus one rule routing to `pay`; tests append rule fields
/// (line 12 onwards).
fn vs_rule(rest: &str) -> String {
    format!("{VS_HEAD}  http:\n  - route:\n    - destination:\n        host: pay\n{rest}")
}

fn dr(name: &str, host: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\nspec:\n  host: {host}\n")
}

fn vs(name: &str, host: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  hosts:\n  - {host}\n  http:\n  - route:\n    - destination:\n        host: {host}\n")
}

#[test]
fn yaml_syntax() {
    assert_eq!(
        errors("apiVersion: v1\nkind: [unclosed\n"),
        ["f.yaml:3:1: error: -/-: -: YAML syntax error: while parsing a flow sequence, expected ',' or ']'"]
    );
    assert_eq!(
        errors("a: b\n c: d\n"),
        ["f.yaml:2:3: error: -/-: -: YAML syntax error: mapping values are not allowed in this context"]
    );
    assert_eq!(
        errors("a:\n\t- b\n"),
        ["f.yaml:2:2: error: -/-: -: YAML syntax error: tabs disallowed within this context (block indentation)"]
    );
}

#[test]
fn duplicate_keys() {
    assert_eq!(
        errors(&vs_rule("    timeout: 1s\n    timeout: 2s\n")),
        ["f.yaml:13:5: error: VirtualService/pay: spec.http[0].timeout: duplicate key `timeout` in one mapping"]
    );
}

#[test]
fn unknown_kind_or_api_version() {
    let doc =
        |api: &str, kind: &str| format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: x\n");
    assert_eq!(
        errors(&doc("networking.istio.io/v1", "VirtualServce")),
        [
            r#"f.yaml:2:1: error: VirtualServce/x: kind: unknown kind "VirtualServce" in networking.istio.io/v1"#
        ]
    );
    assert_eq!(
        errors(&doc("apps/v1", "Deployment")),
        [
            r#"f.yaml:1:1: error: Deployment/x: apiVersion: unknown apiVersion "apps/v1": Trellis reads networking.istio.io/v1alpha3, v1beta1 and v1"#
        ]
    );
    assert_eq!(
        errors(&doc("networking.istio.io/v2", "VirtualService")),
        [
            r#"f.yaml:1:1: error: VirtualService/x: apiVersion: unknown apiVersion "networking.istio.io/v2": networking.istio.io serves v1alpha3, v1beta1 and v1"#
        ]
    );
    assert_eq!(
        errors("apiVersion: networking.istio.io/v1\nmetadata:\n  name: x\n"),
        ["f.yaml:1:1: error: -/x: kind: kind is required (a string such as VirtualService)"]
    );
    assert_eq!(
        errors("hello\n"),
        ["f.yaml:1:1: error: -/-: -: a resource must be a mapping with apiVersion, kind, metadata and spec"]
    );
}

#[test]
fn known_istio_kinds_not_supported_yet() {
    let doc =
        |api: &str, kind: &str| format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: x\n");
    assert_eq!(
        errors(&doc("networking.istio.io/v1", "Sidecar")),
        ["f.yaml:2:1: error: Sidecar/x: kind: kind Sidecar is not supported yet"]
    );
    assert_eq!(
        errors(&doc("security.istio.io/v1", "PeerAuthentication")),
        ["f.yaml:2:1: error: PeerAuthentication/x: kind: kind PeerAuthentication is not supported yet"]
    );
}

#[test]
fn unknown_field() {
    assert_eq!(
        errors(&vs_rule("      weightt: 5\n")),
        ["f.yaml:12:7: error: VirtualService/pay: spec.http[0].route[0].weightt: unknown field `weightt`, expected one of `destination`, `weight`, `headers`"]
    );
    assert_eq!(
        errors(&dr("x", "x").replace("  name: x\n", "  name: x\n  uid: 3\n")),
        ["f.yaml:5:3: error: DestinationRule/x: metadata.uid: unknown field `uid`, expected one of `name`, `namespace`, `labels`, `annotations`"]
    );
}

#[test]
fn unsupported_fields_are_named() {
    assert_eq!(
        errors(&format!("{VS_HEAD}  tcp:\n  - route: []\n  http:\n  - route:\n    - destination:\n        host: pay\n")),
        ["f.yaml:8:3: error: VirtualService/pay: spec.tcp: field `tcp` is not supported yet"]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  gateways: [mesh, my-gw]\n  http:\n  - route:\n    - destination:\n        host: pay\n")),
        [r#"f.yaml:8:20: error: VirtualService/pay: spec.gateways[1]: gateway "my-gw" is not supported yet: only `mesh` (sidecars) is"#]
    );
    assert_eq!(
        errors(&format!("{}  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n", dr("d", "x"))),
        ["f.yaml:8:5: error: DestinationRule/d: spec.trafficPolicy.tls: field `tls` is not supported yet (mTLS comes with Trellis' CA; remove it for now)"]
    );
    assert_eq!(
        errors(&vs_rule("    corsPolicy:\n      allowOrigins: []\n")),
        ["f.yaml:12:5: error: VirtualService/pay: spec.http[0].corsPolicy: field `corsPolicy` is not supported yet"]
    );
    let presence = format!("{VS_HEAD}  http:\n  - match:\n    - headers:\n        x-a: {{}}\n    route:\n    - destination:\n        host: pay\n");
    assert_eq!(
        errors(&presence),
        ["f.yaml:11:9: error: VirtualService/pay: spec.http[0].match[0].headers.x-a: presence matching (`{}`) is not supported yet: give exact, prefix or regex"]
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors(&vs_rule("      weight: ninety\n")),
        [
            r#"f.yaml:12:7: error: VirtualService/pay: spec.http[0].route[0].weight: invalid type: string "ninety", expected an integer"#
        ]
    );
    assert_eq!(
        errors(&VS_HEAD.replace("hosts:\n  - pay", "hosts: pay")),
        [
            r#"f.yaml:6:3: error: VirtualService/pay: spec.hosts: invalid type: string "pay", expected a list"#
        ]
    );
    assert_eq!(
        errors(&format!(
            "{VS_HEAD}  http:\n  - route:\n    - destination: pay\n"
        )),
        [
            r#"f.yaml:10:7: error: VirtualService/pay: spec.http[0].route[0].destination: invalid type: string "pay", expected a mapping"#
        ]
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        errors(&vs_rule("    timeout: 2 seconds\n")),
        [
            r#"f.yaml:12:5: error: VirtualService/pay: spec.http[0].timeout: invalid duration "2 seconds": use a number and a unit, e.g. 2s, 500ms, 1.5s, 1m, 1h"#
        ]
    );
    assert_eq!(
        errors(&vs_rule(
            "    retries:\n      attempts: 2\n      perTryTimeout: 500us\n"
        )),
        [
            r#"f.yaml:14:7: error: VirtualService/pay: spec.http[0].retries.perTryTimeout: duration "500us" must be at least 1ms"#
        ]
    );
}

#[test]
fn weights_must_sum_to_100() {
    let two = |a: &str, b: &str| {
        format!("{VS_HEAD}  http:\n  - route:\n    - destination:\n        host: pay\n{a}    - destination:\n        host: pay\n{b}")
    };
    assert_eq!(
        errors(&two("      weight: 90\n", "      weight: 20\n")),
        ["f.yaml:9:5: error: VirtualService/pay: spec.http[0].route: route weights must sum to 100, not 110"]
    );
    // An omitted weight counts 0 when there are several destinations.
    assert_eq!(
        errors(&two("      weight: 90\n", "")),
        ["f.yaml:9:5: error: VirtualService/pay: spec.http[0].route: route weights must sum to 100, not 90"]
    );
    assert_eq!(
        errors(&two("      weight: -10\n", "      weight: 110\n")),
        [
            "f.yaml:12:7: error: VirtualService/pay: spec.http[0].route[0].weight: weight -10 is not in 0..100",
            "f.yaml:15:7: error: VirtualService/pay: spec.http[0].route[1].weight: weight 110 is not in 0..100",
        ]
    );
    assert_eq!(
        errors(&vs_rule("      weight: 50\n")),
        ["f.yaml:12:7: error: VirtualService/pay: spec.http[0].route[0].weight: a lone destination takes all traffic: weight must be 100 or omitted, not 50"]
    );
    assert!(load(&[("f.yaml", &two("      weight: 100\n", ""))]).is_ok());
    assert!(load(&[("f.yaml", &vs_rule("      weight: 100\n"))]).is_ok());
}

#[test]
fn unknown_destination_host() {
    let text = format!("{VS_HEAD}  http:\n  - route:\n    - destination:\n        host: ledger\n");
    assert_eq!(
        errors(&text),
        [
            r#"f.yaml:11:9: error: VirtualService/pay: spec.http[0].route[0].destination.host: unknown destination host "ledger" (ledger.default.svc.cluster.local): no ServiceEntry, DestinationRule or VirtualService names it"#
        ]
    );
    // A DestinationRule names a host (a sidecar-only service), in any form.
    let with_dr = format!(
        "{text}---\n{}",
        dr("ledger", "ledger.default.svc.cluster.local")
    );
    assert!(load(&[("f.yaml", &with_dr)]).is_ok());
}

#[test]
fn unknown_subset() {
    assert_eq!(
        errors(&vs_rule("        subset: v3\n")),
        [
            r#"f.yaml:12:9: error: VirtualService/pay: spec.http[0].route[0].destination.subset: unknown subset "v3": no DestinationRule for host pay.default.svc.cluster.local defines subsets"#
        ]
    );
    let rule = format!(
        "{}  subsets:\n  - name: v1\n    labels:\n      version: v1\n",
        dr("pay", "pay")
    );
    assert_eq!(
        load(&[
            ("a.yaml", &vs_rule("        subset: v3\n")),
            ("b.yaml", &rule)
        ])
        .unwrap_err(),
        [
            r#"a.yaml:12:9: error: VirtualService/pay: spec.http[0].route[0].destination.subset: unknown subset "v3" of host pay.default.svc.cluster.local: DestinationRule default/pay defines v1"#
        ]
    );
}

#[test]
fn duplicate_names() {
    assert_eq!(
        errors(&format!("{}---\n{}", dr("a", "x"), dr("a", "y"))),
        ["f.yaml:11:3: error: DestinationRule/a: metadata.name: duplicate DestinationRule default/a: also defined at f.yaml:1"]
    );
    // Same name in another namespace, or of another kind: fine.
    let other_ns = dr("a", "y").replace("  name: a", "  name: a\n  namespace: other");
    assert!(load(&[("f.yaml", &format!("{}---\n{other_ns}", dr("a", "x")))]).is_ok());
    assert!(load(&[("f.yaml", &format!("{}---\n{}", dr("a", "a"), vs("a", "a")))]).is_ok());
}

#[test]
fn two_virtual_services_claiming_one_host() {
    // Short and long forms name the same host.
    assert_eq!(
        load(&[("a.yaml", &vs("a", "x")), ("b.yaml", &vs("b", "x.default"))]).unwrap_err(),
        ["b.yaml:7:5: error: VirtualService/b: spec.hosts[0]: host x.default.svc.cluster.local is already routed by VirtualService default/a (a.yaml:1): one VirtualService per host"]
    );
}

#[test]
fn two_destination_rules_for_one_host() {
    assert_eq!(
        errors(&format!("{}---\n{}", dr("a", "x"), dr("b", "x.default.svc.cluster.local"))),
        ["f.yaml:13:3: error: DestinationRule/b: spec.host: host x.default.svc.cluster.local already has DestinationRule default/a (f.yaml:1): one DestinationRule per host"]
    );
}

#[test]
fn values_istio_rejects_in_virtual_services() {
    assert_eq!(
        errors(&vs_rule("    retries:\n      attempts: -1\n")),
        ["f.yaml:13:7: error: VirtualService/pay: spec.http[0].retries.attempts: attempts cannot be negative"]
    );
    assert_eq!(
        errors(&vs_rule("    retries:\n      attempts: 0\n      retryOn: 5xx\n")),
        ["f.yaml:13:7: error: VirtualService/pay: spec.http[0].retries.attempts: retry policy configured while attempts is 0 (disabled): set attempts or remove the policy"]
    );
    assert_eq!(
        errors(&vs_rule(
            "    retries:\n      attempts: 2\n      retryOn: 5xx,bogus,503\n"
        )),
        [
            r#"f.yaml:14:7: error: VirtualService/pay: spec.http[0].retries.retryOn: "bogus" is not a valid retryOn policy: use HTTP status codes or 5xx, gateway-error, reset, reset-before-request, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, retriable-headers, envoy-ratelimited, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable"#
        ]
    );
    assert_eq!(
        errors(&vs_rule("    fault:\n      abort:\n        httpStatus: 700\n        percentage:\n          value: 150\n")),
        [
            "f.yaml:14:9: error: VirtualService/pay: spec.http[0].fault.abort.httpStatus: HTTP status 700 is not in range 200-599",
            "f.yaml:16:11: error: VirtualService/pay: spec.http[0].fault.abort.percentage.value: percentage 150 is not in 0..100",
        ]
    );
    let regex = format!("{VS_HEAD}  http:\n  - match:\n    - uri:\n        regex: \"/a(b\"\n    route:\n    - destination:\n        host: pay\n");
    assert_eq!(
        errors(&regex),
        [
            r#"f.yaml:11:9: error: VirtualService/pay: spec.http[0].match[0].uri.regex: invalid regex "/a(b": unclosed group"#
        ]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  http:\n  - redirect:\n      uri: /x\n      redirectCode: 200\n")),
        ["f.yaml:11:7: error: VirtualService/pay: spec.http[0].redirect.redirectCode: 200 is not a valid redirect code, must be 3xx"]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  http:\n  - timeout: 1s\n")),
        ["f.yaml:9:5: error: VirtualService/pay: spec.http[0]: one of route, redirect or directResponse is required"]
    );
    assert_eq!(
        errors(&format!(
            "{VS_HEAD}  - \"\"\n  http:\n  - route:\n    - destination:\n        host: pay\n"
        )),
        ["f.yaml:8:5: error: VirtualService/pay: spec.hosts[1]: host must not be empty"]
    );
    assert_eq!(
        errors(&vs_rule("        port:\n          number: 0\n")),
        ["f.yaml:13:11: error: VirtualService/pay: spec.http[0].route[0].destination.port.number: port number 0 is not in 1..65535"]
    );
}

#[test]
fn values_istio_rejects_in_service_entries() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: s\nspec:\n  hosts: [svc]\n";
    assert_eq!(
        errors(&format!("{se}  ports:\n  - number: 0\n    name: http\n  - number: 70000\n    name: grpc\n    protocol: FOO\n  resolution: NONE\n")),
        [
            "f.yaml:8:5: error: ServiceEntry/s: spec.ports[0].number: port number 0 is not in 1..65535",
            "f.yaml:10:5: error: ServiceEntry/s: spec.ports[1].number: port number 70000 is not in 1..65535",
            "f.yaml:12:5: error: ServiceEntry/s: spec.ports[1].protocol: protocol FOO is not supported yet: use HTTP, HTTP2, GRPC, TCP, TLS or HTTPS",
            "f.yaml:13:3: error: ServiceEntry/s: spec.resolution: resolution NONE is not supported yet: use STATIC or DNS",
        ]
    );
    let endpoints = "  ports:\n  - number: 80\n    name: web\n  resolution: STATIC\n  endpoints:\n  - address: example.com\n    ports:\n      foo: 8080\n    labels:\n      bad key: v\n";
    assert_eq!(
        errors(&format!("{se}{endpoints}")),
        [
            "f.yaml:8:5: error: ServiceEntry/s: spec.ports[0]: protocol is required (HTTP, HTTP2, GRPC, TCP, TLS or HTTPS) unless the port name starts with one",
            r#"f.yaml:12:5: error: ServiceEntry/s: spec.endpoints[0].address: endpoint address "example.com" is not an IP address (resolution STATIC)"#,
            r#"f.yaml:14:7: error: ServiceEntry/s: spec.endpoints[0].ports.foo: endpoint port "foo" is not a port name of the ServiceEntry"#,
            r#"f.yaml:16:7: error: ServiceEntry/s: spec.endpoints[0].labels.bad key: invalid label key "bad key": use [prefix/]name, name at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"#,
        ]
    );
}

#[test]
fn values_istio_rejects_in_destination_rules() {
    let policy = "  trafficPolicy:\n    loadBalancer:\n      simple: FASTEST\n    outlierDetection:\n      maxEjectionPercent: 101\n      interval: 0s\n    connectionPool:\n      http:\n        maxRetries: -1\n        h2UpgradePolicy: ALWAYS\n  subsets:\n  - name: V1\n    labels:\n      version: v1\n";
    assert_eq!(
        errors(&format!("{}{policy}", dr("d", "x"))),
        [
            r#"f.yaml:9:7: error: DestinationRule/d: spec.trafficPolicy.loadBalancer.simple: unknown load balancer "FASTEST": use ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH or UNSPECIFIED"#,
            "f.yaml:11:7: error: DestinationRule/d: spec.trafficPolicy.outlierDetection.maxEjectionPercent: 101 is not in 0..100",
            r#"f.yaml:12:7: error: DestinationRule/d: spec.trafficPolicy.outlierDetection.interval: duration "0s" must be at least 1ms"#,
            "f.yaml:15:9: error: DestinationRule/d: spec.trafficPolicy.connectionPool.http.maxRetries: -1 must not be negative",
            r#"f.yaml:16:9: error: DestinationRule/d: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: unknown h2UpgradePolicy "ALWAYS": use DEFAULT, DO_NOT_UPGRADE or UPGRADE"#,
            r#"f.yaml:18:5: error: DestinationRule/d: spec.subsets[0].name: subset name "V1" is not a valid DNS-1123 label"#,
        ]
    );
}

#[test]
fn metadata_rules() {
    assert_eq!(
        errors("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {}\nspec:\n  host: x\n"),
        ["f.yaml:3:1: error: DestinationRule/-: metadata: metadata.name is required"]
    );
    assert_eq!(
        errors(&dr("Bad_Name", "x")),
        [
            r#"f.yaml:4:3: error: DestinationRule/Bad_Name: metadata.name: name "Bad_Name" is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.')"#
        ]
    );
    assert_eq!(
        errors("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: x\n"),
        ["f.yaml:1:1: error: DestinationRule/x: spec: spec is required"]
    );
}

/// Every broken document reports, across files, sorted by file and line;
/// empty documents are skipped; a syntax error keeps earlier documents.
#[test]
fn all_errors_of_a_run_sorted() {
    let a = format!(
        "---\n---\n# only a comment\n---\n{}---\n{}",
        vs_rule("    timeout: soon\n"),
        dr("d", "")
    );
    let b = format!("{}---\nkind: [\n", dr("e", "x"));
    assert_eq!(
        load(&[("b.yml", &b), ("sub/a.yaml", &a)]).unwrap_err(),
        [
            "b.yml:9:1: error: -/-: -: YAML syntax error: while parsing a node, did not find expected node content",
            r#"sub/a.yaml:16:5: error: VirtualService/pay: spec.http[0].timeout: invalid duration "soon": use a number and a unit, e.g. 2s, 500ms, 1.5s, 1m, 1h"#,
            r#"sub/a.yaml:23:3: error: DestinationRule/d: spec.host: invalid type: null (an empty value), expected a string"#,
        ]
    );
}
