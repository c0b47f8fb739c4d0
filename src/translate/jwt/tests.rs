//! JWT filter translation: selection, provider shape, the requirement and
//! keys from `jwksUri` (compared as proto3 JSON).

use std::sync::Arc;

use serde_json::{json, Value};

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;

use super::*;
use crate::config::model::{JwtHeader as RuleHeader, Labels};
use crate::translate::fixtures::{labels, origin, sidecar};

const JWKS: &str = r#"{"keys":[{"kty":"EC"}]}"#;

fn rule(issuer: &str, keys: JwksSource) -> JwtRule {
    JwtRule {
        issuer: issuer.into(),
        audiences: vec![],
        keys,
        from_headers: vec![],
        from_params: vec![],
        from_cookies: vec![],
        forward_original_token: false,
        output_payload_to_header: None,
        output_claim_to_headers: vec![],
    }
}

fn ra(
    ns: &str,
    name: &str,
    selector: Option<Labels>,
    rules: Vec<JwtRule>,
) -> RequestAuthentication {
    let mut o = origin("RequestAuthentication", name);
    o.namespace = ns.into();
    RequestAuthentication {
        selector,
        target_services: Vec::new(),
        jwt_rules: rules,
        origin: o,
    }
}

fn inputs(ras: Vec<RequestAuthentication>) -> JwtInputs {
    JwtInputs {
        root_namespace: "istio-system".into(),
        resources: ras.into_iter().map(Arc::new).collect(),
        fetched: FetchedJwks::new(),
    }
}

/// The filter config for the `payment` sidecar (namespace `default`).
fn config(inputs: &JwtInputs) -> Option<Value> {
    let proxy = sidecar("payment", "payment-v1", "v1", 16000);
    let f = http_filter(inputs, &proxy)?;
    assert_eq!(f.name, JWT_FILTER);
    let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("typed config expected")
    };
    Some(crate::envoy_json::to_json(any).unwrap())
}

#[test]
fn nothing_applies_no_filter() {
    assert!(config(&inputs(vec![])).is_none());
    let other = ra(
        "shop",
        "a",
        None,
        vec![rule("i", JwksSource::Inline(JWKS.into()))],
    );
    let unselected = ra(
        "default",
        "b",
        Some(labels(&[("app", "ledger")])),
        vec![rule("i", JwksSource::Inline(JWKS.into()))],
    );
    assert!(config(&inputs(vec![other, unselected])).is_none());
}

#[test]
fn a_service_target_applies_to_that_service_in_the_namespace_only() {
    let mut targeted = ra(
        "default",
        "t",
        None,
        vec![rule("i", JwksSource::Inline(JWKS.into()))],
    );
    targeted.target_services = vec!["ledger".into()];
    let inputs = inputs(vec![targeted]);
    let mut proxy = sidecar("ledger", "l1", "v1", 1);
    assert!(http_filter(&inputs, &proxy).is_some());
    proxy.namespace = "other".into();
    assert!(http_filter(&inputs, &proxy).is_none());
    assert!(http_filter(&inputs, &sidecar("web", "w1", "v1", 2)).is_none());
}

#[test]
fn provider_and_requirement_shape() {
    let mut r = rule("https://issuer", JwksSource::Inline(JWKS.into()));
    r.audiences = vec!["shop".into()];
    r.from_headers = vec![RuleHeader {
        name: "x-jwt".into(),
        prefix: "Token ".into(),
    }];
    r.from_params = vec!["tok".into()];
    r.from_cookies = vec!["session".into()];
    r.forward_original_token = true;
    r.output_payload_to_header = Some("x-payload".into());
    r.output_claim_to_headers = vec![("x-sub".into(), "sub".into())];
    let selected = ra(
        "default",
        "jwt",
        Some(labels(&[("app", "payment")])),
        vec![r],
    );
    let mesh_wide = ra(
        "istio-system",
        "mesh",
        None,
        vec![rule("other", JwksSource::Inline(JWKS.into()))],
    );
    let c = config(&inputs(vec![selected, mesh_wide])).unwrap();
    assert_eq!(
        c["providers"]["ns[default]-ra[jwt]-rule[0]"],
        json!({
            "issuer": "https://issuer",
            "audiences": ["shop"],
            "forward": true,
            "from_headers": [{"name": "x-jwt", "value_prefix": "Token "}],
            "from_params": ["tok"],
            "from_cookies": ["session"],
            "forward_payload_header": "x-payload",
            "payload_in_metadata": "payload",
            "failed_status_in_metadata": "failed_status",
            "claim_to_headers": [{"header_name": "x-sub", "claim_name": "sub"}],
            "local_jwks": {"inline_string": JWKS},
        })
    );
    assert_eq!(
        c["rules"],
        json!([{
            "match": {"prefix": "/"},
            "requires": {"requires_any": {"requirements": [
                {"provider_name": "ns[default]-ra[jwt]-rule[0]"},
                {"provider_name": "ns[istio-system]-ra[mesh]-rule[0]"},
                {"allow_missing": {}},
            ]}},
        }])
    );
}

#[test]
fn jwks_uri_serves_fetched_keys_or_fails_closed() {
    let uri = "https://127.0.0.1:9/keys";
    let mut i = inputs(vec![ra(
        "default",
        "jwt",
        None,
        vec![rule("i", JwksSource::Uri(uri.into()))],
    )]);
    let keys = |c: Value| {
        c["providers"]["ns[default]-ra[jwt]-rule[0]"]["local_jwks"]["inline_string"].clone()
    };
    assert_eq!(keys(config(&i).unwrap()), json!(UNFETCHED_JWKS));
    i.fetched.insert(uri.into(), JWKS.into());
    assert_eq!(keys(config(&i).unwrap()), json!(JWKS));
    assert_eq!(jwks_uris(&i.resources), [uri]);
}

#[test]
fn audience_failures_are_mapped_to_401_only_with_the_jwt_filter() {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    let mut hcm = HttpConnectionManager::default();
    local_reply::apply(&mut hcm);
    assert!(hcm.local_reply_config.is_none());
    let i = inputs(vec![ra(
        "default",
        "jwt",
        None,
        vec![rule("i", JwksSource::Inline(JWKS.into()))],
    )]);
    let proxy = sidecar("payment", "payment-v1", "v1", 16000);
    hcm.http_filters.extend(http_filter(&i, &proxy));
    local_reply::apply(&mut hcm);
    let any = envoy_types::util::pack_any(hcm);
    let c = crate::envoy_json::to_json(&any).unwrap();
    let mapper = &c["local_reply_config"]["mappers"][0];
    assert_eq!(mapper["status_code"], json!(401));
    let and = &mapper["filter"]["and_filter"]["filters"];
    assert_eq!(
        and[0]["status_code_filter"]["comparison"]["value"]["default_value"],
        json!(403)
    );
    assert_eq!(
        and[1]["metadata_filter"]["matcher"]["value"]["string_match"]["exact"],
        json!("Audiences in Jwt are not allowed")
    );
    assert_eq!(and[2]["metadata_filter"]["matcher"]["invert"], json!(true));
}
