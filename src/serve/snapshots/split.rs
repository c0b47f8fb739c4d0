//! A rebuild during a staged rollout: the canary proxies' snapshots from
//! the generation baking, the others' from the last good one. Each
//! generation keeps its own [`BuildState`], so what proxies share is
//! translated once per live generation, never per proxy, and both keep
//! their encodings from one rebuild to the next.

use std::collections::HashSet;
use std::sync::Arc;

use super::{build_served, BuildState, Built};
use crate::config::model::{MeshConfig, RolloutPolicy};
use crate::registry::Registry;
use crate::serve::core::{lock, Core};
use crate::serve::rollout::{is_canary, Plan};

impl Core {
    /// Builds the snapshots of the proxies `served` per the rollout `plan`.
    pub(super) fn build_planned(
        &self,
        plan: &Plan,
        registry: &Registry,
        served: &HashSet<String>,
    ) -> Built {
        match plan {
            Plan::All(mesh) => {
                // No rollout: the held generation's state is of no more use.
                *lock(&self.held_build) = BuildState::default();
                let serves = |id: &str| served.contains(id);
                build_served(
                    &mut lock(&self.build),
                    mesh,
                    registry,
                    Some(&self.certs),
                    &serves,
                )
            }
            Plan::Split {
                canary,
                policy,
                rest,
            } => self.build_split(registry, served, (canary, policy), rest),
        }
    }

    fn build_split(
        &self,
        registry: &Registry,
        served: &HashSet<String>,
        (canary, policy): (&Arc<MeshConfig>, &Arc<RolloutPolicy>),
        rest: &Arc<MeshConfig>,
    ) -> Built {
        let canary_ids: HashSet<String> = registry
            .sidecars()
            .values()
            .filter(|p| served.contains(&p.id) && is_canary(&policy.canary, p))
            .map(|p| p.id.clone())
            .collect();
        // Known before the canary's snapshots are published, so that a NACK
        // of them is always attributed to the rollout.
        self.rollout
            .set_canary(canary_ids.iter().cloned().collect());
        let main = &mut lock(&self.build);
        let held = &mut lock(&self.held_build);
        held.credentials = main.credentials.clone();
        held.jwks = main.jwks.clone();
        let certs = Some(&self.certs);
        let new = build_served(main, canary, registry, certs, &|id| canary_ids.contains(id));
        let old = build_served(held, rest, registry, certs, &|id| {
            served.contains(id) && !canary_ids.contains(id)
        });
        merge(new, old)
    }
}

/// One build's result from two: a proxy that moved from one generation to
/// the other is gone from one build but not from the mesh.
fn merge(a: Built, b: Built) -> Built {
    let mut snapshots = a.snapshots;
    snapshots.extend(b.snapshots);
    let built: HashSet<&str> = snapshots.iter().map(|(id, _, _)| id.as_str()).collect();
    let mut gone: Vec<String> = a
        .gone
        .into_iter()
        .chain(b.gone)
        .filter(|id| !built.contains(id.as_str()))
        .collect();
    gone.sort();
    gone.dedup();
    Built {
        snapshots,
        gone,
        retired: a.retired.into_iter().chain(b.retired).collect(),
        skipped_servers: a.skipped_servers + b.skipped_servers,
    }
}
