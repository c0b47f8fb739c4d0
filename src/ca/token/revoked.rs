//! The revocation list: one `jti` per line in `STATE_DIR/revoked-tokens`.
//! `trellis token revoke` appends from another process, so the file is
//! re-read whenever its size or modification time changes (one `stat` per
//! verification otherwise).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::ca::store::{io_error, SECRET_MODE};
use crate::ca::CaError;

#[derive(Default)]
struct Cache {
    /// (mtime, size) of the file when last read; `None` when it was absent.
    stamp: Option<(SystemTime, u64)>,
    revoked: HashSet<String>,
    /// Bumped whenever `revoked` may have changed.
    generation: u64,
}

pub(super) struct Revocations {
    path: PathBuf,
    cache: Mutex<Cache>,
}

impl Revocations {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn contains(&self, jti: &str) -> bool {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut cache);
        cache.revoked.contains(jti)
    }

    pub(super) fn list(&self) -> Vec<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut cache);
        cache.revoked.iter().cloned().collect()
    }

    /// Refreshes the list; the result grows whenever the list may have changed.
    pub(super) fn generation(&self) -> u64 {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut cache);
        cache.generation
    }

    fn refresh(&self, cache: &mut Cache) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp == cache.stamp {
            return;
        }
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                cache.revoked = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect();
                cache.stamp = stamp;
                cache.generation += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cache.revoked.clear();
                cache.stamp = None;
                cache.generation += 1;
            }
            // Keep the last list we read rather than forgetting revocations.
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the token revocation list")
            }
        }
    }

    pub(super) fn add(&self, jti: &str) -> Result<(), CaError> {
        let valid =
            !jti.is_empty() && jti.len() <= 64 && jti.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(CaError::BadName(format!(
                "token id {jti:?} (expected the token's jti, hex)"
            )));
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(SECRET_MODE)
            .open(&self.path)
            .map_err(|e| io_error("open", &self.path, e))?;
        writeln!(file, "{jti}").map_err(|e| io_error("append to", &self.path, e))?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.revoked.insert(jti.to_owned());
        cache.generation += 1;
        Ok(())
    }
}
