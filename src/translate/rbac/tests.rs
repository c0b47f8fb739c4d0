//! RBAC translation: selection, filter order, and the exact Envoy shape of
//! each kind of match (compared as proto3 JSON).

use std::sync::Arc;

use serde_json::{json, Value};

use super::{http_filters, AuthzPolicies, RBAC_FILTER};
use crate::config::model::*;
use crate::translate::fixtures::{labels, origin, sidecar};
use crate::translate::rbac::matchers::{local_principal, quote_meta};

fn policy(ns: &str, name: &str, action: AuthzAction, rules: Vec<AuthzRule>) -> AuthorizationPolicy {
    let mut o = origin("AuthorizationPolicy", name);
    o.namespace = ns.into();
    AuthorizationPolicy {
        selector: None,
        action,
        rules,
        dry_run: false,
        origin: o,
    }
}

fn set(policies: Vec<AuthorizationPolicy>) -> AuthzPolicies {
    AuthzPolicies {
        root_namespace: "istio-system".into(),
        trust_domain: "cluster.local".into(),
        policies: policies.into_iter().map(Arc::new).collect(),
    }
}

fn strings(values: &[&str], not: &[&str]) -> AuthzValues<String> {
    AuthzValues {
        values: values.iter().map(|s| s.to_string()).collect(),
        not_values: not.iter().map(|s| s.to_string()).collect(),
    }
}

/// The typed configs of the filters for the `payment` sidecar.
fn configs(authz: &AuthzPolicies) -> Vec<Value> {
    let proxy = sidecar("payment", "payment-v1", "v1", 16000);
    http_filters(authz, &proxy)
        .iter()
        .map(|f| {
            assert_eq!(f.name, RBAC_FILTER);
            let Some(envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                panic!("typed config expected")
            };
            crate::envoy_json::to_json(any).unwrap()
        })
        .collect()
}

/// The one policy of the one filter.
fn only_policy(authz: &AuthzPolicies) -> Value {
    let c = configs(authz);
    assert_eq!(c.len(), 1);
    let policies = c[0]["rules"]["policies"].as_object().unwrap();
    assert_eq!(policies.len(), 1);
    policies.values().next().unwrap().clone()
}

fn from(source: AuthzSource) -> AuthzRule {
    AuthzRule {
        from: vec![source],
        ..Default::default()
    }
}

fn to(op: AuthzOperation) -> AuthzRule {
    AuthzRule {
        to: vec![op],
        ..Default::default()
    }
}

const ANY_AND: &str = r#"{"and_rules": {"rules": [{"any": true}]}}"#;

#[test]
fn no_policy_no_filter() {
    assert!(configs(&set(vec![])).is_empty());
}

#[test]
fn selection_by_namespace_root_namespace_and_selector() {
    let mut selected = policy("default", "sel", AuthzAction::Allow, vec![]);
    selected.selector = Some(labels(&[("app", "payment")]));
    let mut other_app = policy("default", "other-app", AuthzAction::Allow, vec![]);
    other_app.selector = Some(labels(&[("app", "ledger")]));
    let mut root_sel = policy("istio-system", "root-sel", AuthzAction::Allow, vec![]);
    root_sel.selector = Some(labels(&[("version", "v1")]));
    let authz = set(vec![
        policy("default", "ns-wide", AuthzAction::Allow, vec![]),
        policy("istio-system", "mesh", AuthzAction::Allow, vec![]),
        policy("shop", "elsewhere", AuthzAction::Allow, vec![]),
        selected,
        other_app,
        root_sel,
    ]);
    let c = configs(&authz);
    let names: Vec<&String> = c[0]["rules"]["policies"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        names,
        [
            "ns[default]-policy[ns-wide]-rule[0]",
            "ns[default]-policy[sel]-rule[0]",
            "ns[istio-system]-policy[mesh]-rule[0]",
            "ns[istio-system]-policy[root-sel]-rule[0]",
        ]
    );
}

