//! A simulated Envoy: one ADS stream (state of the world or delta) that
//! subscribes and ACKs as Envoy does (xDS protocol, "ACK/NACK and
//! resource type instance version"): CDS and LDS wildcard; EDS for the EDS
//! clusters CDS names; RDS for the route configs LDS names; SDS for
//! `default` and `ROOTCA`. Each response is ACKed after any subscription
//! change it causes has been requested.

mod delta;
mod names;
mod sotw;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::google::protobuf::{value::Kind, Any, Struct, Value};
use prost::Message;

pub use delta::run_delta;
pub use sotw::run_sotw;

/// Type URLs in the order the stats index them.
pub const TYPES: [&str; 5] = [
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
];
/// Index of EDS in [`TYPES`].
pub const EDS: usize = 1;
/// Index of RDS in [`TYPES`].
pub const RDS: usize = 3;
/// The secrets a sidecar asks for.
pub const SECRETS: [&str; 2] = ["default", "ROOTCA"];

fn type_index(url: &str) -> Option<usize> {
    TYPES.iter().position(|t| *t == url)
}

/// Sees the content of every EDS response a client ACKed (the churn
/// bench's observers time endpoints appearing and leaving with it).
pub trait EdsWatch: Send + Sync {
    /// Called right after the ACK went out: `updated` replace the load
    /// assignments of the same names, `removed` are gone (delta only; a
    /// state-of-the-world EDS response need not repeat every resource).
    fn acked(&self, updated: &[ClusterLoadAssignment], removed: &[String]);
}

/// An optional [`EdsWatch`].
#[derive(Default, Clone)]
pub struct Watch(Option<Arc<dyn EdsWatch>>);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Watch(..)"
        } else {
            "Watch(None)"
        })
    }
}

/// What one client reports: per type, how many responses it ACKed and when
/// the last ACK went out (nanoseconds since the run's epoch).
#[derive(Debug, Default)]
pub struct ClientStats {
    acks: [AtomicU64; 5],
    last_ack_ns: [AtomicU64; 5],
    /// Per type, resource name → version the client holds (SotW keeps one
    /// entry, `""` → the type's version_info).
    versions: Mutex<[BTreeMap<String, String>; 5]>,
    watch: Watch,
    /// The EDS names the client subscribes to (its clusters in scope).
    eds_names: Mutex<BTreeSet<String>>,
}

impl ClientStats {
    /// Stats of a client whose EDS ACKs `watch` sees.
    pub fn watched(watch: Arc<dyn EdsWatch>) -> ClientStats {
        ClientStats {
            watch: Watch(Some(watch)),
            ..Default::default()
        }
    }

    /// Hands an ACKed EDS response to the watch, if any (decoding only then).
    fn eds_acked<'a>(&self, resources: impl Iterator<Item = &'a Any>, removed: &[String]) {
        let Some(watch) = &self.watch.0 else {
            return;
        };
        let updated: Vec<ClusterLoadAssignment> = resources
            .filter_map(|a| ClusterLoadAssignment::decode(a.value.as_slice()).ok())
            .collect();
        watch.acked(&updated, removed);
    }

    fn set_eds_names(&self, names: &BTreeSet<String>) {
        let mut held = self.eds_names.lock().unwrap_or_else(|e| e.into_inner());
        if *held != *names {
            *held = names.clone();
        }
    }

    /// True when the client holds an EDS cluster of `host` (cluster names
    /// are `outbound|PORT|SUBSET|HOST`): the service is in its scope, so a
    /// change of it must reach this client.
    pub fn reaches(&self, host: &str) -> bool {
        let suffix = format!("|{host}");
        let held = self.eds_names.lock().unwrap_or_else(|e| e.into_inner());
        held.iter().any(|n| n.ends_with(&suffix))
    }

    /// ACKs sent for type index `t`.
    pub fn acks(&self, t: usize) -> u64 {
        self.acks[t].load(Ordering::Acquire)
    }
    /// When the last ACK of type index `t` went out.
    pub fn last_ack_ns(&self, t: usize) -> u64 {
        self.last_ack_ns[t].load(Ordering::Acquire)
    }
    /// A digest of the versions held for type index `t`.
    pub fn versions(&self, t: usize) -> String {
        let held = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        held[t].iter().map(|(n, v)| format!("{n}={v};")).collect()
    }

    fn hold(&self, t: usize, update: impl FnOnce(&mut BTreeMap<String, String>)) {
        let mut held = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        update(&mut held[t]);
    }

    /// True once every type was ACKed at least once.
    pub fn synced(&self) -> bool {
        (0..5).all(|t| self.acks(t) > 0)
    }
}

/// Counters shared by every client of a run.
#[derive(Debug)]
pub struct Global {
    /// The run's epoch for ACK times.
    pub epoch: Instant,
    /// Encoded bytes of every response received.
    pub bytes: AtomicU64,
    /// Responses received.
    pub responses: AtomicU64,
    /// Streams that ended with an error.
    pub errors: AtomicU64,
}

impl Global {
    /// Counters starting now.
    pub fn new() -> Global {
        Global {
            epoch: Instant::now(),
            bytes: AtomicU64::new(0),
            responses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    fn received(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.responses.fetch_add(1, Ordering::Release);
    }

    fn acked(&self, stats: &ClientStats, t: usize) {
        let ns = self.epoch.elapsed().as_nanos() as u64;
        stats.last_ack_ns[t].store(ns, Ordering::Release);
        stats.acks[t].fetch_add(1, Ordering::Release);
    }
}

impl Default for Global {
    fn default() -> Self {
        Global::new()
    }
}

fn s(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.to_string())),
    }
}

/// The node of simulated sidecar `i` of service `service` in namespace
/// `default`, with the metadata `trellis bootstrap` writes and a unique
/// inbound address.
// Kept for callers of the one-namespace API (the envoy bench).
#[allow(dead_code)]
pub fn node(i: usize, service: &str) -> Node {
    node_in(i, service, "default")
}

/// The inbound address of simulated sidecar `i` (unique for i < 2^22):
/// its endpoint address in other sidecars' EDS.
pub fn inbound_address(i: usize) -> String {
    format!("127.{}.{}.{}", 1 + (i >> 16), (i >> 8) & 255, i & 255)
}

/// [`node`] of a service in `namespace`: the control plane joins the
/// sidecar to the service `SERVICE.NAMESPACE.svc.cluster.local`.
pub fn node_in(i: usize, service: &str, namespace: &str) -> Node {
    let addr = inbound_address(i);
    let fields = [
        ("service", s(service)),
        ("namespace", s(namespace)),
        ("inbound_address", s(&addr)),
        ("app_port", s("8080")),
        ("inbound_port", s("15006")),
        ("outbound_port", s("15001")),
    ];
    Node {
        id: format!("bench-{i}"),
        cluster: service.to_string(),
        metadata: Some(Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }),
        ..Default::default()
    }
}

/// Adds the bearer token to a request's metadata, if any.
fn with_token<T>(
    mut req: tonic::Request<T>,
    token: Option<&str>,
) -> anyhow::Result<tonic::Request<T>> {
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse()?);
    }
    Ok(req)
}

/// Runs one stream to its end; errors count in [`Global::errors`].
pub fn record_end(global: &Global, result: anyhow::Result<()>) {
    if result.is_err() {
        global.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared for convenience by both modes.
pub type Shared = (Arc<ClientStats>, Arc<Global>);
