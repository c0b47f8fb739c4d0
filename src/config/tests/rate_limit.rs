//! `RateLimit`: loaded, and every bad field reported at its position.

use super::load;
use crate::config::model::{LimitUnit, RateLimitMode, RateLimitTarget, SourceMatch};

const SERVICE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay}
spec:
  hosts: [pay]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
";

/// A RateLimit for `pay` whose rules start on line 7.
fn limits(rules: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: RateLimit\nmetadata:\n  name: rl\nspec:\n  target: {{host: pay}}\n{rules}"
    )
}

fn errors(rules: &str) -> Vec<String> {
    match load(&[("s.yaml", SERVICE), ("f.yaml", &limits(rules))]) {
        Ok(_) => panic!("expected errors, config loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_rate_limit_loads_with_its_defaults() {
    let rules = "  rules:
  - name: api
    match: {path: {prefix: /api}, source: {principal: cluster.local/ns/shop/sa/web}}
    limit: {requests: 10, unit: second, burst: 5}
";
    let mesh = load(&[("s.yaml", SERVICE), ("f.yaml", &limits(rules))]).unwrap();
    let rl = &mesh.rate_limits[0];
    assert_eq!(rl.mode, RateLimitMode::Local);
    assert!(
        matches!(&rl.target, RateLimitTarget::Service { host, subset: None }
        if host.as_str() == "pay.default.svc.cluster.local")
    );
    let rule = &rl.rules[0];
    assert_eq!(rule.limit.unit, LimitUnit::Second);
    assert_eq!(rule.limit.capacity(), 15);
    assert_eq!(rule.response.status, 429);
    assert_eq!(
        rule.matches.source,
        Some(SourceMatch::Principal(
            "cluster.local/ns/shop/sa/web".into()
        ))
    );
}

#[test]
fn zero_and_negative_limits_and_unknown_units_are_errors() {
    let rules = "  rules:
  - name: a
    limit: {requests: 0, unit: second}
  - name: b
    match: {method: GET}
    limit: {requests: -3, unit: second, burst: -1}
  - name: c
    match: {method: POST}
    limit: {requests: 5, unit: fortnight}
";
    assert_eq!(
        errors(rules),
        [
            "f.yaml:9:13: error: RateLimit/rl: spec.rules[0].limit.requests: requests must be at least 1 (got 0)",
            "f.yaml:12:13: error: RateLimit/rl: spec.rules[1].limit.requests: requests must be at least 1 (got -3)",
            "f.yaml:12:41: error: RateLimit/rl: spec.rules[1].limit.burst: burst must be 0 or more (got -1)",
            "f.yaml:15:26: error: RateLimit/rl: spec.rules[2].limit.unit: unknown unit \"fortnight\": use second, minute or hour",
        ]
    );
}

#[test]
fn overlapping_rules_are_errors() {
    let rules = "  rules:
  - name: api
    match: {path: {prefix: /api}}
    limit: {requests: 5, unit: second}
  - name: api-v1
    match: {path: {prefix: /api/v1}}
    limit: {requests: 5, unit: second}
  - name: web
    match: {path: {prefix: /web}}
    limit: {requests: 5, unit: second}
";
    let e = errors(rules);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("f.yaml:11:5: error: RateLimit/rl: spec.rules[1]: rule \"api-v1\" overlaps rule \"api\""),
        "{e:?}"
    );
}

#[test]
fn unknown_targets_and_misplaced_fields_are_errors() {
    let other = "apiVersion: trellis.dev/v1alpha1
kind: RateLimit
metadata: {name: x}
spec:
  target: {host: nowhere, subset: v9}
  service: {address: '127.0.0.1:1'}
  rules:
  - name: a
    limit: {requests: 1, unit: hour}
    response: {status: 200, headers: {x-ratelimit-limit: '1'}}
    window: 5s
";
    let e = match load(&[("s.yaml", SERVICE), ("f.yaml", other)]) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    };
    assert_eq!(
        e,
        ["f.yaml:11:5: error: RateLimit/x: spec.rules[0].window: unknown field `window`, expected one of `name`, `match`, `limit`, `response`, `shadow`"]
    );
    let fixed = other.replace("    window: 5s\n", "");
    let e = match load(&[("s.yaml", SERVICE), ("f.yaml", &fixed)]) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    };
    assert_eq!(
        e,
        [
            "f.yaml:6:3: error: RateLimit/x: spec.service: service applies to `mode: global` only",
            "f.yaml:10:16: error: RateLimit/x: spec.rules[0].response.status: status 200 is not an HTTP error status Envoy knows (4xx or 5xx)",
        ]
    );
    let fixed = fixed
        .replace("  service: {address: '127.0.0.1:1'}\n", "")
        .replace(
            "status: 200, headers: {x-ratelimit-limit: '1'}",
            "status: 503",
        );
    let e = match load(&[("s.yaml", SERVICE), ("f.yaml", &fixed)]) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    };
    assert_eq!(
        e,
        ["f.yaml:5:3: error: RateLimit/x: spec.target: unknown target host nowhere.default.svc.cluster.local: no ServiceEntry declares it"]
    );
}

#[test]
fn a_tcp_service_cannot_be_limited() {
    let tcp = SERVICE.replace("name: http, protocol: HTTP", "name: tcp, protocol: TCP");
    let rules = "  rules:\n  - name: a\n    limit: {requests: 1, unit: second}\n";
    let e = match load(&[("s.yaml", &tcp), ("f.yaml", &limits(rules))]) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    };
    assert_eq!(
        e,
        ["f.yaml:6:3: error: RateLimit/rl: spec.target: pay.default.svc.cluster.local has no HTTP port: rate limits apply to HTTP requests only"]
    );
}

#[test]
fn a_global_burst_is_accepted_and_needs_a_service() {
    let rules = "  mode: global
  rules:
  - name: a
    limit: {requests: 10, unit: second, burst: 20}
";
    assert_eq!(
        errors(rules),
        ["f.yaml:7:3: error: RateLimit/rl: spec.mode: `mode: global` needs `service` (the address of `trellis ratelimit`)"]
    );
    let with = format!("  service: {{address: 'ratelimit.example:8081'}}\n{rules}");
    let mesh = load(&[("s.yaml", SERVICE), ("f.yaml", &limits(&with))]).unwrap();
    let RateLimitMode::Global(svc) = &mesh.rate_limits[0].mode else {
        panic!("global")
    };
    assert_eq!((svc.host.as_str(), svc.port), ("ratelimit.example", 8081));
    assert_eq!(mesh.rate_limits[0].rules[0].limit.capacity(), 30);
}
