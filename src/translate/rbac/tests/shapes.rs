//! The exact Envoy shape of each kind of match (as proto3 JSON).

use serde_json::{json, Value};

use super::{from, only_policy, policy, set, strings, to};
use crate::config::model::*;
use crate::translate::rbac::matchers::{local_principal, quote_meta};

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
