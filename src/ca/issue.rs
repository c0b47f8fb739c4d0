//! Leaf certificates: SPIFFE workload certificates (X.509-SVID) and the xDS
//! server certificate.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType, PKCS_ECDSA_P256_SHA256,
};

use super::signer::{capped_expiry, hex, random_serial, Signer};
use super::{CaError, IssuedCert, SecretPem, SpiffeId, BACKDATE};

/// A workload leaf. X.509-SVID spec §4-5: exactly one URI SAN (the SPIFFE ID),
/// not a CA, digitalSignature set (keyEncipherment too, as Istio issues);
/// EKU serverAuth+clientAuth because the same certificate serves and calls.
pub(crate) fn leaf(signer: &Signer, id: &SpiffeId, ttl: Duration) -> Result<IssuedCert, CaError> {
    let uri = id.uri();
    let san = SanType::URI(uri.clone().try_into().map_err(|_| CaError::BadName(uri))?);
    let usages = [
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    sign(signer, vec![san], &usages, ttl)
}

/// The xDS server's certificate: DNS and IP SANs, serverAuth.
pub(crate) fn server(
    signer: &Signer,
    dns_names: &[String],
    ips: &[IpAddr],
    ttl: Duration,
) -> Result<IssuedCert, CaError> {
    let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
    for name in dns_names {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|_| CaError::BadName(name.clone()))?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    if sans.is_empty() {
        return Err(CaError::BadName("(no DNS name or IP address)".into()));
    }
    sign(signer, sans, &[ExtendedKeyUsagePurpose::ServerAuth], ttl)
}

fn sign(
    signer: &Signer,
    sans: Vec<SanType>,
    eku: &[ExtendedKeyUsagePurpose],
    ttl: Duration,
) -> Result<IssuedCert, CaError> {
    // Whole seconds: X.509 times have no fractions, so these match the certificate.
    let now = whole_seconds(SystemTime::now());
    let not_before = now - BACKDATE;
    let not_after = capped_expiry(now, ttl, signer.not_after());
    let serial = random_serial()?;
    let serial_hex = hex(&serial.to_bytes());
    let mut params = CertificateParams::default();
    // An empty subject: the identity is the SAN (rcgen then marks it critical,
    // as RFC 5280 §4.2.1.6 requires).
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = eku.to_vec();
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial);
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, signer.issuer())?;
    let mut chain_pem = cert.pem();
    chain_pem.push_str(signer.chain_pem());
    Ok(IssuedCert {
        chain_pem,
        key: SecretPem::new(key.serialize_pem()),
        serial_hex,
        not_before,
        not_after,
        issued_at: now,
    })
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}
