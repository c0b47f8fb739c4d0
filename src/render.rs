//! Offline rendering: what `serve` would send each proxy for a config,
//! without a running control plane (`trellis diff`, `validate --envoy`).
//!
//! The proxies are synthesized from what the config declares
//! ([`declared_workloads`]), given on the command line
//! ([`parse_proxy_spec`]) or read from a running control plane
//! ([`workloads_from_debug`]). Their snapshots come from the very function
//! `serve` rebuilds with (`serve::snapshots::build_for`), so translation
//! lives in one place. Every proxy gets the same in-memory placeholder
//! certificate: mTLS is on as under `serve`, and no real key is involved.

mod declared;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::model::MeshConfig;
use crate::registry::{Proxy, Registry};
use crate::serve::snapshots::{build_for, BuildState};
use crate::translate::{ProxySecurity, WorkloadCerts};
use crate::xds::Snapshot;

pub use declared::{declared_workloads, parse_proxy_spec, workloads_from_debug};

/// Why rendering could not start.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A `--proxy SERVICE[:k=v,...]` argument that does not parse.
    #[error("--proxy {spec:?}: {why}")]
    ProxySpec {
        /// The argument as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// A `/debug/proxies` answer without the expected shape.
    #[error("/debug/proxies: {0}")]
    DebugProxies(String),
    /// The placeholder certificate could not be made.
    #[error("placeholder certificate: {0}")]
    Certificate(String),
}

/// A proxy to render, and whether it is also an endpoint of its service
/// (a registered sidecar). Proxies synthesized from `WorkloadEntry`s and
/// `ServiceEntry` endpoints are not: those are instances already.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The proxy as its Envoy node would describe it.
    pub proxy: Proxy,
    /// True to register it, as a connected sidecar is.
    pub endpoint: bool,
}

/// One proxy's rendered resources.
#[derive(Debug, Clone)]
pub struct RenderedProxy {
    /// The proxy.
    pub proxy: Proxy,
    /// What `serve` would send it.
    pub snapshot: Arc<Snapshot>,
}

/// Renders configs for proxies. Rendering several configs with one
/// renderer works as `serve`'s rebuilds do: a resource whose bytes did not
/// change keeps its `Arc`, and a proxy whose resources did not change keeps
/// its very snapshot, so comparing two renders is comparing pointers.
pub struct Renderer {
    state: BuildState,
    security: ProxySecurity,
}

impl Renderer {
    /// A renderer with a fresh placeholder certificate (self-signed, in
    /// memory, never written anywhere).
    pub fn new() -> Result<Self, RenderError> {
        let certified = rcgen::generate_simple_self_signed(vec!["trellis-render.invalid".into()])
            .map_err(|e| RenderError::Certificate(e.to_string()))?;
        let cert = certified.cert.pem();
        let certs = WorkloadCerts {
            cert_chain_pem: cert.clone(),
            key_pem: certified.signing_key.serialize_pem(),
            trust_bundle_pem: cert,
        };
        Ok(Renderer {
            state: BuildState::default(),
            security: ProxySecurity {
                mtls: true,
                certs: Some(Arc::new(certs)),
            },
        })
    }

    /// The placeholder certificate every proxy gets (for a bootstrap that
    /// inlines the secrets).
    pub fn placeholder_certs(&self) -> Option<&WorkloadCerts> {
        self.security.certs.as_deref()
    }

    /// Which resources `EnvoyFilter` patches changed at the last render.
    pub fn patches(&self) -> crate::translate::provenance::PatchIndex {
        crate::translate::provenance::PatchIndex::new(&self.state.envoy_filters.patched)
    }

    /// Every workload's snapshot for `mesh`, by node id.
    pub fn render(
        &mut self,
        mesh: &MeshConfig,
        workloads: &[Workload],
    ) -> BTreeMap<String, RenderedProxy> {
        let proxies: Vec<Arc<Proxy>> = workloads
            .iter()
            .map(|w| {
                let mut proxy = w.proxy.clone();
                // What `serve` does when a sidecar connects.
                proxy.default_topology(&mesh.mesh.multi_cluster);
                Arc::new(proxy)
            })
            .collect();
        let mut registry = Registry::new();
        for (w, proxy) in workloads.iter().zip(&proxies) {
            if w.endpoint {
                registry.register(Proxy::clone(proxy));
            }
        }
        let security = self.security.clone();
        let built = build_for(&mut self.state, mesh, &registry, proxies.iter(), &|_| {
            security.clone()
        });
        let mut by_id: BTreeMap<String, Proxy> = (proxies.into_iter())
            .map(|p| (p.id.clone(), Arc::unwrap_or_clone(p)))
            .collect();
        built
            .snapshots
            .into_iter()
            .filter_map(|(id, snapshot, _)| {
                let proxy = by_id.remove(&id)?;
                Some((id, RenderedProxy { proxy, snapshot }))
            })
            .collect()
    }
}
