//! Staged config rollout: with a `RolloutPolicy`, each new config
//! generation goes first to a canary set of proxies, bakes, and then
//! reaches everyone; the other proxies keep the last good generation's
//! config (endpoints and certificates stay current for all, since every
//! snapshot joins its config with the live registry). Any NACK from a
//! canary proxy, an operator (`trellis rollout abort`) or a regression
//! (`serve::rollout::regression`) rolls the canary back to the last good
//! generation; the config directory is never touched, and the next edit
//! starts a new rollout.
//!
//! The state lives in the state store: `STATE_DIR/rollout` for one control
//! plane (`persist`), etcd for replicas (`shared`, `record`).

mod metrics;
mod persist;
mod record;
mod regression;
mod select;
pub(crate) mod shared;
mod state;
#[cfg(test)]
mod tests;
mod view;

pub(crate) use self::view::RolloutAdmin;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

pub(crate) use self::metrics::RolloutMetrics;
use self::persist::{Dir, Saved, SavedBake, SavedGeneration};
pub(crate) use self::select::is_canary;
pub(crate) use self::state::Plan;
use self::state::{Generation, State};
use super::core::{lock, Core};
use crate::config::model::MeshConfig;

/// The rollout of config generations (one per control plane).
pub(crate) struct Rollout {
    state: Mutex<State>,
    /// Where the state is saved; `None` in unit tests.
    dir: Option<Dir>,
    /// The highest generation number given out (saved).
    last_generation: Mutex<u64>,
    /// What a previous run saved, until the first generation is offered.
    restored: Mutex<Option<Restored>>,
    /// Wakes the bake timer when a rollout starts or ends.
    pub(crate) changed: Notify,
    pub(crate) metrics: RolloutMetrics,
    /// With replicas on etcd: the shared record this replica follows.
    pub(crate) shared: Option<shared::Shared>,
}

/// A previous run's state: the good generation (loaded from its saved
/// files) and the bake that was in progress.
struct Restored {
    good: Option<Generation>,
    bake: Option<SavedBake>,
    history: Vec<state::Ended>,
}

