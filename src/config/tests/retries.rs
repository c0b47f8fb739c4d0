//! Retry fields: `retries.backoff` and `retryIgnorePreviousHosts`, a
//! `DestinationRule`'s `retryBudget`, the `Mesh` default budget.

use std::time::Duration;

use super::{dr, errors, load, vs_rule};
use crate::config::model::RetryBudget;

const MESH_HEAD: &str =
    "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n";

#[test]
fn backoff_and_previous_hosts_are_read() {
    let text = vs_rule("    retries:\n      attempts: 3\n      backoff: 40ms\n      retryIgnorePreviousHosts: false\n");
    let cfg = load(&[("f.yaml", &text)]).unwrap();
    let vs = cfg.virtual_services.values().next().unwrap();
    let r = vs.http[0].retries.as_ref().unwrap();
    assert_eq!(r.backoff, Some(Duration::from_millis(40)));
    assert_eq!(r.retry_ignore_previous_hosts, Some(false));
}

#[test]
fn backoff_is_checked() {
    assert_eq!(
        errors(&vs_rule(
            "    retries:\n      attempts: 3\n      backoff: 0s\n"
        )),
        [
            r#"f.yaml:14:7: error: VirtualService/pay: spec.http[0].retries.backoff: duration "0s" must be at least 1ms"#
        ]
    );
    assert_eq!(
        errors(&vs_rule("    retries:\n      attempts: 0\n      backoff: 1s\n")),
        ["f.yaml:13:7: error: VirtualService/pay: spec.http[0].retries.attempts: retry policy configured while attempts is 0 (disabled): set attempts or remove the policy"]
    );
}

#[test]
fn a_rule_budget_is_read_with_envoys_defaults() {
    let text = format!(
        "{}  trafficPolicy:\n    retryBudget:\n      percent: 25.5\n      budgetInterval: 2s\n",
        dr("pay", "pay")
    );
    let cfg = load(&[("f.yaml", &text)]).unwrap();
    let rule = cfg.destination_rules.values().next().unwrap();
    let budget = rule.traffic_policy.as_ref().unwrap().retry_budget.unwrap();
    let want = RetryBudget {
        percent: 25.5,
        min_retry_concurrency: 3,
        budget_interval: Some(Duration::from_secs(2)),
    };
    assert_eq!(budget, want);
}

#[test]
fn bad_budgets_are_errors() {
    let with = |body: &str| format!("{}  trafficPolicy:\n{body}", dr("pay", "pay"));
    assert_eq!(
        errors(&with("    retryBudget:\n      percent: 120\n")),
        ["f.yaml:9:7: error: DestinationRule/pay: spec.trafficPolicy.retryBudget.percent: percentage 120 is not in 0..100"]
    );
    assert_eq!(
        errors(&with("    retryBudget:\n      minRetryConcurrency: 0\n")),
        ["f.yaml:9:7: error: DestinationRule/pay: spec.trafficPolicy.retryBudget.minRetryConcurrency: minRetryConcurrency must be at least 1 (Istio reads 0 as the default, 3)"]
    );
    assert_eq!(
        errors(&with("    retryBudget:\n      percent: 20\n    connectionPool:\n      http:\n        maxRetries: 4\n")),
        ["f.yaml:12:9: error: DestinationRule/pay: spec.trafficPolicy.connectionPool.http.maxRetries: maxRetries has no effect where a retryBudget applies (Envoy ignores max_retries when a budget is set), and this rule sets a retryBudget: remove one of them"]
    );
    // A subset inherits the rule's budget, so its maxRetries would be lost.
    let subset = "  subsets:\n  - name: v1\n    labels:\n      version: v1\n    trafficPolicy:\n      connectionPool:\n        http:\n          maxRetries: 4\n";
    assert_eq!(
        errors(&format!("{}{subset}", with("    retryBudget:\n      percent: 20\n"))),
        ["f.yaml:17:11: error: DestinationRule/pay: spec.subsets[0].trafficPolicy.connectionPool.http.maxRetries: maxRetries has no effect where a retryBudget applies (Envoy ignores max_retries when a budget is set), and this rule sets a retryBudget: remove one of them"]
    );
}

#[test]
fn the_mesh_default_is_20_percent_at_least_10_changed_or_disabled() {
    let cfg = load(&[("f.yaml", &dr("pay", "pay"))]).unwrap();
    assert_eq!(
        cfg.mesh.default_retry_budget,
        Some(RetryBudget::mesh_default())
    );
    assert_eq!(RetryBudget::mesh_default().min_retry_concurrency, 10);
    // A field left out keeps the mesh default's, not Envoy's 3.
    let text = format!("{MESH_HEAD}  defaultRetryBudget:\n    percent: 10\n");
    let cfg = load(&[("f.yaml", &text)]).unwrap();
    let want = RetryBudget {
        percent: 10.0,
        ..RetryBudget::mesh_default()
    };
    assert_eq!(cfg.mesh.default_retry_budget, Some(want));
    let text =
        format!("{MESH_HEAD}  defaultRetryBudget:\n    percent: 10\n    minRetryConcurrency: 5\n");
    let cfg = load(&[("f.yaml", &text)]).unwrap();
    let want = RetryBudget {
        percent: 10.0,
        min_retry_concurrency: 5,
        budget_interval: None,
    };
    assert_eq!(cfg.mesh.default_retry_budget, Some(want));
    let text = format!("{MESH_HEAD}  defaultRetryBudget:\n    disabled: true\n");
    assert_eq!(
        load(&[("f.yaml", &text)])
            .unwrap()
            .mesh
            .default_retry_budget,
        None
    );
    let text = format!("{MESH_HEAD}  defaultRetryBudget:\n    disabled: true\n    percent: 5\n");
    assert_eq!(
        errors(&text),
        ["f.yaml:7:5: error: Mesh/mesh: spec.defaultRetryBudget.disabled: a disabled budget has no percent, minRetryConcurrency or budgetInterval: remove them or `disabled`"]
    );
}
