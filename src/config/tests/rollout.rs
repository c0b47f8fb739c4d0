//! `RolloutPolicy`: loaded with its defaults, and every bad field (unknown
//! ones included) reported at its position.

use std::time::Duration;

use super::load;
use crate::config::model::{CanarySelector, DEFAULT_MIN_REQUESTS};

fn policy(spec: &str) -> String {
    format!("apiVersion: trellis.dev/v1alpha1\nkind: RolloutPolicy\nmetadata:\n  name: staged\nspec:\n{spec}")
}

fn errors(spec: &str) -> Vec<String> {
    match load(&[("r.yaml", &policy(spec))]) {
        Ok(_) => panic!("expected errors, config loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_rollout_policy_loads_with_its_defaults() {
    let spec = "  canary:\n    selector: {matchLabels: {track: canary}}\n  bakeTime: 2m\n";
    let mesh = load(&[("r.yaml", &policy(spec))]).unwrap();
    let p = mesh.rollout.expect("policy");
    assert_eq!(p.bake_time, Duration::from_secs(120));
    assert!(matches!(&p.canary, CanarySelector::Labels(l) if l["track"] == "canary"));
    assert_eq!(p.abort.min_requests, DEFAULT_MIN_REQUESTS);
    assert_eq!(p.abort.max_latency_ratio, None);
    let spec = "  canary: {percent: 10}\n  bakeTime: 30s\n  abort: {maxErrorRateIncrease: 0.1, maxLatencyRatio: 2, minRequests: 5}\n";
    let p = load(&[("r.yaml", &policy(spec))]).unwrap().rollout.unwrap();
    assert_eq!(p.canary, CanarySelector::Percent(10.0));
    assert_eq!(
        (
            p.abort.max_error_rate_increase,
            p.abort.max_latency_ratio,
            p.abort.min_requests
        ),
        (0.1, Some(2.0), 5)
    );
}

#[test]
fn no_policy_means_none() {
    let mesh = load(&[]).unwrap();
    assert!(mesh.rollout.is_none());
}

#[test]
fn unknown_fields_are_positioned_errors() {
    let spec = "  canary: {service: web}\n  bakeTime: 1m\n  abort: {maxErrorRate: 0.1}\n";
    let errs = errors(spec);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("r.yaml:8:"), "{errs:?}");
    assert!(
        errs[0].contains("spec.abort") && errs[0].contains("maxErrorRate"),
        "{errs:?}"
    );
}

#[test]
fn bad_values_are_errors_at_their_field() {
    let spec = "  canary: {service: web, percent: 5}\n  bakeTime: soon\n  abort: {maxErrorRateIncrease: 2, maxLatencyRatio: 0.5, minRequests: 0}\n";
    assert_eq!(
        errors(spec),
        [
            "r.yaml:6:3: error: RolloutPolicy/staged: spec.canary: give only one of `selector`, `service` or `percent`",
            "r.yaml:7:3: error: RolloutPolicy/staged: spec.bakeTime: invalid duration \"soon\": use a number and a unit, e.g. 2s, 500ms, 1.5s, 1m, 1h",
            "r.yaml:8:11: error: RolloutPolicy/staged: spec.abort.maxErrorRateIncrease: maxErrorRateIncrease 2 is not a fraction in 0..1",
            "r.yaml:8:36: error: RolloutPolicy/staged: spec.abort.maxLatencyRatio: maxLatencyRatio 0.5 must be at least 1 (canary latency / others')",
            "r.yaml:8:58: error: RolloutPolicy/staged: spec.abort.minRequests: minRequests 0 must be at least 1",
        ]
    );
    let errs = errors("  canary: {percent: 0}\n");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("bakeTime is required")),
        "{errs:?}"
    );
}

#[test]
fn two_policies_are_an_error() {
    let spec = "  canary: {percent: 10}\n  bakeTime: 30s\n";
    let two = format!(
        "{}---\n{}",
        policy(spec),
        policy(spec).replace("staged", "other")
    );
    let errs = load(&[("r.yaml", &two)]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("only one RolloutPolicy per mesh"),
        "{errs:?}"
    );
}
