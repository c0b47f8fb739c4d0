//! The self-signed CA persisted under `STATE_DIR/ca/`:
//!
//! ```text
//! ca/                 0700
//!   state.json        which roots are trusted (old first) and which signs
//!   roots/root-N/     0700, written once
//!     cert.pem        0644
//!     key.pem         0600
//! ```
//!
//! A rotation step writes a new root directory (renamed into place whole),
//! then replaces `state.json` atomically, so a restart at any point resumes
//! from the last completed step.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::signer::{certs_der, der_to_pem, generate_root, root_info, Signer};
use super::store::{
    create_once, ensure_private_dir, io_error, read_secret, read_text, write_atomic, PUBLIC_MODE,
    SECRET_MODE,
};
use super::{CaError, Root, RotationPhase, State};

/// The persisted part of the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Persisted {
    /// Root ids in trust order: `[current]`, or `[old, new]` during a rotation.
    trusted: Vec<String>,
    /// The id of the root whose key signs.
    signing: String,
}

impl Persisted {
    fn phase(&self) -> RotationPhase {
        match self.trusted.as_slice() {
            [_, new] if *new == self.signing => RotationPhase::NewRootActive,
            [_, _] => RotationPhase::NewRootTrusted,
            _ => RotationPhase::Idle,
        }
    }
}

pub(crate) fn load_or_create(state_dir: &Path) -> Result<State, CaError> {
    let dir = state_dir.join("ca");
    ensure_private_dir(&dir)?;
    ensure_private_dir(&dir.join("roots"))?;
    let persisted = match read_persisted(&dir)? {
        Some(persisted) => persisted,
        None => create_first(&dir)?,
    };
    build_state(&dir, &persisted)
}

fn read_persisted(dir: &Path) -> Result<Option<Persisted>, CaError> {
    let file = dir.join("state.json");
    if !file.exists() {
        return Ok(None);
    }
    let persisted: Persisted =
        serde_json::from_str(&read_text(&file)?).map_err(|e| CaError::BadFile {
            path: file.clone(),
            problem: format!("is not valid CA state: {e}"),
        })?;
    check_consistent(&persisted, &file)?;
    Ok(Some(persisted))
}

/// The first root. Two processes starting on a fresh state directory may
/// both get here: `state.json` is created once, and the loser adopts it.
fn create_first(dir: &Path) -> Result<Persisted, CaError> {
    let id = new_root(dir)?;
    let persisted = Persisted {
        trusted: vec![id.clone()],
        signing: id.clone(),
    };
    let text = serde_json::to_string_pretty(&persisted).unwrap_or_default();
    if create_once(&dir.join("state.json"), text.as_bytes(), PUBLIC_MODE)? {
        tracing::info!(dir = %dir.display(), "created a self-signed mesh root CA");
        return Ok(persisted);
    }
    let _ = std::fs::remove_dir_all(root_dir(dir, &id));
    read_persisted(dir)?.ok_or_else(|| CaError::BadFile {
        path: dir.join("state.json"),
        problem: "vanished while the CA was being created".into(),
    })
}

fn check_consistent(p: &Persisted, file: &Path) -> Result<(), CaError> {
    let ok = matches!(p.trusted.len(), 1 | 2) && p.trusted.contains(&p.signing);
    let rotation_order_ok = p.trusted.len() == 1 || p.trusted[0] != p.trusted[1];
    if ok && rotation_order_ok {
        return Ok(());
    }
    Err(CaError::BadFile {
        path: file.to_path_buf(),
        problem: "must trust one or two distinct roots, one of which signs".into(),
    })
}

/// Rotation step 1: a new root, trusted after the current one.
pub(crate) fn begin(dir: &Path, state: &State) -> Result<State, CaError> {
    let Some(current) = state.roots.first().map(|r| &r.id) else {
        return Err(CaError::WrongPhase {
            step: "begin a rotation",
            phase: state.phase,
        });
    };
    let new = new_root(dir)?;
    let persisted = Persisted {
        trusted: vec![current.clone(), new],
        signing: current.clone(),
    };
    commit(dir, &persisted)
}

/// Rotation step 2: the new root signs.
pub(crate) fn activate(dir: &Path, state: &State) -> Result<State, CaError> {
    let trusted: Vec<String> = state.roots.iter().map(|r| r.id.clone()).collect();
    let signing = trusted.last().cloned().unwrap_or_default();
    commit(dir, &Persisted { trusted, signing })
}

