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
//! - [`AdsServer`]: the gRPC `AggregatedDiscoveryService` that runs one
//!   [`StreamState`] per stream and reports to [`StreamHooks`],
//!   [`ProxyStatusTable`] and [`XdsMetrics`].
//!
//! Protocol rules follow the Envoy docs page "xDS REST and gRPC protocol";
//! comments name its sections.
//!
//! [`Any`]: envoy_types::pb::google::protobuf::Any

mod cache;
mod metrics;
mod server;
mod snapshot;
mod status;
mod stream;
mod types;

pub use cache::SnapshotCache;
pub use metrics::XdsMetrics;
pub use server::{AdsServer, StreamHooks};
pub use snapshot::{Resources, Snapshot, SnapshotBuilder, TypeResources};
pub use status::{NackStatus, ProxyStatus, ProxyStatusTable, TypeStatus};
pub use stream::{Output, RequestError, StreamEvent, StreamState};
pub use types::{
    short_type_name, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE,
};
