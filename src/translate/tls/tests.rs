use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CommonTlsContext;
use prost::Message;

use super::*;

fn upstream(ts: &TransportSocket) -> UpstreamTlsContext {
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!("no typed config");
    };
    assert_eq!(
        any.type_url,
        <UpstreamTlsContext as prost::Name>::type_url()
    );
    UpstreamTlsContext::decode(any.value.as_slice()).unwrap()
}

fn combined(c: &CommonTlsContext) -> &CombinedCertificateValidationContext {
    match &c.validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(v)) => v,
        other => panic!("{other:?}"),
    }
}

fn sans(v: &CertificateValidationContext) -> Vec<(i32, Option<MatchPattern>)> {
    (v.match_typed_subject_alt_names.iter())
        .map(|m| (m.san_type, m.matcher.clone().and_then(|m| m.match_pattern)))
        .collect()
}

#[test]
fn istio_mutual_uses_sds_over_ads_and_exact_spiffe_ids() {
    let ids = vec!["spiffe://td/ns/a/sa/pay".to_string()];
    let u = upstream(&istio_mutual(&ids, "td", "outbound_.80_._.pay"));
    assert_eq!(u.sni, "outbound_.80_._.pay");
    let c = u.common_tls_context.unwrap();
    assert_eq!(c.tls_certificate_sds_secret_configs[0].name, "default");
    assert!(c.tls_certificate_sds_secret_configs[0].sds_config.is_some());
    let v = combined(&c);
    assert_eq!(
        v.validation_context_sds_secret_config
            .as_ref()
            .unwrap()
            .name,
        "ROOTCA"
    );
    let want = vec![(
        SanType::Uri as i32,
        Some(MatchPattern::Exact(ids[0].clone())),
    )];
    assert_eq!(sans(v.default_validation_context.as_ref().unwrap()), want);
}

#[test]
fn istio_mutual_without_known_identities_accepts_the_trust_domain() {
    let u = upstream(&istio_mutual(&[], "td", "sni"));
    let c = u.common_tls_context.unwrap();
    let v = combined(&c).default_validation_context.as_ref().unwrap();
    let want = vec![(
        SanType::Uri as i32,
        Some(MatchPattern::Prefix("spiffe://td/".into())),
    )];
    assert_eq!(sans(v), want);
    assert!(uses_mesh_secrets(&istio_mutual(&[], "td", "sni")));
}

#[test]
fn inbound_requires_a_client_certificate_of_the_trust_domain() {
    let ts = inbound_mtls("example.org");
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!();
    };
    let d = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
    assert_eq!(
        d.require_client_certificate,
        Some(BoolValue { value: true })
    );
    let c = d.common_tls_context.unwrap();
    let v = combined(&c).default_validation_context.as_ref().unwrap();
    let want = vec![(
        SanType::Uri as i32,
        Some(MatchPattern::Prefix("spiffe://example.org/".into())),
    )];
    assert_eq!(sans(v), want);
    assert!(
        !uses_mesh_secrets(&ts),
        "a downstream context is not a cluster's"
    );
}

fn client(mode: ClientTlsMode) -> ClientTls {
    ClientTls {
        mode,
        client_certificate: None,
        private_key: None,
        ca_certificates: None,
        sni: None,
        subject_alt_names: vec![],
        insecure_skip_verify: false,
        credential_name: None,
    }
}

#[test]
fn simple_verifies_with_system_roots_and_sends_the_host_as_sni() {
    let u = upstream(&client_tls(
        &client(ClientTlsMode::Simple),
        "api.example.com",
    ));
    assert_eq!(u.sni, "api.example.com");
    let c = u.common_tls_context.unwrap();
    assert!(c.tls_certificates.is_empty());
    let Some(ValidationContextType::ValidationContext(v)) = &c.validation_context_type else {
        panic!();
    };
    assert_eq!(v.trusted_ca, Some(file(SYSTEM_CA_FILE)));
    let u = upstream(&client_tls(&client(ClientTlsMode::Simple), "10.0.0.1"));
    assert_eq!(u.sni, "", "no SNI for an IP");
}

