//! Mesh configuration: every `*.yaml`/`*.yml` under a directory, read as
//! Istio resources, validated into a [`model::MeshConfig`].
//!
//! Two stages (see docs/architecture.md): raw serde types (`raw`, private) that deny
//! unknown fields, then conversion and checks (`convert`, `check`) that
//! collect every error with its file, line, column and field path.

mod check;
mod convert;
mod diag;
pub mod limits;
mod load;
pub mod model;
mod raw;
pub mod source;
mod walk;
pub mod watch;
mod yaml;

#[cfg(test)]
pub(crate) mod tests;

use std::path::{Path, PathBuf};

pub(crate) use convert::check_jwks;
pub use diag::{Diagnostic, Diagnostics};
pub use model::MeshConfig;
pub use source::SourceIndex;
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
    /// A bug: the loader panicked while reading `path` (a file, or the
    /// directory during the cross-file checks). Reported, not propagated,
    /// so a reload fails and the last good config keeps serving.
    #[error("{}: internal error while loading: {message}", path.display())]
    Panicked {
        /// The file (or directory) being loaded.
        path: PathBuf,
        /// The panic's message.
        message: String,
    },
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
    files: std::collections::HashMap<PathBuf, CachedFile>,
}

/// One file as the last load read it.
struct CachedFile {
    text: String,
    /// What reading it added to the loader.
    part: load::Loader,
    /// Its documents' positions and quoted strings (the file's part of the
    /// [`SourceIndex`]), shared with the parts' resources.
    docs: std::sync::Arc<source::FileDocs>,
}

impl LoadCache {
    /// The field positions of the files of the last load (a cheap copy:
    /// each file's documents are shared).
    pub fn sources(&self) -> SourceIndex {
        SourceIndex::from_files(self.files.iter().map(|(f, c)| (f, &c.docs)))
    }
}

/// [`load_dir`], parsing only the files whose text differs from `cache`
/// (which is updated). The result is the same as `load_dir`'s. Each file,
/// and the directory, is read within the [`limits`].
pub fn load_dir_cached(dir: &Path, cache: &mut LoadCache) -> Result<MeshConfig, LoadError> {
    let walk = walk::yaml_files(dir)?;
    let mut loader = load::Loader {
        diags: walk.diags,
        ..load::Loader::default()
    };
    let mut next = std::collections::HashMap::with_capacity(walk.files.len());
    let mut budget = limits::MAX_DIR_BYTES;
    for file in &walk.files {
        let bytes = match walk::read(file, &mut budget)? {
            Ok(bytes) => bytes,
            Err(diag) => {
                loader.diags.push(diag);
                continue;
            }
        };
        let Ok(text) = String::from_utf8(bytes) else {
            let msg = "file is not valid UTF-8".to_string();
            loader.diags.push(walk::file_diagnostic(file, msg));
            continue;
        };
        let cached = match cache.files.remove(file) {
            Some(cached) if cached.text == text => cached,
            _ => read_file(file, text)?,
        };
        loader.merge(cached.part.clone());
        next.insert(file.clone(), cached);
    }
    cache.files = next;
    guarded(dir, || check::finish(loader, walk.files))?.map_err(LoadError::Invalid)
}

/// Parses and converts one file's `text` (its documents indexed once, as
/// they are read).
fn read_file(file: &Path, text: String) -> Result<CachedFile, LoadError> {
    let mut part = guarded(file, || {
        let mut part = load::Loader::default();
        part.file(file, &text);
        part
    })?;
    let docs = std::sync::Arc::new(source::file_docs(std::mem::take(&mut part.docs)));
    Ok(CachedFile { text, part, docs })
}

/// Runs one step of a load, turning a panic into [`LoadError::Panicked`]
/// naming `path`: a bug in the loader must fail one load, not take hot
/// reload down with it.
fn guarded<T>(path: &Path, step: impl FnOnce() -> T) -> Result<T, LoadError> {
    #[cfg(test)]
    let step = || {
        tests::panic_if_injected(path);
        step()
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        LoadError::Panicked {
            path: path.to_path_buf(),
            message,
        }
    })
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
