//! Files of the CA and the token authority: private files 0600, directories
//! 0700, written atomically (temp file + rename) so a crash never leaves half a key.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::CaError;

/// Mode of files holding private keys or token keys.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of files anyone may read (certificates, state).
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of directories holding secrets.
pub const DIR_MODE: u32 = 0o700;

pub(crate) fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> CaError {
    CaError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and parents) if missing; a directory we create for secrets is
/// 0700, and an existing one is tightened to 0700 because it holds keys.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), CaError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| io_error("create directory", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .map_err(|e| io_error("set permissions on", dir, e))
}

/// Writes `contents` to `path` atomically with the given mode.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let tmp = tmp_path(path);
    // A leftover temp file from a crash is stale: remove it so create_new works.
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_error("create", &tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_error("rename into place", path, e))
}

/// Creates `path` with `contents` unless it exists, atomically: of two
/// processes creating it at once (`trellis token` and `serve` on a fresh
/// state directory), one wins and both then read the winner's file.
/// Returns whether this call created it.
pub(crate) fn create_once(path: &Path, contents: &[u8], mode: u32) -> Result<bool, CaError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    // Unique per process and call, so racing writers never share a temp file.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".{}.{call}.new", std::process::id()));
    let tmp = path.with_file_name(name);
    write_atomic(&tmp, contents, mode)?;
    // link(2) fails if the target exists, unlike rename(2).
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error("create", path, e)),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Reads a whole text file; the error names the file.
pub(crate) fn read_text(path: &Path) -> Result<String, CaError> {
    let bytes = fs::read(path).map_err(|e| io_error("read", path, e))?;
    String::from_utf8(bytes).map_err(|_| CaError::BadFile {
        path: path.to_path_buf(),
        problem: "is not UTF-8 text (expected PEM)".into(),
    })
}

/// Reads a file that should be private and refuses one that others can read,
/// as ssh does for keys: a leaked key file is a compromised CA.
pub(crate) fn read_secret(path: &Path) -> Result<Vec<u8>, CaError> {
    let meta = fs::metadata(path).map_err(|e| io_error("read", path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(CaError::BadFile {
            path: path.to_path_buf(),
            problem: format!(
                "is readable by group or others (mode {:o}); run `chmod 600` on it",
                meta.permissions().mode() & 0o777
            ),
        });
    }
    fs::read(path).map_err(|e| io_error("read", path, e))
}
