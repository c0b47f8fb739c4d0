//! `--credentials-dir`: TLS credentials for Gateway `credentialName`,
//! laid out like Kubernetes TLS secrets, `DIR/NAMESPACE/NAME/{tls.crt,
//! tls.key[,ca.crt]}`. The directory is watched; a changed credential
//! reaches gateways over SDS at the next rebuild. A pair whose key does
//! not match its certificate is never served: the last good pair stays
//! (logged and counted). Keys never appear in logs or errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::core::{lock, Core};
use crate::config::model::{GatewayServer, MeshConfig, TlsSource};
use crate::config::Diagnostic;
use crate::translate::gateway::{Credential, Credentials};

/// Why a credential is unusable. Names files, never their content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A file could not be read.
    #[error("{}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// A file is not what it must be (PEM certificate, key).
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads and checks one credential directory (`DIR/NAMESPACE/NAME`).
pub fn read_credential(dir: &Path) -> Result<Credential, CredentialError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| CredentialError::Read {
            path,
            reason: e.to_string(),
        })
    };
    let cert_pem = read("tls.crt")?;
    let key_pem = read("tls.key")?;
    let ca_pem = match dir.join("ca.crt").exists() {
        true => Some(read("ca.crt")?),
        false => None,
    };
    let invalid = |name: &str, reason: String| CredentialError::Invalid {
        path: dir.join(name),
        reason,
    };
    let cert_key = first_cert_spki(&cert_pem).map_err(|r| invalid("tls.crt", r))?;
    let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|_| {
        invalid(
            "tls.key",
            "not a PEM private key (PKCS#8, EC or RSA)".into(),
        )
    })?;
    if rcgen::PublicKeyData::subject_public_key_info(&key) != cert_key {
        let msg = "the private key does not match the certificate in tls.crt".to_string();
        return Err(invalid("tls.key", msg));
    }
    if let Some(ca) = &ca_pem {
        first_cert_spki(ca).map_err(|r| invalid("ca.crt", r))?;
    }
    Ok(Credential {
        cert_pem,
        key_pem,
        ca_pem,
    })
}

/// The SubjectPublicKeyInfo (DER) of the first certificate in `pem`.
fn first_cert_spki(pem: &str) -> Result<Vec<u8>, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| "not a PEM certificate".to_string())?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.public_key().raw.to_vec())
}

/// Every credential under `dir`. A broken one keeps its entry of
/// `previous` (the pair in force) and is reported.
pub fn load(dir: &Path, previous: &Credentials) -> (Credentials, Vec<CredentialError>) {
    let mut out = Credentials::new();
    let mut errors = Vec::new();
    for (ns, name, path) in credential_dirs(dir) {
        let key = (ns, name);
        match read_credential(&path) {
            Ok(c) => {
                // The same content keeps its `Arc`: nothing to re-send.
                let same = previous.get(&key).filter(|p| ***p == c).cloned();
                out.insert(key, same.unwrap_or_else(|| Arc::new(c)));
            }
            Err(e) => {
                errors.push(e);
                if let Some(old) = previous.get(&key) {
                    out.insert(key, Arc::clone(old));
                }
            }
        }
    }
    (out, errors)
}

/// `(namespace, name, path)` of each `DIR/NAMESPACE/NAME` directory.
fn credential_dirs(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let subdirs = |d: &Path| -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(d) else {
            return Vec::new();
        };
        let mut v: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    for (ns, ns_path) in subdirs(dir) {
        for (name, path) in subdirs(&ns_path) {
            out.push((ns.clone(), name, path));
        }
    }
    out
}

