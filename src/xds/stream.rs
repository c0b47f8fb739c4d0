//! The state-of-the-world protocol of one ADS stream, as a pure state
//! machine: a request or a new snapshot goes in, responses and events come
//! out. No I/O, so every protocol rule is unit-tested without gRPC.

mod subscription;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::types::push_rank;
use super::{Resources, Snapshot, CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use subscription::Subscription;

/// Suffix of `version_info` on a make-before-break CDS response that still
/// carries clusters the new snapshot dropped.
const KEPT_SUFFIX: &str = "+kept";

/// What one input produced: responses to send, in order, and events to log,
/// count and record.
#[derive(Debug, Default)]
pub struct Output {
    /// Responses to send, in this order.
    pub responses: Vec<DiscoveryResponse>,
    /// What happened, for logs, metrics and the status table.
    pub events: Vec<StreamEvent>,
}

/// A protocol event on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A response was produced.
    Sent {
        /// Resource type.
        type_url: String,
        /// `version_info` of the response.
        version: String,
        /// Nonce of the response.
        nonce: String,
        /// Number of resources in it.
        resources: usize,
    },
    /// The client accepted a response.
    Acked {
        /// Resource type.
        type_url: String,
        /// Version of the accepted response.
        version: String,
        /// Nonce of the accepted response.
        nonce: String,
    },
    /// The client rejected a response.
    Nacked {
        /// Resource type.
        type_url: String,
        /// Version of the rejected response.
        version: String,
        /// Nonce of the rejected response.
        nonce: String,
        /// The client's `error_detail.message`.
        message: String,
    },
    /// A request answered an older response and was ignored.
    Stale {
        /// Resource type.
        type_url: String,
        /// The request's (stale) nonce.
        nonce: String,
    },
}

/// A request the stream cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// ADS multiplexes types, so every request must name its type.
    #[error("DiscoveryRequest without type_url: ADS requires it on every request")]
    MissingTypeUrl,
}

/// How the client answered the last response of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Pending,
    Acked,
    Nacked,
}

/// The last response sent for a type.
#[derive(Debug, Clone)]
struct Sent {
    version: String,
    nonce: String,
    resources: Resources,
    reply: Reply,
    /// True when it kept clusters that the snapshot dropped.
    kept: bool,
}

#[derive(Debug, Clone)]
struct TypeState {
    sub: Subscription,
    last: Option<Sent>,
}

/// Protocol state of one ADS stream (state of the world): per type URL the
/// subscription, the last response sent and how the client answered it.
#[derive(Debug, Default)]
pub struct StreamState {
    snapshot: Option<Arc<Snapshot>>,
    types: BTreeMap<String, TypeState>,
    nonces: u64,
}

impl StreamState {
    /// A stream with no subscription and no snapshot yet.
    pub fn new() -> Self {
        StreamState::default()
    }

    /// Handles one request from the client.
    pub fn on_request(&mut self, req: &DiscoveryRequest) -> Result<Output, RequestError> {
        if req.type_url.is_empty() {
            return Err(RequestError::MissingTypeUrl);
        }
        let mut out = Output::default();
        if self.apply_request(req, &mut out) {
            self.respond(&req.type_url, &mut out);
        }
        self.release_kept_clusters(&mut out);
        Ok(out)
    }

