//! East-west gateways: this cluster's gateway proxies carry their
//! AUTO_PASSTHROUGH port ([`GatewayNode::network_port`]) as this cluster's
//! config gives it, so that the shared registry tells every replica and
//! every remote cluster where this network's services are reached.
//!
//! [`GatewayNode::network_port`]: crate::registry::GatewayNode::network_port

use std::sync::Arc;

use super::{lock, Core};
use crate::registry::Proxy;
use crate::translate::gateway::east_west_port;

impl Core {
    /// `proxy` with its network port per the config in force.
    pub(super) fn with_network_port(&self, mut proxy: Proxy) -> Proxy {
        let config = self.config.load();
        let port = east_west_port(&config.gateways, &proxy);
        if let Some(gw) = proxy.gateway.as_mut() {
            if port.is_some() && gw.endpoint_address.is_none() {
                tracing::warn!(node = %proxy.id, "gateway serves AUTO_PASSTHROUGH without --endpoint-address: other networks cannot reach it");
            }
            gw.network_port = port;
        }
        proxy
    }

    /// After a config change: this replica's gateways whose network port
    /// changed are registered and published again. True if any was.
    pub(super) fn restamp_gateways(&self) -> bool {
        let registry = Arc::clone(&lock(&self.registry));
        let mut changed = false;
        let gateways = (registry.sidecars().values())
            .filter(|p| p.gateway.is_some() && self.streams_here(&p.id));
        for proxy in gateways {
            let stamped = self.with_network_port((**proxy).clone());
            if stamped != **proxy {
                tracing::info!(node = %proxy.id, port = ?stamped.gateway.as_ref().and_then(|g| g.network_port), "gateway's east-west port changed");
                self.store.registered(&stamped);
                changed |= self.register(stamped);
            }
        }
        changed
    }
}
