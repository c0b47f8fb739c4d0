//! Finding and reading a config directory's files, within the
//! [`limits`](super::limits): how many files, how many bytes, and each
//! directory once (a symlink loop is refused, not walked forever).

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::diag::Diagnostic;
use super::limits::{MAX_DIR_BYTES, MAX_FILES, MAX_FILE_BYTES};
use super::{is_config_file, LoadError};

/// The config files of a directory (sorted), and what was refused on the way.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) files: Vec<PathBuf>,
    pub(super) diags: Vec<Diagnostic>,
}

/// A diagnostic about a whole file (or directory), at its start.
pub(super) fn file_diagnostic(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: 1,
        col: 1,
        kind: "-".into(),
        name: "-".into(),
        field: "-".into(),
        message,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError {
    let path = path.to_path_buf();
    move |source| LoadError::Io { path, source }
}

/// Every config file under `dir`, sorted. Hidden directories (`.git`) are
/// skipped; symlinks are followed, but a directory reached a second time
/// (a loop, or a second link to it) is refused.
pub(super) fn yaml_files(dir: &Path) -> Result<Walk, LoadError> {
    let mut walk = Walk::default();
    let mut seen = HashSet::new();
    seen.insert(std::fs::canonicalize(dir).map_err(io(dir))?);
    let mut pending = VecDeque::from([dir.to_path_buf()]);
    while let Some(d) = pending.pop_front() {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            entries.push(entry.map_err(io(&d))?.path());
        }
        entries.sort();
        for path in entries {
            if let Some(sub) = walk.entry(path, &mut seen)? {
                pending.push_back(sub);
            }
        }
    }
    walk.files.sort();
    if walk.files.len() > MAX_FILES {
        let first_over = walk.files[MAX_FILES].clone();
        let msg = format!("the config directory holds more than {MAX_FILES} config files");
        walk.diags.push(file_diagnostic(&first_over, msg));
        walk.files.truncate(MAX_FILES);
    }
    Ok(walk)
}

impl Walk {
    /// Records one directory entry; returns it when it is a directory to
    /// read next.
    fn entry(
        &mut self,
        path: PathBuf,
        seen: &mut HashSet<PathBuf>,
    ) -> Result<Option<PathBuf>, LoadError> {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        // `metadata` follows symlinks, so linked files and dirs count.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() && !hidden => {
                let real = std::fs::canonicalize(&path).map_err(io(&path))?;
                if seen.insert(real.clone()) {
                    return Ok(Some(path));
                }
                let msg = format!(
                    "directory {} is reached a second time (a symlink loop, or a second link to it); not read again",
                    real.display()
                );
                self.diags.push(file_diagnostic(&path, msg));
            }
            Ok(m) if m.is_file() && is_config_file(&path) => self.files.push(path),
            Ok(_) => {}
            // A dangling symlink or a file removed meanwhile: not part of the config.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A symlink loop on one link (`a -> a`) cannot be followed at all.
            Err(e) if e.raw_os_error() == Some(libc_eloop()) => {
                let msg = "symlink loop; not followed".to_string();
                self.diags.push(file_diagnostic(&path, msg));
            }
            Err(e) => return Err(io(&path)(e)),
        }
        Ok(None)
    }
}

/// `ELOOP` (Linux and macOS differ; std exposes no constant).
fn libc_eloop() -> i32 {
    if cfg!(target_os = "linux") {
        40
    } else {
        62
    }
}

/// Reads one config file: `Ok(Err(diagnostic))` when it is over
/// [`MAX_FILE_BYTES`], or over what is left of `budget` (the directory's
/// [`MAX_DIR_BYTES`]). Never reads more than the limit.
pub(super) fn read(
    file: &Path,
    budget: &mut u64,
) -> Result<Result<Vec<u8>, Diagnostic>, LoadError> {
    let f = std::fs::File::open(file).map_err(io(file))?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "at the limit" from "over it", even
    // for a file that grows while it is read.
    let allowed = MAX_FILE_BYTES.min(*budget);
    f.take(allowed + 1)
        .read_to_end(&mut bytes)
        .map_err(io(file))?;
    let len = bytes.len() as u64;
    if len > MAX_FILE_BYTES {
        let msg =
            format!("file is larger than {MAX_FILE_BYTES} bytes, the limit for one config file");
        return Ok(Err(file_diagnostic(file, msg)));
    }
    if len > *budget {
        *budget = 0;
        let msg = format!(
            "config files together exceed {MAX_DIR_BYTES} bytes, the limit for a config directory"
        );
        return Ok(Err(file_diagnostic(file, msg)));
    }
    *budget -= len;
    Ok(Ok(bytes))
}
