//! The two ADS protocols as the stream task drives them: state of the
//! world ([`StreamState`]) and incremental ([`DeltaStreamState`]).

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

use crate::xds::delta::DeltaOutput;
use crate::xds::{DeltaStreamState, Output, RequestError, Snapshot, StreamEvent, StreamState};

/// One ADS protocol (state of the world or delta) as the stream task sees
/// it: a pure state machine of its request and response types.
pub(crate) trait Protocol: Default + Send + 'static {
    /// The client's message.
    type Request: prost::Message + Default + Send + 'static;
    /// The server's message.
    type Response: prost::Message + Send + 'static;
    /// `sotw` or `delta`, for logs.
    const NAME: &'static str;
    /// The node of a request (only the first must carry it).
    fn node(req: &Self::Request) -> Option<&Node>;
    /// Handles a request: responses and events.
    fn request(&mut self, req: &Self::Request) -> Result<Step<Self::Response>, RequestError>;
    /// Handles a new snapshot: responses and events.
    fn snapshot(&mut self, snapshot: Arc<Snapshot>) -> Step<Self::Response>;
}

/// Responses to send and events to record.
pub(crate) type Step<R> = (Vec<R>, Vec<StreamEvent>);

impl Protocol for StreamState {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const NAME: &'static str = "sotw";
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn request(&mut self, req: &DiscoveryRequest) -> Result<Step<DiscoveryResponse>, RequestError> {
        self.on_request(req)
            .map(|o: Output| (o.responses, o.events))
    }
    fn snapshot(&mut self, snapshot: Arc<Snapshot>) -> Step<DiscoveryResponse> {
        let o = self.on_snapshot(snapshot);
        (o.responses, o.events)
    }
}

impl Protocol for DeltaStreamState {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const NAME: &'static str = "delta";
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn request(
        &mut self,
        req: &DeltaDiscoveryRequest,
    ) -> Result<Step<DeltaDiscoveryResponse>, RequestError> {
        self.on_request(req)
            .map(|o: DeltaOutput| (o.responses, o.events))
    }
    fn snapshot(&mut self, snapshot: Arc<Snapshot>) -> Step<DeltaDiscoveryResponse> {
        let o = self.on_snapshot(snapshot);
        (o.responses, o.events)
    }
}