/// `trellis validate --credentials-dir`: an error for each Gateway server
/// and Sidecar ingress port whose `credentialName` is missing or unusable
/// under `dir`, at the `credentialName` field, naming the server (port)
/// and the file.
pub fn validate(mesh: &MeshConfig, dir: &Path) -> Vec<Diagnostic> {
    let mut out = validate_ingress(mesh, dir);
    for gw in &mesh.gateways {
        for (i, s) in gw.servers.iter().enumerate() {
            let Some((name, mutual)) = credential_of(s) else {
                continue;
            };
            let Some(problem) = problem(dir, &gw.origin.namespace, name, mutual) else {
                continue;
            };
            let (line, col) = s.credential_pos.unwrap_or((gw.origin.line, 1));
            out.push(Diagnostic {
                file: gw.origin.file.clone(),
                line,
                col,
                kind: gw.origin.kind.clone(),
                name: gw.origin.name.clone(),
                field: format!("spec.servers[{i}].tls.credentialName"),
                message: format!(
                    "credential {name:?} of server {i} (port {}): {problem}",
                    s.port
                ),
            });
        }
    }
    out
}

/// What is wrong with credential `name` under `dir` (in `namespace`
/// unless it names one: `NAMESPACE/NAME`), `None` when it is usable.
fn problem(dir: &Path, namespace: &str, name: &str, mutual: bool) -> Option<String> {
    let (ns, short) = name.split_once('/').unwrap_or((namespace, name));
    let path = dir.join(ns).join(short);
    match read_credential(&path) {
        Err(e) => Some(e.to_string()),
        Ok(c) if mutual && c.ca_pem.is_none() => Some(format!(
            "{}: missing (mode MUTUAL needs the client CA)",
            path.join("ca.crt").display()
        )),
        Ok(_) => None,
    }
}

/// [`validate`] for Sidecar ingress ports with `tls.credentialName`.
fn validate_ingress(mesh: &MeshConfig, dir: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for sc in &mesh.sidecars {
        for (i, p) in sc.ingress.iter().enumerate() {
            let Some(t) = &p.tls else { continue };
            let Some(TlsSource::Credential(name)) = &t.source else {
                continue;
            };
            let mutual = t.mode.is_some_and(|m| m.verifies_clients());
            let Some(problem) = problem(dir, &sc.origin.namespace, name, mutual) else {
                continue;
            };
            let (line, col) = p.credential_pos.unwrap_or((sc.origin.line, 1));
            out.push(Diagnostic {
                file: sc.origin.file.clone(),
                line,
                col,
                kind: sc.origin.kind.clone(),
                name: sc.origin.name.clone(),
                field: format!("spec.ingress[{i}].tls.credentialName"),
                message: format!(
                    "credential {name:?} of ingress port {}: {problem}",
                    p.number
                ),
            });
        }
    }
    out
}

/// The credential name of a server and whether it needs `ca.crt` (MUTUAL,
/// OPTIONAL_MUTUAL).
fn credential_of(s: &GatewayServer) -> Option<(&str, bool)> {
    let t = s.tls.as_ref()?;
    match &t.source {
        Some(TlsSource::Credential(name)) => {
            Some((name, t.mode.is_some_and(|m| m.verifies_clients())))
        }
        _ => None,
    }
}

/// Loads `dir` into the build state, logging and counting every broken
/// credential; returns true when the credentials in force changed.
pub(crate) fn refresh(core: &Core, dir: &Path) -> bool {
    let mut build = lock(&core.build);
    let (next, errors) = load(dir, &build.credentials);
    for e in &errors {
        tracing::error!(error = %e, "credential not served (the last good one, if any, stays)");
        core.metrics.credential_error();
    }
    let changed = next != build.credentials;
    build.credentials = next;
    changed
}

/// Watches `dir` and refreshes the credentials after each change, until
/// `stop`. The watcher lives as long as the task.
pub(crate) async fn watch_loop(
    core: Arc<Core>,
    dir: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
        let counts = res.map_or(true, |e| {
            matches!(
                e.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
            )
        });
        if counts {
            let _ = tx.try_send(());
        }
    });
    let _watcher = match watcher
        .and_then(|mut w| w.watch(&dir, RecursiveMode::Recursive).map(|()| w))
    {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot watch the credentials dir");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            got = rx.recv() => if got.is_none() { return },
        }
        // Let a writer finish the files of one change (cert, then key).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        while rx.try_recv().is_ok() {}
        if refresh(&core, &dir) {
            tracing::info!(dir = %dir.display(), "credentials changed");
            core.request_rebuild();
        }
    }
}

#[cfg(test)]
mod tests;
