//! The ADS server: one task per stream runs a [`StreamState`] or a
//! [`DeltaStreamState`]; [`AdsService`] carries the streams over gRPC.
//!
//! [`StreamState`]: crate::xds::StreamState
//! [`DeltaStreamState`]: crate::xds::DeltaStreamState

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::{mpsc, watch};
use tonic::metadata::MetadataMap;
use tonic::{Status, Streaming};

use super::status::unix_now;
use super::{NackStatus, ProxyStatusTable, Snapshot, SnapshotCache, StreamEvent, XdsMetrics};
pub use cut::StreamCut;
pub use grpc::AdsService;
pub use peers::{PeerLimit, PeerPermit};
use protocol::{Protocol, Step};

mod cut;
mod grpc;
mod peers;
mod protocol;

/// Responses queued per stream before the stream task waits for the client.
const RESPONSE_QUEUE: usize = 16;

/// A refused stream: the status Envoy gets, and a short reason (a metric
/// label, e.g. `missing_token`) that must not contain secrets or node data.
#[derive(Debug)]
pub struct Refusal {
    /// Returned to the client.
    pub status: Status,
    /// The `reason` label of `trellis_xds_streams_refused_total`.
    pub reason: &'static str,
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Self {
        Refusal {
            status,
            reason: "refused",
        }
    }
}

fn refusal(status: Status, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

/// What the rest of the control plane learns about streams.
pub trait StreamHooks: Send + Sync + 'static {
    /// Called with a new stream's gRPC metadata before any of its messages
    /// is read; Err refuses the stream at once, so a client that cannot
    /// authenticate costs no decoding. Accepts by default.
    fn stream_requested(&self, metadata: &MetadataMap) -> Result<(), Refusal> {
        let _ = metadata;
        Ok(())
    }
    /// Called with the first request's Node and the stream's gRPC metadata
    /// (e.g. an `authorization` header; xds does not interpret it); Err
    /// refuses the stream (its status is returned to Envoy). Ok carries
    /// what may end the accepted stream later ([`StreamCut::never`] if
    /// nothing will).
    fn stream_opened(&self, node: &Node, metadata: &MetadataMap) -> Result<StreamCut, Refusal>;
    /// Called exactly once when a stream that `stream_opened` accepted ends.
    fn stream_closed(&self, node_id: &str);
    /// Called when `node_id` rejects a `type_url` response with Envoy's
    /// `error_detail` message; what it returns is kept with the NACK in
    /// [`NackStatus::origin`] (e.g. where the rejected content came from;
    /// xds does not interpret it). Nothing by default.
    fn nacked(&self, node_id: &str, type_url: &str, message: &str) -> Option<serde_json::Value> {
        let _ = (node_id, type_url, message);
        None
    }
}

/// The ADS server: state of the world and incremental (delta) ADS.
#[derive(Clone)]
pub struct AdsServer {
    cache: SnapshotCache,
    hooks: Arc<dyn StreamHooks>,
    status: ProxyStatusTable,
    metrics: XdsMetrics,
    /// Open streams per client address; `None`: unlimited.
    streams_per_peer: Option<PeerLimit>,
}

impl AdsServer {
    /// A server reading snapshots from `cache`.
    pub fn new(
        cache: SnapshotCache,
        hooks: Arc<dyn StreamHooks>,
        status: ProxyStatusTable,
        metrics: XdsMetrics,
    ) -> Self {
        AdsServer {
            cache,
            hooks,
            status,
            metrics,
            streams_per_peer: None,
        }
    }

    /// At most `limit` open streams per client address; one more is refused
    /// with RESOURCE_EXHAUSTED.
    pub fn with_streams_per_peer(mut self, limit: PeerLimit) -> Self {
        self.streams_per_peer = Some(limit);
        self
    }

    /// What is checked from the headers alone, before any message is
    /// decoded: the peer's stream limit, then the hooks' metadata check.
    /// The permit (if limited) is the stream's place in its peer's limit.
    fn admit(
        &self,
        peer: Option<IpAddr>,
        metadata: &MetadataMap,
    ) -> Result<Option<PeerPermit>, Status> {
        let permit = match (&self.streams_per_peer, peer) {
            (Some(limit), Some(ip)) => match limit.acquire(ip) {
                Some(permit) => Some(permit),
                None => {
                    let msg = format!(
                        "{ip} holds {} ADS streams, the limit per client address",
                        limit.limit()
                    );
                    let status = Status::resource_exhausted(msg);
                    return Err(self.refused(refusal(status, "peer_stream_limit")));
                }
            },
            _ => None,
        };
        self.hooks
            .stream_requested(metadata)
            .map_err(|r| self.refused(r))?;
        Ok(permit)
    }

