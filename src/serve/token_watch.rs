//! Tokens are checked for as long as their streams are open, not only when
//! a stream opens: a stream whose token is revoked or expires is cut with
//! `UNAUTHENTICATED` (and counted in `trellis_xds_streams_refused_total` with
//! reason `revoked` or `expired`).
//!
//! `trellis token --revoke` runs in another process and only appends to the
//! revocation list, so [`revocation_loop`] polls the list every
//! [`CHECK_INTERVAL`] and wakes the open streams when it changed; each
//! stream also sleeps until its token stops verifying (`exp` plus the
//! leeway). So a revoked stream is cut within `CHECK_INTERVAL` of the
//! revocation, an expired one within moments of `exp + LEEWAY`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tonic::Status;

use super::core::Core;
use crate::ca::token::{expires_at, TokenAuthority, TokenClaims, TokenError};
use crate::xds::{Refusal, StreamCut};

/// How often the revocation list is polled: the bound on how long a stream
/// outlives the revocation of its token.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Longest sleep before a stream checks its token's expiry again, so a
/// wall-clock jump delays an expiry by at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Polls the revocation list until `stop` fires; streams are woken when it
/// changed.
pub(crate) async fn revocation_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // One stat(2) per tick; the file is read only when it changed.
        let generation = core.auth.tokens().revocations_generation();
        let changed = core
            .revocations
            .send_if_modified(|seen| std::mem::replace(seen, generation) != generation);
        // `trellis token revoke` wrote to this replica's list: other
        // replicas learn it through the store (which skips known ones).
        if changed && core.store.is_shared() {
            for jti in core.auth.tokens().revoked_ids() {
                core.store.revoked(&jti);
            }
        }
    }
}

/// What cuts a stream of `node_id` that presented a token with `claims`:
/// on revocation or expiry the sidecar is deregistered and its leaf dropped
/// ([`Core::token_refused`]), then the stream is closed.
pub(crate) fn cut(core: Arc<Core>, node_id: String, claims: TokenClaims) -> StreamCut {
    let changes = core.revocations.subscribe();
    StreamCut::when(async move {
        let err = refused(core.auth.tokens(), &claims, changes).await;
        tracing::warn!(node = %node_id, reason = err.reason(), "cutting an ADS stream: {err}");
        core.token_refused(&node_id, &claims.jti);
        Refusal {
            status: Status::unauthenticated(format!("{err}; the stream is closed")),
            reason: err.reason(),
        }
    })
}

/// Resolves once `claims` no longer verify.
async fn refused(
    tokens: &TokenAuthority,
    claims: &TokenClaims,
    mut changes: watch::Receiver<u64>,
) -> TokenError {
    let mut watching = true;
    loop {
        let now = SystemTime::now();
        if let Err(e) = tokens.still_valid(claims, now) {
            return e;
        }
        let until_expiry = expires_at(claims)
            .duration_since(now)
            .unwrap_or_default()
            .min(MAX_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(until_expiry) => {}
            // Err: the control plane is stopping; expiry still applies.
            changed = changes.changed(), if watching => watching = changed.is_ok(),
        }
    }
}
