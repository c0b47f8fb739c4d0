//! The incremental ("delta") protocol of one ADS stream, as a pure state
//! machine: a `DeltaDiscoveryRequest` or a new snapshot goes in, responses
//! and events come out. No I/O, so every rule is unit-tested without gRPC.
//!
//! Rules (Envoy docs, "xDS REST and gRPC protocol", section "Incremental
//! xDS" unless noted), per stream and type URL:
//!
//! - the subscription is wildcard when the first request subscribes `*`,
//!   or names nothing for Listener or Cluster (legacy wildcard); names are
//!   added and removed with `resource_names_subscribe`/`_unsubscribe`;
//! - each resource has its own version, a hash of its bytes; the server
//!   tracks the version the client holds of each resource: what the first
//!   request reported in `initial_resource_versions` (a reconnect), then
//!   what it was sent; only resources whose version differs are sent;
//! - a subscribed resource the client holds that left the snapshot is named
//!   in `removed_resources`; an unsubscribed one is simply forgotten;
//! - a request whose `response_nonce` is the last nonce sent is an ACK, or a
//!   NACK with `error_detail` (recorded, logged, counted; the rejected
//!   content is not resent until it changes); other nonces are stale;
//! - `system_version_info` is the snapshot's version of the type;
//! - pushes go CDS, EDS, LDS, RDS, then other types; LDS and RDS wait while
//!   a CDS response is unanswered; cluster removals wait until the client
//!   ACKed the snapshot's LDS and RDS (make-before-break, "Eventual
//!   consistency considerations"), as on the state-of-the-world stream.

mod diff;
mod ordering;
mod subscription;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};

use super::reply::{classify_reply, Reply};
use super::type_map::TypeMap;
use super::types::{push_rank, type_key, TypeKey, WILDCARD};
use super::{RequestError, Snapshot, StreamEvent, CLUSTER_TYPE, ENDPOINT_TYPE};
use diff::{diff, Diff, Known};
use subscription::DeltaSubscription;

/// What one input produced: responses to send, in order, and events to log,
/// count and record.
#[derive(Debug, Default)]
pub struct DeltaOutput {
    /// Responses to send, in this order.
    pub responses: Vec<DeltaDiscoveryResponse>,
    /// What happened, for logs, metrics and the status table.
    pub events: Vec<StreamEvent>,
}

/// The last response sent for a type.
#[derive(Debug, Clone)]
struct LastSent {
    version: String,
    nonce: String,
    reply: Reply,
}

#[derive(Debug, Default)]
struct DeltaType {
    sub: DeltaSubscription,
    /// What the client holds, by name.
    known: Known,
    last: Option<LastSent>,
    /// The first request of the type is answered even when the client
    /// lacks nothing, so that it finishes initializing.
    owed: bool,
    /// Held back until the CDS in flight is answered.
    held: bool,
    /// The last push left out cluster removals (make-before-break).
    kept: bool,
}

/// Protocol state of one delta ADS stream: per type URL the subscription,
/// what the client holds, and how it answered the last response.
#[derive(Debug, Default)]
pub struct DeltaStreamState {
    snapshot: Option<Arc<Snapshot>>,
    types: TypeMap<TypeKey, DeltaType>,
    nonces: u64,
}

impl DeltaStreamState {
    /// A stream with no subscription and no snapshot yet.
    pub fn new() -> Self {
        DeltaStreamState::default()
    }

    /// Handles one request from the client.
    pub fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> Result<DeltaOutput, RequestError> {
        if req.type_url.is_empty() {
            return Err(RequestError::MissingTypeUrl);
        }
        let mut out = DeltaOutput::default();
        self.apply_request(req, &mut out);
        self.push(&req.type_url, &mut out);
        self.release_held(&mut out);
        self.release_kept_clusters(&mut out);
        Ok(out)
    }

