//! The plug-in CA (Istio `cacerts` files): signing through an intermediate,
//! key formats, and the errors for bad files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::{ders, id, verifies};
use crate::ca::signer::parse_cert;
use crate::ca::{Ca, CaConfig, CaError, PluginCa};

pub(super) struct Files {
    pub(super) root_pem: String,
    pub(super) ca_pem: String,
    pub(super) ca_key: KeyPair,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.remove(DnType::CommonName);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// An operator root and an intermediate it signed.
pub(super) fn operator_ca() -> Files {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("Operator Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let issuer = Issuer::new(root_params, root_key);
    let ca = ca_params("Operator Intermediate")
        .signed_by(&ca_key, &issuer)
        .unwrap();
    Files {
        root_pem: root.pem(),
        ca_pem: ca.pem(),
        ca_key,
    }
}

pub(super) fn write(dir: &Path, files: &Files, key_pem: &str) -> PluginCa {
    std::fs::write(dir.join("ca-cert.pem"), &files.ca_pem).unwrap();
    write_key(&dir.join("ca-key.pem"), key_pem);
    let chain = format!("{}{}", files.ca_pem, files.root_pem);
    std::fs::write(dir.join("cert-chain.pem"), chain).unwrap();
    std::fs::write(dir.join("root-cert.pem"), &files.root_pem).unwrap();
    PluginCa::from_dir(dir)
}

/// Writes a key file as an operator must: readable by its owner only.
pub(super) fn write_key(path: &Path, pem: &str) {
    std::fs::write(path, pem).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn load(plugin: &PluginCa) -> Result<Ca, CaError> {
    Ca::load_or_create(&CaConfig {
        state_dir: "/nonexistent-unused".into(),
        plugin: Some(plugin.clone()),
    })
}

#[test]
fn the_intermediate_signs_and_the_chain_reaches_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let files = operator_ca();
    let plugin = write(dir.path(), &files, &files.ca_key.serialize_pem());
    let ca = load(&plugin).unwrap();
    assert!(ca.is_plugin());
    assert_eq!(ders(&ca.trust_bundle_pem()), ders(&files.root_pem));
    let issued = ca.issue(&id(), Duration::from_secs(3600)).unwrap();
    let chain = ders(&issued.chain_pem);
    assert_eq!(
        chain.len(),
        3,
        "leaf, intermediate, root (as in cert-chain.pem)"
    );
    assert_eq!(chain[1], ders(&files.ca_pem)[0]);
    let leaf = parse_cert(&chain[0]).unwrap();
    assert!(
        verifies(&leaf, &chain[1]),
        "the intermediate signed the leaf"
    );
    assert!(!verifies(&leaf, &chain[2]), "the root did not");
    assert!(verifies(&parse_cert(&chain[1]).unwrap(), &chain[2]));
    assert!(matches!(ca.begin_rotation(), Err(CaError::PluginManaged)));
}

/// The SEC1 `ECPrivateKey` inside ring's PKCS#8 (what `openssl ec` writes).
fn sec1_pem(key: &KeyPair) -> String {
    let der = key.serialize_der();
    // PrivateKeyInfo: SEQUENCE(30 len) INTEGER 0 (3 bytes) AlgorithmIdentifier OCTET STRING.
    let mut at = 2 + if der[1] & 0x80 != 0 {
        (der[1] & 0x7f) as usize
    } else {
        0
    };
    at += 3;
    at += 2 + der[at + 1] as usize;
    assert_eq!(der[at], 0x04);
    let len = der[at + 1] as usize;
    let inner = &der[at + 2..at + 2 + len];
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
    format!("-----BEGIN EC PRIVATE KEY-----\n{b64}\n-----END EC PRIVATE KEY-----\n")
}

#[test]
fn a_sec1_ec_key_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let files = operator_ca();
    let plugin = write(dir.path(), &files, &sec1_pem(&files.ca_key));
    let ca = load(&plugin).unwrap();
    ca.issue(&id(), Duration::from_secs(60)).unwrap();
}

fn error_for(files: &Files, change: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let plugin = write(dir.path(), files, &files.ca_key.serialize_pem());
    change(dir.path());
    let err = load(&plugin).unwrap_err().to_string();
    assert!(!err.contains("PRIVATE KEY-----"), "{err}");
    err.replace(&dir.path().display().to_string(), "DIR")
}

/// A change to the written files that should make loading fail.
type Change<'a> = dyn FnOnce(&Path) + 'a;

#[test]
fn bad_files_get_errors_naming_the_file_and_problem() {
    let files = operator_ca();
    let other = operator_ca();
    let cases: Vec<(Box<Change<'_>>, &str)> = vec![
        (
            Box::new(|d| std::fs::remove_file(d.join("ca-key.pem")).unwrap()),
            "cannot read DIR/ca-key.pem: No such file or directory (os error 2)",
        ),
        (
            Box::new(|d| std::fs::write(d.join("ca-cert.pem"), "hello").unwrap()),
            "DIR/ca-cert.pem: contains no CERTIFICATE block",
        ),
        (
            Box::new(|d| std::fs::write(d.join("ca-key.pem"), other.ca_key.serialize_pem()).unwrap()),
            "DIR/ca-key.pem: the private key does not match the certificate in DIR/ca-cert.pem",
        ),
        (
            Box::new(|d| std::fs::write(d.join("root-cert.pem"), &other.root_pem).unwrap()),
            "DIR/ca-cert.pem: does not chain to a certificate in DIR/root-cert.pem (through DIR/cert-chain.pem)",
        ),
        (
            Box::new(|d| std::fs::write(d.join("ca-key.pem"), "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n").unwrap()),
            "DIR/ca-key.pem: holds an encrypted private key; give an unencrypted one",
        ),
    ];
    for (change, want) in cases {
        assert_eq!(error_for(&files, change), want);
    }
}

/// The plug-in key is held to the self-signed keys' rule, with the same error.
#[test]
fn a_key_file_others_can_read_is_refused() {
    let files = operator_ca();
    for mode in [0o644, 0o640, 0o604] {
        let err = error_for(&files, |d| {
            let key = d.join("ca-key.pem");
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(mode)).unwrap();
        });
        assert_eq!(
            err,
            format!(
                "DIR/ca-key.pem: is readable by group or others (mode {mode:o}); \
                 run `chmod 600` on it"
            )
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = write(dir.path(), &files, &files.ca_key.serialize_pem());
    std::fs::set_permissions(&plugin.key, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(load(&plugin).is_ok(), "read-only for the owner is private");
}

#[test]
fn a_leaf_as_signing_cert_is_refused() {
    let files = operator_ca();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["x.example".to_string()])
        .unwrap()
        .self_signed(&leaf_key)
        .unwrap();
    let err = error_for(&files, |d| {
        std::fs::write(d.join("ca-cert.pem"), leaf.pem()).unwrap();
    });
    assert_eq!(
        err,
        "DIR/ca-cert.pem: is not a CA certificate (basicConstraints CA:TRUE is missing)"
    );
}

/// Istio's sample `cacerts` use RSA keys in PKCS#1 (`RSA PRIVATE KEY`); this
/// fixture (made with `openssl genrsa -traditional`, test only) is one, with a
/// self-signed CA certificate serving as ca-cert, cert-chain and root.
#[test]
fn a_pkcs1_rsa_root_signs_directly() {
    let dir = tempfile::tempdir().unwrap();
    let cert = include_str!("../testdata/rsa-ca-cert.pem");
    for name in ["ca-cert.pem", "cert-chain.pem", "root-cert.pem"] {
        std::fs::write(dir.path().join(name), cert).unwrap();
    }
    let key = include_str!("../testdata/rsa-ca-key.pem");
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    write_key(&dir.path().join("ca-key.pem"), key);
    let ca = load(&PluginCa::from_dir(dir.path())).unwrap();
    let issued = ca.issue(&id(), Duration::from_secs(60)).unwrap();
    let chain = ders(&issued.chain_pem);
    assert_eq!(chain.len(), 2, "leaf and the CA certificate");
    assert!(verifies(&parse_cert(&chain[0]).unwrap(), &ders(cert)[0]));
}
