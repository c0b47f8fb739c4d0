//! What the config tells about the adoption factors.

use serde::Serialize;

use crate::config::model::{Location, MeshConfig, MtlsMode, RouteAction};

/// Facts read from a config directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// Services inside the mesh: `MESH_INTERNAL` `ServiceEntry` hosts and
    /// cluster-local hosts served only by sidecars.
    pub services: usize,
    /// Hosts whose routes split traffic between several destinations.
    pub splits: Vec<String>,
    /// Namespaces (`ROOT` for mesh-wide) with a STRICT `PeerAuthentication`.
    pub strict_mtls: Vec<String>,
    /// True when a tracing provider is configured (mesh default or `Telemetry`).
    pub tracing: bool,
}

/// Reads the facts of `mesh`.
pub fn facts(mesh: &MeshConfig) -> Facts {
    // Services known only from sidecars (named by routes) count too.
    let instances = crate::registry::instances(mesh, &crate::registry::Registry::new());
    let services = (instances.services.values())
        .filter(|s| s.location == Location::MeshInternal)
        .count();
    let splits = (mesh.virtual_services.iter())
        .filter(|(_, vs)| {
            (vs.http.iter()).any(|r| matches!(&r.action, RouteAction::Route(d) if d.len() > 1))
        })
        .map(|(h, _)| h.to_string())
        .collect();
    let root = &mesh.mesh.root_namespace;
    let strict_mtls = (mesh.peer_authentications.iter())
        .filter(|p| p.mode == MtlsMode::Strict)
        .map(|p| match (&p.origin.namespace, &p.selector) {
            (ns, None) if ns == root => format!("mesh-wide ({ns})"),
            (ns, None) => ns.clone(),
            (ns, Some(_)) => format!("{ns}/{}", p.origin.name),
        })
        .collect();
    let telemetry = &mesh.mesh.telemetry;
    let tracing = !telemetry.default_providers.tracing.is_empty()
        || (mesh.telemetries.iter())
            .any(|t| t.tracing.as_ref().is_some_and(|s| !s.providers.is_empty()));
    Facts {
        services,
        splits,
        strict_mtls,
        tracing,
    }
}
