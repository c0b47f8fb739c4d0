//! `EnvoyFilter` patches in the provenance: where each patch is written,
//! with the strings of its value (what Envoy quotes when it rejects the
//! result), and which resources the patches changed on the proxies of the
//! last build ([`PatchIndex`]), so that a rejection of a patched resource
//! is blamed on the patch first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::build::locator;
use super::{Field, Provenance, ResourceProvenance};
use crate::config::model::MeshConfig;
use crate::config::SourceIndex;
use crate::registry::Proxy;
use crate::translate::envoy_filter::{applicable, Patched};

/// One resource one patch changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PatchRef {
    /// Type URL of the resource.
    pub type_url: String,
    /// Its name.
    pub resource: String,
    /// `NAMESPACE/NAME` of the `EnvoyFilter`.
    pub envoy_filter: String,
    /// Index of the patch in its `configPatches`.
    pub patch: usize,
}

/// What is known of the proxy that rejected a response, to narrow a
/// blame: its namespace (policies of other namespaces cannot apply to
/// it) and the resources `EnvoyFilter` patches changed on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejecter {
    /// The proxy's namespace, when known.
    pub namespace: Option<String>,
    /// The patches that changed its resources.
    pub patched: Vec<PatchRef>,
    /// For each host whose proxies do not all see one DestinationRule,
    /// the rule this proxy sees (`NAMESPACE/NAME`; `None`: no rule), so
    /// that only its fields are blamed for the host's clusters.
    pub rules: BTreeMap<String, Option<String>>,
}

/// The DestinationRule `proxy` sees for each host where proxies see
/// different ones (see [`Rejecter::rules`]).
fn seen_rules(mesh: &MeshConfig, proxy: &Proxy) -> BTreeMap<String, Option<String>> {
    let root = &mesh.mesh.root_namespace;
    let client = crate::config::model::RuleClient {
        namespace: &proxy.namespace,
        labels: &proxy.labels,
    };
    (mesh.destination_rule_set.by_host.iter())
        .filter(|(_, rules)| rules.varies(root))
        .map(|(host, rules)| {
            let seen = rules.visible(client, root);
            let name = seen.map(|dr| format!("{}/{}", dr.origin.namespace, dr.origin.name));
            (host.as_str().to_string(), name)
        })
        .collect()
}

/// The resources `EnvoyFilter` patches changed over the proxies of one
/// build, by filter (`NAMESPACE/NAME`): each once, however many proxies
/// share it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchIndex(BTreeMap<String, BTreeSet<PatchRef>>);

impl PatchIndex {
    /// The index of a build's `patched` lists.
    pub fn new<'a>(patched: impl IntoIterator<Item = &'a Patched>) -> PatchIndex {
        let mut out = PatchIndex::default();
        for p in patched {
            out.0
                .entry(p.envoy_filter.clone())
                .or_default()
                .insert(PatchRef {
                    type_url: p.type_url.clone(),
                    resource: p.resource.clone(),
                    envoy_filter: p.envoy_filter.clone(),
                    patch: p.patch,
                });
        }
        out
    }

    /// True when no patch changed anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What is known of `proxy`: its namespace, the changes of the
    /// `EnvoyFilter`s of `mesh` that apply to it, and the rules it sees.
    pub fn rejecter(&self, mesh: &MeshConfig, proxy: &Proxy) -> Rejecter {
        let root = &mesh.mesh.root_namespace;
        let mut patched = Vec::new();
        if !self.is_empty() {
            for f in applicable(&mesh.envoy_filters, root, proxy) {
                let key = format!("{}/{}", f.origin.namespace, f.origin.name);
                patched.extend(self.0.get(&key).into_iter().flatten().cloned());
            }
        }
        Rejecter {
            namespace: Some(proxy.namespace.clone()),
            patched,
            rules: seen_rules(mesh, proxy),
        }
    }
}

/// Each patch of every `EnvoyFilter`: the patch (`objects`) and the
/// strings of its value (`fields`).
pub(super) fn build(out: &mut Provenance, mesh: &MeshConfig, source: &SourceIndex) {
    for f in &mesh.envoy_filters {
        let at = locator(source, &f.origin);
        let key = format!("{}/{}", f.origin.namespace, f.origin.name);
        for (i, patch) in f.patches.iter().enumerate() {
            let path = format!("spec.configPatches[{i}]");
            let site = Field {
                origin: Arc::clone(&at.origin),
                path: path.clone(),
                line: patch.site.line,
                column: patch.site.col,
                needle: None,
            };
            let value = format!("{path}.patch.value");
            let fields = (source.strings(&f.origin, &value).into_iter())
                .map(|(p, v)| at.field(&p, Some(v)))
                .collect();
            let patch = ResourceProvenance {
                objects: vec![site],
                fields,
            };
            out.patches.insert((key.clone(), i), patch);
        }
    }
}
