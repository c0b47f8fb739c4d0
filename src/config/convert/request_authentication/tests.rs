//! `RequestAuthentication` loading: what converts, and positioned errors.

use crate::config::model::{JwksSource, JwtHeader};
use crate::config::tests::{errors, load};

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#;

/// A resource `ra` in namespace `pay`; `spec` is on line 6.
fn ra(spec: &str) -> String {
    format!("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: ra\n  namespace: pay\nspec:\n{spec}")
}

#[test]
fn full_rule_converts() {
    let spec = format!(
        r#"  selector:
    matchLabels:
      app: payment
  jwtRules:
  - issuer: https://issuer.example
    audiences: [shop]
    jwks: '{JWKS}'
    fromHeaders:
    - name: X-Jwt
      prefix: "Token "
    fromParams: [tok]
    fromCookies: [session]
    forwardOriginalToken: true
    outputPayloadToHeader: x-payload
    outputClaimToHeaders:
    - header: x-sub
      claim: sub
  - issuer: other
    jwksUri: https://127.0.0.1:8443/jwks
"#
    );
    let mesh = load(&[("f.yaml", &ra(&spec))]).unwrap();
    let [r] = mesh.request_authentications.as_slice() else {
        panic!("one resource expected")
    };
    assert_eq!(r.selector.as_ref().unwrap()["app"], "payment");
    let [a, b] = r.jwt_rules.as_slice() else {
        panic!()
    };
    assert_eq!(a.issuer, "https://issuer.example");
    assert_eq!(a.audiences, ["shop"]);
    assert_eq!(a.keys, JwksSource::Inline(JWKS.to_string()));
    assert_eq!(
        a.from_headers,
        [JwtHeader {
            name: "x-jwt".into(),
            prefix: "Token ".into()
        }]
    );
    assert_eq!(a.from_params, ["tok"]);
    assert_eq!(a.from_cookies, ["session"]);
    assert!(a.forward_original_token);
    assert_eq!(a.output_payload_to_header.as_deref(), Some("x-payload"));
    assert_eq!(a.output_claim_to_headers, [("x-sub".into(), "sub".into())]);
    assert_eq!(
        b.keys,
        JwksSource::Uri("https://127.0.0.1:8443/jwks".to_string())
    );
}

#[test]
fn issuer_is_required() {
    let spec = format!("  jwtRules:\n  - jwks: '{JWKS}'\n");
    assert_eq!(
        errors(&ra(&spec)),
        ["f.yaml:8:5: error: RequestAuthentication/ra: spec.jwtRules[0].issuer: `issuer` must be set"]
    );
}

#[test]
fn bad_jwks_json_is_positioned() {
    let spec = "  jwtRules:\n  - issuer: a\n    jwks: '{\"keys\": ['\n";
    let e = errors(&ra(spec));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("f.yaml:9:5: error: RequestAuthentication/ra: spec.jwtRules[0].jwks: `jwks` is not valid JSON"),
        "{e:?}"
    );
    let spec = "  jwtRules:\n  - issuer: a\n    jwks: '{\"k\": 1}'\n";
    assert_eq!(
        errors(&ra(spec)),
        ["f.yaml:9:5: error: RequestAuthentication/ra: spec.jwtRules[0].jwks: `jwks` must be a JSON object with a `keys` array (RFC 7517)"]
    );
}

#[test]
fn keys_source_errors() {
    let spec = "  jwtRules:\n  - issuer: a\n";
    assert_eq!(
        errors(&ra(spec)),
        ["f.yaml:8:5: error: RequestAuthentication/ra: spec.jwtRules[0]: one of `jwks` or `jwksUri` must be set: OpenID discovery from the issuer is not supported"]
    );
    let spec = "  jwtRules:\n  - issuer: a\n    jwksUri: http://x/keys\n";
    assert_eq!(
        errors(&ra(spec)),
        ["f.yaml:9:5: error: RequestAuthentication/ra: spec.jwtRules[0].jwksUri: `jwksUri` \"http://x/keys\" must be an https:// URL with a host"]
    );
}

#[test]
fn unknown_and_unsupported_fields() {
    let spec = format!("  jwtRules:\n  - issuer: a\n    jwks: '{JWKS}'\n    issuerr: b\n");
    let e = errors(&ra(&spec));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("f.yaml:10:5: error: RequestAuthentication/ra: spec.jwtRules[0].issuerr: unknown field `issuerr`"),
        "{e:?}"
    );
    let spec = format!("  jwtRules:\n  - issuer: a\n    jwks: '{JWKS}'\n    timeout: 5s\n");
    assert_eq!(
        errors(&ra(&spec)),
        ["f.yaml:10:5: error: RequestAuthentication/ra: spec.jwtRules[0].timeout: field `timeout` is not supported yet"]
    );
}

#[test]
fn target_refs_name_services_of_the_namespace() {
    let rules = format!("  jwtRules:\n  - issuer: a\n    jwks: '{JWKS}'\n");
    let spec = format!("  targetRefs:\n  - {{kind: Service, group: '', name: ledger}}\n  - {{kind: Service, name: web}}\n{rules}");
    let mesh = load(&[("f.yaml", &ra(&spec))]).unwrap();
    assert_eq!(
        mesh.request_authentications[0].target_services,
        ["ledger", "web"]
    );
    let spec = format!("  targetRef:\n    group: gateway.networking.k8s.io\n    kind: Gateway\n    name: gw\n{rules}");
    let e = errors(&ra(&spec));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("f.yaml:9:5: error: RequestAuthentication/ra: spec.targetRef.kind: kind Gateway (Kubernetes Gateway API) has no counterpart in Trellis"), "{e:?}");
    let spec = format!("  selector: {{matchLabels: {{app: x}}}}\n  targetRef: {{kind: Service, name: ledger, namespace: other}}\n{rules}");
    let e = errors(&ra(&spec));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("spec.selector: selector and targetRef(s) cannot both be set"),
        "{e:?}"
    );
    assert!(
        e[1].contains("spec.targetRef.namespace: a target must be in the policy's own namespace"),
        "{e:?}"
    );
}

#[test]
fn bad_header_names() {
    let spec = format!("  jwtRules:\n  - issuer: a\n    jwks: '{JWKS}'\n    outputClaimToHeaders:\n    - header: 'bad header'\n      claim: sub\n");
    assert_eq!(
        errors(&ra(&spec)),
        ["f.yaml:11:7: error: RequestAuthentication/ra: spec.jwtRules[0].outputClaimToHeaders[0].header: \"bad header\" is not a valid header name"]
    );
}