impl Rollout {
    /// The rollout, with what a previous run saved under `state_dir`.
    pub(crate) fn open(state_dir: Option<&Path>, metrics: RolloutMetrics) -> Self {
        let dir = state_dir.map(|d| Dir(d.join("rollout")));
        let saved = dir.as_ref().and_then(|d| match d.load() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("rollout state not restored: {e}");
                None
            }
        });
        let last = saved.as_ref().map_or(0, |s| s.last_generation);
        let restored = saved.map(|s| restore(dir.as_ref(), s));
        Rollout {
            state: Mutex::default(),
            dir,
            last_generation: Mutex::new(last),
            restored: Mutex::new(restored),
            changed: Notify::new(),
            metrics,
            shared: None,
        }
    }

    /// The rollout of a replica sharing it through etcd as `me`: its state
    /// arrives from the store, and `state_dir` only holds the stored
    /// generations' files while they are loaded.
    pub(crate) fn open_shared(state_dir: &Path, me: String, metrics: RolloutMetrics) -> Self {
        Rollout {
            shared: Some(shared::Shared::new(state_dir, me)),
            ..Rollout::open(None, metrics)
        }
    }

    /// True when this replica runs the bake timer and the regression check:
    /// always alone, with replicas only while it holds the election.
    pub(crate) fn drives(&self) -> bool {
        self.shared.as_ref().is_none_or(shared::Shared::drives)
    }

    /// The replica driving a shared rollout, if known.
    pub(crate) fn driver(&self) -> Option<String> {
        (self.shared.as_ref()).and_then(|s| s.driver.borrow().clone())
    }

    /// The generation number before the first config of this run, `mesh`
    /// read from `config_dir`: numbers go on from a previous run, and a
    /// bake that resumes keeps its number.
    pub(crate) fn number_before(&self, mesh: &MeshConfig, config_dir: &Path) -> u64 {
        let last = *lock(&self.last_generation);
        let restored = lock(&self.restored);
        let Some(bake) = restored.as_ref().and_then(|r| r.bake.as_ref()) else {
            return last;
        };
        let files = persist::read_files(config_dir, &mesh.files).unwrap_or_default();
        if bake.hash == persist::hash(&files) {
            bake.generation.saturating_sub(1)
        } else {
            last
        }
    }

    /// A new valid config, generation `number`, read from `config_dir`.
    pub(crate) fn offer(&self, number: u64, mesh: Arc<MeshConfig>, config_dir: &Path) {
        if let Some(shared) = &self.shared {
            // Replicas number generations in the store; the driver
            // proposes this one there.
            return shared.offer(mesh, config_dir);
        }
        // A mesh that never had a policy keeps no rollout state and reads
        // no files again.
        let tracking = mesh.rollout.is_some() || self.dir.as_ref().is_some_and(|d| d.0.exists());
        let files = match tracking {
            true => persist::read_files(config_dir, &mesh.files).unwrap_or_else(|e| {
                tracing::warn!("rollout: reading the config files to keep them: {e}");
                Vec::new()
            }),
            false => Vec::new(),
        };
        let generation = Generation {
            number,
            hash: persist::hash(&files),
            mesh,
            files: Arc::new(files),
        };
        let now = SystemTime::now();
        let mut state = lock(&self.state);
        let mut last = lock(&self.last_generation);
        *last = (*last).max(number);
        drop(last);
        let resumed = lock(&self.restored)
            .take()
            .is_some_and(|r| resume(&mut state, r, &generation));
        if !resumed {
            let good_before = state.good.as_ref().map(|g| g.number);
            if let Some(c) = state.offer(generation, now) {
                tracing::info!(generation = number, good = ?good_before, bake = ?c.policy.bake_time, "rollout started: the canary set gets the new generation first");
            }
        }
        if tracking {
            if let Some(good) = state.good.as_ref().filter(|g| g.number == number) {
                self.keep_good_files(&good.files);
            }
            self.saved(&state);
        } else {
            self.metrics.show(&state);
        }
        drop(state);
        self.changed.notify_one();
    }

    fn keep_good_files(&self, files: &[(std::path::PathBuf, String)]) {
        if let Some(Err(e)) = self.dir.as_ref().map(|d| d.save_good(files)) {
            tracing::warn!("rollout: saving the good generation's files: {e}");
        }
    }

    /// Saves the state and updates the metrics.
    fn saved(&self, state: &State) {
        self.metrics.show(state);
        let Some(dir) = &self.dir else { return };
        let saved = Saved {
            last_generation: *lock(&self.last_generation),
            good: state.good.as_ref().map(|g| SavedGeneration {
                generation: g.number,
                hash: g.hash.clone(),
            }),
            current: state.current.as_ref().map(|c| SavedBake {
                generation: c.generation.number,
                hash: c.generation.hash.clone(),
                started_at_ms: persist::ms(c.started_at),
                bake_ends_at_ms: persist::ms(c.bake_ends_at),
            }),
            history: state.history.iter().cloned().collect(),
        };
        if let Err(e) = dir.save(&saved) {
            tracing::warn!("rollout: saving the state: {e}");
        }
    }

    /// Which config each proxy gets at the next rebuild.
    pub(crate) fn plan(&self, fallback: &Arc<MeshConfig>) -> Plan {
        lock(&self.state).plan(fallback)
    }

    /// The canary proxies the last rebuild found.
    pub(crate) fn set_canary(&self, mut ids: Vec<String>) {
        ids.sort();
        let mut state = lock(&self.state);
        if let Some(c) = state.current.as_mut() {
            c.canary = ids;
            self.metrics.show(&state);
        }
    }

    /// True when `node` is a canary proxy of the rollout in progress.
    pub(crate) fn is_canary_node(&self, node: &str) -> bool {
        let state = lock(&self.state);
        state.current.as_ref().is_some_and(|c| {
            c.canary
                .binary_search_by(|id| id.as_str().cmp(node))
                .is_ok()
        })
    }

    /// When the bake in progress ends, if one is.
    pub(crate) fn bake_ends_at(&self) -> Option<SystemTime> {
        lock(&self.state).bake_ends_at()
    }

    /// A copy of the state, for the views and the regression check.
    pub(crate) fn snapshot(&self) -> State {
        lock(&self.state).clone()
    }

    /// Ends the rollout in progress: `Ok(true)` promoted, `Ok(false)`
    /// aborted; the returned config is the one in force for everyone now.
    fn finish(&self, promote: bool, why: &str, cause: &str) -> Result<Arc<MeshConfig>, String> {
        let mut state = lock(&self.state);
        let now = SystemTime::now();
        let n = if promote {
            state.promote(why, now)?
        } else {
            state.abort(why, now)?
        };
        let good = state.good.clone().ok_or("no good generation")?;
        if promote {
            tracing::info!(generation = n, "rollout promoted to every proxy: {why}");
            self.metrics.ended("promoted", cause);
        } else {
            tracing::error!(generation = n, good = good.number, "rollout aborted, generation failed; the canary proxies return to the last good generation: {why}");
            self.metrics.ended("failed", cause);
        }
        self.saved(&state);
        drop(state);
        if promote {
            self.keep_good_files(&good.files);
        }
        self.changed.notify_one();
        Ok(good.mesh)
    }
}

