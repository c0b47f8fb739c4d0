//! An operator's CA in Istio's plug-in layout (`cacerts`): `ca-cert.pem` (the
//! signing certificate, usually an intermediate), `ca-key.pem` (its key),
//! `cert-chain.pem` (chain from `ca-cert` towards the root) and
//! `root-cert.pem` (the trusted root or roots). The files stay where the
//! operator keeps them; nothing is copied into the state directory.
//! `ca-key.pem` must not be readable by group or others (as the self-signed
//! CA's keys), or loading fails naming the file and the `chmod` that fixes it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use x509_parser::certificate::X509Certificate;

use super::signer::{certs_der, der_to_pem, parse_cert, root_info, Signer};
use super::store::{read_secret, read_text};
use super::{CaError, Root, RotationPhase, State};

/// Paths of the four plug-in CA files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCa {
    /// `ca-cert.pem`: the certificate that signs leaves.
    pub cert: PathBuf,
    /// `ca-key.pem`: its private key.
    pub key: PathBuf,
    /// `cert-chain.pem`: intermediates from `ca-cert` up to the root.
    pub chain: PathBuf,
    /// `root-cert.pem`: the root(s) peers trust.
    pub root: PathBuf,
}

impl PluginCa {
    /// The four files under `dir` with Istio's names.
    pub fn from_dir(dir: &Path) -> Self {
        Self {
            cert: dir.join("ca-cert.pem"),
            key: dir.join("ca-key.pem"),
            chain: dir.join("cert-chain.pem"),
            root: dir.join("root-cert.pem"),
        }
    }

    /// Where the operator stages the CA to rotate to: `next/` beside
    /// `ca-cert.pem`, with the same four file names.
    pub fn next(&self) -> PluginCa {
        let dir = self.cert.parent().unwrap_or_else(|| Path::new("."));
        PluginCa::from_dir(&dir.join("next"))
    }
}

fn bad(path: &Path, problem: impl Into<String>) -> CaError {
    CaError::BadFile {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Reads every certificate of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, CaError> {
    let ders = certs_der(&read_text(path)?).map_err(|p| bad(path, p))?;
    if ders.is_empty() {
        return Err(bad(path, "contains no CERTIFICATE block"));
    }
    for der in &ders {
        parse_cert(der).map_err(|p| bad(path, p))?;
    }
    Ok(ders)
}

pub(crate) fn load(files: &PluginCa) -> Result<State, CaError> {
    let ca_ders = read_certs(&files.cert)?;
    let ca_der = &ca_ders[0];
    check_signing_cert(ca_der, &files.cert)?;
    let chain = read_certs(&files.chain)?;
    let roots = read_certs(&files.root)?;
    check_chains_to_root(ca_der, &chain, &roots, files)?;
    // Held to the same rule as the self-signed CA's keys: a key file others
    // can read is refused before it is used.
    let key_pem = read_secret(&files.key)?;
    let key = super::keys::parse_private_key(&key_pem).map_err(|p| bad(&files.key, p))?;
    // Served after each leaf: ca-cert then the rest of cert-chain.pem (Istio's
    // cert-chain.pem usually starts with ca-cert; don't repeat it).
    let mut served: Vec<&Vec<u8>> = vec![ca_der];
    served.extend(chain.iter().filter(|d| *d != ca_der));
    let chain_pem: String = served.iter().map(|d| der_to_pem(d)).collect();
    let ca_pem = der_to_pem(ca_der);
    let signer = Signer::new(&ca_pem, key, chain_pem)
        .map_err(|p| bad(&files.key, format!("{p} in {}", files.cert.display())))?;
    let roots = roots
        .iter()
        .map(|der| {
            Ok(Root {
                id: "plugin".into(),
                cert_pem: der_to_pem(der),
                info: root_info(der, false).map_err(|p| bad(&files.root, p))?,
                signer: None,
            })
        })
        .collect::<Result<Vec<_>, CaError>>()?;
    tracing::info!(cert = %files.cert.display(), "loaded the plug-in CA");
    Ok(State {
        dir: None,
        roots,
        signer: Arc::new(signer),
        phase: RotationPhase::Idle,
        next: None,
    })
}

/// The signing certificate must be a CA allowed to sign certificates.
fn check_signing_cert(der: &[u8], path: &Path) -> Result<(), CaError> {
    let cert = parse_cert(der).map_err(|p| bad(path, p))?;
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !is_ca {
        return Err(bad(
            path,
            "is not a CA certificate (basicConstraints CA:TRUE is missing)",
        ));
    }
    if let Ok(Some(ku)) = cert.key_usage() {
        if !ku.value.key_cert_sign() {
            return Err(bad(
                path,
                "may not sign certificates (keyUsage lacks keyCertSign)",
            ));
        }
    }
    if !cert.validity().is_valid() {
        return Err(bad(path, "is expired or not yet valid"));
    }
    Ok(())
}

/// `ca-cert` must lead through `cert-chain` to a certificate of `root-cert`,
/// each link's signature verified (RFC 5280 §6.1 in its simplest form).
fn check_chains_to_root(
    ca_der: &[u8],
    chain: &[Vec<u8>],
    roots: &[Vec<u8>],
    files: &PluginCa,
) -> Result<(), CaError> {
    let (chain, roots) = (parse_all(chain), parse_all(roots));
    let mut current = parse_cert(ca_der).map_err(|p| bad(&files.cert, p))?;
    // A chain longer than the certificates we have would loop.
    for _ in 0..=chain.len() {
        if roots.iter().any(|r| r.as_raw() == current.as_raw()) || signed_by_any(&current, &roots) {
            return Ok(());
        }
        match chain
            .iter()
            .find(|c| c.as_raw() != current.as_raw() && signed_by(&current, c))
        {
            Some(next) => current = next.clone(),
            None => break,
        }
    }
    Err(bad(
        &files.cert,
        format!(
            "does not chain to a certificate in {} (through {})",
            files.root.display(),
            files.chain.display()
        ),
    ))
}

fn parse_all(ders: &[Vec<u8>]) -> Vec<X509Certificate<'_>> {
    ders.iter().filter_map(|d| parse_cert(d).ok()).collect()
}

fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer() == issuer.subject() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn signed_by_any(cert: &X509Certificate<'_>, issuers: &[X509Certificate<'_>]) -> bool {
    issuers.iter().any(|i| signed_by(cert, i))
}
