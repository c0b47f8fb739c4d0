//! Snapshots and requests shared by the unit tests of the state-of-the-world
//! and the delta stream.

use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::{Snapshot, Versioned, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};

/// A resource whose bytes are `body`, so tests read it back as text.
pub(crate) fn any(type_url: &str, body: &str) -> Arc<Versioned> {
    Arc::new(Versioned::new(Any {
        type_url: type_url.to_string(),
        value: body.as_bytes().to_vec(),
    }))
}

/// A snapshot from (type, name, body) triples.
pub(crate) fn snap(items: &[(&str, &str, &str)]) -> Arc<Snapshot> {
    let mut b = Snapshot::builder();
    for (t, name, body) in items {
        b.insert(*name, any(t, body));
    }
    Arc::new(b.build())
}

/// The base snapshot: two clusters with endpoints, one listener, one route.
pub(crate) fn base() -> Arc<Snapshot> {
    snap(&[
        (&CLUSTER_TYPE, "a", "a"),
        (&CLUSTER_TYPE, "b", "b"),
        (&ENDPOINT_TYPE, "a", "ea"),
        (&ENDPOINT_TYPE, "b", "eb"),
        (&LISTENER_TYPE, "l", "l"),
        (&ROUTE_TYPE, "r", "r"),
    ])
}

/// The `error_detail` of a NACK.
pub(crate) fn rejection(message: &str) -> RpcStatus {
    RpcStatus {
        code: 3,
        message: message.to_string(),
        ..Default::default()
    }
}
