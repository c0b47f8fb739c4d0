//! A signing CA certificate with its key, and facts read from certificates.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::{SecureRandom, SystemRandom};
use x509_parser::certificate::X509Certificate;

use super::{CaError, RootInfo, BACKDATE, ROOT_TTL};

/// The certificate that signs leaves (a root or an intermediate) and its key.
pub(crate) struct Signer {
    issuer: Issuer<'static, KeyPair>,
    /// PEM of the certificates that follow a leaf in a served chain: empty when
    /// a root signs (peers have it in the bundle), the intermediates otherwise.
    chain_pem: String,
    not_after: SystemTime,
    /// SHA-256 of the signing certificate (DER), lowercase hex.
    fingerprint: String,
}

impl Signer {
    /// A signer from its certificate (PEM) and key; the key must match.
    pub(crate) fn new(cert_pem: &str, key: KeyPair, chain_pem: String) -> Result<Self, String> {
        let der = first_cert_der(cert_pem)?;
        let cert = parse_cert(&der)?;
        if cert.public_key().subject_public_key.data.as_ref()
            != rcgen::PublicKeyData::der_bytes(&key)
        {
            return Err("the private key does not match the certificate".into());
        }
        let not_after = cert.validity().not_after.to_datetime().into();
        let fingerprint = hex(ring::digest::digest(&ring::digest::SHA256, &der).as_ref());
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
            .map_err(|e| format!("cannot sign with this certificate: {e}"))?;
        Ok(Self {
            issuer,
            chain_pem,
            not_after,
            fingerprint,
        })
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    pub(crate) fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    pub(crate) fn not_after(&self) -> SystemTime {
        self.not_after
    }

    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// A new self-signed ECDSA P-256 root: (certificate PEM, key).
pub(crate) fn generate_root(now: SystemTime) -> Result<(String, KeyPair), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let serial = random_serial()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Trellis");
    // A distinct subject per root keeps old and new roots apart in chain
    // building during a rotation (issuers are matched by subject name first).
    let label = &hex(&serial.to_bytes())[..8];
    dn.push(DnType::CommonName, format!("Trellis mesh root {label}"));
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial);
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + ROOT_TTL).into();
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key))
}

/// A random positive 128-bit serial (RFC 5280 §4.1.2.2: at most 20 octets,
/// positive; random serials make them unpredictable).
pub(crate) fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x40; // never leading zero bytes, so hex matches the DER integer
    Ok(SerialNumber::from_slice(&bytes))
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER of every CERTIFICATE block in PEM text, in order.
pub(crate) fn certs_der(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("is not valid PEM: {e}"))?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    Ok(out)
}

fn first_cert_der(pem: &str) -> Result<Vec<u8>, String> {
    certs_der(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| "contains no CERTIFICATE block".to_string())
}

/// Parses one DER certificate, with a message fit for "FILE: message".
pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(format!("has a certificate that does not parse: {e}")),
    }
}

/// PEM of one DER certificate (64-column base64, RFC 7468).
pub(crate) fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Facts about a root certificate for `/debug/ca`.
pub(crate) fn root_info(der: &[u8], signing: bool) -> Result<RootInfo, String> {
    let cert = parse_cert(der)?;
    let validity = cert.validity();
    Ok(RootInfo {
        fingerprint_sha256: hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref()),
        subject: cert.subject().to_string(),
        not_before: validity.not_before.to_datetime().into(),
        not_after: validity.not_after.to_datetime().into(),
        signing,
    })
}

/// `now + ttl`, cut at `limit` (a leaf never outlives its signer).
pub(crate) fn capped_expiry(now: SystemTime, ttl: Duration, limit: SystemTime) -> SystemTime {
    (now + ttl).min(limit)
}
