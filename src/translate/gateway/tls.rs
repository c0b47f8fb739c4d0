//! A gateway server's `DownstreamTlsContext` (istiod:
//! `buildGatewayListenerTLSContext`): certificates from `credentialName`
//! as SDS secrets `kubernetes://NAME` (and `kubernetes://NAME-cacert`),
//! or from files on the gateway's host, read by Envoy.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    data_source::Specifier, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, secret, tls_parameters::TlsProtocol,
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, Secret as XdsSecret,
    TlsCertificate, TlsParameters,
};
use envoy_types::pb::google::protobuf::BoolValue;

use crate::config::model::{ServerTls, ServerTlsMode, TlsSource, TlsVersion};
use crate::translate::tls::{file, sds, written_san};

/// A TLS credential as a Kubernetes TLS secret holds it: `tls.crt`,
/// `tls.key` and, for MUTUAL, `ca.crt`. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// `tls.crt`: the certificate chain (PEM).
    pub cert_pem: String,
    /// `tls.key`: its private key (PEM).
    pub key_pem: String,
    /// `ca.crt`: the CA client certificates must chain to (PEM).
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"[redacted]")
            .field("ca_pem", &self.ca_pem.as_ref().map(String::len))
            .finish()
    }
}

/// Credentials by `(namespace, name)`: a Gateway finds only those of its
/// own namespace, as in Istio.
pub type Credentials = BTreeMap<(String, String), Arc<Credential>>;

/// The SDS names of credential `name`: its certificate and its CA.
pub fn credential_secret_names(name: &str) -> (String, String) {
    (
        format!("kubernetes://{name}"),
        format!("kubernetes://{name}-cacert"),
    )
}

/// The server's transport socket and the secrets it refers to, or why the
/// server cannot be served. `http` offers ALPN h2 and http/1.1; a TCP
/// backend behind terminated TLS offers none.
pub(crate) fn downstream(
    t: &ServerTls,
    namespace: &str,
    cx: &Ctx<'_>,
    http: bool,
) -> Result<(TransportSocket, Vec<XdsSecret>), String> {
    let alpn = ["h2", "http/1.1"].map(String::from);
    let alpn = if http { alpn.to_vec() } else { Vec::new() };
    if t.mode == Some(ServerTlsMode::IstioMutual) {
        return istio_mutual(t, cx, alpn).map(|s| (s, Vec::new()));
    }
    let credentials = cx.credentials;
    let mutual = t.mode.is_some_and(ServerTlsMode::verifies_clients);
    let mut common = CommonTlsContext {
        tls_params: params(t),
        alpn_protocols: alpn,
        ..Default::default()
    };
    let mut secrets = Vec::new();
    let mut validation = CertificateValidationContext {
        match_typed_subject_alt_names: t.subject_alt_names.iter().map(|s| written_san(s)).collect(),
        ..Default::default()
    };
    match &t.source {
        Some(TlsSource::Credential(name)) => {
            // `NAMESPACE/NAME`: a Gateway API certificateRef into another
            // namespace, which a ReferenceGrant allowed.
            let (namespace, short) = name.split_once('/').unwrap_or((namespace, name));
            let key = (namespace.to_string(), short.to_string());
            let Some(cred) = credentials.get(&key) else {
                return Err(format!("credential {namespace}/{short} not found"));
            };
            let (cert_name, ca_name) = credential_secret_names(name);
            common.tls_certificate_sds_secret_configs = vec![sds(&cert_name)];
            secrets.push(cert_secret(&cert_name, cred));
            if mutual {
                let Some(ca) = &cred.ca_pem else {
                    return Err(format!(
                        "credential {namespace}/{short} has no ca.crt (mode {})",
                        t.mode.map_or("MUTUAL", ServerTlsMode::as_str)
                    ));
                };
                common.validation_context_type = Some(combined(validation, &ca_name));
                secrets.push(ca_secret(&ca_name, ca));
                validation = CertificateValidationContext::default();
            }
        }
        Some(TlsSource::Files { cert, key, ca }) => {
            common.tls_certificates = vec![TlsCertificate {
                certificate_chain: Some(file(cert)),
                private_key: Some(file(key)),
                ..Default::default()
            }];
            if let (true, Some(ca)) = (mutual, ca) {
                validation.trusted_ca = Some(file(ca));
            }
        }
        None => return Err("no certificate".to_string()),
    }
    if mutual && common.validation_context_type.is_none() {
        common.validation_context_type = Some(ValidationContextType::ValidationContext(validation));
    }
    // OPTIONAL_MUTUAL verifies a certificate the client presents but
    // accepts a client without one.
    let required = t.mode == Some(ServerTlsMode::Mutual);
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(BoolValue { value: required }),
        ..Default::default()
    };
    Ok((crate::translate::tls::socket(ctx), secrets))
}