/// A previous run's state, with its good generation loaded from the files
/// it saved.
fn restore(dir: Option<&Dir>, saved: Saved) -> Restored {
    let good = saved.good.and_then(|g| {
        let path = dir?.good();
        match crate::config::load_dir(&path) {
            Ok(mesh) => {
                let files = persist::read_files(&path, &mesh.files).unwrap_or_default();
                Some(Generation {
                    number: g.generation,
                    mesh: Arc::new(mesh),
                    hash: g.hash,
                    files: Arc::new(files),
                })
            }
            Err(e) => {
                tracing::warn!(
                    "rollout: the saved good generation in {} does not load: {e}",
                    path.display()
                );
                None
            }
        }
    });
    Restored {
        good,
        bake: saved.current,
        history: saved.history,
    }
}

/// Puts a previous run's state in place for the first config of this run:
/// the same files as the bake in progress resume it; the same files as the
/// good generation are simply good; other files are a new generation that
/// rolls out from the good one (false: offer it as usual).
fn resume(state: &mut State, restored: Restored, first: &Generation) -> bool {
    state.history = restored.history.into();
    state.good = restored.good;
    match restored.bake {
        Some(b) if b.hash == first.hash && state.good.is_some() => {
            let resumed = state.resume(
                first.clone(),
                persist::from_ms(b.started_at_ms),
                persist::from_ms(b.bake_ends_at_ms),
            );
            if resumed {
                tracing::info!(
                    generation = first.number,
                    "rollout resumed after a restart: the bake goes on"
                );
            }
            resumed
        }
        _ => false,
    }
}

impl Core {
    /// Promotes the rollout in progress to every proxy.
    pub(crate) async fn rollout_promote(&self, why: &str, cause: &str) -> Result<(), String> {
        if self.rollout.shared.is_some() {
            return self
                .rollout_end_shared(true, (why, cause), None)
                .await
                .map(drop);
        }
        let good = self.rollout.finish(true, why, cause)?;
        self.config.store(good);
        self.dirty.notify_one();
        Ok(())
    }

    /// Aborts the rollout in progress: the canary returns to the last good
    /// generation, which is the config in force again.
    pub(crate) async fn rollout_abort(&self, why: &str, cause: &str) -> Result<(), String> {
        if self.rollout.shared.is_some() {
            return self
                .rollout_end_shared(false, (why, cause), None)
                .await
                .map(drop);
        }
        self.rollout_abort_local(why, cause)
    }

    fn rollout_abort_local(&self, why: &str, cause: &str) -> Result<(), String> {
        let good = self.rollout.finish(false, why, cause)?;
        self.config.store(good);
        self.dirty.notify_one();
        Ok(())
    }

