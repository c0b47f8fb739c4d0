//! `POST /ca/rotate` with replicas on etcd: any replica turns the request
//! into the shared record (a new rotation to the staged `CA_DIR/next/`
//! files, or the resumption of a stopped one); the elected driver does the
//! rest.

use super::shared::Stored;
use super::RotateError;
use crate::ca::{Ca, RotationPhase};
use crate::serve::core::Core;
use crate::store::{RotationRecord, SharedPhase, TrustOp};

/// The write that starts or resumes a rotation, checked against what this
/// replica knows; the store's compare settles races with other replicas.
pub(crate) fn proposal(core: &Core, me: &str, begin_only: bool) -> Result<TrustOp, RotateError> {
    let current = core.shared_rotation.current();
    if let Some(Stored { record, .. }) = &current {
        if record.in_progress() {
            return Err(RotateError::Running(record.phase.as_str()));
        }
    }
    let record = match &current {
        Some(Stored { record, .. }) if record.stalled.is_some() => RotationRecord {
            stalled: None,
            begin_only,
            ..record.clone()
        },
        _ => new_rotation(core, me, begin_only)?,
    };
    Ok(TrustOp::Propose {
        expected: current.map(|s| s.raw),
        record: serde_json::to_vec(&record).unwrap_or_default(),
    })
}

/// A rotation from this replica's CA to the files staged beside it.
fn new_rotation(core: &Core, me: &str, begin_only: bool) -> Result<RotationRecord, RotateError> {
    let ca = &core.certs.ca;
    let next = (core.shared_rotation.next_files()).ok_or(RotateError::SelfSignedReplicated)?;
    if ca.rotation_phase() != RotationPhase::Idle {
        return Err(RotateError::Running(ca.rotation_phase().as_str()));
    }
    if !next.cert.exists() {
        return Err(RotateError::NothingStaged(next.cert.display().to_string()));
    }
    let (to, to_roots) = Ca::identity_of(&next)?;
    if to == ca.identity() {
        return Err(RotateError::NothingStaged(format!(
            "{} (it holds the CA in use)",
            next.cert.display()
        )));
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(RotationRecord {
        from: ca.identity(),
        to,
        to_roots,
        phase: SharedPhase::NewRootTrusted,
        begin_only,
        stalled: None,
        requested_by: me.to_string(),
        started,
    })
}
