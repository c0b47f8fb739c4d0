//! A sidecar as the stores keep it: what its Envoy node said (identity and
//! ports), never keys or tokens. The same JSON in `registry.json` and in an
//! etcd value.

use serde::{Deserialize, Serialize};

use crate::config::model::{Labels, Topology};
use crate::registry::Proxy;

/// One stored sidecar: [`Proxy`]'s fields, plus, in etcd, the replica
/// that registered it (for people reading the store; ownership itself is
/// the key's lease).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    id: String,
    service: String,
    namespace: String,
    labels: Labels,
    service_account: String,
    app_port: u16,
    inbound_address: String,
    inbound_port: u16,
    outbound_port: u16,
    /// Locality, network and cluster (absent in files of older versions).
    #[serde(default)]
    topology: Topology,
    /// The replica holding the sidecar's stream (etcd only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl From<&Proxy> for Record {
    fn from(p: &Proxy) -> Self {
        Record {
            id: p.id.clone(),
            service: p.service.clone(),
            namespace: p.namespace.clone(),
            labels: p.labels.clone(),
            service_account: p.service_account.clone(),
            app_port: p.app_port,
            inbound_address: p.inbound_address.clone(),
            inbound_port: p.inbound_port,
            outbound_port: p.outbound_port,
            topology: p.topology.clone(),
            owner: None,
        }
    }
}

impl From<Record> for Proxy {
    fn from(s: Record) -> Self {
        Proxy {
            id: s.id,
            service: s.service,
            namespace: s.namespace,
            labels: s.labels,
            service_account: s.service_account,
            app_port: s.app_port,
            inbound_address: s.inbound_address,
            inbound_port: s.inbound_port,
            outbound_port: s.outbound_port,
            gateway: None,
            topology: s.topology,
        }
    }
}