    /// Handles a new snapshot: pushes, in CDS, EDS, LDS, RDS order, each
    /// subscribed type whose subscribed resources changed (xDS spec, "When to
    /// send an update" and "Eventual consistency considerations").
    pub fn on_snapshot(&mut self, snapshot: Arc<Snapshot>) -> Output {
        let mut out = Output::default();
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &snapshot))
        {
            return out;
        }
        self.snapshot = Some(snapshot);
        let mut order: Vec<String> = self.types.keys().cloned().collect();
        order.sort_by_key(|t| push_rank(t));
        for type_url in order {
            self.push_if_changed(&type_url, &mut out);
        }
        self.release_kept_clusters(&mut out);
        out
    }

    /// Updates the type's state from a request; true when it must be
    /// answered with the current resources.
    fn apply_request(&mut self, req: &DiscoveryRequest, out: &mut Output) -> bool {
        let type_url = &req.type_url;
        let Some(state) = self.types.get_mut(type_url) else {
            let sub = Subscription::initial(type_url, &req.resource_names);
            self.types
                .insert(type_url.clone(), TypeState { sub, last: None });
            return true;
        };
        // "Resource updates": a nonce becomes stale once a newer one was sent,
        // and the server must not answer a request carrying a stale nonce.
        if let Some(last) = &state.last {
            if req.response_nonce != last.nonce {
                out.events.push(StreamEvent::Stale {
                    type_url: type_url.clone(),
                    nonce: req.response_nonce.clone(),
                });
                return false;
            }
        }
        let wildcard = state.sub == Subscription::Wildcard;
        let names_changed = state.sub.update(&req.resource_names);
        let Some(last) = state.last.as_mut() else {
            return names_changed;
        };
        match (&req.error_detail, last.reply) {
            // "ACK/NACK and resource type instance version": error_detail set
            // means the response was rejected; the client stays on its
            // previous version and we wait for new content rather than
            // resending the rejected version.
            (Some(detail), Reply::Pending) => {
                last.reply = Reply::Nacked;
                out.events.push(StreamEvent::Nacked {
                    type_url: type_url.clone(),
                    version: last.version.clone(),
                    nonce: last.nonce.clone(),
                    message: detail.message.clone(),
                });
                names_changed
            }
            (None, Reply::Pending) => {
                last.reply = Reply::Acked;
                out.events.push(StreamEvent::Acked {
                    type_url: type_url.clone(),
                    version: last.version.clone(),
                    nonce: last.nonce.clone(),
                });
                names_changed
            }
            // "Resource updates": the client may repeat a request at the same
            // version and nonce. Envoy does so when it re-creates a watch, e.g.
            // a changed cluster needs its ClusterLoadAssignment again to finish
            // warming ("Resource warming"); answer it. Envoy also repeats the
            // nonce of a NACKed response without error_detail: not an ACK, and
            // the rejected version is not resent unless the names changed.
            (None, Reply::Acked) => names_changed || !wildcard,
            _ => names_changed,
        }
    }

    /// Sends the current resources of a type, changed or not.
    fn respond(&mut self, type_url: &str, out: &mut Output) {
        if let Some((version, resources, kept)) = self.current(type_url) {
            self.send(type_url, version, resources, kept, out);
        }
    }

    /// Sends a type if what the client should hold differs from what it was
    /// last sent (the first time, always).
    fn push_if_changed(&mut self, type_url: &str, out: &mut Output) {
        let Some((version, resources, kept)) = self.current(type_url) else {
            return;
        };
        let last = self.types.get_mut(type_url).and_then(|s| s.last.as_mut());
        match last {
            // The client already holds exactly this, e.g. a CDS superset that
            // only keeps dropped clusters: nothing to send, but remember that
            // the dropped clusters await release.
            Some(last) if last.resources == resources => last.kept = kept,
            _ => self.send(type_url, version, resources, kept, out),
        }
    }

    /// What the client should now hold of a type: (version, resources, kept
    /// clusters?). `None` without a snapshot or subscription.
    fn current(&self, type_url: &str) -> Option<(String, Resources, bool)> {
        let snapshot = self.snapshot.as_ref()?;
        let state = self.types.get(type_url)?;
        let all = snapshot.resources(type_url);
        let fresh = state.sub.select(all.items());
        let version = all.version().to_string();
        if type_url != *CLUSTER_TYPE {
            return Some((version, fresh, false));
        }
        let (resources, kept) = self.keep_dropped_clusters(state, fresh);
        let version = if kept {
            format!("{version}{KEPT_SUFFIX}")
        } else {
            version
        };
        Some((version, resources, kept))
    }

    /// Make-before-break ("Eventual consistency considerations": stale CDS
    /// clusters are removed only after the LDS and RDS updates that stop
    /// referring to them). Clusters the client holds but the snapshot
    /// dropped stay in the CDS response until the client ACKed the current
    /// LDS and RDS. Generic: no knowledge of which route uses which cluster.
    fn keep_dropped_clusters(&self, state: &TypeState, fresh: Resources) -> (Resources, bool) {
        let Some(last) = &state.last else {
            return (fresh, false);
        };
        let dropped: Vec<_> = last
            .resources
            .iter()
            .filter(|(name, _)| !fresh.contains_key(*name) && state.sub.contains(name))
            .map(|(name, r)| (name.clone(), r.clone()))
            .collect();
        if dropped.is_empty() || self.routing_settled() {
            return (fresh, false);
        }
        let mut all = fresh;
        all.extend(dropped);
        (all, true)
    }

    /// True when the client ACKed the current snapshot's LDS and RDS (or
    /// does not subscribe to them).
    fn routing_settled(&self) -> bool {
        [&*LISTENER_TYPE, &*ROUTE_TYPE]
            .into_iter()
            .all(|t| self.settled(t))
    }

    fn settled(&self, type_url: &str) -> bool {
        let (Some(state), Some(snapshot)) = (self.types.get(type_url), &self.snapshot) else {
            return true;
        };
        state.last.as_ref().is_some_and(|last| {
            last.reply == Reply::Acked
                && last.resources == state.sub.select(snapshot.resources(type_url).items())
        })
    }

    /// Once LDS and RDS settled, sends the CDS without the kept clusters.
    fn release_kept_clusters(&mut self, out: &mut Output) {
        let kept = self
            .types
            .get(CLUSTER_TYPE.as_str())
            .and_then(|s| s.last.as_ref())
            .is_some_and(|last| last.kept);
        if kept && self.routing_settled() {
            self.respond(&CLUSTER_TYPE, out);
        }
    }

    fn send(
        &mut self,
        type_url: &str,
        version: String,
        resources: Resources,
        kept: bool,
        out: &mut Output,
    ) {
        // Nonces are unique per response on the stream ("Resource updates").
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        out.responses.push(DiscoveryResponse {
            version_info: version.clone(),
            resources: resources.values().map(|r| (**r).clone()).collect(),
            type_url: type_url.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        });
        out.events.push(StreamEvent::Sent {
            type_url: type_url.to_string(),
            version: version.clone(),
            nonce: nonce.clone(),
            resources: resources.len(),
        });
        if let Some(state) = self.types.get_mut(type_url) {
            state.last = Some(Sent {
                version,
                nonce,
                resources,
                reply: Reply::Pending,
                kept,
            });
        }
    }
}
