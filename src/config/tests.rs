//! Tests of loading and validation. Each error case asserts the exact
//! `FILE:LINE:COL: error: KIND/NAME: FIELD: message` line.

mod errors;
mod samples;

use std::path::Path;

use super::{load_dir, LoadError, MeshConfig};

/// Writes `files` (relative path, content) into a temp dir and loads it;
/// diagnostics come back as lines with paths relative to the dir.
pub(super) fn load(files: &[(&str, &str)]) -> Result<MeshConfig, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    load_rel(dir.path())
}

/// Loads `dir`; diagnostics as lines with paths relative to `dir`.
pub(super) fn load_rel(dir: &Path) -> Result<MeshConfig, Vec<String>> {
    load_dir(dir).map_err(|e| match e {
        LoadError::Invalid(d) => {
            d.0.into_iter()
                .map(|mut d| {
                    d.file = d.file.strip_prefix(dir).unwrap().to_path_buf();
                    let prefix = format!("{}/", dir.display());
                    d.message = d.message.replace(&prefix, "");
                    d.to_string()
                })
                .collect()
        }
        LoadError::Io { path, source } => panic!("I/O error {}: {source}", path.display()),
    })
}

/// The errors of loading one file `f.yaml`.
pub(super) fn errors(text: &str) -> Vec<String> {
    match load(&[("f.yaml", text)]) {
        Ok(_) => panic!("expected errors, config loaded"),
        Err(e) => e,
    }
}
