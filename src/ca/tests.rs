//! Tests of the CA: certificate contents, chains, persistence, file modes,
//! rotation. Plug-in CA tests are in `tests/plugin.rs`.

mod plugin;
mod rotation;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::signer::{certs_der, parse_cert};
use super::*;

pub(super) fn ca_in(dir: &Path) -> Ca {
    Ca::load_or_create(&CaConfig {
        state_dir: dir.to_path_buf(),
        plugin: None,
    })
    .unwrap()
}

pub(super) fn id() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "frontend").unwrap()
}

pub(super) fn ders(pem: &str) -> Vec<Vec<u8>> {
    certs_der(pem).unwrap()
}

pub(super) fn verifies(cert: &X509Certificate<'_>, issuer_der: &[u8]) -> bool {
    let issuer = parse_cert(issuer_der).unwrap();
    cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn key_id(cert: &X509Certificate<'_>, authority: bool) -> Vec<u8> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) if authority => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            ParsedExtension::SubjectKeyIdentifier(k) if !authority => Some(k.0.to_vec()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn leaf_has_the_spiffe_san_usages_and_validity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let ttl = Duration::from_secs(24 * 3600);
    let issued = ca.issue(&id(), ttl).unwrap();
    let chain = ders(&issued.chain_pem);
    assert_eq!(chain.len(), 1, "a root signs: the chain is the leaf alone");
    let leaf = parse_cert(&chain[0]).unwrap();
    assert_eq!(leaf.subject().iter().count(), 0, "empty subject");
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical, "SAN is critical when the subject is empty");
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(
            "spiffe://cluster.local/ns/shop/sa/frontend"
        )]
    );
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!leaf.basic_constraints().unwrap().unwrap().value.ca);
    assert_eq!(hex_of(leaf.raw_serial()), issued.serial_hex);

    let now = secs(SystemTime::now());
    let validity = leaf.validity();
    assert!((validity.not_before.timestamp() - (now - 60)).abs() <= 2);
    assert!((validity.not_after.timestamp() - (now + 24 * 3600)).abs() <= 2);
    assert_eq!(validity.not_before.timestamp(), secs(issued.not_before));
    assert_eq!(validity.not_after.timestamp(), secs(issued.not_after));
    assert_eq!(secs(issued.renew_at()), secs(issued.issued_at) + 12 * 3600);

    let root = ders(&ca.trust_bundle_pem()).remove(0);
    assert!(verifies(&leaf, &root), "the leaf verifies against the root");
    assert_eq!(
        key_id(&leaf, true),
        key_id(&parse_cert(&root).unwrap(), false)
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn leaf_key_is_p256_and_matches_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let issued = ca_in(dir.path())
        .issue(&id(), Duration::from_secs(60))
        .unwrap();
    let key = rcgen::KeyPair::from_pem(issued.key.expose_secret()).unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf_der = ders(&issued.chain_pem).remove(0);
    let leaf = parse_cert(&leaf_der).unwrap();
    assert_eq!(
        leaf.public_key().subject_public_key.data.as_ref(),
        rcgen::PublicKeyData::der_bytes(&key)
    );
    assert_eq!(format!("{:?}", issued.key), "[redacted]");
    assert_eq!(issued.key.to_string(), "[redacted]");
    assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
}

#[test]
fn serials_differ_and_ttl_is_cut_at_the_root_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let a = ca.issue(&id(), Duration::from_secs(60)).unwrap();
    let b = ca.issue(&id(), Duration::from_secs(60)).unwrap();
    assert_ne!(a.serial_hex, b.serial_hex);
    let long = ca
        .issue(&id(), Duration::from_secs(100 * 365 * 24 * 3600))
        .unwrap();
    assert!(long.not_after <= ca.signing_cert_expiry());
}

#[test]
fn server_cert_has_dns_and_ip_sans() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let issued = ca
        .issue_server(&["trellis.local".into()], &[ip], Duration::from_secs(3600))
        .unwrap();
    let der = ders(&issued.chain_pem).remove(0);
    let cert = parse_cert(&der).unwrap();
    let names = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .clone();
    assert_eq!(names[0], GeneralName::DNSName("trellis.local"));
    assert_eq!(names[1], GeneralName::IPAddress(&[127, 0, 0, 1]));
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert!(ca.issue_server(&[], &[], Duration::from_secs(1)).is_err());
    assert!(ca
        .issue_server(&["bad name ü".into()], &[], Duration::from_secs(1))
        .is_err());
}

#[test]
fn root_is_a_long_lived_p256_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let root_der = ders(&ca.trust_bundle_pem()).remove(0);
    let root = parse_cert(&root_der).unwrap();
    assert!(root.basic_constraints().unwrap().unwrap().value.ca);
    assert!(root.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert!(verifies(&root, &root_der), "self-signed");
    let years = (root.validity().not_after.timestamp() - secs(SystemTime::now())) / (365 * 86400);
    assert!(years >= 9, "{years}");
    let info = &ca.roots()[0];
    assert!(info.signing && info.subject.contains("Trellis mesh root"));
    assert_eq!(info.fingerprint_sha256.len(), 64);
    assert_eq!(ca.root_expiry(), Some(info.not_after));
    assert!(!format!("{ca:?}").contains("PRIVATE"));
}

#[test]
fn restart_keeps_the_ca_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let first = ca_in(dir.path()).trust_bundle_pem();
    let second = ca_in(dir.path());
    assert_eq!(first, second.trust_bundle_pem());
    let leaf_der = ders(
        &second
            .issue(&id(), Duration::from_secs(60))
            .unwrap()
            .chain_pem,
    )
    .remove(0);
    assert!(verifies(&parse_cert(&leaf_der).unwrap(), &ders(&first)[0]));
    let ca_dir = dir.path().join("ca");
    assert_eq!(mode(&ca_dir), 0o700);
    assert_eq!(mode(&ca_dir.join("roots")), 0o700);
    assert_eq!(mode(&ca_dir.join("roots/root-1")), 0o700);
    assert_eq!(mode(&ca_dir.join("roots/root-1/key.pem")), 0o600);
}

#[test]
fn a_readable_key_file_is_refused_with_the_path_and_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    ca_in(dir.path());
    let key = dir.path().join("ca/roots/root-1/key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Ca::load_or_create(&CaConfig {
        state_dir: dir.path().into(),
        plugin: None,
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&key.display().to_string()) && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn corrupt_state_and_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    ca_in(dir.path());
    let config = CaConfig {
        state_dir: dir.path().into(),
        plugin: None,
    };
    let key = dir.path().join("ca/roots/root-1/key.pem");
    let secret = std::fs::read_to_string(&key).unwrap();
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = Ca::load_or_create(&config).unwrap_err().to_string();
    assert!(err.starts_with(&key.display().to_string()), "{err}");
    assert!(err.contains("unsupported or corrupt private key"), "{err}");
    std::fs::write(&key, &secret).unwrap();

    let state = dir.path().join("ca/state.json");
    std::fs::write(&state, "{not json").unwrap();
    let err = Ca::load_or_create(&config).unwrap_err().to_string();
    assert!(err.starts_with(&state.display().to_string()), "{err}");
    assert!(err.contains("is not valid CA state"), "{err}");
}

#[test]
fn processes_starting_at_once_share_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || ca_in(&path).trust_bundle_pem())
        })
        .collect();
    let bundles: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(bundles.iter().all(|b| *b == bundles[0]));
    assert_eq!(ca_in(dir.path()).trust_bundle_pem(), bundles[0]);
}
