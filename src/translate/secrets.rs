//! SDS `Secret`s of one sidecar: `default` (its workload certificate chain
//! and key) and `ROOTCA` (the trust bundle), the names istiod's SDS uses
//! so Istio users recognise them in `/config_dump` and `/certs`.
//! Listeners and clusters refer to them by name over ADS (see
//! [`tls`](super::tls)).

use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, CertificateValidationContext, Secret as XdsSecret, TlsCertificate,
};

/// The workload certificate secret's name.
pub const WORKLOAD_SECRET: &str = "default";
/// The trust bundle secret's name.
pub const ROOT_CA_SECRET: &str = "ROOTCA";

/// PEM material of one sidecar's secrets, as the CA hands it over.
/// `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkloadCerts {
    /// Leaf certificate followed by any intermediates.
    pub cert_chain_pem: String,
    /// The leaf's private key (PKCS#8 PEM).
    pub key_pem: String,
    /// Every trusted root, concatenated.
    pub trust_bundle_pem: String,
}

impl std::fmt::Debug for WorkloadCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadCerts")
            .field("cert_chain_pem", &self.cert_chain_pem.len())
            .field("key_pem", &"[redacted]")
            .field("trust_bundle_pem", &self.trust_bundle_pem.len())
            .finish()
    }
}

/// `default` (`tls_certificate`) and `ROOTCA` (`validation_context` with
/// the trust bundle), inlined as strings: a secret travels only on its
/// owner's stream, never through a file.
pub fn secrets(cert_chain_pem: &str, key_pem: &str, bundle_pem: &str) -> Vec<XdsSecret> {
    vec![
        XdsSecret {
            name: WORKLOAD_SECRET.to_string(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline(cert_chain_pem)),
                private_key: Some(inline(key_pem)),
                ..Default::default()
            })),
        },
        XdsSecret {
            name: ROOT_CA_SECRET.to_string(),
            r#type: Some(secret::Type::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(inline(bundle_pem)),
                    ..Default::default()
                },
            )),
        },
    ]
}

/// [`secrets`] of a [`WorkloadCerts`].
pub fn workload_secrets(certs: &WorkloadCerts) -> Vec<XdsSecret> {
    secrets(
        &certs.cert_chain_pem,
        &certs.key_pem,
        &certs.trust_bundle_pem,
    )
}

fn inline(pem: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::InlineString(pem.to_string())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_rootca() {
        let s = secrets("CHAIN", "KEY", "BUNDLE");
        assert_eq!(s[0].name, "default");
        let Some(secret::Type::TlsCertificate(c)) = &s[0].r#type else {
            panic!("not a certificate");
        };
        let text = |d: &Option<DataSource>| match d.as_ref().and_then(|d| d.specifier.clone()) {
            Some(Specifier::InlineString(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(text(&c.certificate_chain), "CHAIN");
        assert_eq!(text(&c.private_key), "KEY");
        assert_eq!(s[1].name, "ROOTCA");
        let Some(secret::Type::ValidationContext(v)) = &s[1].r#type else {
            panic!("not a validation context");
        };
        assert_eq!(text(&v.trusted_ca), "BUNDLE");
    }

    #[test]
    fn debug_hides_the_key() {
        let c = WorkloadCerts {
            cert_chain_pem: "CHAIN".into(),
            key_pem: "SECRET-KEY".into(),
            trust_bundle_pem: "B".into(),
        };
        assert!(!format!("{c:?}").contains("SECRET-KEY"));
    }
}