    /// Counts and logs a refused stream; the status goes to the client.
    fn refused(&self, Refusal { status, reason }: Refusal) -> Status {
        self.metrics.stream_refused(reason);
        tracing::info!(code = ?status.code(), reason, message = status.message(), "ADS stream refused");
        status
    }

    /// The gRPC service, for `tonic::transport::Server::add_service`.
    pub fn into_service(self) -> AdsService {
        AdsService::new(self)
    }

    /// Reads the first request and asks the hooks whether to serve the node.
    async fn accept<P: Protocol>(
        &self,
        inbound: &mut Streaming<P::Request>,
        metadata: &MetadataMap,
    ) -> Result<(P::Request, String, StreamCut), Refusal> {
        let refuse = refusal;
        let first = inbound
            .message()
            .await
            .map_err(|s| refuse(s, "receive_error"))?
            .ok_or_else(|| {
                refuse(
                    Status::invalid_argument("ADS stream ended before its first request"),
                    "no_request",
                )
            })?;
        // "Basic Protocol Overview": only the first request is guaranteed to
        // carry the node, so it must be there.
        let node = P::node(&first)
            .filter(|n| !n.id.is_empty())
            .ok_or_else(|| {
                refuse(
                    Status::invalid_argument(
                        "the first DiscoveryRequest must carry node with an id",
                    ),
                    "no_node",
                )
            })?;
        let cut = self.hooks.stream_opened(node, metadata)?;
        let node_id = node.id.clone();
        Ok((first, node_id, cut))
    }
}

impl AdsServer {
    /// Accepts a stream of either protocol and spawns its task; the
    /// receiver yields the stream's responses, then at most one error.
    async fn serve<P: Protocol>(
        &self,
        metadata: MetadataMap,
        mut inbound: Streaming<P::Request>,
    ) -> Result<Responses<P::Response>, Status> {
        let (first, node_id, cut) = self
            .accept::<P>(&mut inbound, &metadata)
            .await
            .map_err(|r| self.refused(r))?;
        let guard = StreamGuard::open(self, node_id, P::NAME);
        let inputs = Inputs {
            snapshots: self.cache.subscribe(&guard.node_id),
            inbound,
            watching: true,
            cut,
        };
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        // Boxed here (the task boxed it anyway), so the task's future holds
        // a pointer for as long as the stream lives, not room for a request.
        tokio::spawn(run_stream::<P>(guard, Box::new(first), inputs, tx));
        Ok(rx)
    }
}

/// One accepted stream: records what happens on it and, when dropped (the
/// stream ended, or the task was cancelled), reports the close exactly once.
struct StreamGuard {
    node_id: String,
    hooks: Arc<dyn StreamHooks>,
    status: ProxyStatusTable,
    metrics: XdsMetrics,
    cache: SnapshotCache,
}

impl StreamGuard {
    fn open(server: &AdsServer, node_id: String, protocol: &'static str) -> Self {
        server.status.stream_opened(&node_id);
        server.metrics.stream_opened();
        tracing::info!(node = %node_id, protocol, "ADS stream opened");
        StreamGuard {
            node_id,
            hooks: server.hooks.clone(),
            status: server.status.clone(),
            metrics: server.metrics.clone(),
            cache: server.cache.clone(),
        }
    }

    /// Logs, counts and records each event (every push, ACK and NACK is a
    /// structured event and a metric).
    fn record(&self, events: &[StreamEvent]) {
        let node = self.node_id.as_str();
        for event in events {
            match event {
                StreamEvent::Sent {
                    type_url,
                    version,
                    nonce,
                    resources,
                } => {
                    tracing::debug!(node, type_url, version, nonce, resources, "xDS push");
                    self.status.sent(node, type_url, version, nonce);
                    self.metrics.pushed(type_url);
                }
                StreamEvent::Acked {
                    type_url,
                    version,
                    nonce,
                } => {
                    tracing::debug!(node, type_url, version, nonce, "xDS ACK");
                    self.status.acked(node, type_url, version);
                    self.metrics.acked(type_url);
                }
                StreamEvent::Nacked {
                    type_url,
                    version,
                    nonce,
                    message,
                } => {
                    tracing::warn!(node, type_url, version, nonce, message, "xDS NACK");
                    let nack = NackStatus {
                        version: version.clone(),
                        nonce: nonce.clone(),
                        message: message.clone(),
                        at: unix_now(),
                        origin: self.hooks.nacked(node, type_url, message),
                    };
                    self.status.nacked(node, type_url, nack);
                    self.metrics.nacked(type_url);
                }
                StreamEvent::Stale { type_url, nonce } => {
                    tracing::debug!(node, type_url, nonce, "stale xDS request ignored");
                }
            }
        }
    }
}

