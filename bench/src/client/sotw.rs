//! The state-of-the-world client (`StreamAggregatedResources`).

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use super::names::{eds_name, rds_names};
use super::{type_index, with_token, Shared, EDS, RDS, SECRETS, TYPES};

/// Per type: the last ACKed version and nonce, and the names subscribed.
#[derive(Default)]
struct TypeState {
    version: String,
    nonce: String,
    names: BTreeSet<String>,
}

struct Client {
    tx: mpsc::UnboundedSender<DiscoveryRequest>,
    types: [TypeState; 5],
}

impl Client {
    fn request(&self, t: usize, node: Option<Node>) -> anyhow::Result<()> {
        let st = &self.types[t];
        let req = DiscoveryRequest {
            node,
            version_info: st.version.clone(),
            response_nonce: st.nonce.clone(),
            resource_names: st.names.iter().cloned().collect(),
            type_url: TYPES[t].to_string(),
            ..Default::default()
        };
        self.tx
            .send(req)
            .map_err(|_| anyhow::anyhow!("stream closed"))
    }

    /// Re-subscribes type `t` when a response changed the names it needs.
    fn resubscribe(&mut self, t: usize, names: BTreeSet<String>) -> anyhow::Result<()> {
        if names != self.types[t].names {
            self.types[t].names = names;
            self.request(t, None)?;
        }
        Ok(())
    }

    fn on_response(&mut self, t: usize, resp: &DiscoveryResponse) -> anyhow::Result<()> {
        if t == 0 {
            let names = resp.resources.iter().filter_map(eds_name).collect();
            self.resubscribe(EDS, names)?;
        } else if t == 2 {
            let names = resp.resources.iter().flat_map(rds_names).collect();
            self.resubscribe(RDS, names)?;
        }
        let st = &mut self.types[t];
        st.version = resp.version_info.clone();
        st.nonce = resp.nonce.clone();
        self.request(t, None)
    }
}

/// Runs one SotW stream until it ends or fails.
pub async fn run_sotw(
    ch: Channel,
    node: Node,
    token: Option<String>,
    shared: Shared,
) -> anyhow::Result<()> {
    let (stats, global) = shared;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut client = Client {
        tx,
        types: Default::default(),
    };
    client.types[4].names = SECRETS.iter().map(|s| s.to_string()).collect();
    client.request(0, Some(node))?;
    client.request(2, None)?;
    client.request(4, None)?;
    let mut ads = AggregatedDiscoveryServiceClient::new(ch).max_decoding_message_size(usize::MAX);
    let req = with_token(
        tonic::Request::new(UnboundedReceiverStream::new(rx)),
        token.as_deref(),
    )?;
    let mut stream = ads.stream_aggregated_resources(req).await?.into_inner();
    while let Some(resp) = stream.message().await? {
        global.received(resp.encoded_len());
        let Some(t) = type_index(&resp.type_url) else {
            continue;
        };
        client.on_response(t, &resp)?;
        match t {
            0 => stats.set_eds_names(&client.types[EDS].names),
            EDS => stats.eds_acked(resp.resources.iter(), &[]),
            _ => {}
        }
        stats.hold(t, |m| {
            m.insert(String::new(), resp.version_info.clone());
        });
        global.acked(&stats, t);
    }
    Ok(())
}
