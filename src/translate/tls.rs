//! TLS transport sockets, as istiod builds them
//! (`pilot/pkg/networking/core/cluster_tls.go`, `security/authn`): the
//! mesh's mTLS with the SDS secrets `default` and `ROOTCA` fetched over
//! ADS, and `DestinationRule` SIMPLE/MUTUAL TLS from files or from
//! `credentialName`.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::{
    data_source::Specifier, transport_socket, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    subject_alt_name_matcher::SanType,
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, TlsCertificate, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::google::protobuf::{value::Kind, BoolValue, Struct, Value};
use envoy_types::util::pack_any;

use super::secrets::{ROOT_CA_SECRET, WORKLOAD_SECRET};
use super::util::ads;
use crate::config::model::{ClientTls, ClientTlsMode};

/// Envoy's TLS transport socket.
pub const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
/// Endpoint metadata namespace `transport_socket_matches` read.
pub const SOCKET_MATCH_KEY: &str = "envoy.transport_socket_match";
/// Istio's endpoint label for a sidecar that takes mTLS: `tlsMode: istio`.
pub const TLS_MODE_KEY: &str = "tlsMode";
/// The value of [`TLS_MODE_KEY`] for sidecar endpoints.
pub const TLS_MODE_ISTIO: &str = "istio";
/// Where SIMPLE/MUTUAL verify servers when no `caCertificates` is given
/// (Istio verifies with the system's roots, `VERIFY_CERTIFICATE_AT_CLIENT`).
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A secret fetched by name over the ADS stream.
pub fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ads()),
    }
}

/// The mesh's TLS context for a server: [`mesh_context`] with clients'
/// identities in `trust_domain` (`spiffe://TD/` prefix) unless `sans`
/// names them.
pub(super) fn server_mesh_context(
    sans: Vec<SubjectAltNameMatcher>,
    trust_domain: &str,
) -> CommonTlsContext {
    let sans = match sans.is_empty() {
        true => vec![uri_san(&format!("spiffe://{trust_domain}/"), true)],
        false => sans,
    };
    mesh_context(sans, &[])
}

/// The mesh's TLS context: our workload certificate, peers verified
/// against `ROOTCA` and `sans`.
fn mesh_context(sans: Vec<SubjectAltNameMatcher>, alpn: &[&str]) -> CommonTlsContext {
    CommonTlsContext {
        tls_certificate_sds_secret_configs: vec![sds(WORKLOAD_SECRET)],
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(sds(ROOT_CA_SECRET)),
                ..Default::default()
            },
        )),
        alpn_protocols: alpn.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A URI SAN matcher: exact, or by prefix.
fn uri_san(value: &str, prefix: bool) -> SubjectAltNameMatcher {
    let pattern = if prefix {
        MatchPattern::Prefix(value.to_string())
    } else {
        MatchPattern::Exact(value.to_string())
    };
    SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(pattern),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A SAN written by a user: a SPIFFE ID or other URI, an IP, else DNS.
pub(super) fn written_san(value: &str) -> SubjectAltNameMatcher {
    let san_type = if value.contains("://") {
        SanType::Uri
    } else if value.parse::<IpAddr>().is_ok() {
        SanType::IpAddress
    } else {
        SanType::Dns
    };
    SubjectAltNameMatcher {
        san_type: san_type as i32,
        ..uri_san(value, false)
    }
}

pub(super) fn socket(msg: impl prost::Name) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(msg))),
    }
}

/// Inbound mTLS: a client certificate is required, issued by a trusted
/// root for an identity in our trust domain (`spiffe://TD/` prefix).
pub fn inbound_mtls(trust_domain: &str) -> TransportSocket {
    let san = uri_san(&format!("spiffe://{trust_domain}/"), true);
    socket(DownstreamTlsContext {
        common_tls_context: Some(mesh_context(vec![san], &["h2", "http/1.1"])),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    })
}

/// Outbound mesh mTLS (auto mTLS and ISTIO_MUTUAL): the server must
/// present one of `spiffe_ids` (any identity of the trust domain when
/// there is none yet).
pub fn istio_mutual(spiffe_ids: &[String], trust_domain: &str, sni: &str) -> TransportSocket {
    let sans = if spiffe_ids.is_empty() {
        vec![uri_san(&format!("spiffe://{trust_domain}/"), true)]
    } else {
        spiffe_ids.iter().map(|id| written_san(id)).collect()
    };
    socket(UpstreamTlsContext {
        common_tls_context: Some(mesh_context(sans, &[])),
        sni: sni.to_string(),
        ..Default::default()
    })
}

