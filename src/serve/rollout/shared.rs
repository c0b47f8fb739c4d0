//! The staged rollout with replicas on etcd. Every replica serves the
//! split the stored record (`record::Record`, `PREFIX/v1/rollout/state`)
//! names, whichever replica a proxy is connected to: it follows each
//! stored value (`Core::rollout_follow`), loading a generation from the
//! record's files when its own directory does not hold it.
//!
//! Who writes: any replica proposes a config it reads (see [`lead_loop`]);
//! one elected replica (`rollout/lock`, the election the root rotation
//! uses, on its lease) runs the bake timer and the regression check, so one
//! clock and one set of scrapes decide. Aborts and operator promotions happen on whichever replica sees
//! the NACK or takes the request, as a compare-and-swap of the record: each
//! step is a pure function of the value it replaces, so a writer that lost
//! a race reads the new value and steps again (or finds the rollout already
//! ended). That is one etcd round trip from a canary's NACK to the abort
//! every replica applies, with no detour through the driver, and it works
//! while a dead driver's lease runs out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::persist::{self, from_ms};
use super::record::{Files, Offer, Record};
use super::state::{Current, Generation};
use crate::config::model::MeshConfig;
use crate::serve::core::{lock, Core};
use crate::store::{Election, EtcdStore, Store, TrustOp};

/// How soon a failed election or proposal is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// Compare-and-swap attempts before a step gives up (each lost one means
/// another replica wrote in between).
const ATTEMPTS: usize = 5;

/// The stored record and its raw value (what a write replacing it compares).
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) record: Record,
    pub(crate) raw: Vec<u8>,
}

/// The newest config this replica loaded from its directory.
#[derive(Clone)]
struct Local {
    offer: Offer,
    mesh: Arc<MeshConfig>,
}

/// This replica's side of the shared rollout.
pub(crate) struct Shared {
    /// This replica's name in the store (its xDS address).
    me: String,
    /// Where generations known only from the store are written to load.
    scratch: PathBuf,
    /// The record etcd holds now.
    pub(crate) stored: watch::Sender<Option<Stored>>,
    /// The replica holding `rollout/lock`.
    pub(crate) driver: watch::Sender<Option<String>>,
    local: watch::Sender<Option<Local>>,
    /// Generations loaded from the record's files, by hash.
    loaded: Mutex<HashMap<String, Arc<MeshConfig>>>,
}

impl Shared {
    pub(crate) fn new(state_dir: &Path, me: String) -> Self {
        Shared {
            me,
            scratch: state_dir.join("rollout-store"),
            stored: watch::Sender::new(None),
            driver: watch::Sender::new(None),
            local: watch::Sender::new(None),
            loaded: Mutex::default(),
        }
    }

    /// True while this replica holds `rollout/lock`.
    pub(crate) fn drives(&self) -> bool {
        self.driver.borrow().as_deref() == Some(self.me.as_str())
    }

    /// Records a config read from `config_dir`: the driver proposes it.
    pub(crate) fn offer(&self, mesh: Arc<MeshConfig>, config_dir: &Path) {
        let files = persist::read_files(config_dir, &mesh.files).unwrap_or_else(|e| {
            tracing::warn!("rollout: reading the config files to share them: {e}");
            Vec::new()
        });
        let offer = Offer {
            hash: persist::hash(&files),
            files: Arc::new(files),
            bake: mesh.rollout.as_ref().map(|p| p.bake_time),
        };
        self.local.send_replace(Some(Local { offer, mesh }));
    }

    /// Records a stored value; its record, if there is one and it reads.
    fn receive(&self, raw: Option<Vec<u8>>) -> Option<Record> {
        let stored = match raw.map(|raw| Record::decode(&raw).map(|record| Stored { record, raw }))
        {
            Some(Err(e)) => {
                tracing::warn!("ignoring an unreadable rollout record in etcd: {e}");
                return None;
            }
            Some(Ok(s)) => Some(s),
            None => None,
        };
        self.stored.send_replace(stored.clone());
        stored.map(|s| s.record)
    }

    /// The good generation and the bake of `record`, loaded.
    fn generations(&self, record: &Record) -> Option<(Generation, Option<Current>)> {
        let saved = &record.saved;
        let good = saved.good.as_ref()?;
        let good = self.generation(good.generation, &good.hash, record)?;
        let current = saved.current.as_ref().and_then(|c| {
            let generation = self.generation(c.generation, &c.hash, record)?;
            Some(Current {
                policy: generation.mesh.rollout.clone()?,
                generation,
                started_at: from_ms(c.started_at_ms),
                bake_ends_at: from_ms(c.bake_ends_at_ms),
                canary: Vec::new(),
            })
        });
        Some((good, current))
    }