/// Istio's order: AUDIT (Envoy LOG), DENY, ALLOW; one filter each.
#[test]
fn one_filter_per_action_in_istio_order() {
    let rule = || vec![AuthzRule::default()];
    let authz = set(vec![
        policy("default", "a", AuthzAction::Allow, rule()),
        policy("default", "d", AuthzAction::Deny, rule()),
        policy("default", "l", AuthzAction::Audit, rule()),
        policy("default", "a2", AuthzAction::Allow, rule()),
    ]);
    let c = configs(&authz);
    let actions: Vec<&Value> = c.iter().map(|c| &c["rules"]["action"]).collect();
    assert_eq!(actions, [&json!("LOG"), &json!("DENY"), &Value::Null]); // ALLOW is the default (0)
    assert_eq!(c[2]["rules"]["policies"].as_object().unwrap().len(), 2);
}

/// `spec: {}`: an ALLOW policy that matches nothing, so everything is
/// denied; `rules: [{}]` matches everything.
#[test]
fn allow_without_rules_matches_nothing_and_empty_rule_matches_all() {
    let p = only_policy(&set(vec![policy(
        "default",
        "x",
        AuthzAction::Allow,
        vec![],
    )]));
    assert_eq!(
        p,
        json!({"permissions": [{"not_rule": {"any": true}}], "principals": [{"not_id": {"any": true}}]})
    );
    let all = vec![AuthzRule::default()];
    let p = only_policy(&set(vec![policy("default", "x", AuthzAction::Allow, all)]));
    let any_id: Value = json!({"and_ids": {"ids": [{"any": true}]}});
    assert_eq!(
        p["permissions"],
        json!([serde_json::from_str::<Value>(ANY_AND).unwrap()])
    );
    assert_eq!(p["principals"], json!([any_id]));
}

fn principal_of(source: AuthzSource) -> Value {
    let p = only_policy(&set(vec![policy(
        "default",
        "x",
        AuthzAction::Allow,
        vec![from(source)],
    )]));
    p["principals"][0]["and_ids"]["ids"].clone()
}

fn authn(m: Value) -> Value {
    json!({"authenticated": {"principal_name": m}})
}

#[test]
fn principals_match_the_uri_san_with_spiffe_prefix() {
    let ids = principal_of(AuthzSource {
        principals: strings(
            &[
                "cluster.local/ns/default/sa/frontend",
                "*/sa/admin",
                "td/ns/ops/*",
                "*",
            ],
            &["x/ns/y/sa/z"],
        ),
        ..Default::default()
    });
    assert_eq!(
        ids,
        json!([
            {"or_ids": {"ids": [
                authn(json!({"exact": "spiffe://cluster.local/ns/default/sa/frontend"})),
                authn(json!({"safe_regex": {"regex": "spiffe://.*/sa/admin"}})),
                authn(json!({"prefix": "spiffe://td/ns/ops/"})),
                authn(json!({"safe_regex": {"regex": ".+"}})),
            ]}},
            {"not_id": {"or_ids": {"ids": [authn(json!({"exact": "spiffe://x/ns/y/sa/z"}))]}}}
        ])
    );
}