/// What a server's TLS is built from besides its own settings.
pub(crate) struct Ctx<'a> {
    /// `credentialName` certificates.
    pub credentials: &'a Credentials,
    /// The mesh's trust domain (ISTIO_MUTUAL).
    pub trust_domain: &'a str,
    /// True when the runtime serves this gateway a workload certificate.
    pub mesh_tls: bool,
}

/// ISTIO_MUTUAL: the mesh's mTLS as on a sidecar's inbound listener, the
/// gateway's own workload certificate (SDS `default`) and a required
/// client certificate chaining to `ROOTCA` with an identity of the trust
/// domain, or one of the server's `subjectAltNames`.
fn istio_mutual(t: &ServerTls, cx: &Ctx<'_>, alpn: Vec<String>) -> Result<TransportSocket, String> {
    if !cx.mesh_tls {
        return Err(
            "mode ISTIO_MUTUAL needs the mesh CA, and this gateway has no \
                    workload certificate"
                .to_string(),
        );
    }
    let sans: Vec<_> = t.subject_alt_names.iter().map(|s| written_san(s)).collect();
    let mut common = crate::translate::tls::server_mesh_context(sans, cx.trust_domain);
    common.alpn_protocols = alpn;
    common.tls_params = params(t);
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    };
    Ok(crate::translate::tls::socket(ctx))
}

fn combined(default: CertificateValidationContext, ca_name: &str) -> ValidationContextType {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::CombinedCertificateValidationContext;
    ValidationContextType::CombinedValidationContext(CombinedCertificateValidationContext {
        default_validation_context: Some(default),
        validation_context_sds_secret_config: Some(sds(ca_name)),
        ..Default::default()
    })
}

fn params(t: &ServerTls) -> Option<TlsParameters> {
    let v = |v: Option<TlsVersion>| match v.unwrap_or(TlsVersion::Auto) {
        TlsVersion::Auto => TlsProtocol::TlsAuto,
        TlsVersion::V1_0 => TlsProtocol::TlSv10,
        TlsVersion::V1_1 => TlsProtocol::TlSv11,
        TlsVersion::V1_2 => TlsProtocol::TlSv12,
        TlsVersion::V1_3 => TlsProtocol::TlSv13,
    } as i32;
    let given = t.min_version.is_some() || t.max_version.is_some() || !t.cipher_suites.is_empty();
    given.then(|| TlsParameters {
        tls_minimum_protocol_version: v(t.min_version),
        tls_maximum_protocol_version: v(t.max_version),
        cipher_suites: t.cipher_suites.clone(),
        ..Default::default()
    })
}

/// The SDS secrets of credential `name` for a client (`DestinationRule`
/// `credentialName`): its certificate and, when it has `ca.crt`, its CA.
pub(crate) fn client_secrets(name: &str, cred: &Credential) -> Vec<XdsSecret> {
    let (cert_name, ca_name) = credential_secret_names(name);
    let mut out = vec![cert_secret(&cert_name, cred)];
    out.extend((cred.ca_pem.as_deref()).map(|ca| ca_secret(&ca_name, ca)));
    out
}

fn inline(pem: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::InlineString(pem.to_string())),
        ..Default::default()
    }
}

fn cert_secret(name: &str, cred: &Credential) -> XdsSecret {
    XdsSecret {
        name: name.to_string(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&cred.cert_pem)),
            private_key: Some(inline(&cred.key_pem)),
            ..Default::default()
        })),
    }
}

fn ca_secret(name: &str, ca_pem: &str) -> XdsSecret {
    XdsSecret {
        name: name.to_string(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(inline(ca_pem)),
                ..Default::default()
            },
        )),
    }
}