    /// Generation `number` of `hash`: this replica's own config if it is
    /// that one, else loaded from the record's files.
    fn generation(&self, number: u64, hash: &str, record: &Record) -> Option<Generation> {
        let files = record.files.get(hash).cloned().unwrap_or_default();
        let local = self.local.borrow().clone();
        let mesh = match local.filter(|l| l.offer.hash == hash) {
            Some(l) => l.mesh,
            None => self.load(hash, &files)?,
        };
        Some(Generation {
            number,
            hash: hash.into(),
            mesh,
            files: Arc::new(files),
        })
    }

    /// Loads a generation from stored files (cached by hash).
    fn load(&self, hash: &str, files: &Files) -> Option<Arc<MeshConfig>> {
        if let Some(mesh) = lock(&self.loaded).get(hash) {
            return Some(Arc::clone(mesh));
        }
        let dir = self.scratch.join(hash);
        let loaded = write_files(&dir, files)
            .map_err(|e| e.to_string())
            .and_then(|()| crate::config::load_dir(&dir).map_err(|e| e.to_string()));
        match loaded {
            Ok(mesh) => {
                let mesh = Arc::new(mesh);
                lock(&self.loaded).insert(hash.into(), Arc::clone(&mesh));
                Some(mesh)
            }
            Err(e) => {
                tracing::error!(hash, "rollout: a stored generation does not load here: {e}");
                None
            }
        }
    }

    /// Forgets loaded generations the record no longer names.
    fn prune(&self, record: &Record) {
        let mut loaded = lock(&self.loaded);
        loaded.retain(|hash, _| record.files.contains_key(hash));
        let Ok(dirs) = std::fs::read_dir(&self.scratch) else {
            return;
        };
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if !record.files.contains_key(&name) {
                let _ = std::fs::remove_dir_all(dir.path());
            }
        }
    }
}