    /// A proxy NACKed: if it is a canary, the generation it was sent fails.
    pub(crate) fn rollout_nacked(self: &Arc<Self>, node: &str, type_url: &str, message: &str) {
        if !self.rollout.is_canary_node(node) {
            return;
        }
        let kind = type_url.rsplit('.').next().unwrap_or(type_url);
        let why = format!("canary proxy {node} rejected the {kind}: {message}");
        if self.rollout.shared.is_none() {
            // Err: another abort or a promotion came first.
            let _ = self.rollout_abort_local(&why, "nack");
            return;
        }
        // Written to the store from here, whichever replica drives.
        let baking = (self.rollout.snapshot().current).map(|c| c.generation.hash);
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let only = baking.as_deref();
            if let Err(e) = core.rollout_end_shared(false, (&why, "nack"), only).await {
                tracing::debug!("rollout: a canary NACK did not abort: {e}");
            }
        });
    }
}

/// How often a bake compares the canary with the other proxies: the
/// comparison reads the scraper's latest samples (a few map lookups per
/// proxy), so it can run more often than the scrapes it reads.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// What the regression check compares against: the samples when the
/// generation started baking, and the destinations its change touches.
struct Baseline {
    generation: u64,
    samples: std::collections::BTreeMap<String, Arc<crate::graph::ProxySample>>,
    hosts: std::collections::BTreeSet<String>,
}

impl Core {
    /// The reason and cause to abort the rollout in progress when its
    /// canary does worse than the other proxies per the policy's thresholds.
    fn check_regression(&self, baseline: &mut Option<Baseline>) -> Option<(String, &'static str)> {
        let state = self.rollout.snapshot();
        let (Some(c), Some(good)) = (state.current.as_ref(), state.good.as_ref()) else {
            *baseline = None;
            return None;
        };
        let Some(base) = baseline
            .as_ref()
            .filter(|b| b.generation == c.generation.number)
        else {
            *baseline = Some(Baseline {
                generation: c.generation.number,
                samples: self.samples.latest(),
                hosts: regression::touched_hosts(&c.generation.mesh, &good.mesh),
            });
            return None;
        };
        let latest = self.samples.latest();
        let canary = self.canary_everywhere(c);
        let others = latest.keys().filter(|id| !canary.contains(*id));
        let mine = regression::totals(canary.iter(), &latest, &base.samples, &base.hosts);
        let theirs = regression::totals(others, &latest, &base.samples, &base.hosts);
        let verdict = regression::judge(&mine, &theirs, &c.policy.abort)?;
        Some((verdict.reason, verdict.cause))
    }

    /// The canary set: this replica's own when alone; with replicas, every
    /// registered sidecar the policy selects (the node-id hash and labels
    /// pick the same ones on every replica), since the driver compares the
    /// whole mesh's canaries, not only those connected to it.
    fn canary_everywhere(&self, c: &state::Current) -> std::collections::BTreeSet<String> {
        if self.rollout.shared.is_none() {
            return c.canary.iter().cloned().collect();
        }
        let registry = Arc::clone(&lock(&self.registry));
        (registry.sidecars().values())
            .filter(|p| p.gateway.is_none() && is_canary(&c.policy.canary, p))
            .map(|p| p.id.clone())
            .collect()
    }
}

/// Promotes each rollout when its bake time is over, and aborts it on a
/// regression, until `stop` fires.
pub(crate) async fn bake_loop(core: Arc<Core>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut baseline = None;
    loop {
        // With replicas only the elected driver keeps the time; the others
        // wait for the record it writes (a change of driver wakes them).
        let wait = (core.rollout.bake_ends_at())
            .filter(|_| core.rollout.drives())
            .map(|at| state::until(at, SystemTime::now()));
        let sleep = async {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {
                if core.rollout.bake_ends_at().is_some_and(|at| at <= SystemTime::now()) {
                    let _ = core.rollout_promote("bake time over", "bake").await;
                }
            }
            _ = tick.tick(), if wait.is_some() => {
                if let Some((reason, cause)) = core.check_regression(&mut baseline) {
                    let _ = core.rollout_abort(&reason, cause).await;
                }
            }
            _ = core.rollout.changed.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
