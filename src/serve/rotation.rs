//! Root rotation, driven by `POST /ca/rotate` (`trellis ca rotate`).
//!
//! Each CA step changes what proxies must hold, so the next step waits
//! until every connected proxy ACKed its new secrets (the xDS
//! `ProxyStatusTable` records ACKed versions):
//!
//! 1. begin: a new root joins the trust bundle (the old one still signs);
//!    once all proxies trust both roots,
//! 2. activate: the new root signs, every leaf is re-issued; once all proxies
//!    serve leaves of the new root,
//! 3. finish: the old root leaves the bundle.
//!
//! No proxy ever meets a peer whose chain it cannot verify, so no request
//! fails during the rotation.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

mod driver;
mod request;
pub(crate) mod shared;

pub(crate) use driver::driver_loop;
pub(crate) use request::proposal;

use super::core::Core;
use crate::ca::CaError;
use crate::xds::SECRET_TYPE;

/// How long one phase may wait for proxies to ACK before the rotation stops
/// (in the phase reached; `POST /ca/rotate` resumes it).
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the ACK state is checked.
const POLL: Duration = Duration::from_millis(50);

/// Why a rotation stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RotateError {
    /// The CA refused a step (plug-in CA, wrong phase, I/O).
    #[error("{0}")]
    Ca(#[from] CaError),
    /// Replicas share the mesh, and the CA is self-signed: its new root's
    /// key would exist on one replica only (keys never go to etcd).
    #[error(
        "root rotation with --store etcd needs a plug-in CA (--ca-dir): a self-signed root's new \
         key would exist on one replica only. Give every replica the same plug-in CA, stage the \
         new CA files in CA_DIR/next/ on every replica, and run `trellis ca rotate` against any \
         replica (docs/operations.md, \"Root rotation with replicas\")"
    )]
    SelfSignedReplicated,
    /// No new CA is staged where the rotation takes it from.
    #[error("nothing to rotate to: stage the new CA's four files (Istio's cacerts names) as {0}")]
    NothingStaged(String),
    /// A rotation is already under way.
    #[error("a root rotation is already running (phase {0})")]
    Running(&'static str),
    /// This replica cannot follow the shared rotation.
    #[error("{0}")]
    Mismatch(String),
    /// The store did not take the request.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// Some proxies did not ACK their new secrets in time.
    #[error("proxies did not ACK the new secrets within {PHASE_TIMEOUT:?}: {0}")]
    Timeout(String),
}

/// Runs the remaining rotation steps from the current phase to the end, or
/// with `begin_only` only step 1 (if not done yet): the phase between lets
/// operators give sidecars that pin the xDS server's root
/// (`--xds-ca-file`) the bundle of both roots before the new root signs
/// (and the xDS server certificate moves to it).
pub(crate) async fn rotate(core: Arc<Core>, begin_only: bool) -> Result<(), RotateError> {
    use crate::ca::RotationPhase::{Idle, NewRootActive, NewRootTrusted};
    if core.store.is_shared() {
        return Err(RotateError::SelfSignedReplicated);
    }
    let ca = core.certs.ca.clone();
    if ca.rotation_phase() == Idle {
        ca.begin_rotation()?;
        tracing::info!(phase = %ca.rotation_phase(), "root rotation: new root trusted");
        settle(&core).await?;
    }
    if begin_only {
        return Ok(());
    }
    if ca.rotation_phase() == NewRootTrusted {
        ca.activate_new_root()?;
        core.certs.reissue_all();
        tracing::info!(phase = %ca.rotation_phase(), "root rotation: new root signs, leaves re-issued");
        settle(&core).await?;
    }
    if ca.rotation_phase() == NewRootActive {
        ca.finish_rotation()?;
        tracing::info!(phase = %ca.rotation_phase(), "root rotation finished: old root dropped");
        settle(&core).await?;
    }
    Ok(())
}

/// Rebuilds and waits until every connected proxy ACKed its secrets.
async fn settle(core: &Arc<Core>) -> Result<(), RotateError> {
    let wanted = core.request_rebuild();
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    loop {
        if core.rebuilt.load(Ordering::SeqCst) >= wanted {
            let lagging = lagging(core);
            if lagging.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RotateError::Timeout(lagging.join(", ")));
            }
        } else if tokio::time::Instant::now() >= deadline {
            return Err(RotateError::Timeout("no rebuild".into()));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Connected proxies whose ACKed secrets are not those of their snapshot.
fn lagging(core: &Core) -> Vec<String> {
    core.status
        .all()
        .into_iter()
        .filter(|(_, s)| s.connected)
        .filter(|(id, s)| {
            let Some(snapshot) = core.cache.get(id) else {
                return false;
            };
            let Some(want) = snapshot.version(&SECRET_TYPE) else {
                return false;
            };
            let acked = s
                .types
                .get(SECRET_TYPE.as_str())
                .and_then(|t| t.last_acked_version.as_deref());
            acked != Some(want)
        })
        .map(|(id, _)| id)
        .collect()
}
