//! The rollout's state in the state directory, so a restart resumes a bake:
//! `STATE_DIR/rollout/state.json` (generations, the bake in progress, the
//! history) and `STATE_DIR/rollout/good/` (the files of the last good
//! generation, which the non-canary proxies keep; the config directory
//! holds the newer one). Written atomically (temporary, then rename).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::state::Ended;

/// Why the rollout state could not be saved or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PersistError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `state.json` is not what this version writes.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A generation as saved: its number and the hash of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedGeneration {
    pub(crate) generation: u64,
    pub(crate) hash: String,
}

/// The bake in progress as saved (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedBake {
    pub(crate) generation: u64,
    pub(crate) hash: String,
    pub(crate) started_at_ms: u64,
    pub(crate) bake_ends_at_ms: u64,
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    /// The highest generation number given out: numbers go on after a
    /// restart, so the history never has two generations of one number.
    pub(crate) last_generation: u64,
    pub(crate) good: Option<SavedGeneration>,
    pub(crate) current: Option<SavedBake>,
    pub(crate) history: Vec<Ended>,
}

pub(crate) fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// Where the rollout keeps its state.
#[derive(Debug, Clone)]
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    fn state_file(&self) -> PathBuf {
        self.0.join("state.json")
    }

    /// The directory of the last good generation's files.
    pub(crate) fn good(&self) -> PathBuf {
        self.0.join("good")
    }

    /// The saved state; `None` when nothing was saved.
    pub(crate) fn load(&self) -> Result<Option<Saved>, PersistError> {
        let path = self.state_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| PersistError::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Saves `state.json`.
    pub(crate) fn save(&self, saved: &Saved) -> Result<(), PersistError> {
        std::fs::create_dir_all(&self.0).map_err(io(&self.0))?;
        let path = self.state_file();
        let tmp = self.0.join(".state.json.tmp");
        let bytes = serde_json::to_vec_pretty(saved).map_err(|source| PersistError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Replaces the good generation's files with `files` (relative path,
    /// text).
    pub(crate) fn save_good(&self, files: &[(PathBuf, String)]) -> Result<(), PersistError> {
        let tmp = self.0.join(".good.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        for (rel, text) in files {
            let path = tmp.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, text).map_err(io(&path))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let good = self.good();
        match std::fs::remove_dir_all(&good) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&good)(e)),
            _ => {}
        }
        std::fs::rename(&tmp, &good).map_err(io(&good))
    }
}

/// The files of a loaded config, relative to `dir`, with their text.
pub(crate) fn read_files(
    dir: &Path,
    files: &[PathBuf],
) -> Result<Vec<(PathBuf, String)>, PersistError> {
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let full = if file.is_absolute() {
            file.clone()
        } else {
            dir.join(file)
        };
        let rel = full.strip_prefix(dir).unwrap_or(file).to_path_buf();
        let text = std::fs::read_to_string(&full).map_err(io(&full))?;
        out.push((rel, text));
    }
    out.sort();
    Ok(out)
}

/// A hash of a config's files (paths and text): how a restart recognises
/// which saved generation the config directory holds.
pub(crate) fn hash(files: &[(PathBuf, String)]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (rel, text) in files {
        ctx.update(rel.to_string_lossy().as_bytes());
        ctx.update(&[0]);
        ctx.update(text.as_bytes());
        ctx.update(&[0]);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_good_files_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir(tmp.path().join("rollout"));
        assert_eq!(dir.load().unwrap(), None);
        let saved = Saved {
            last_generation: 3,
            good: Some(SavedGeneration {
                generation: 2,
                hash: "a".into(),
            }),
            current: Some(SavedBake {
                generation: 3,
                hash: "b".into(),
                started_at_ms: 1,
                bake_ends_at_ms: 2,
            }),
            history: vec![],
        };
        dir.save(&saved).unwrap();
        assert_eq!(dir.load().unwrap(), Some(saved));
        let files = vec![(PathBuf::from("sub/a.yaml"), "x: 1\n".to_string())];
        dir.save_good(&files).unwrap();
        dir.save_good(&files).unwrap();
        let back = read_files(&dir.good(), &[dir.good().join("sub/a.yaml")]).unwrap();
        assert_eq!(back, files);
        assert_eq!(hash(&back), hash(&files));
        assert_ne!(hash(&back), hash(&[]));
    }
}