/// DestinationRule SIMPLE or MUTUAL: certificates from files (services
/// outside the mesh), or from `credentialName` over SDS (istiod's
/// `buildUpstreamTLSSettings`: `kubernetes://NAME` for the client
/// certificate, `kubernetes://NAME-cacert` for the CA). SNI is `sni`, else
/// the host when it is a name.
pub fn client_tls(tls: &ClientTls, host: &str) -> TransportSocket {
    let common = match &tls.credential_name {
        Some(name) => credential_context(tls, name),
        None => files_context(tls),
    };
    let default_sni = (!host.contains('*') && host.parse::<IpAddr>().is_err()).then_some(host);
    socket(UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: tls
            .sni
            .as_deref()
            .or(default_sni)
            .unwrap_or_default()
            .to_string(),
        ..Default::default()
    })
}

fn written_sans(tls: &ClientTls) -> Vec<SubjectAltNameMatcher> {
    (tls.subject_alt_names.iter())
        .map(|s| written_san(s))
        .collect()
}

/// `credentialName`: the client certificate (MUTUAL) and the CA over SDS.
fn credential_context(tls: &ClientTls, name: &str) -> CommonTlsContext {
    let (cert, ca) = super::gateway::credential_secret_names(name);
    let mut common = CommonTlsContext::default();
    if tls.mode == ClientTlsMode::Mutual {
        common.tls_certificate_sds_secret_configs = vec![sds(&cert)];
    }
    common.validation_context_type = (!tls.insecure_skip_verify).then(|| {
        ValidationContextType::CombinedValidationContext(CombinedCertificateValidationContext {
            default_validation_context: Some(CertificateValidationContext {
                match_typed_subject_alt_names: written_sans(tls),
                ..Default::default()
            }),
            validation_context_sds_secret_config: Some(sds(&ca)),
            ..Default::default()
        })
    });
    common
}

/// Certificate, key and CA from files on the sidecar's host.
fn files_context(tls: &ClientTls) -> CommonTlsContext {
    let validation = (!tls.insecure_skip_verify).then(|| CertificateValidationContext {
        trusted_ca: Some(file(
            tls.ca_certificates.as_deref().unwrap_or(SYSTEM_CA_FILE),
        )),
        match_typed_subject_alt_names: written_sans(tls),
        ..Default::default()
    });
    let mut common = CommonTlsContext {
        validation_context_type: validation.map(ValidationContextType::ValidationContext),
        ..Default::default()
    };
    let mutual = tls.mode == ClientTlsMode::Mutual;
    if let (true, Some(cert), Some(key)) = (mutual, &tls.client_certificate, &tls.private_key) {
        common.tls_certificates = vec![TlsCertificate {
            certificate_chain: Some(file(cert)),
            private_key: Some(file(key)),
            ..Default::default()
        }];
    }
    common
}

pub(super) fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

/// Istio's auto mTLS: endpoints labelled `tlsMode: istio` get `mtls`,
/// every other endpoint plaintext (`raw_buffer`, the cluster default).
pub fn auto_mtls_matches(mtls: TransportSocket) -> Vec<TransportSocketMatch> {
    vec![
        TransportSocketMatch {
            name: format!("{TLS_MODE_KEY}-{TLS_MODE_ISTIO}"),
            r#match: Some(tls_mode_istio()),
            transport_socket: Some(mtls),
        },
        TransportSocketMatch {
            name: format!("{TLS_MODE_KEY}-disabled"),
            r#match: Some(Struct::default()),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.raw_buffer".to_string(),
                config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(
                    RawBuffer::default(),
                ))),
            }),
        },
    ]
}

/// `{tlsMode: istio}`: the match, and the endpoint metadata it matches.
pub fn tls_mode_istio() -> Struct {
    Struct {
        fields: [(
            TLS_MODE_KEY.to_string(),
            Value {
                kind: Some(Kind::StringValue(TLS_MODE_ISTIO.to_string())),
            },
        )]
        .into(),
    }
}

/// True when a transport socket needs the mesh's SDS secrets (looking
/// inside a PROXY protocol wrapper); a `credentialName` certificate is
/// not the mesh's.
pub fn uses_mesh_secrets(ts: &TransportSocket) -> bool {
    if let Some(inner) = super::proxy_protocol::inner(ts) {
        return uses_mesh_secrets(&inner);
    }
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        return false;
    };
    if any.type_url != <UpstreamTlsContext as prost::Name>::type_url() {
        return false;
    }
    let decoded = <UpstreamTlsContext as prost::Message>::decode(any.value.as_slice());
    decoded.is_ok_and(|u| {
        u.common_tls_context.is_some_and(|c| {
            (c.tls_certificate_sds_secret_configs.iter()).any(|s| s.name == WORKLOAD_SECRET)
        })
    })
}

#[cfg(test)]
mod tests;