    /// Handles a new snapshot: sends, type by type in push order, what each
    /// subscribed type's client lacks.
    pub fn on_snapshot(&mut self, snapshot: Arc<Snapshot>) -> DeltaOutput {
        let mut out = DeltaOutput::default();
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &snapshot))
        {
            return out;
        }
        self.snapshot = Some(snapshot);
        let mut order: Vec<TypeKey> = self.types.keys().cloned().collect();
        order.sort_by_key(|t| push_rank(t));
        for type_url in order {
            self.push(&type_url, &mut out);
        }
        self.release_kept_clusters(&mut out);
        out
    }

    fn apply_request(&mut self, req: &DeltaDiscoveryRequest, out: &mut DeltaOutput) {
        let Some(state) = self.types.get_mut(req.type_url.as_str()) else {
            // `initial_resource_versions` is only meaningful on the first
            // request of a type on a stream: it lists what a reconnecting
            // client still holds, so none of that is sent again.
            let state = DeltaType {
                sub: DeltaSubscription::initial(&req.type_url, &req.resource_names_subscribe),
                known: Known::from_initial(&req.initial_resource_versions),
                owed: true,
                ..Default::default()
            };
            self.types.insert(type_key(&req.type_url), state);
            return;
        };
        if !req.response_nonce.is_empty() {
            record_reply(state, req, out);
        }
        if !state.sub.is_wildcard() && req.resource_names_subscribe.iter().any(|n| n == WILDCARD) {
            state.known.widen(&state.sub);
        }
        let resend = state.sub.apply(
            &req.resource_names_subscribe,
            &req.resource_names_unsubscribe,
        );
        // A name subscribed again is sent again even if held: Envoy
        // re-subscribes e.g. the endpoints of a re-created cluster and waits
        // for them to finish warming ("Resource warming").
        for name in resend {
            state.known.forget(&name, &state.sub);
        }
        // Unsubscribed resources are forgotten: the client drops them and
        // no removal is owed ("Incremental xDS").
        state.known.retain_covered(&state.sub);
    }

    /// Sends what the client lacks of a type, if anything (or if owed).
    fn push(&mut self, type_url: &str, out: &mut DeltaOutput) {
        if self.hold_back(type_url) {
            return;
        }
        let Some(mut diff) = self.diff(type_url) else {
            return;
        };
        let kept = self.defer_removals(type_url, &mut diff);
        let Some(state) = self.types.get_mut(type_url) else {
            return;
        };
        state.kept = kept;
        if diff.is_empty() && !state.owed {
            return;
        }
        self.send(type_url, diff, kept, out);
    }

    /// What the client lacks of a type; `None` without snapshot or
    /// subscription.
    fn diff(&self, type_url: &str) -> Option<Diff> {
        let snapshot = self.snapshot.as_ref()?;
        let state = self.types.get(type_url)?;
        Some(diff(
            &state.known,
            &state.sub,
            snapshot.resources(type_url).items(),
        ))
    }

    fn send(&mut self, type_url: &str, diff: Diff, kept: bool, out: &mut DeltaOutput) {
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let version = ordering::response_version(snapshot.resources(type_url).version(), kept);
        // Nonces are unique per response on the stream ("Resource updates").
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        out.responses.push(DeltaDiscoveryResponse {
            system_version_info: version.clone(),
            resources: diff.wire_resources(),
            type_url: type_url.to_string(),
            removed_resources: diff.removals.clone(),
            nonce: nonce.clone(),
            ..Default::default()
        });
        out.events.push(StreamEvent::Sent {
            type_url: type_url.to_string(),
            version: version.clone(),
            nonce: nonce.clone(),
            resources: diff.updates.len(),
        });
        let set = Arc::clone(snapshot.shared(type_url));
        if let Some(state) = self.types.get_mut(type_url) {
            diff.apply_to(&mut state.known, &set, &state.sub);
            state.owed = false;
            state.held = false;
            state.last = Some(LastSent {
                version,
                nonce,
                reply: Reply::Pending,
            });
        }
        if type_url == *CLUSTER_TYPE {
            let updated: Vec<&str> = diff.updates.iter().map(|(n, _)| n.as_str()).collect();
            self.rewarm_endpoints(&updated, out);
        }
    }

    /// "Resource warming": Envoy finishes warming an updated cluster only
    /// once it got the cluster's `ClusterLoadAssignment` again, and a delta
    /// client does not ask for it (the name stays subscribed, so no request
    /// is sent). So after a CDS push the endpoints of every updated cluster
    /// the client held are sent again, right after it; without this the
    /// cluster warms forever and the CDS is never ACKed.
    fn rewarm_endpoints(&mut self, updated: &[&str], out: &mut DeltaOutput) {
        let Some(eds) = self.types.get_mut(ENDPOINT_TYPE.as_str()) else {
            return;
        };
        let mut forgot = false;
        for name in updated {
            forgot |= eds.known.forget(name, &eds.sub);
        }
        if forgot {
            self.push(&ENDPOINT_TYPE, out);
        }
    }
}

/// Records an ACK or NACK of the last response (see [`classify_reply`]);
/// a nonce other than the last is stale ("Incremental xDS"). The client is
/// assumed to hold what it was sent even after a NACK, so the rejected
/// content is not sent again until it changes.
fn record_reply(state: &mut DeltaType, req: &DeltaDiscoveryRequest, out: &mut DeltaOutput) {
    let Some(last) = state
        .last
        .as_mut()
        .filter(|l| l.nonce == req.response_nonce)
    else {
        out.events.push(StreamEvent::Stale {
            type_url: req.type_url.clone(),
            nonce: req.response_nonce.clone(),
        });
        return;
    };
    let error = req.error_detail.as_ref();
    out.events.extend(classify_reply(
        &mut last.reply,
        &req.type_url,
        &last.version,
        &last.nonce,
        error,
    ));
}
