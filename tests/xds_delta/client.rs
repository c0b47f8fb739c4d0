//! A delta ADS client for the tests (what Envoy speaks with
//! `api_type: DELTA_GRPC`).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

use crate::support::{Harness, WAIT};

/// One client stream.
pub struct Delta {
    pub tx: mpsc::Sender<DeltaDiscoveryRequest>,
    pub rx: Streaming<DeltaDiscoveryResponse>,
}

/// A request subscribing to `names` of `type_url`.
pub fn sub(type_url: &str, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names_subscribe: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Opens a delta stream for `node_id` whose first request is `first`.
pub async fn open(
    h: &Harness,
    node_id: &str,
    first: DeltaDiscoveryRequest,
) -> Result<Delta, Status> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", h.addr))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    let node = Node {
        id: node_id.to_string(),
        ..Default::default()
    };
    let first = DeltaDiscoveryRequest {
        node: Some(node).filter(|n| !n.id.is_empty()),
        ..first
    };
    tx.send(first).await.unwrap();
    let rx = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(Delta { tx, rx })
}

impl Delta {
    pub async fn send(&self, request: DeltaDiscoveryRequest) {
        self.tx.send(request).await.unwrap();
    }

    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        let next = tokio::time::timeout(WAIT, self.rx.message()).await;
        next.expect("no response in time")
            .unwrap()
            .expect("stream ended")
    }

    /// True when no response arrives within a short while.
    pub async fn quiet(&mut self) -> bool {
        let wait = std::time::Duration::from_millis(300);
        tokio::time::timeout(wait, self.rx.message()).await.is_err()
    }

    pub async fn ack(&self, resp: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    /// Subscribes to names of a type and ACKs the answer.
    pub async fn subscribe(&mut self, type_url: &str, names: &[&str]) -> DeltaDiscoveryResponse {
        self.send(sub(type_url, names)).await;
        let resp = self.recv().await;
        assert_eq!(resp.type_url, type_url);
        self.ack(&resp).await;
        resp
    }
}

/// (name, mark) of each resource in a response.
pub fn entries(resp: &DeltaDiscoveryResponse) -> Vec<(String, String)> {
    let resources: Vec<Any> = resp
        .resources
        .iter()
        .map(|r| r.resource.clone().expect("resource body"))
        .collect();
    crate::support::entries(&DiscoveryResponse {
        resources,
        ..Default::default()
    })
}

pub fn names(resp: &DeltaDiscoveryResponse) -> Vec<String> {
    resp.resources.iter().map(|r| r.name.clone()).collect()
}

/// name → version of the resources of a response.
pub fn versions(resp: &DeltaDiscoveryResponse) -> HashMap<String, String> {
    resp.resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}

/// Encoded size of the resources of a response.
pub fn resource_bytes(resp: &DeltaDiscoveryResponse) -> usize {
    resp.resources
        .iter()
        .filter_map(|r| r.resource.as_ref())
        .map(|a| a.value.len())
        .sum()
}
