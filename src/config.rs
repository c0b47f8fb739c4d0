//! Mesh configuration: every `*.yaml`/`*.yml` under a directory, read as
//! Istio resources, validated into a [`model::MeshConfig`].
//!
//! Two stages (see docs/architecture.md): raw serde types (`raw`, private) that deny
//! unknown fields, then conversion and checks (`convert`, `check`) that
//! collect every error with its file, line, column and field path.

mod check;
mod convert;
mod diag;
mod load;
pub mod model;
mod raw;
pub mod watch;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics};
pub use model::MeshConfig;
pub use watch::{watch, ConfigWatcher, WatchError};

/// Why a config directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or a file could not be read (`validate` exits 2).
    #[error("{}: {source}", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config is invalid (`validate` exits 1); one diagnostic per error.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Loads and validates every `*.yaml`/`*.yml` file under `dir`
/// (recursively, in sorted path order, all documents of each file).
pub fn load_dir(dir: &Path) -> Result<MeshConfig, LoadError> {
    load_dir_cached(dir, &mut LoadCache::default())
}

/// What the last load read from each file, so that a reload parses only
/// the files whose text changed (the cross-resource checks still see the
/// whole directory).
#[derive(Default)]
pub struct LoadCache {
    files: std::collections::HashMap<PathBuf, (String, load::Loader)>,
}

/// [`load_dir`], parsing only the files whose text differs from `cache`
/// (which is updated). The result is the same as `load_dir`'s.
pub fn load_dir_cached(dir: &Path, cache: &mut LoadCache) -> Result<MeshConfig, LoadError> {
    let files = yaml_files(dir)?;
    let mut loader = load::Loader::default();
    let mut next = std::collections::HashMap::with_capacity(files.len());
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| LoadError::Io {
            path: file.clone(),
            source,
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => {
                let part = match cache.files.remove(file) {
                    Some((old, part)) if old == text => part,
                    _ => {
                        let mut part = load::Loader::default();
                        part.file(file, &text);
                        part
                    }
                };
                loader.merge(part.clone());
                next.insert(file.clone(), (text, part));
            }
            Err(_) => loader.diags.push(Diagnostic {
                file: file.clone(),
                line: 1,
                col: 1,
                kind: "-".into(),
                name: "-".into(),
                field: "-".into(),
                message: "file is not valid UTF-8".into(),
            }),
        }
    }
    cache.files = next;
    check::finish(loader, files).map_err(LoadError::Invalid)
}

/// True for the files a config directory is made of.
pub(crate) fn is_config_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str());
    !hidden && matches!(ext, Some("yaml" | "yml"))
}

/// Every config file under `dir`, sorted. Hidden directories (`.git`) are
/// skipped.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Io { path, source }
    };
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let path = entry.map_err(io(&d))?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            // `metadata` follows symlinks, so linked files and dirs count.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() && !hidden => pending.push(path),
                Ok(m) if m.is_file() && is_config_file(&path) => out.push(path),
                Ok(_) => {}
                // A dangling symlink or a file removed meanwhile: not part of the config.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }
    out.sort();
    Ok(out)
}
