//! RBAC translation: selection, filter order, and the exact Envoy shape of
//! each kind of match (compared as proto3 JSON).

use std::sync::Arc;

use serde_json::{json, Value};

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use prost::Message;

use super::{http_filters, AuthzPolicies, RBAC_FILTER};
use crate::config::model::*;
use crate::translate::fixtures::{labels, origin, sidecar};

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

/// Snapshot versions hash the encoded bytes: the policy map must encode
/// the same from any `HashMap` order (through `crate::canonical`, as every
/// resource is), and decode to every policy.
#[test]
fn encoding_is_stable_and_decodes() {
    let rules: Vec<AuthzRule> = (0..20).map(|_| AuthzRule::default()).collect();
    let authz = set(vec![policy("default", "many", AuthzAction::Deny, rules)]);
    let proxy = sidecar("payment", "payment-v1", "v1", 16000);
    let encode = || crate::canonical::encode(&http_filters(&authz, &proxy)[0]).unwrap();
    let first = encode();
    for _ in 0..5 {
        assert_eq!(encode(), first);
    }
    let decoded = super::decode(&HttpFilter::decode(first.as_slice()).unwrap()).unwrap();
    let rules = decoded.rules.unwrap();
    assert_eq!(rules.policies.len(), 20);
    assert_eq!(rules.action, 1);
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

mod jwt;
mod shapes;