/// Rotation step 3: only the new root is trusted; the old key is deleted.
pub(crate) fn finish(dir: &Path, state: &State) -> Result<State, CaError> {
    let (old, new) = match state.roots.as_slice() {
        [old, new] => (old.id.clone(), new.id.clone()),
        _ => {
            return Err(CaError::WrongPhase {
                step: "finish the rotation",
                phase: state.phase,
            })
        }
    };
    let next = commit(
        dir,
        &Persisted {
            trusted: vec![new.clone()],
            signing: new,
        },
    )?;
    let old_dir = root_dir(dir, &old);
    if let Err(e) = std::fs::remove_dir_all(&old_dir) {
        // The old root is no longer trusted; a leftover key only wastes space.
        tracing::warn!(dir = %old_dir.display(), error = %e, "could not delete the old root");
    }
    Ok(next)
}

fn commit(dir: &Path, persisted: &Persisted) -> Result<State, CaError> {
    let state = build_state(dir, persisted)?;
    save(dir, persisted)?;
    tracing::info!(phase = %state.phase, "CA root rotation step done");
    Ok(state)
}

fn save(dir: &Path, persisted: &Persisted) -> Result<(), CaError> {
    let text = serde_json::to_string_pretty(persisted).unwrap_or_default();
    write_atomic(&dir.join("state.json"), text.as_bytes(), PUBLIC_MODE)
}

fn root_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join("roots").join(id)
}

/// Generates a root and writes it under a fresh id; returns the id.
fn new_root(dir: &Path) -> Result<String, CaError> {
    let roots = dir.join("roots");
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let tmp = roots.join(format!("new.{}.{call}.tmp", std::process::id()));
    ensure_private_dir(&tmp)?;
    let (cert_pem, key) = generate_root(SystemTime::now())?;
    write_atomic(&tmp.join("cert.pem"), cert_pem.as_bytes(), PUBLIC_MODE)?;
    let key_pem = key.serialize_pem();
    write_atomic(&tmp.join("key.pem"), key_pem.as_bytes(), SECRET_MODE)?;
    // Another process may take the same number first: rename(2) of a
    // directory onto a non-empty one fails, so take the next number.
    let mut attempts = 0;
    loop {
        let id = format!("root-{}", next_number(&roots)?);
        let target = root_dir(dir, &id);
        match std::fs::rename(&tmp, &target) {
            Ok(()) => return Ok(id),
            Err(e) if attempts < 5 && taken(&e) => attempts += 1,
            Err(e) => return Err(io_error("rename into place", &target, e)),
        }
    }
}

fn taken(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{AlreadyExists, DirectoryNotEmpty};
    matches!(e.kind(), AlreadyExists | DirectoryNotEmpty)
}

/// One more than the highest `root-N` present (also unreferenced leftovers,
/// so a new root never overwrites an old directory).
fn next_number(roots: &Path) -> Result<u64, CaError> {
    let entries = std::fs::read_dir(roots).map_err(|e| io_error("list", roots, e))?;
    let highest = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("root-")?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0);
    Ok(highest + 1)
}

fn build_state(dir: &Path, persisted: &Persisted) -> Result<State, CaError> {
    let mut roots = Vec::new();
    for id in &persisted.trusted {
        roots.push(load_root(dir, id, *id == persisted.signing)?);
    }
    let signer = roots
        .iter()
        .find_map(|r| r.signer.clone())
        .ok_or_else(|| CaError::BadFile {
            path: dir.join("state.json"),
            problem: "names no signing root".into(),
        })?;
    if signer.not_after() <= SystemTime::now() {
        // Leaves from an expired root fail every handshake; say what to do.
        tracing::warn!(dir = %dir.display(), "the mesh root CA has expired: run `trellis ca rotate`");
    }
    Ok(State {
        dir: Some(dir.to_path_buf()),
        roots,
        signer,
        phase: persisted.phase(),
        next: None,
    })
}

fn load_root(dir: &Path, id: &str, signing: bool) -> Result<Root, CaError> {
    let cert_path = root_dir(dir, id).join("cert.pem");
    let key_path = root_dir(dir, id).join("key.pem");
    let bad = |path: &Path, problem: String| CaError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    let der = certs_der(&read_text(&cert_path)?)
        .map_err(|p| bad(&cert_path, p))?
        .into_iter()
        .next()
        .ok_or_else(|| bad(&cert_path, "contains no CERTIFICATE block".into()))?;
    let info = root_info(&der, signing).map_err(|p| bad(&cert_path, p))?;
    // Re-encoded, so bundles concatenate cleanly whatever the file's layout.
    let cert_pem = der_to_pem(&der);
    let signer = if signing {
        let key = super::keys::parse_private_key(&read_secret(&key_path)?)
            .map_err(|p| bad(&key_path, p))?;
        let signer = Signer::new(&cert_pem, key, String::new())
            .map_err(|p| bad(&key_path, format!("{p} in {}", cert_path.display())))?;
        Some(Arc::new(signer))
    } else {
        None
    };
    Ok(Root {
        id: id.to_owned(),
        cert_pem,
        info,
        signer,
    })
}
