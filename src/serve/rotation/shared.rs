//! Root rotation with replicas on etcd: what every replica does. Each one
//! follows the shared record (`PREFIX/v1/trust/rotation`): it moves its own
//! CA to the stored phase (the operator staged the new plug-in CA files in
//! `CA_DIR/next/` on every replica), rebuilds, and tags each of its proxies'
//! published status with the phase once the proxy ACKed SDS built in it.
//! One replica at a time drives (`driver`); any replica takes requests
//! (`request`).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use tokio::sync::watch;

use super::RotateError;
use crate::ca::{Ca, PluginCa, RotationPhase};
use crate::serve::core::{lock, Core};
use crate::store::{RotationRecord, SharedPhase, Store};
use crate::xds::{ProxyStatus, SECRET_TYPE};

/// The stored record and its raw value (what a write replacing it compares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) record: RotationRecord,
    pub(crate) raw: Vec<u8>,
}

/// This replica's side of the shared rotation.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The plug-in CA files in use (`next/` beside them holds the new CA).
    plugin: OnceLock<PluginCa>,
    /// This replica's name in the store (its xDS address).
    me: OnceLock<String>,
    /// The latest record etcd holds.
    pub(crate) record: watch::Sender<Option<Stored>>,
    /// The replica holding `trust/lock`.
    pub(crate) driver: watch::Sender<Option<String>>,
    /// Every live replica and the tag all its proxies ACKed.
    pub(crate) settled: watch::Sender<BTreeMap<String, String>>,
    applied: Mutex<Applied>,
}

/// The tag this replica's CA is at, and the rebuild that carries it.
#[derive(Debug, Default)]
struct Applied {
    tag: Option<String>,
    ticket: u64,
    /// Every own proxy was seen at `tag` once; later changes of a proxy
    /// (a renewed leaf) reach its status through its own xDS changes.
    settled: bool,
    /// Why the stored phase could not be applied here.
    error: Option<String>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            plugin: OnceLock::new(),
            me: OnceLock::new(),
            record: watch::Sender::new(None),
            driver: watch::Sender::new(None),
            settled: watch::Sender::new(BTreeMap::new()),
            applied: Mutex::default(),
        }
    }
}

impl Shared {
    /// Records the plug-in CA files this replica was started with.
    pub(crate) fn set_plugin(&self, plugin: Option<PluginCa>) {
        if let Some(p) = plugin {
            let _ = self.plugin.set(p);
        }
    }

    /// Records this replica's name in the store.
    pub(crate) fn set_me(&self, me: String) {
        let _ = self.me.set(me);
    }

    /// This replica's name in the store.
    pub(crate) fn me(&self) -> String {
        self.me.get().cloned().unwrap_or_default()
    }

    /// Where this replica's CA to rotate to is staged.
    pub(crate) fn next_files(&self) -> Option<PluginCa> {
        self.plugin.get().map(PluginCa::next)
    }

    /// The record etcd holds now.
    pub(crate) fn current(&self) -> Option<Stored> {
        self.record.borrow().clone()
    }

    /// Why this replica could not follow the stored phase, if so.
    pub(crate) fn error(&self) -> Option<String> {
        lock(&self.applied).error.clone()
    }

    /// The tag `node`'s last SDS ACK was built for, if it is this
    /// replica's current one (`None`: not ACKed yet, or no rotation known).
    pub(crate) fn proxy_tag(
        &self,
        core: &Core,
        node: &str,
        status: &ProxyStatus,
    ) -> Option<String> {
        let applied = lock(&self.applied);
        let tag = applied.tag.clone()?;
        if core.rebuilt.load(std::sync::atomic::Ordering::SeqCst) < applied.ticket {
            return None;
        }
        drop(applied);
        let Some(want) = core.cache.get(node).and_then(|s| {
            let v = s.version(&SECRET_TYPE);
            v.map(str::to_string)
        }) else {
            // No secrets in its snapshot: nothing to wait for.
            return Some(tag);
        };
        let acked =
            (status.types.get(SECRET_TYPE.as_str())).and_then(|t| t.last_acked_version.as_deref());
        (acked == Some(want.as_str())).then_some(tag)
    }

    /// This replica's connected proxies whose ACKed SDS is not of `tag`.
    pub(crate) fn own_lagging(&self, core: &Core, tag: &str) -> Vec<String> {
        (core.status.all().into_iter())
            .filter(|(_, s)| s.connected)
            .filter(|(node, s)| self.proxy_tag(core, node, s).as_deref() != Some(tag))
            .map(|(node, _)| node)
            .collect()
    }

    /// This replica's current tag, once every one of its proxies ACKed it
    /// (looked at until it happens once per tag).
    pub(crate) fn settled_tag(&self, core: &Core) -> Option<String> {
        let (tag, settled) = {
            let applied = lock(&self.applied);
            (applied.tag.clone()?, applied.settled)
        };
        if !settled && !self.own_lagging(core, &tag).is_empty() {
            return None;
        }
        let mut applied = lock(&self.applied);
        if applied.tag.as_deref() == Some(tag.as_str()) {
            applied.settled = true;
        }
        Some(tag)
    }

    /// Other replicas whose proxies have not all ACKed `tag`.
    pub(crate) fn replicas_lagging(&self, tag: &str) -> Vec<String> {
        let me = self.me().replace('/', "_");
        (self.settled.borrow().iter())
            .filter(|(replica, settled)| **replica != me && settled.as_str() != tag)
            .map(|(replica, _)| format!("replica {replica}"))
            .collect()
    }

