//! RBAC principals on the verified JWT payload (dynamic metadata of the
//! JWT filter), compared as proto3 JSON.

use serde_json::{json, Value};

use super::super::jwt::{claim, request_principal};

fn js(p: envoy_types::pb::envoy::config::rbac::v3::Principal) -> Value {
    let any = envoy_types::util::pack_any(envoy_types::pb::envoy::config::rbac::v3::Policy {
        principals: vec![p],
        ..Default::default()
    });
    crate::envoy_json::to_json(&any).unwrap()["principals"][0].clone()
}

fn md(path: &[&str], value: Value) -> Value {
    let mut segs = vec![json!({"key": "payload"})];
    segs.extend(path.iter().map(|k| json!({"key": k})));
    json!({"sourced_metadata": {"metadata_matcher": {
        "filter": "envoy.filters.http.jwt_authn", "path": segs, "value": value}}})
}

fn s(kind: &str, v: &str) -> Value {
    json!({"string_match": {kind: v}})
}

#[test]
fn any_request_principal_is_a_present_issuer() {
    assert_eq!(
        js(request_principal("*")),
        md(&["iss"], json!({"present_match": true}))
    );
}

#[test]
fn exact_principal_tries_every_split() {
    let and = |iss: &str, sub: &str| json!({"and_ids": {"ids": [md(&["iss"], s("exact", iss)), md(&["sub"], s("exact", sub))]}});
    assert_eq!(
        js(request_principal("https://a/b")),
        json!({"or_ids": {"ids": [and("https:", "/a/b"), and("https:/", "a/b"), and("https://a", "b")]}})
    );
}

#[test]
fn prefix_and_suffix_principals() {
    assert_eq!(
        js(request_principal("iss/al*")),
        json!({"or_ids": {"ids": [
            md(&["iss"], s("prefix", "iss/al")),
            {"and_ids": {"ids": [md(&["iss"], s("exact", "iss")), md(&["sub"], s("prefix", "al"))]}},
        ]}})
    );
    assert_eq!(
        js(request_principal("*/alice")),
        json!({"or_ids": {"ids": [
            md(&["sub"], s("suffix", "/alice")),
            {"and_ids": {"ids": [md(&["iss"], json!({"present_match": true})), md(&["sub"], s("exact", "alice"))]}},
        ]}})
    );
}

#[test]
fn claims_match_a_string_or_a_list_member_at_nested_paths() {
    let v = s("exact", "admin");
    assert_eq!(
        js(claim(&["realm".into(), "roles".into()], "admin")),
        json!({"or_ids": {"ids": [
            md(&["realm", "roles"], v.clone()),
            md(&["realm", "roles"], json!({"list_match": {"one_of": v}})),
        ]}})
    );
}
