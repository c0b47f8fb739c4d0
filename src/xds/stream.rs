//! The state-of-the-world protocol of one ADS stream, as a pure state
//! machine: a request or a new snapshot goes in, responses and events come
//! out. No I/O, so every protocol rule is unit-tested without gRPC.

mod ordering;
mod selected;
mod subscription;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::reply::{classify_reply, Reply};
use super::type_map::TypeMap;
use super::types::push_rank;
use super::Snapshot;
use selected::Selected;
use subscription::Subscription;

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

/// The last response sent for a type.
#[derive(Debug, Clone)]
struct Sent {
    version: String,
    nonce: String,
    resources: Selected,
    reply: Reply,
    /// True when it kept clusters that the snapshot dropped.
    kept: bool,
}

#[derive(Debug, Clone)]
struct TypeState {
    sub: Subscription,
    last: Option<Sent>,
    /// A response is held back until the CDS in flight is answered.
    held: bool,
    /// The held response must be sent even if unchanged (names changed).
    forced: bool,
}

/// Protocol state of one ADS stream (state of the world): per type URL the
/// subscription, the last response sent and how the client answered it.
#[derive(Debug, Default)]
pub struct StreamState {
    snapshot: Option<Arc<Snapshot>>,
    types: TypeMap<String, TypeState>,
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
        self.release_held(&mut out);
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
            let state = TypeState {
                sub,
                last: None,
                held: false,
                forced: false,
            };
            self.types.insert(type_url.clone(), state);
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
        let names_added = state.sub.update(&req.resource_names);
        let Some(last) = state.last.as_mut() else {
            return names_added;
        };
        // "Resource updates": the client may repeat a request at the same
        // version and nonce. Envoy does so when it re-creates a watch, e.g. a
        // changed cluster needs its ClusterLoadAssignment again to finish
        // warming ("Resource warming"); answer it (wildcard types need not).
        let repeat = last.reply == Reply::Acked && req.error_detail.is_none();
        // What the client holds of interest: only still-subscribed names.
        last.resources.retain(|name| state.sub.contains(name));
        let error = req.error_detail.as_ref();
        out.events.extend(classify_reply(
            &mut last.reply,
            type_url,
            &last.version,
            &last.nonce,
            error,
        ));
        names_added || (repeat && !wildcard)
    }

    /// Sends the current resources of a type, changed or not.
    fn respond(&mut self, type_url: &str, out: &mut Output) {
        if self.hold_back(type_url, true) {
            return;
        }
        if let Some((version, resources, kept)) = self.current(type_url) {
            self.send(type_url, version, resources, kept, out);
        }
    }

    /// Sends a type if what the client should hold differs from what it was
    /// last sent (the first time, always).
    fn push_if_changed(&mut self, type_url: &str, out: &mut Output) {
        if self.hold_back(type_url, false) {
            return;
        }
        let Some((version, resources, kept)) = self.current(type_url) else {
            return;
        };
        let Some(state) = self.types.get_mut(type_url) else {
            return;
        };
        let by_name = state.sub != Subscription::Wildcard;
        if let Some(last) = state.last.as_mut() {
            // The client already holds exactly this, e.g. a CDS superset that
            // only keeps dropped clusters: nothing to send, but remember that
            // the dropped clusters await release.
            if last.resources == resources {
                last.kept = kept;
                return;
            }
            // "Deleting Resources": for types requested by name, a resource
            // missing from a response is a no-op for the client, so a change
            // that only removes resources needs no response.
            if by_name && resources.within(&last.resources) {
                last.resources = resources;
                return;
            }
        }
        self.send(type_url, version, resources, kept, out);
    }

    fn send(
        &mut self,
        type_url: &str,
        version: String,
        resources: Selected,
        kept: bool,
        out: &mut Output,
    ) {
        // Nonces are unique per response on the stream ("Resource updates").
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        out.responses.push(DiscoveryResponse {
            version_info: version.clone(),
            resources: resources.map().values().map(|r| r.any().clone()).collect(),
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
            state.held = false;
            state.forced = false;
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