#[test]
fn mutual_sends_the_client_certificate_and_checks_sans() {
    let mut t = client(ClientTlsMode::Mutual);
    t.client_certificate = Some("/c.pem".into());
    t.private_key = Some("/k.pem".into());
    t.ca_certificates = Some("/ca.pem".into());
    t.sni = Some("sni.example".into());
    t.subject_alt_names = vec!["spiffe://x/y".into(), "10.1.2.3".into(), "a.example".into()];
    let u = upstream(&client_tls(&t, "host.example"));
    assert_eq!(u.sni, "sni.example");
    let c = u.common_tls_context.unwrap();
    assert_eq!(
        c.tls_certificates[0].certificate_chain,
        Some(file("/c.pem"))
    );
    assert_eq!(c.tls_certificates[0].private_key, Some(file("/k.pem")));
    let Some(ValidationContextType::ValidationContext(v)) = &c.validation_context_type else {
        panic!();
    };
    assert_eq!(v.trusted_ca, Some(file("/ca.pem")));
    let types: Vec<i32> = sans(v).into_iter().map(|(t, _)| t).collect();
    let want = [SanType::Uri, SanType::IpAddress, SanType::Dns].map(|t| t as i32);
    assert_eq!(types, want);
    assert!(!uses_mesh_secrets(&client_tls(&t, "h")));
}

#[test]
fn insecure_skip_verify_has_no_validation_context() {
    let mut t = client(ClientTlsMode::Simple);
    t.insecure_skip_verify = true;
    let c = upstream(&client_tls(&t, "h.example"))
        .common_tls_context
        .unwrap();
    assert!(c.validation_context_type.is_none());
}

#[test]
fn auto_mtls_matches_tls_mode_istio_else_plaintext() {
    let m = auto_mtls_matches(istio_mutual(&[], "td", "s"));
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].r#match, Some(tls_mode_istio()));
    assert_eq!(m[0].transport_socket.as_ref().unwrap().name, TLS_SOCKET);
    assert_eq!(
        m[1].r#match,
        Some(Struct::default()),
        "matches every other endpoint"
    );
    assert_eq!(
        m[1].transport_socket.as_ref().unwrap().name,
        "envoy.transport_sockets.raw_buffer"
    );
}

#[test]
fn credential_name_fetches_the_certificate_and_ca_over_sds() {
    let t = ClientTls {
        credential_name: Some("client-cert".into()),
        subject_alt_names: vec!["backend.example".into()],
        ..client(ClientTlsMode::Mutual)
    };
    let c = upstream(&client_tls(&t, "backend.example"))
        .common_tls_context
        .unwrap();
    let certs: Vec<_> = (c.tls_certificate_sds_secret_configs.iter())
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(certs, ["kubernetes://client-cert"]);
    assert!(c.tls_certificates.is_empty());
    let Some(ValidationContextType::CombinedValidationContext(v)) = c.validation_context_type
    else {
        panic!("no combined validation context");
    };
    assert_eq!(
        v.validation_context_sds_secret_config.unwrap().name,
        "kubernetes://client-cert-cacert"
    );
    assert_eq!(
        v.default_validation_context
            .unwrap()
            .match_typed_subject_alt_names
            .len(),
        1
    );
    // Not the mesh's certificate: a runtime without a CA keeps it.
    assert!(!uses_mesh_secrets(&client_tls(&t, "backend.example")));
    // SIMPLE fetches only the CA.
    let simple = ClientTls {
        mode: ClientTlsMode::Simple,
        ..t
    };
    let c = upstream(&client_tls(&simple, "h"))
        .common_tls_context
        .unwrap();
    assert!(c.tls_certificate_sds_secret_configs.is_empty());
    assert!(c.validation_context_type.is_some());
}
