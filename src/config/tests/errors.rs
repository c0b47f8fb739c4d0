//! One test per validation error case: each asserts the exact
//! `FILE:LINE:COL: error: KIND/NAME: FIELD: message` lines.

use super::{dr, errors, load, vs, vs_rule, VS_HEAD};

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
        errors(&doc("networking.istio.io/v1", "WorkloadGroup")),
        ["f.yaml:2:1: error: WorkloadGroup/x: kind: kind WorkloadGroup is not supported yet"]
    );
    assert_eq!(
        errors(&doc("extensions.istio.io/v1alpha1", "WasmPlugin")),
        ["f.yaml:2:1: error: WasmPlugin/x: kind: kind WasmPlugin is not supported yet"]
    );
}

#[test]
fn unknown_field() {
    assert_eq!(
        errors(&vs_rule("      weightt: 5\n")),
        ["f.yaml:12:7: error: VirtualService/pay: spec.http[0].route[0].weightt: unknown field `weightt`, expected one of `destination`, `weight`, `headers`"]
    );
    assert_eq!(
        errors(&dr("x", "x").replace("  name: x\n", "  name: x\n  colour: 3\n")),
        ["f.yaml:5:3: error: DestinationRule/x: metadata.colour: unknown field `colour`, expected one of `name`, `namespace`, `labels`, `annotations`, `creationTimestamp`, `uid`, `resourceVersion`, `generation`, `managedFields`, `selfLink`, `finalizers`, `ownerReferences`, `deletionTimestamp`, `deletionGracePeriodSeconds`"]
    );
}

#[test]
fn unsupported_fields_are_named() {
    assert_eq!(
        errors(&format!("{VS_HEAD}  tcp:\n  - route: []\n  http:\n  - route:\n    - destination:\n        host: pay\n")),
        ["f.yaml:9:5: error: VirtualService/pay: spec.tcp[0].route: at least one route destination is required"]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  tls:\n  - match:\n    - port: 443\n    route:\n    - destination:\n        host: pay\n")),
        ["f.yaml:10:7: error: VirtualService/pay: spec.tls[0].match[0].sniHosts: a tls rule match needs at least one sniHosts entry"]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  tcp:\n  - match:\n    - destinationSubnets: [10.0.0.0/8]\n    route:\n    - destination:\n        host: pay\n")),
        ["f.yaml:10:7: error: VirtualService/pay: spec.tcp[0].match[0].destinationSubnets: destinationSubnets needs transparent interception (the original destination address), which Trellis sidecars do not have: match on `port` (a Sidecar egress port) instead"]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  gateways: [mesh, my-gw]\n  http:\n  - route:\n    - destination:\n        host: pay\n")),
        ["f.yaml:8:20: error: VirtualService/pay: spec.gateways[1]: unknown gateway default/my-gw: no Gateway of that namespace and name"]
    );
    assert_eq!(
        errors(&format!("{VS_HEAD}  http:\n  - match:\n    - statPrefix: x\n    route:\n    - destination:\n        host: pay\n")),
        ["f.yaml:10:7: error: VirtualService/pay: spec.http[0].match[0].statPrefix: field `statPrefix` is not supported yet"]
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
        errors(&vs_rule("    timeout: 2\n")),
        ["f.yaml:12:5: error: VirtualService/pay: spec.http[0].timeout: invalid type: integer `2`, expected a duration such as 2s, 500ms or 1m"]
    );
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
fn destination_ports() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: pay\nspec:\n  hosts: [pay]\n  ports:\n  - {number: 80, name: http}\n  - {number: 9090, name: grpc-admin}\n  resolution: STATIC\n";
    assert_eq!(
        load(&[("a.yaml", &vs_rule("")), ("b.yaml", se)]).unwrap_err(),
        ["a.yaml:10:7: error: VirtualService/pay: spec.http[0].route[0].destination: port.number is required: pay.default.svc.cluster.local has several ports (80, 9090)"]
    );
    let port = |n: u16| vs_rule(&format!("        port:\n          number: {n}\n"));
    assert_eq!(
        load(&[("a.yaml", &port(81)), ("b.yaml", se)]).unwrap_err(),
        ["a.yaml:13:11: error: VirtualService/pay: spec.http[0].route[0].destination.port.number: port 81 is not a port of pay.default.svc.cluster.local (it has 80, 9090)"]
    );
    assert!(load(&[("a.yaml", &port(9090)), ("b.yaml", se)]).is_ok());
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
        ["b.yaml:7:5: error: VirtualService/b: spec.hosts[0]: host x.default.svc.cluster.local is already routed by VirtualService default/a (a.yaml:1): sidecars take one VirtualService per host (Istio's IST0109 conflict); merge the rules, or bind both to a gateway, where they merge"]
    );
}

#[test]
fn two_destination_rules_for_one_host() {
    assert_eq!(
        errors(&format!("{}---\n{}", dr("a", "x"), dr("b", "x.default.svc.cluster.local"))),
        ["f.yaml:13:3: error: DestinationRule/b: spec.host: host x.default.svc.cluster.local already has DestinationRule default/a (f.yaml:1): one DestinationRule per host and namespace (add a workloadSelector to apply one to some workloads only)"]
    );
}

/// A reference to a broken resource gets no second, misleading error.
#[test]
fn broken_resources_still_name_their_hosts() {
    let broken = format!(
        "{}  subsets:\n  - name: v3\n    labelz: {{}}\n",
        dr("pay", "pay")
    );
    assert_eq!(
        load(&[("a.yaml", &vs_rule("        subset: v3\n")), ("b.yaml", &broken)]).unwrap_err(),
        ["b.yaml:9:5: error: DestinationRule/pay: spec.subsets[0].labelz: unknown field `labelz`, expected one of `name`, `labels`, `trafficPolicy`"]
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