impl StreamGuard {
    /// Ends the stream with the refusal's status (the body sends it as
    /// trailers) and counts it as a refusal.
    async fn cut<R>(&self, refusal: Refusal, tx: &Outbound<R>) {
        let Refusal { status, reason } = refusal;
        self.metrics.stream_refused(reason);
        tracing::warn!(node = %self.node_id, code = ?status.code(), reason, message = status.message(), "ADS stream cut");
        let _ = tx.send(Box::new(Err(status))).await;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        tracing::info!(node = %self.node_id, "ADS stream closed");
        self.status.stream_closed(&self.node_id);
        self.metrics.stream_closed();
        self.hooks.stream_closed(&self.node_id);
        self.cache.release(&self.node_id);
    }
}

type Snapshots = watch::Receiver<Option<Arc<Snapshot>>>;
/// A stream's response queue. Each item is one box because tokio allocates
/// the queue's slots up front (32 per block, for the stream's life):
/// unboxed, a delta response makes that about 6 KB per stream; a
/// `Result<Box<R>, Status>` (two pointers and a tag) 16 bytes a slot, a
/// 640-byte block; one pointer, a 320-byte block.
type Outbound<R> = mpsc::Sender<Box<Result<R, Status>>>;
/// The receiving end of a stream's response queue.
type Responses<R> = mpsc::Receiver<Box<Result<R, Status>>>;

/// Runs one stream until the client goes away. No lock is held across an
/// await; the watch receiver only ever yields the newest snapshot.
///
/// An `async` block rather than an `async fn`: an `async fn` moves its
/// arguments into locals and its future keeps room for both copies, and
/// this future lives as long as the stream (one task per connected proxy).
// `async fn` is what this avoids (see above).
#[allow(clippy::manual_async_fn)]
fn run_stream<P: Protocol>(
    guard: StreamGuard,
    first: Box<P::Request>,
    mut inputs: Inputs<P::Request>,
    tx: Outbound<P::Response>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let mut state = P::default();
        let current = inputs.snapshots.borrow_and_update().clone();
        if let Some(snapshot) = current {
            state.snapshot(snapshot);
        }
        let mut next = Some(Input::Request(first));
        while let Some(input) = next.take() {
            let out = match input {
                Input::Request(req) => match state.request(&req) {
                    Ok(out) => out,
                    Err(err) => {
                        let status = Status::invalid_argument(err.to_string());
                        let _ = tx.send(Box::new(Err(status))).await;
                        break;
                    }
                },
                Input::Snapshot(snapshot) => state.snapshot(snapshot),
            };
            if !deliver(&guard, out, &tx).await {
                break;
            }
            next = next_input(&guard, &mut inputs, &tx).await;
        }
        drop(guard);
    }
}

/// What a stream task waits on: the client's requests, its snapshots, and
/// the hooks' [`StreamCut`].
struct Inputs<Req> {
    inbound: Streaming<Req>,
    snapshots: Snapshots,
    /// False once the snapshot sender is gone.
    watching: bool,
    cut: StreamCut,
}

enum Input<Req> {
    Request(Box<Req>),
    Snapshot(Arc<Snapshot>),
}

/// Waits for the next request or snapshot; `None` when the stream is over.
async fn next_input<Req, Resp>(
    guard: &StreamGuard,
    inputs: &mut Inputs<Req>,
    tx: &Outbound<Resp>,
) -> Option<Input<Req>> {
    let Inputs {
        inbound,
        snapshots,
        watching,
        cut,
    } = inputs;
    loop {
        tokio::select! {
            refusal = &mut *cut => {
                guard.cut(refusal, tx).await;
                return None;
            }
            msg = inbound.message() => return match msg {
                Ok(Some(req)) => Some(Input::Request(Box::new(req))),
                Ok(None) => None,
                // A request that does not decode ends the stream with
                // the decoder's INVALID_ARGUMENT.
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    tracing::info!(node = %guard.node_id, %status, "ADS stream ended: undecodable request");
                    let _ = tx.send(Box::new(Err(status))).await;
                    None
                }
                Err(status) => {
                    tracing::debug!(node = %guard.node_id, %status, "ADS stream receive ended");
                    None
                }
            },
            changed = snapshots.changed(), if *watching => {
                if changed.is_err() {
                    *watching = false;
                    continue;
                }
                let current = snapshots.borrow_and_update().clone();
                if let Some(snapshot) = current {
                    return Some(Input::Snapshot(snapshot));
                }
            }
            () = tx.closed() => return None,
        }
    }
}

/// Records the events and sends the responses; false once the client is gone.
async fn deliver<R>(guard: &StreamGuard, (responses, events): Step<R>, tx: &Outbound<R>) -> bool {
    guard.record(&events);
    for response in responses {
        if tx.send(Box::new(Ok(response))).await.is_err() {
            return false;
        }
    }
    true
}
