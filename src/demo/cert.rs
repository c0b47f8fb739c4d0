//! An ingress TLS credential made at run time: a throwaway CA and a server
//! certificate it signs, written in the `--credentials-dir` layout
//! (`DIR/NAMESPACE/NAME/{tls.crt,tls.key}`) with the CA's certificate next
//! to it (`DIR/NAMESPACE/NAME-ca.crt`) for clients to trust. The CA key is
//! never written: a new credential means a new CA. Used by `trellis demo`
//! and `trellis credentials create`; nothing of it is ever committed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Clock skew allowed between this host and the clients.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Why a credential could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused a parameter (e.g. a host that is no DNS name).
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file or directory could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// What was being written.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A server certificate, its key and the CA that signed it (all PEM).
pub struct IngressCert {
    /// The CA's certificate: what clients trust.
    pub ca_pem: String,
    /// The server certificate (`tls.crt`).
    pub cert_pem: String,
    /// Its private key (`tls.key`).
    pub key_pem: String,
}

/// Where [`IngressCert::write`] put the files.
#[derive(Debug, Clone)]
pub struct Written {
    /// `DIR/NAMESPACE/NAME`, holding `tls.crt` and `tls.key`.
    pub credential_dir: PathBuf,
    /// `DIR/NAMESPACE/NAME-ca.crt`.
    pub ca_file: PathBuf,
}

impl IngressCert {
    /// A new CA and a certificate for `hosts` (DNS names or IPs), valid
    /// for `ttl` from now.
    pub fn generate(hosts: &[String], ttl: Duration) -> Result<Self, CertError> {
        let now = SystemTime::now();
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Distinct from the leaf's name: a certificate whose issuer equals
        // its subject reads as self-signed to OpenSSL.
        (ca.distinguished_name).push(DnType::CommonName, "trellis ingress CA");
        ca.not_before = (now - BACKDATE).into();
        ca.not_after = (now + ttl).into();
        let ca_pem = ca.self_signed(&ca_key)?.pem();
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(hosts.to_vec())?;
        if let Some(first) = hosts.first() {
            leaf.distinguished_name.push(DnType::CommonName, first);
        }
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.not_before = (now - BACKDATE).into();
        leaf.not_after = (now + ttl).into();
        let issuer = Issuer::from_params(&ca, &ca_key);
        let cert_pem = leaf.signed_by(&key, &issuer)?.pem();
        Ok(IngressCert {
            ca_pem,
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes the credential `NAME` of `namespace` under `dir`, each file
    /// by rename so a watching control plane never reads half of one (the
    /// key 0600).
    pub fn write(&self, dir: &Path, namespace: &str, name: &str) -> Result<Written, CertError> {
        let ns_dir = dir.join(namespace);
        let credential_dir = ns_dir.join(name);
        std::fs::create_dir_all(&credential_dir).map_err(|source| CertError::Write {
            path: credential_dir.clone(),
            source,
        })?;
        let ca_file = ns_dir.join(format!("{name}-ca.crt"));
        write_renamed(&credential_dir.join("tls.key"), &self.key_pem, 0o600)?;
        write_renamed(&credential_dir.join("tls.crt"), &self.cert_pem, 0o644)?;
        write_renamed(&ca_file, &self.ca_pem, 0o644)?;
        Ok(Written {
            credential_dir,
            ca_file,
        })
    }
}

/// Writes `text` to a hidden temp file with `mode`, then renames it to `path`.
fn write_renamed(path: &Path, text: &str, mode: u32) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_a_credential_the_control_plane_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let cert = IngressCert::generate(&["localhost".into()], Duration::from_secs(3600)).unwrap();
        let w = cert.write(dir.path(), "default", "demo-cert").unwrap();
        assert_eq!(w.credential_dir, dir.path().join("default/demo-cert"));
        assert_eq!(w.ca_file, dir.path().join("default/demo-cert-ca.crt"));
        // The same check `serve --credentials-dir` makes: PEM, key matches.
        let cred = trellis::serve::credentials::read_credential(&w.credential_dir).unwrap();
        assert_eq!(cred.cert_pem, cert.cert_pem);
        assert!(cred.ca_pem.is_none(), "no client CA: the server is SIMPLE");
        let key = w.credential_dir.join("tls.key");
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_certificate_names_the_host_and_chains_to_the_ca() {
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        let cert = IngressCert::generate(&hosts, Duration::from_secs(3600)).unwrap();
        let (_, ca) = x509_parser::pem::parse_x509_pem(cert.ca_pem.as_bytes()).unwrap();
        let ca = ca.parse_x509().unwrap();
        let (_, leaf) = x509_parser::pem::parse_x509_pem(cert.cert_pem.as_bytes()).unwrap();
        let leaf = leaf.parse_x509().unwrap();
        assert!(ca.is_ca() && !leaf.is_ca());
        leaf.verify_signature(Some(ca.public_key())).unwrap();
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        let names = format!("{:?}", san.value.general_names);
        assert!(
            names.contains("localhost") && names.contains("127"),
            "{names}"
        );
    }

    #[test]
    fn a_bad_host_is_an_error() {
        let bad = IngressCert::generate(&["bücher.example".into()], Duration::from_secs(60));
        assert!(bad.is_err());
    }
}
