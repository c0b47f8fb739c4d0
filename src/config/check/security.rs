//! Cross-resource checks of the security resources: at most one `Mesh`;
//! at most one namespace-wide `PeerAuthentication` per namespace (in the
//! root namespace: the mesh-wide one). Istio would silently pick the
//! oldest; Trellis has no creation times, so it asks the user to choose.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::convert::DocInfo;
use crate::config::diag::Diagnostic;
use crate::config::model::{MeshSettings, PeerAuthentication};

/// The mesh settings and the `PeerAuthentication`s sorted by namespace
/// and name, or errors in `diags`.
pub(crate) fn security(
    meshes: Vec<(Arc<DocInfo>, MeshSettings)>,
    mut peer_authentications: Vec<(Arc<DocInfo>, PeerAuthentication)>,
    diags: &mut Vec<Diagnostic>,
) -> (MeshSettings, Vec<PeerAuthentication>) {
    let mut meshes = meshes.into_iter();
    let first = meshes.next();
    for (doc, _) in meshes {
        let place = first.as_ref().map(|(d, _)| d.place()).unwrap_or_default();
        let msg = format!("only one Mesh resource is allowed: the first is at {place}");
        diags.push(doc.diagnostic("kind", msg));
    }
    let mesh = first.map(|(_, m)| m).unwrap_or_default();
    peer_authentications.sort_by_key(|(doc, _)| doc.qualified());
    let mut wide: BTreeMap<&str, &DocInfo> = BTreeMap::new();
    for (doc, _) in peer_authentications
        .iter()
        .filter(|(_, p)| p.selector.is_none())
    {
        let Some(first) = wide.get(doc.namespace.as_str()) else {
            wide.insert(&doc.namespace, doc);
            continue;
        };
        let scope = if doc.namespace == mesh.root_namespace {
            "mesh-wide (root namespace)".to_string()
        } else {
            format!("namespace-wide in namespace {}", doc.namespace)
        };
        let msg = format!(
            "a {scope} PeerAuthentication already exists: {} ({}); keep one, or add a selector",
            first.qualified(),
            first.place()
        );
        diags.push(doc.diagnostic("metadata.name", msg));
    }
    let pas = peer_authentications.into_iter().map(|(_, p)| p).collect();
    (mesh, pas)
}
