//! `AuthorizationPolicy` loading: what converts, and one test per error
//! (exact `FILE:LINE:COL: error: KIND/NAME: FIELD: message` lines).

use crate::config::model::{AuthzAction, AuthzKey, AuthzValues, Cidr};
use crate::config::tests::{errors, load};

/// A policy `ap` in namespace `pay`; `spec` is on line 6, its content
/// starts on line 7.
fn ap(spec: &str) -> String {
    format!("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ap\n  namespace: pay\nspec:\n{spec}")
}

fn err(spec: &str) -> Vec<String> {
    errors(&ap(spec))
}

fn strings(values: &[&str], not: &[&str]) -> AuthzValues<String> {
    AuthzValues {
        values: values.iter().map(|s| s.to_string()).collect(),
        not_values: not.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn full_policy_converts() {
    let spec = r#"  selector:
    matchLabels:
      app: payment
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/frontend"]
        notNamespaces: ["dev*"]
        ipBlocks: ["10.0.0.0/8"]
    to:
    - operation:
        methods: ["GET"]
        paths: ["/api/*"]
        notPorts: ["9000"]
    when:
    - key: request.headers[X-Tenant]
      values: ["a*"]
    - key: destination.port
      notValues: ["9090"]
"#;
    let mesh = load(&[("f.yaml", &ap(spec))]).unwrap();
    let [p] = mesh.authorization_policies.as_slice() else {
        panic!("one policy expected");
    };
    assert_eq!(p.action, AuthzAction::Deny);
    assert_eq!(p.origin.namespace, "pay");
    assert_eq!(p.selector.as_ref().unwrap()["app"], "payment");
    let [rule] = p.rules.as_slice() else { panic!() };
    let src = &rule.from[0];
    assert_eq!(
        src.principals,
        strings(&["cluster.local/ns/default/sa/frontend"], &[])
    );
    assert_eq!(src.namespaces, strings(&[], &["dev*"]));
    assert_eq!(src.ip_blocks.values, [Cidr::parse("10.0.0.0/8").unwrap()]);
    let op = &rule.to[0];
    assert_eq!(op.paths, strings(&["/api/*"], &[]));
    assert_eq!(op.ports.not_values, [9000]);
    assert_eq!(rule.when[0].key, AuthzKey::RequestHeader("x-tenant".into()));
    assert_eq!(rule.when[1].key, AuthzKey::DestinationPort);
    assert_eq!(rule.when[1].values, strings(&[], &["9090"]));
    assert!(!p.dry_run);
}

/// `spec: {}` is Istio's "deny all": ALLOW without rules. `rules: [{}]`
/// is one rule matching everything.
#[test]
fn empty_spec_and_empty_rule() {
    let mesh = load(&[("f.yaml", &ap("  {}\n"))]).unwrap();
    let p = &mesh.authorization_policies[0];
    assert_eq!(
        (p.action, p.rules.len(), p.selector.is_none()),
        (AuthzAction::Allow, 0, true)
    );
    let mesh = load(&[("f.yaml", &ap("  rules:\n  - {}\n"))]).unwrap();
    let p = &mesh.authorization_policies[0];
    assert_eq!(p.rules.len(), 1);
    assert!(p.rules[0].from.is_empty() && p.rules[0].to.is_empty());
}

#[test]
fn v1beta1_and_dry_run() {
    let text = ap("  action: AUDIT\n  rules:\n  - {}\n")
        .replace("/v1\n", "/v1beta1\n")
        .replace(
            "  namespace: pay\n",
            "  namespace: pay\n  annotations:\n    istio.io/dry-run: \"true\"\n",
        );
    let mesh = load(&[("f.yaml", &text)]).unwrap();
    let p = &mesh.authorization_policies[0];
    assert_eq!((p.action, p.dry_run), (AuthzAction::Audit, true));
}

#[test]
fn policies_are_sorted_by_namespace_and_name() {
    let b = ap("  {}\n").replace("name: ap", "name: b");
    let a = ap("  {}\n").replace("name: ap", "name: a");
    let mesh = load(&[("f.yaml", &format!("{b}---\n{a}"))]).unwrap();
    let names: Vec<&str> = mesh
        .authorization_policies
        .iter()
        .map(|p| p.origin.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn api_versions() {
    let text = ap("  {}\n").replace("security.istio.io/v1", "security.istio.io/v1alpha1");
    assert_eq!(
        errors(&text),
        [
            r#"f.yaml:1:1: error: AuthorizationPolicy/ap: apiVersion: unknown apiVersion "security.istio.io/v1alpha1": security.istio.io serves v1beta1 and v1"#
        ]
    );
    let text = ap("  {}\n").replace("security.istio.io/v1", "networking.istio.io/v1");
    assert_eq!(
        errors(&text),
        [
            r#"f.yaml:2:1: error: AuthorizationPolicy/ap: kind: unknown kind "AuthorizationPolicy" in networking.istio.io/v1"#
        ]
    );
}

#[test]
fn actions() {
    assert_eq!(
        err("  action: CUSTOM\n  provider:\n    name: ext\n  rules:\n  - {}\n"),
        ["f.yaml:7:3: error: AuthorizationPolicy/ap: spec.action: action CUSTOM (external authorization) is not supported yet: use ALLOW, DENY or AUDIT"]
    );
    assert_eq!(
        err("  action: REJECT\n"),
        [
            r#"f.yaml:7:3: error: AuthorizationPolicy/ap: spec.action: unknown action "REJECT": use ALLOW, DENY or AUDIT"#
        ]
    );
    assert_eq!(
        err("  provider:\n    name: ext\n"),
        ["f.yaml:7:3: error: AuthorizationPolicy/ap: spec.provider: `provider` is only for action CUSTOM, which is not supported yet"]
    );
    assert_eq!(
        err("  action: DENY\n"),
        ["f.yaml:6:1: error: AuthorizationPolicy/ap: spec.rules: DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request"]
    );
}

#[test]
fn unsupported_fields() {
    assert_eq!(
        err("  targetRef:\n    kind: Service\n    name: pay\n"),
        ["f.yaml:7:3: error: AuthorizationPolicy/ap: spec.targetRef: field `targetRef` is not supported yet"]
    );
    assert_eq!(
        err("  targetRefs:\n  - kind: Service\n    name: pay\n"),
        ["f.yaml:7:3: error: AuthorizationPolicy/ap: spec.targetRefs: field `targetRefs` is not supported yet"]
    );
    assert_eq!(
        err("  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"a*b\"]\n"),
        ["f.yaml:10:29: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source.requestPrincipals[0]: \"a*b\": `*` is only allowed alone or once at the start or the end"]
    );
    assert_eq!(
        err("  rules:\n  - from:\n    - source:\n        principal: [\"a\"]\n"),
        ["f.yaml:10:9: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source.principal: unknown field `principal`, expected one of `principals`, `notPrincipals`, `requestPrincipals`, `notRequestPrincipals`, `namespaces`, `notNamespaces`, `serviceAccounts`, `notServiceAccounts`, `ipBlocks`, `notIpBlocks`, `remoteIpBlocks`, `notRemoteIpBlocks`, `trustDomains`, `notTrustDomains`"]
    );
}

/// A rule with one `when` condition; the condition starts on line 9.
fn when(cond: &str) -> Vec<String> {
    err(&format!("  rules:\n  - when:\n    - {cond}\n"))
}

#[test]
fn when_keys() {
    let line = |key: &str, msg: &str| {
        format!("f.yaml:9:7: error: AuthorizationPolicy/ap: spec.rules[0].when[0].key: {msg}")
            .replace("KEY", key)
    };
    let cases = [
        (
            "request.auth.claims[]",
            "bad key (KEY): should have format request.auth.claims[CLAIM] or request.auth.claims[A][B]",
        ),
        (
            "request.auth.claims",
            "bad key (KEY): should have format request.auth.claims[CLAIM] or request.auth.claims[A][B]",
        ),
        ("request.auth.subject", "unknown attribute: KEY"),
        (
            "experimental.envoy.filters.a[b]",
            "key KEY: experimental Envoy metadata keys are not supported yet",
        ),
        (
            "destination.labels[app]",
            "attribute KEY is replaced by the workload selector",
        ),
        (
            "destination.namespace",
            "attribute KEY is replaced by the metadata.namespace",
        ),
        (
            "destination.user",
            "deprecated attribute KEY: only supported in v1alpha1",
        ),
        ("source.color", "unknown attribute: KEY"),
        (
            "request.headers[]",
            "bad key (KEY): should have format request.headers[NAME] with a valid header name",
        ),
        (
            "request.headers",
            "bad key (KEY): should have format request.headers[NAME] with a valid header name",
        ),
    ];
    for (key, msg) in cases {
        assert_eq!(
            when(&format!("key: {key}\n      values: [\"x\"]")),
            [line(key, msg)],
            "{key}"
        );
    }
    assert_eq!(
        when("values: [\"x\"]"),
        ["f.yaml:9:7: error: AuthorizationPolicy/ap: spec.rules[0].when[0].key: `key` must not be empty"]
    );
    assert_eq!(
        when("key: source.ip"),
        ["f.yaml:9:7: error: AuthorizationPolicy/ap: spec.rules[0].when[0]: at least one of `values` or `notValues` must be set for key source.ip"]
    );
}

#[test]
fn when_values() {
    assert_eq!(
        when("key: source.ip\n      values: [\"10.0.0.300\"]"),
        [
            r#"f.yaml:10:16: error: AuthorizationPolicy/ap: spec.rules[0].when[0].values[0]: "10.0.0.300" is not an IP address or CIDR block"#
        ]
    );
    assert_eq!(
        when("key: destination.port\n      notValues: [\"http\"]"),
        [
            r#"f.yaml:10:19: error: AuthorizationPolicy/ap: spec.rules[0].when[0].notValues[0]: port "http" is not a number in 1..65535"#
        ]
    );
    assert_eq!(
        when("key: source.principal\n      values: [\"spiffe://td/ns/a/sa/b\"]"),
        [
            r#"f.yaml:10:16: error: AuthorizationPolicy/ap: spec.rules[0].when[0].values[0]: principal "spiffe://td/ns/a/sa/b": write it without `spiffe://` (e.g. cluster.local/ns/NS/sa/SA); Trellis adds the prefix as Istio does"#
        ]
    );
}

/// A `from` source with `fields` (line 10 onwards).
fn source(fields: &str) -> Vec<String> {
    err(&format!("  rules:\n  - from:\n    - source:\n{fields}"))
}

#[test]
fn source_values() {
    assert_eq!(
        source("        principals: [\"a*b\"]\n"),
        [
            r#"f.yaml:10:22: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source.principals[0]: "a*b": `*` is only allowed alone or once at the start or the end"#
        ]
    );
    assert_eq!(
        source("        notPrincipals: [\"\"]\n"),
        ["f.yaml:10:25: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source.notPrincipals[0]: empty value is not allowed"]
    );
    assert_eq!(
        source("        ipBlocks: [\"10.0.0.0/33\"]\n"),
        [
            r#"f.yaml:10:20: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" is not an IP address or CIDR block"#
        ]
    );
    assert_eq!(
        source("        serviceAccounts: [\"ns/*\"]\n"),
        [
            r#"f.yaml:10:27: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source.serviceAccounts[0]: service account "ns/*": wildcards are not allowed"#
        ]
    );
    assert_eq!(
        source("        serviceAccounts: [\"a/b/c\"]\n"),
        [
            r#"f.yaml:10:27: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source.serviceAccounts[0]: expected `serviceAccount` or `namespace/serviceAccount`, found "a/b/c""#
        ]
    );
    assert_eq!(
        source("        serviceAccounts: [\"sa\"]\n        namespaces: [\"ns\"]\n"),
        ["f.yaml:9:7: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source: cannot set serviceAccounts with namespaces or principals"]
    );
    assert_eq!(
        source("        trustDomains: [\"td/x\"]\n"),
        [
            r#"f.yaml:10:24: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source.trustDomains[0]: trust domain "td/x" must not contain '/'"#
        ]
    );
    assert_eq!(
        source("        {}\n"),
        ["f.yaml:9:7: error: AuthorizationPolicy/ap: spec.rules[0].from[0].source: `from.source` must not be empty"]
    );
}

/// A `to` operation with `fields` (line 10 onwards).
fn operation(fields: &str) -> Vec<String> {
    err(&format!("  rules:\n  - to:\n    - operation:\n{fields}"))
}

#[test]
fn operation_values() {
    assert_eq!(
        operation("        paths: [\"/api/{*}\"]\n"),
        [
            r#"f.yaml:10:17: error: AuthorizationPolicy/ap: spec.rules[0].to[0].operation.paths[0]: path "/api/{*}": path templates ({*}, {**}) are not supported yet"#
        ]
    );
    assert_eq!(
        operation("        paths: [\"*/api/*\"]\n"),
        [
            r#"f.yaml:10:17: error: AuthorizationPolicy/ap: spec.rules[0].to[0].operation.paths[0]: "*/api/*": `*` is only allowed alone or once at the start or the end"#
        ]
    );
    assert_eq!(
        operation("        ports: [\"0\"]\n"),
        [
            r#"f.yaml:10:17: error: AuthorizationPolicy/ap: spec.rules[0].to[0].operation.ports[0]: port "0" is not a number in 1..65535"#
        ]
    );
    assert_eq!(
        operation("        notHosts: [\"a*.b*\"]\n"),
        [
            r#"f.yaml:10:20: error: AuthorizationPolicy/ap: spec.rules[0].to[0].operation.notHosts[0]: "a*.b*": `*` is only allowed alone or once at the start or the end"#
        ]
    );
    assert_eq!(
        operation("        {}\n"),
        ["f.yaml:9:7: error: AuthorizationPolicy/ap: spec.rules[0].to[0].operation: `to.operation` must not be empty"]
    );
}

#[test]
fn rule_lists() {
    assert_eq!(
        err("  rules:\n  - from: []\n"),
        ["f.yaml:8:5: error: AuthorizationPolicy/ap: spec.rules[0].from: `from` must not be empty (leave it out instead)"]
    );
    assert_eq!(
        err("  rules:\n  - to:\n    - {}\n"),
        ["f.yaml:9:7: error: AuthorizationPolicy/ap: spec.rules[0].to[0]: `to.operation` must be set"]
    );
    assert_eq!(
        err("  rules:\n  - from:\n    - {}\n"),
        ["f.yaml:9:7: error: AuthorizationPolicy/ap: spec.rules[0].from[0]: `from.source` must be set"]
    );
    assert_eq!(
        err("  selector:\n    matchLabels:\n      app: \"a b\"\n"),
        [
            r#"f.yaml:9:7: error: AuthorizationPolicy/ap: spec.selector.matchLabels.app: invalid label value "a b": at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"#
        ]
    );
}

#[test]
fn dry_run_annotation_must_be_a_boolean_string() {
    let text = ap("  {}\n").replace(
        "  namespace: pay\n",
        "  namespace: pay\n  annotations:\n    istio.io/dry-run: \"maybe\"\n",
    );
    assert_eq!(
        errors(&text),
        ["f.yaml:7:5: error: AuthorizationPolicy/ap: metadata.annotations.istio.io/dry-run: annotation istio.io/dry-run must be the string \"true\" or \"false\""]
    );
}

#[test]
fn request_principals_and_jwt_keys_convert() {
    let spec = r#"  rules:
  - from:
    - source:
        requestPrincipals: ["https://issuer/alice"]
        notRequestPrincipals: ["*bob"]
    when:
    - key: request.auth.claims[groups]
      values: ["admin"]
    - key: request.auth.claims[realm][role]
      notValues: ["guest"]
    - key: request.auth.principal
      values: ["*"]
    - key: request.auth.audiences
      values: ["shop"]
    - key: request.auth.presenter
      values: ["web"]
"#;
    let mesh = load(&[("f.yaml", &ap(spec))]).unwrap();
    let rule = &mesh.authorization_policies[0].rules[0];
    assert_eq!(
        rule.from[0].request_principals,
        strings(&["https://issuer/alice"], &["*bob"])
    );
    let keys: Vec<&AuthzKey> = rule.when.iter().map(|c| &c.key).collect();
    assert_eq!(
        keys,
        [
            &AuthzKey::RequestClaim(vec!["groups".into()]),
            &AuthzKey::RequestClaim(vec!["realm".into(), "role".into()]),
            &AuthzKey::RequestPrincipal,
            &AuthzKey::RequestAudiences,
            &AuthzKey::RequestPresenter,
        ]
    );
}
