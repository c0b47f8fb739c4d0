//! Hot reload: every change under the config directory reloads the whole
//! directory (parsing again only the files whose text changed, then
//! checking everything); a valid result replaces the config, an invalid one
//! is rejected and the last good config keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, watch};

use super::core::Core;
use crate::config::model::MeshConfig;
use crate::config::{load_dir_cached, LoadCache, LoadError, SourceIndex};
use crate::translate::provenance::Provenance;

/// A valid config and the positions of its fields.
pub(crate) type Loaded = (MeshConfig, SourceIndex);

/// Where each Envoy resource of a config comes from, built when a proxy's
/// rejection first asks: a NACK is rare, and building it on every reload
/// cost each reload the time and kept the memory for nothing. The default
/// traces nothing (no config was loaded yet).
#[derive(Default)]
pub(crate) struct LazyProvenance {
    /// The config and its field positions (shared with the config in force
    /// and the load cache: no copy).
    input: Option<(Arc<MeshConfig>, SourceIndex)>,
    built: OnceLock<Provenance>,
}

impl LazyProvenance {
    /// The provenance of `mesh`, to be built from `source` on first use.
    pub(crate) fn new(mesh: Arc<MeshConfig>, source: SourceIndex) -> Self {
        LazyProvenance {
            input: Some((mesh, source)),
            built: OnceLock::new(),
        }
    }

    /// The provenance, built now if it was not yet.
    pub(crate) fn get(&self) -> &Provenance {
        self.built.get_or_init(|| match &self.input {
            Some((mesh, source)) => Provenance::build(mesh, source),
            None => Provenance::default(),
        })
    }
}

/// Loads `dir` off the async threads (it reads and parses files), keeping
/// each file's result for [`reload_loop`].
pub(crate) async fn load_with_cache(dir: &Path) -> Result<(Loaded, LoadCache), LoadError> {
    let (result, cache) = load_cached(dir, LoadCache::default()).await;
    result.map(|loaded| (loaded, cache))
}

/// Reloads on each watcher event until the watcher or `stop` ends; `cache`
/// holds the last load's per-file results.
pub(crate) async fn reload_loop(
    core: Arc<Core>,
    dir: PathBuf,
    mut events: mpsc::Receiver<()>,
    mut cache: LoadCache,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            event = events.recv() => {
                if event.is_none() {
                    tracing::warn!("config watcher stopped; hot reload is off");
                    return;
                }
            }
            _ = stop.changed() => return,
        }
        // The watcher lets a burst settle (a write in place is a truncate
        // and then a write) before it sends; anything queued since is
        // covered by the load below.
        while events.try_recv().is_ok() {}
        let started = std::time::Instant::now();
        let (result, kept) = load_cached(&dir, cache).await;
        cache = kept;
        tracing::debug!(elapsed = ?started.elapsed(), "config directory loaded");
        match result {
            Ok((mesh, source)) => core.accept_config(mesh, source),
            Err(e) => core.reject_config(&e),
        }
    }
}

/// [`load_dir_cached`] off the async threads, with the previous reload's
/// per-file results, and the field positions of a valid result. The loader turns its own panics into
/// [`LoadError::Panicked`]; one that still escapes (or a cancelled task) is
/// a failed load too, so hot reload never stops on a loader bug.
async fn load_cached(dir: &Path, mut cache: LoadCache) -> (Result<Loaded, LoadError>, LoadCache) {
    let path = dir.to_path_buf();
    let task = move || {
        let result = load_dir_cached(&path, &mut cache).map(|mesh| (mesh, cache.sources()));
        (result, cache)
    };
    match tokio::task::spawn_blocking(task).await {
        Ok(done) => done,
        Err(e) => {
            let error = LoadError::Panicked {
                path: dir.to_path_buf(),
                message: e.to_string(),
            };
            (Err(error), LoadCache::default())
        }
    }
}