    /// The rotation tag this replica's CA is at, if a rotation is known.
    pub(crate) fn tag(&self) -> Option<String> {
        lock(&self.applied).tag.clone()
    }
}

/// A new stored record (or none): this replica's CA follows it.
pub(crate) fn follow(core: &Core, stored: Option<Stored>) {
    let shared = &core.shared_rotation;
    shared.record.send_replace(stored.clone());
    let Some(Stored { record, .. }) = stored else {
        return;
    };
    let outcome = apply(core, &record);
    let mut applied = lock(&shared.applied);
    match outcome {
        Ok(changed) => {
            applied.error = None;
            let tag = Some(record.tag());
            if changed || applied.tag != tag {
                applied.ticket = core.request_rebuild();
                applied.tag = tag;
                applied.settled = false;
            }
            if changed {
                tracing::info!(
                    phase = record.phase.as_str(),
                    "root rotation: phase applied"
                );
            }
        }
        Err(e) => {
            tracing::error!(
                phase = record.phase.as_str(),
                "root rotation: cannot follow: {e}"
            );
            applied.error = Some(e.to_string());
        }
    }
}

/// What a replica's CA does next to reach a stored phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Begin,
    Activate,
    Finish,
    Done,
    /// The stored phase is behind this replica's (never written by a driver).
    Behind,
}

/// The next step from the CA's `local` phase (`at_target`: an idle CA
/// already is the CA rotated to) towards `stored`.
fn next_step(local: RotationPhase, at_target: bool, stored: SharedPhase) -> Step {
    use RotationPhase::{Idle, NewRootActive, NewRootTrusted};
    match (local, stored) {
        (Idle, _) if at_target => Step::Done,
        (Idle, _) => Step::Begin,
        (NewRootTrusted, SharedPhase::NewRootTrusted) => Step::Done,
        (NewRootTrusted, _) => Step::Activate,
        (NewRootActive, SharedPhase::NewRootActive) => Step::Done,
        (NewRootActive, SharedPhase::Finished) => Step::Finish,
        (NewRootActive, SharedPhase::NewRootTrusted) => Step::Behind,
    }
}

/// Moves this replica's CA forward to the record's phase; true if it moved.
fn apply(core: &Core, record: &RotationRecord) -> Result<bool, RotateError> {
    let ca = &core.certs.ca;
    let mut changed = false;
    loop {
        let at_target = ca.identity() == record.to;
        match next_step(ca.rotation_phase(), at_target, record.phase) {
            Step::Done => return Ok(changed),
            Step::Begin => begin(core, ca, record)?,
            Step::Activate => {
                ca.activate_new_root()?;
                core.certs.reissue_all();
            }
            Step::Finish => {
                ca.finish_rotation()?;
                if let Store::Etcd(etcd) = &core.store {
                    etcd.set_roots_mark(ca.roots_mark());
                }
            }
            Step::Behind => {
                let why = "the stored phase is behind this replica's";
                return Err(RotateError::Mismatch(why.into()));
            }
        }
        changed = true;
    }
}

/// Step 1 on this replica: its staged `next/` files must be the CA the
/// rotation goes to, and its CA the one it comes from.
fn begin(core: &Core, ca: &Ca, record: &RotationRecord) -> Result<(), RotateError> {
    if ca.identity() != record.from {
        return Err(RotateError::Mismatch(
            "this replica's CA is not the one the rotation started from".into(),
        ));
    }
    let next = (core.shared_rotation.next_files()).ok_or(RotateError::SelfSignedReplicated)?;
    let (to, _) = Ca::identity_of(&next)?;
    if to != record.to {
        return Err(RotateError::Mismatch(format!(
            "{} holds another CA than the one the rotation goes to",
            next.cert
                .parent()
                .map_or_else(String::new, |d| d.display().to_string())
        )));
    }
    ca.begin_rotation_to(&next)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use RotationPhase::{Idle, NewRootActive, NewRootTrusted};
    use SharedPhase::{Finished, NewRootActive as Active, NewRootTrusted as Trusted};

    /// Runs the steps a replica takes from `local` to `stored`.
    fn walk(mut local: RotationPhase, stored: SharedPhase) -> Vec<Step> {
        let mut at_target = false;
        let mut steps = Vec::new();
        loop {
            let step = next_step(local, at_target, stored);
            steps.push(step);
            (local, at_target) = match step {
                Step::Begin => (NewRootTrusted, false),
                Step::Activate => (NewRootActive, false),
                Step::Finish => (Idle, true),
                Step::Done | Step::Behind => return steps,
            };
        }
    }

    #[test]
    fn a_replica_catches_up_one_phase_at_a_time() {
        use Step::*;
        assert_eq!(walk(Idle, Trusted), [Begin, Done]);
        // A replica that missed phases (restarted, or cut off) runs them all.
        assert_eq!(walk(Idle, Finished), [Begin, Activate, Finish, Done]);
        assert_eq!(walk(NewRootTrusted, Active), [Activate, Done]);
        assert_eq!(walk(NewRootActive, Finished), [Finish, Done]);
        assert_eq!(walk(NewRootActive, Trusted), [Behind]);
        // Already on the new CA: nothing to do, whatever the phase.
        assert_eq!(next_step(Idle, true, Finished), Done);
        assert_eq!(next_step(Idle, true, Trusted), Done);
    }
}
