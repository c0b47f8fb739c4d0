//! The xDS server: a versioned resource cache and the ADS protocol.
//!
//! This module knows nothing of Istio or of the mesh config. It serves
//! opaque, versioned, named [`Any`] resources per Envoy node id:
//!
//! - [`Snapshot`]: an immutable set of resources per type URL, each type with a
//!   content-hash version (identical content, identical version).
//! - [`SnapshotCache`]: the latest snapshot per node id; streams subscribe to
//!   it and always see the newest one (latest wins, so a slow stream never
//!   holds others back).
//! - [`StreamState`]: the state-of-the-world protocol of one ADS stream as a
//!   pure state machine (request or snapshot in, responses out).
//! - [`DeltaStreamState`]: the incremental (delta) protocol of one ADS
//!   stream, the same way (see `delta.rs` for its rules).
//! - [`AdsServer`]: the ADS server that runs one [`StreamState`] or
//!   [`DeltaStreamState`] per stream and reports to [`StreamHooks`],
//!   [`ProxyStatusTable`] and [`XdsMetrics`]; [`AdsService`] serves it as the
//!   gRPC `AggregatedDiscoveryService` (hand-written, to bound memory per
//!   stream; see `server/grpc.rs`).
//!
//! Protocol rules follow the Envoy docs page "xDS REST and gRPC protocol";
//! comments name its sections. In short, per stream and type URL:
//!
//! - a request whose `response_nonce` is not the latest nonce sent is stale
//!   and ignored; one with `error_detail` is a NACK (recorded, logged,
//!   counted; the rejected content is not resent until it changes); else it
//!   is an ACK;
//! - CDS and LDS with no names are wildcard, `*` is wildcard for any type,
//!   other types are served by name; newly requested names are answered;
//! - a repeated request at an ACKed nonce is answered (Envoy re-requests a
//!   changed cluster's endpoints to finish warming);
//! - a push sends only types whose subscribed resources changed, in the
//!   order CDS, EDS, LDS, RDS, then other types; LDS and RDS wait while a CDS
//!   response is unanswered (Envoy ACKs CDS once new clusters warmed);
//! - clusters dropped from CDS stay (version suffix `+kept`) until the client
//!   ACKed the new LDS and RDS, then a pruned CDS follows.
//!
//! [`Any`]: envoy_types::pb::google::protobuf::Any

mod cache;
mod delta;
mod metrics;
mod names;
mod reply;
mod server;
mod snapshot;
mod status;
mod stream;
#[cfg(test)]
mod test_support;
mod type_map;
mod types;
mod version;

pub use cache::SnapshotCache;
pub use delta::{DeltaOutput, DeltaStreamState};
pub use metrics::XdsMetrics;
pub use server::{AdsServer, AdsService, PeerLimit, PeerPermit, Refusal, StreamCut, StreamHooks};
pub use snapshot::{Resources, Snapshot, SnapshotBuilder, TypeResources};
pub use status::{NackStatus, ProxyStatus, ProxyStatusTable, TypeStatus};
pub use stream::{Output, RequestError, StreamEvent, StreamState};
pub use types::{
    known_types, short_type_name, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
    SECRET_TYPE,
};
pub use version::Versioned;
