//! Service instances: static ones from `ServiceEntry` endpoints and
//! `WorkloadEntry`s, and sidecars that registered themselves by connecting.
//!
//! The registry only records sidecars; [`Registry::instances`] joins them
//! with a [`MeshConfig`] into the per-service endpoint view that `translate`
//! reads. Keeping the join pure means a config reload and a sidecar joining
//! go through the same code.

use std::collections::BTreeMap;

use crate::config::model::{Host, Labels};

/// A sidecar's identity and ports, from its Envoy node (see
/// `bootstrap` for the metadata keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Envoy `node.id`: unique per instance.
    pub id: String,
    /// Service name (`node.cluster`, metadata `service`).
    pub service: String,
    /// Namespace (metadata `namespace`, default `default`).
    pub namespace: String,
    /// Workload labels (metadata `labels`), e.g. `version: v2`.
    pub labels: Labels,
    /// Service account (metadata `service_account`, default the service name).
    pub service_account: String,
    /// The application's port on 127.0.0.1.
    pub app_port: u16,
    /// Address other sidecars reach this one on (metadata `inbound_address`).
    pub inbound_address: String,
    /// The inbound listener's port.
    pub inbound_port: u16,
    /// The outbound listener's port.
    pub outbound_port: u16,
}

impl Proxy {
    /// The canonical host of the proxy's own service.
    pub fn host(&self) -> Host {
        Host::canonical(&self.service, &self.namespace)
    }
}

/// One instance of a service, as `translate` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Address (IP or DNS name).
    pub address: String,
    /// Port to connect to.
    pub port: u16,
    /// Labels, for subsets.
    pub labels: Labels,
    /// Load-balancing weight.
    pub weight: u32,
    /// True when a sidecar fronts it (mTLS-capable later).
    pub sidecar: bool,
}

/// Sidecars currently registered, by node id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    sidecars: BTreeMap<String, Proxy>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a sidecar. Returns true if anything changed.
    pub fn register(&mut self, proxy: Proxy) -> bool {
        self.sidecars.insert(proxy.id.clone(), proxy.clone()) != Some(proxy)
    }

    /// Removes a sidecar. Returns true if it was present.
    pub fn deregister(&mut self, id: &str) -> bool {
        self.sidecars.remove(id).is_some()
    }

    /// Registered sidecars, by node id.
    pub fn sidecars(&self) -> &BTreeMap<String, Proxy> {
        &self.sidecars
    }
}
