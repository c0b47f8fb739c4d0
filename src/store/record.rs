//! A sidecar as the stores keep it: what its Envoy node said (identity and
//! ports), never keys or tokens. The same JSON in `registry.json` and in an
//! etcd value.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::config::model::{Labels, Topology};
use crate::registry::{GatewayNode, Proxy};

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
    /// The stats listener's port (absent in files of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stats_port: Option<u16>,
    /// Envoy's admin port (absent in files of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin_port: Option<u16>,
    /// Locality, network and cluster (absent in files of older versions).
    #[serde(default)]
    topology: Topology,
    /// Set for a gateway proxy (etcd only: a restart does not restore
    /// gateways): where it listens and, for an east-west gateway, where
    /// other networks reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<GatewayRecord>,
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
            stats_port: p.stats_port,
            admin_port: p.admin_port,
            topology: p.topology.clone(),
            gateway: p.gateway.as_ref().map(GatewayRecord::from),
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
            stats_port: s.stats_port,
            admin_port: s.admin_port,
            gateway: s.gateway.map(GatewayNode::from),
            topology: s.topology,
        }
    }
}

/// A gateway's [`GatewayNode`] as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GatewayRecord {
    listen_address: String,
    port_map: BTreeMap<u16, u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network_port: Option<u16>,
}

impl From<&GatewayNode> for GatewayRecord {
    fn from(g: &GatewayNode) -> Self {
        GatewayRecord {
            listen_address: g.listen_address.clone(),
            port_map: g.port_map.clone(),
            endpoint_address: g.endpoint_address.clone(),
            network_port: g.network_port,
        }
    }
}

impl From<GatewayRecord> for GatewayNode {
    fn from(g: GatewayRecord) -> Self {
        GatewayNode {
            listen_address: g.listen_address,
            port_map: g.port_map,
            endpoint_address: g.endpoint_address,
            network_port: g.network_port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_keeps_its_addresses_and_network_port() {
        let proxy = Proxy {
            id: "ew-1".into(),
            service: "istio-eastwestgateway".into(),
            gateway: Some(GatewayNode {
                listen_address: "0.0.0.0".into(),
                port_map: [(15443, 25443)].into(),
                endpoint_address: Some("198.18.0.9".into()),
                network_port: Some(25443),
            }),
            ..Default::default()
        };
        let json = serde_json::to_string(&Record::from(&proxy)).unwrap();
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(Proxy::from(back), proxy);
        // A sidecar's record has no gateway key (older readers agree).
        let sidecar = Proxy::default();
        let json = serde_json::to_string(&Record::from(&sidecar)).unwrap();
        assert!(!json.contains("gateway"), "{json}");
    }
}
