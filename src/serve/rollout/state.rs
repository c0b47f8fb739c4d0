//! The rollout state machine, without I/O: which generation is good, which
//! one is baking on the canary set, and what happened to the earlier ones.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::model::{MeshConfig, RolloutPolicy};

/// Generations the history keeps.
pub(crate) const HISTORY: usize = 20;

/// One accepted config: its number, the config, and a hash of its files
/// (how a restart recognises it in the config directory).
#[derive(Clone)]
pub(crate) struct Generation {
    pub(crate) number: u64,
    pub(crate) mesh: Arc<MeshConfig>,
    pub(crate) hash: String,
    /// Its files (relative path, text), kept in the state directory once
    /// it is good.
    pub(crate) files: Arc<Vec<(std::path::PathBuf, String)>>,
}

/// The generation baking on the canary set.
#[derive(Clone)]
pub(crate) struct Current {
    pub(crate) generation: Generation,
    pub(crate) policy: Arc<RolloutPolicy>,
    pub(crate) started_at: SystemTime,
    pub(crate) bake_ends_at: SystemTime,
    /// The canary proxies at the last rebuild, sorted.
    pub(crate) canary: Vec<String>,
}

/// How a generation ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Ended {
    pub(crate) generation: u64,
    /// `promoted`, `failed`, `superseded` or `applied` (no policy: everyone
    /// at once).
    pub(crate) outcome: String,
    pub(crate) reason: Option<String>,
    /// Unix seconds.
    pub(crate) at: u64,
    /// The hash of its files (kept by replicas sharing the rollout, which
    /// name generations by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hash: Option<String>,
}

/// Which config each proxy gets now.
pub(crate) enum Plan {
    /// Every proxy gets this one.
    All(Arc<MeshConfig>),
    /// The canary set gets `canary`, the others `rest` (the last good).
    Split {
        canary: Arc<MeshConfig>,
        policy: Arc<RolloutPolicy>,
        rest: Arc<MeshConfig>,
    },
}

/// Good, current and history.
#[derive(Default, Clone)]
pub(crate) struct State {
    pub(crate) good: Option<Generation>,
    pub(crate) current: Option<Current>,
    pub(crate) history: VecDeque<Ended>,
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl State {
    /// A new valid config. With a policy and a good generation to fall back
    /// on, it starts baking on the canary (superseding one in progress);
    /// otherwise it is good at once. Returns the rollout it started, if any.
    pub(crate) fn offer(&mut self, generation: Generation, now: SystemTime) -> Option<&Current> {
        // The same files read again (a watcher reports one edit twice): the
        // bake goes on under the new number, with the canary set it has.
        if let Some(c) = self.current.as_mut() {
            if c.generation.hash == generation.hash && generation.mesh.rollout.is_some() {
                c.generation = generation;
                return None;
            }
        }
        // Until the next rebuild finds the canary set again, the superseded
        // rollout's set is it: a NACK in between is still the rollout's.
        let mut canary = Vec::new();
        if let Some(old) = self.current.take() {
            let why = format!("generation {} replaced it", generation.number);
            self.end(old.generation.number, "superseded", Some(why), now);
            canary = old.canary;
        }
        let policy = generation.mesh.rollout.clone();
        match (policy, &self.good) {
            (Some(policy), Some(good)) if good.hash != generation.hash => {
                self.current = Some(Current {
                    bake_ends_at: now + policy.bake_time,
                    generation,
                    policy,
                    started_at: now,
                    canary,
                });
            }
            _ => {
                let applied = generation.number;
                let unchanged = self
                    .good
                    .as_ref()
                    .is_some_and(|g| g.hash == generation.hash);
                self.good = Some(generation);
                if !unchanged {
                    self.end(applied, "applied", None, now);
                }
            }
        }
        self.current.as_ref()
    }

    /// Resumes a bake a previous run started (same files, same deadline).
    pub(crate) fn resume(
        &mut self,
        generation: Generation,
        started_at: SystemTime,
        bake_ends_at: SystemTime,
    ) -> bool {
        let Some(policy) = generation.mesh.rollout.clone() else {
            return false;
        };
        self.current = Some(Current {
            generation,
            policy,
            started_at,
            bake_ends_at,
            canary: Vec::new(),
        });
        true
    }

    /// The plan for the next rebuild.
    pub(crate) fn plan(&self, fallback: &Arc<MeshConfig>) -> Plan {
        match (&self.current, &self.good) {
            (Some(c), Some(good)) => Plan::Split {
                canary: Arc::clone(&c.generation.mesh),
                policy: Arc::clone(&c.policy),
                rest: Arc::clone(&good.mesh),
            },
            (None, Some(good)) => Plan::All(Arc::clone(&good.mesh)),
            _ => Plan::All(Arc::clone(fallback)),
        }
    }

    /// Everyone gets the current generation; it is the good one now.
    pub(crate) fn promote(&mut self, why: &str, now: SystemTime) -> Result<u64, String> {
        let c = self.current.take().ok_or("no rollout in progress")?;
        let n = c.generation.number;
        self.good = Some(c.generation);
        self.end(n, "promoted", Some(why.to_string()), now);
        Ok(n)
    }

    /// The canary returns to the good generation; the current one failed.
    pub(crate) fn abort(&mut self, reason: &str, now: SystemTime) -> Result<u64, String> {
        let c = self.current.take().ok_or("no rollout in progress")?;
        let n = c.generation.number;
        self.end(n, "failed", Some(reason.to_string()), now);
        Ok(n)
    }

    /// When the bake in progress ends.
    pub(crate) fn bake_ends_at(&self) -> Option<SystemTime> {
        self.current.as_ref().map(|c| c.bake_ends_at)
    }

    fn end(&mut self, generation: u64, outcome: &str, reason: Option<String>, now: SystemTime) {
        self.history.push_front(Ended {
            generation,
            outcome: outcome.into(),
            reason,
            at: unix(now),
            hash: None,
        });
        self.history.truncate(HISTORY);
    }
}

/// How long until `at` (zero when past).
pub(crate) fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or_default()
}
