//! The one replica that drives a shared root rotation. While a rotation is
//! in progress and nobody holds `trust/lock`, every replica tries to take
//! it (on its own lease); the one that does waits until every connected
//! proxy, on every replica, has ACKed SDS built in the stored phase, then
//! writes the next phase (only while it still holds the lock). A driver
//! that dies loses the lock with its lease, and another replica resumes
//! from the stored phase.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::shared::Stored;
use super::{PHASE_TIMEOUT, POLL};
use crate::serve::core::Core;
use crate::store::rotation::peers_lagging;
use crate::store::{Election, EtcdStore, RotationRecord, SharedPhase, Store, StoreError, TrustOp};

/// How soon a failed store request is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Takes the lock whenever a rotation needs a driver, and drives it.
pub(crate) async fn driver_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let Store::Etcd(etcd) = &core.store else {
        return;
    };
    let shared = &core.shared_rotation;
    let (mut records, mut drivers) = (shared.record.subscribe(), shared.driver.subscribe());
    let mut reported = String::new();
    let mut last_try = Instant::now();
    loop {
        report_settled(&core, etcd, &mut reported);
        // A replica that could not follow (its next/ files missing or
        // wrong) tries again once a second, so fixing the files is enough.
        if shared.error().is_some() && last_try.elapsed() >= RETRY {
            last_try = Instant::now();
            super::shared::follow(&core, shared.current());
        }
        let wanted = (shared.current()).is_some_and(|s| s.record.in_progress());
        if wanted && shared.driver.borrow().is_none() {
            match etcd.trust(TrustOp::Lock(Election::Rotation)).await {
                Ok(true) => drive(&core, etcd).await,
                Ok(false) => {}
                Err(e) => tracing::debug!("root rotation: taking the lock: {e}"),
            }
        }
        tokio::select! {
            _ = records.changed() => {}
            _ = drivers.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Tells the other replicas (through the store) once every proxy of this
/// one has ACKed its current rotation tag.
fn report_settled(core: &Core, etcd: &EtcdStore, reported: &mut String) {
    if let Some(tag) = core.shared_rotation.settled_tag(core) {
        if tag != *reported {
            etcd.set_settled(&tag);
            *reported = tag;
        }
    }
}

/// Drives from the stored phase to the end, or until the lock is lost.
async fn drive(core: &Core, etcd: &EtcdStore) {
    let Some(mut stored) = core.shared_rotation.current() else {
        return;
    };
    tracing::info!(
        phase = stored.record.phase.as_str(),
        "root rotation: this replica drives it (trust/lock taken)"
    );
    let started = Instant::now();
    while stored.record.in_progress() {
        let next = match wait_settled(core, &stored.record).await {
            Ok(()) => step(&stored.record),
            Err(lagging) => stall(&stored.record, &lagging),
        };
        let release = !next.in_progress();
        match advance(core, etcd, &stored, &next, release).await {
            Some(now) => stored = now,
            None => return,
        }
        tracing::info!(
            phase = next.phase.as_str(),
            after = ?started.elapsed(),
            "root rotation: every proxy ACKed the previous phase; phase written"
        );
    }
    if stored.record.phase == SharedPhase::Finished {
        let done = wait_settled(core, &stored.record).await;
        tracing::info!(
            took = ?started.elapsed(),
            every_proxy = done.is_ok(),
            "root rotation finished: old roots dropped on every replica"
        );
    }
}

/// The record after a settled phase: the next phase, or a stop after the
/// first one for `--begin-only`.
fn step(record: &RotationRecord) -> RotationRecord {
    if record.begin_only && record.phase == SharedPhase::NewRootTrusted {
        let why = "stopped after the first phase (--begin-only): run `trellis ca rotate` to go on";
        return RotationRecord {
            stalled: Some(why.into()),
            ..record.clone()
        };
    }
    record.advanced(record.phase.next().unwrap_or(SharedPhase::Finished))
}

/// The record of a phase that did not settle in time.
fn stall(record: &RotationRecord, lagging: &[String]) -> RotationRecord {
    let why = format!(
        "proxies did not ACK phase {} within {PHASE_TIMEOUT:?}: {}",
        record.phase.as_str(),
        lagging.join(", ")
    );
    tracing::error!("root rotation stopped: {why}");
    RotationRecord {
        stalled: Some(why),
        ..record.clone()
    }
}

/// Writes `next` (with the new roots mark once finished); the stored
/// record as written, or `None` if the lock or the record changed hands.
async fn advance(
    core: &Core,
    etcd: &EtcdStore,
    stored: &Stored,
    next: &RotationRecord,
    release: bool,
) -> Option<Stored> {
    let raw = serde_json::to_vec(next).ok()?;
    let op = TrustOp::Advance {
        expected: stored.raw.clone(),
        record: raw.clone(),
        roots: (next.phase == SharedPhase::Finished).then(|| next.to_roots.clone()),
        release,
    };
    loop {
        match etcd.trust(op.clone()).await {
            Ok(true) => break,
            Ok(false) => {
                tracing::warn!("root rotation: the lock or the record changed; not driving");
                return None;
            }
            Err(StoreError::Unavailable(_)) | Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
    let written = Stored {
        record: next.clone(),
        raw,
    };
    // Followed here at once, so the wait for the next phase starts now,
    // not when the watch brings this replica's own write back.
    super::shared::follow(core, Some(written.clone()));
    Some(written)
}

/// Waits until every connected proxy on every replica ACKed SDS built in
/// `record`'s phase; the lagging ones after [`PHASE_TIMEOUT`].
async fn wait_settled(core: &Core, record: &RotationRecord) -> Result<(), Vec<String>> {
    let tag = record.tag();
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let lagging = lagging(core, &tag);
        if lagging.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(lagging);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Proxies not yet at `tag`: this replica's from its own table, the
/// others' from the statuses they published.
fn lagging(core: &Core, tag: &str) -> Vec<String> {
    let shared = &core.shared_rotation;
    let mut lagging = shared.own_lagging(core, tag);
    let own = |node: &str| core.status.get(node).is_some_and(|s| s.connected);
    lagging.extend(peers_lagging(&core.peers.all(), &own, tag));
    // A proxy that connected to another replica moments ago may not be in
    // its published statuses yet; that replica's own word covers it.
    lagging.extend(shared.replicas_lagging(tag));
    lagging
}