/// Writes a generation's files under `dir` (replacing what was there).
fn write_files(dir: &Path, files: &Files) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    for (rel, text) in files {
        // Stored paths are relative; anything else is not written.
        if rel.is_absolute() || rel.components().any(|c| c.as_os_str() == "..") {
            continue;
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

impl Core {
    /// A stored record (watched, or written here): this replica serves its
    /// split from now on.
    pub(crate) fn rollout_follow(&self, raw: Option<Vec<u8>>) {
        let Some(shared) = &self.rollout.shared else {
            return;
        };
        let Some(record) = shared.receive(raw) else {
            return;
        };
        let Some((good, mut current)) = shared.generations(&record) else {
            return;
        };
        let in_force = current.as_ref().map_or(&good.mesh, |c| &c.generation.mesh);
        self.config.store(Arc::clone(in_force));
        let mut state = lock(&self.rollout.state);
        // Until the next rebuild finds the canary set, the one known is it:
        // a NACK in between is still the rollout's.
        if let (Some(new), Some(old)) = (current.as_mut(), state.current.as_ref()) {
            new.canary = old.canary.clone();
        }
        state.good = Some(good);
        state.current = current;
        state.history = record.saved.history.iter().cloned().collect();
        self.rollout.metrics.show(&state);
        drop(state);
        shared.prune(&record);
        self.dirty.notify_one();
        self.rollout.changed.notify_one();
    }

    /// Ends the rollout in progress through the store (any replica may):
    /// `only` names the generation a NACK was for, so a late NACK does not
    /// fail the generation that superseded it. Returns its number.
    pub(crate) async fn rollout_end_shared(
        &self,
        promote: bool,
        (why, cause): (&str, &str),
        only: Option<&str>,
    ) -> Result<u64, String> {
        let (Store::Etcd(etcd), Some(shared)) = (&self.store, &self.rollout.shared) else {
            return Err("the rollout is not shared".into());
        };
        let mut changes = shared.stored.subscribe();
        for _ in 0..ATTEMPTS {
            let stored = changes.borrow_and_update().clone();
            let Some(Stored { record, raw }) = stored else {
                return Err("no rollout in progress".into());
            };
            if only.is_some_and(|h| record.baking() != Some(h)) {
                return Err("the generation is no longer baking".into());
            }
            let now = SystemTime::now();
            let (next, n) = match promote {
                true => record.promote(why, now)?,
                false => record.abort(why, now)?,
            };
            if self.rollout_swap(etcd, Some(raw), &next).await? {
                self.rollout_ended(promote, n, why, cause, &next);
                return Ok(n);
            }
            // Another replica wrote first: step again from its value.
            let _ = tokio::time::timeout(RETRY, changes.changed()).await;
        }
        Err("the rollout record kept changing; try again".into())
    }

    /// Replaces the stored record if it still holds `expected`; follows
    /// the written value at once (the watch brings it back later).
    async fn rollout_swap(
        &self,
        etcd: &EtcdStore,
        expected: Option<Vec<u8>>,
        next: &Record,
    ) -> Result<bool, String> {
        let record = next.encode();
        let op = TrustOp::Rollout {
            expected,
            record: record.clone(),
        };
        let written = etcd.trust(op).await.map_err(|e| e.to_string())?;
        if written {
            self.rollout_follow(Some(record));
        }
        Ok(written)
    }

    /// Logs and counts an end this replica wrote.
    fn rollout_ended(&self, promote: bool, n: u64, why: &str, cause: &str, next: &Record) {
        let good = next.saved.good.as_ref().map(|g| g.generation);
        if promote {
            tracing::info!(generation = n, "rollout promoted to every proxy: {why}");
            self.rollout.metrics.ended("promoted", cause);
        } else {
            tracing::error!(generation = n, good, "rollout aborted, generation failed; the canary proxies return to the last good generation: {why}");
            self.rollout.metrics.ended("failed", cause);
        }
    }
}

/// Elects the rollout's driver, and proposes the configs this replica
/// loads, until `stop` fires.
///
/// Any replica proposes a config it reads after its first, once per change
/// (a compare-and-swap, retried while another replica's write wins), so a
/// change is applied while the driver is dead and its lease runs out. The
/// driver also proposes its own config when it takes the lock (a mesh whose
/// replicas all restarted on a new checkout). A replica never proposes its
/// startup config otherwise (it may be a stale checkout) nor again because
/// the record changed (replicas whose checkouts differ for a moment would
/// undo each other's writes).
pub(crate) async fn lead_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let (Store::Etcd(etcd), Some(shared)) = (&core.store, &core.rollout.shared) else {
        return;
    };
    let mut driver = shared.driver.subscribe();
    let mut stored = shared.stored.subscribe();
    let mut local = shared.local.subscribe();
    // The hash of the local config to propose, and the last one seen.
    let mut pending: Option<String> = None;
    let mut seen = local_hash(shared);
    loop {
        if shared.driver.borrow().is_none() {
            match etcd.trust(TrustOp::Lock(Election::Rollout)).await {
                Ok(true) => {
                    tracing::info!(
                        "rollout: this replica keeps the bake time (rollout/lock taken)"
                    );
                    shared.driver.send_replace(Some(shared.me.clone()));
                    pending = local_hash(shared);
                }
                Ok(false) => {}
                Err(e) => tracing::debug!("rollout: taking the lock: {e}"),
            }
        }
        let now = local_hash(shared);
        if now != seen {
            seen.clone_from(&now);
            pending = now;
        }
        if pending.is_some() && propose(&core, etcd, shared).await {
            pending = None;
        }
        tokio::select! {
            _ = driver.changed() => core.rollout.changed.notify_one(),
            _ = stored.changed() => {}
            _ = local.changed() => {}
            _ = tokio::time::sleep(RETRY) => {}
            _ = stop.changed() => return,
        }
    }
}

fn local_hash(shared: &Shared) -> Option<String> {
    (shared.local.borrow().as_ref()).map(|l| l.offer.hash.clone())
}

/// Proposes this replica's newest config; true when that is settled (the
/// record holds it, or need not change), false to try again.
async fn propose(core: &Core, etcd: &EtcdStore, shared: &Shared) -> bool {
    let Some(local) = shared.local.borrow().clone() else {
        return true;
    };
    let stored = shared.stored.borrow().clone();
    let (record, raw) = stored.map_or((Record::default(), None), |s| (s.record, Some(s.raw)));
    let Some(next) = record.propose(&local.offer, SystemTime::now()) else {
        return true;
    };
    match core.rollout_swap(etcd, raw, &next).await {
        Ok(true) => {
            log_proposed(&next, &local.offer.hash);
            true
        }
        // Another replica wrote in between: the watch brings its value.
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(
                "rollout: proposing generation {}: {e}",
                &local.offer.hash[..12.min(local.offer.hash.len())]
            );
            false
        }
    }
}

fn log_proposed(next: &Record, hash: &str) {
    match next.saved.current.as_ref().filter(|c| c.hash == hash) {
        Some(c) => {
            tracing::info!(generation = c.generation, good = ?next.saved.good.as_ref().map(|g| g.generation), "rollout started: the canary set gets the new generation first")
        }
        None => tracing::info!(
            generation = next.saved.last_generation,
            "config generation applied to every proxy"
        ),
    }
}