#[test]
fn namespaces_service_accounts_trust_domains_and_ips() {
    let ids = principal_of(AuthzSource {
        namespaces: strings(&["prod", "team-*"], &[]),
        trust_domains: strings(&["cluster.local", "*", "corp*"], &[]),
        ip_blocks: AuthzValues {
            values: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            not_values: vec![],
        },
        ..Default::default()
    });
    assert_eq!(
        ids,
        json!([
            {"or_ids": {"ids": [
                authn(json!({"prefix": "spiffe://cluster.local/"})),
                authn(json!({"prefix": "spiffe://"})),
                authn(json!({"safe_regex": {"regex": "spiffe://corp[^/]*/.*"}})),
            ]}},
            {"or_ids": {"ids": [
                authn(json!({"safe_regex": {"regex": ".*/ns/prod/.*"}})),
                authn(json!({"safe_regex": {"regex": ".*/ns/team-.*/.*"}})),
            ]}},
            {"or_ids": {"ids": [{"direct_remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}}]}}
        ])
    );
    let ids = principal_of(AuthzSource {
        service_accounts: strings(&["frontend", "ops/deploy.er"], &[]),
        ..Default::default()
    });
    assert_eq!(
        ids,
        json!([{"or_ids": {"ids": [
            authn(json!({"safe_regex": {"regex": "spiffe://.+/ns/default/(.+/|)sa/frontend(/.+)?"}})),
            authn(json!({"safe_regex": {"regex": "spiffe://.+/ns/ops/(.+/|)sa/deploy\\.er(/.+)?"}})),
        ]}}])
    );
}

#[test]
fn operations_hosts_methods_paths_ports() {
    let op = AuthzOperation {
        hosts: strings(&["Pay.Example", "*.example"], &[]),
        methods: strings(&["GET"], &["TRACE"]),
        paths: strings(&["/api/*", "*.json", "/x", "*"], &[]),
        // 8080 is the payment sidecar's app port; 9999 matches nothing.
        ports: AuthzValues {
            values: vec![8080, 9999],
            not_values: vec![],
        },
    };
    let p = only_policy(&set(vec![policy(
        "default",
        "x",
        AuthzAction::Allow,
        vec![to(op)],
    )]));
    let path = |m: Value| json!({"url_path": {"path": m}});
    assert_eq!(
        p["permissions"][0]["and_rules"]["rules"],
        json!([
            {"or_rules": {"rules": [
                {"header": {"name": ":authority", "string_match": {"exact": "Pay.Example", "ignore_case": true}}},
                {"header": {"name": ":authority", "string_match": {"suffix": ".example", "ignore_case": true}}},
            ]}},
            {"or_rules": {"rules": [{"header": {"name": ":method", "string_match": {"exact": "GET"}}}]}},
            {"not_rule": {"or_rules": {"rules": [{"header": {"name": ":method", "string_match": {"exact": "TRACE"}}}]}}},
            {"or_rules": {"rules": [
                path(json!({"prefix": "/api/"})),
                path(json!({"suffix": ".json"})),
                path(json!({"exact": "/x"})),
                path(json!({"safe_regex": {"regex": ".+"}})),
            ]}},
            {"or_rules": {"rules": [{"any": true}, {"not_rule": {"any": true}}]}},
        ])
    );
    assert_eq!(
        p["principals"],
        json!([{"and_ids": {"ids": [{"any": true}]}}])
    );
}

/// `when` keys join the `from` (source keys) or `to` (destination keys)
/// of every entry, after the entry's own fields.
#[test]
fn when_conditions_join_sources_and_operations() {
    let cond = |key, values: &[&str], not: &[&str]| AuthzCondition {
        key,
        values: strings(values, not),
    };
    let rule = AuthzRule {
        from: vec![AuthzSource {
            principals: strings(&["a/ns/b/sa/c"], &[]),
            ..Default::default()
        }],
        to: vec![],
        when: vec![
            cond(
                AuthzKey::RequestHeader("x-tenant".into()),
                &["*"],
                &["bad*"],
            ),
            cond(AuthzKey::DestinationPort, &["8080"], &[]),
            cond(AuthzKey::ConnectionSni, &["*.local"], &[]),
            cond(AuthzKey::SourceIp, &["127.0.0.1"], &[]),
        ],
    };
    let p = only_policy(&set(vec![policy(
        "default",
        "x",
        AuthzAction::Deny,
        vec![rule],
    )]));
    assert_eq!(
        p["permissions"],
        json!([{"and_rules": {"rules": [
            {"or_rules": {"rules": [{"any": true}]}},
            {"or_rules": {"rules": [{"requested_server_name": {"suffix": ".local"}}]}},
        ]}}])
    );
    assert_eq!(
        p["principals"][0]["and_ids"]["ids"],
        json!([
            {"or_ids": {"ids": [authn(json!({"exact": "spiffe://a/ns/b/sa/c"}))]}},
            {"or_ids": {"ids": [{"header": {"name": "x-tenant", "present_match": true}}]}},
            {"not_id": {"or_ids": {"ids": [{"header": {"name": "x-tenant", "string_match": {"prefix": "bad"}}}]}}},
            {"or_ids": {"ids": [{"direct_remote_ip": {"address_prefix": "127.0.0.1", "prefix_len": 32}}]}},
        ])
    );
}

/// Dry-run policies are shadow rules with Istio's stat prefixes; a filter
/// with only dry-run policies enforces nothing.
#[test]
fn dry_run_goes_to_shadow_rules() {
    let mut d = policy(
        "default",
        "d",
        AuthzAction::Deny,
        vec![AuthzRule::default()],
    );
    d.dry_run = true;
    let mut a = policy("default", "a", AuthzAction::Allow, vec![]);
    a.dry_run = true;
    let a2 = policy(
        "default",
        "a2",
        AuthzAction::Allow,
        vec![AuthzRule::default()],
    );
    let c = configs(&set(vec![d, a, a2]));
    assert_eq!(c[0]["rules"], Value::Null);
    assert_eq!(c[0]["shadow_rules"]["action"], "DENY");
    assert_eq!(c[0]["shadow_rules_stat_prefix"], "istio_dry_run_deny_");
    let enforced: Vec<&String> = c[1]["rules"]["policies"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(enforced, ["ns[default]-policy[a2]-rule[0]"]);
    assert!(c[1]["shadow_rules"]["policies"]["ns[default]-policy[a]-rule[0]"].is_object());
    assert_eq!(c[1]["shadow_rules_stat_prefix"], "istio_dry_run_allow_");
}

/// Snapshot versions hash the encoded bytes: they must not depend on
/// `HashMap` order, and must decode to what prost would encode.
#[test]
fn encoding_is_stable_and_decodes() {
    let rules: Vec<AuthzRule> = (0..20).map(|_| AuthzRule::default()).collect();
    let authz = set(vec![policy("default", "many", AuthzAction::Deny, rules)]);
    let proxy = sidecar("payment", "payment-v1", "v1", 16000);
    let first = http_filters(&authz, &proxy);
    for _ in 0..5 {
        assert_eq!(http_filters(&authz, &proxy), first);
    }
    let decoded = super::decode(&first[0]).unwrap();
    let rules = decoded.rules.unwrap();
    assert_eq!(rules.policies.len(), 20);
    assert_eq!(rules.action, 1);
}

#[test]
fn regex_quoting_matches_go_quote_meta() {
    assert_eq!(
        quote_meta(r"a.b*c+d?e(f)g|h[i]j{k}l^m$n\o-p/q"),
        r"a\.b\*c\+d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o-p/q"
    );
}

/// Istio's trust domain rule: `cluster.local` (and the mesh's own trust
/// domain) in a principal means the mesh's trust domain.
#[test]
fn principals_follow_the_mesh_trust_domain() {
    let td = "example.org";
    assert_eq!(
        local_principal("cluster.local/ns/a/sa/b", td),
        "example.org/ns/a/sa/b"
    );
    assert_eq!(
        local_principal("example.org/ns/a/sa/b", td),
        "example.org/ns/a/sa/b"
    );
    for kept in [
        "other.td/ns/a/sa/b",
        "*/ns/a/sa/b",
        "cluster.local/ns/a/*",
        "*",
    ] {
        assert_eq!(local_principal(kept, td), kept);
    }
    let mut authz = set(vec![policy(
        "default",
        "x",
        AuthzAction::Allow,
        vec![from(AuthzSource {
            principals: strings(&["cluster.local/ns/default/sa/frontend"], &[]),
            ..Default::default()
        })],
    )]);
    authz.trust_domain = td.into();
    let p = only_policy(&authz);
    assert_eq!(
        p["principals"][0]["and_ids"]["ids"][0]["or_ids"]["ids"][0],
        authn(json!({"exact": "spiffe://example.org/ns/default/sa/frontend"}))
    );
}

/// The root namespace and trust domain come from the `Mesh` resource.
#[test]
fn settings_come_from_the_mesh() {
    let mut mesh = MeshConfig::default();
    mesh.mesh.root_namespace = "mesh-root".into();
    mesh.mesh.trust_domain = "example.org".into();
    mesh.authorization_policies = vec![Arc::new(policy(
        "mesh-root",
        "all",
        AuthzAction::Allow,
        vec![],
    ))];
    let authz = AuthzPolicies::from_mesh(&mesh);
    assert_eq!(authz.trust_domain, "example.org");
    let proxy = sidecar("payment", "payment-v1", "v1", 16000);
    assert_eq!(authz.for_proxy(&proxy).count(), 1);
    assert_eq!(AuthzPolicies::default().root_namespace, "istio-system");
}
