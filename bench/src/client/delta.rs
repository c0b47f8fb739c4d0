//! The incremental client (`DeltaAggregatedResources`).

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use super::names::{eds_name, rds_names};
use super::{type_index, with_token, Shared, EDS, RDS, SECRETS, TYPES};

struct Client {
    tx: mpsc::UnboundedSender<DeltaDiscoveryRequest>,
    /// Cluster name → its EDS name; listener name → its RDS names.
    clusters: BTreeMap<String, Option<String>>,
    listeners: BTreeMap<String, Vec<String>>,
    /// Names subscribed for EDS and RDS.
    subscribed: [BTreeSet<String>; 5],
}

impl Client {
    fn send(&self, req: DeltaDiscoveryRequest) -> anyhow::Result<()> {
        self.tx
            .send(req)
            .map_err(|_| anyhow::anyhow!("stream closed"))
    }

    /// Subscribes and unsubscribes the difference to `want`.
    fn resubscribe(&mut self, t: usize, want: BTreeSet<String>) -> anyhow::Result<()> {
        let have = &self.subscribed[t];
        let subscribe: Vec<String> = want.difference(have).cloned().collect();
        let unsubscribe: Vec<String> = have.difference(&want).cloned().collect();
        if subscribe.is_empty() && unsubscribe.is_empty() {
            return Ok(());
        }
        self.subscribed[t] = want;
        self.send(DeltaDiscoveryRequest {
            type_url: TYPES[t].to_string(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            ..Default::default()
        })
    }

    fn on_response(&mut self, t: usize, resp: &DeltaDiscoveryResponse) -> anyhow::Result<()> {
        if t == 0 {
            for r in &resp.resources {
                self.clusters
                    .insert(r.name.clone(), r.resource.as_ref().and_then(eds_name));
            }
            for n in &resp.removed_resources {
                self.clusters.remove(n);
            }
            let want = self.clusters.values().flatten().cloned().collect();
            self.resubscribe(EDS, want)?;
        } else if t == 2 {
            for r in &resp.resources {
                let names = r.resource.as_ref().map(rds_names).unwrap_or_default();
                self.listeners.insert(r.name.clone(), names);
            }
            for n in &resp.removed_resources {
                self.listeners.remove(n);
            }
            let want = self.listeners.values().flatten().cloned().collect();
            self.resubscribe(RDS, want)?;
        }
        self.send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })
    }
}

/// Runs one delta stream until it ends or fails.
pub async fn run_delta(
    ch: Channel,
    node: Node,
    token: Option<String>,
    shared: Shared,
) -> anyhow::Result<()> {
    let (stats, global) = shared;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut client = Client {
        tx,
        clusters: BTreeMap::new(),
        listeners: BTreeMap::new(),
        subscribed: Default::default(),
    };
    // Empty subscriptions for CDS and LDS are the legacy wildcard.
    client.send(DeltaDiscoveryRequest {
        node: Some(node),
        type_url: TYPES[0].to_string(),
        ..Default::default()
    })?;
    client.send(DeltaDiscoveryRequest {
        type_url: TYPES[2].to_string(),
        ..Default::default()
    })?;
    let secrets = SECRETS.iter().map(|s| s.to_string()).collect();
    client.resubscribe(4, secrets)?;
    let mut ads = AggregatedDiscoveryServiceClient::new(ch).max_decoding_message_size(usize::MAX);
    let req = with_token(
        tonic::Request::new(UnboundedReceiverStream::new(rx)),
        token.as_deref(),
    )?;
    let mut stream = ads.delta_aggregated_resources(req).await?.into_inner();
    while let Some(resp) = stream.message().await? {
        global.received(resp.encoded_len());
        let Some(t) = type_index(&resp.type_url) else {
            continue;
        };
        client.on_response(t, &resp)?;
        if t == 0 {
            stats.set_eds_names(&client.subscribed[EDS]);
        } else if t == EDS {
            let anys = resp.resources.iter().filter_map(|r| r.resource.as_ref());
            stats.eds_acked(anys, &resp.removed_resources);
        }
        stats.hold(t, |m| {
            for r in &resp.resources {
                m.insert(r.name.clone(), r.version.clone());
            }
            for n in &resp.removed_resources {
                m.remove(n);
            }
        });
        global.acked(&stats, t);
    }
    Ok(())
}
