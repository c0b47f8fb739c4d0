//! Cross-resource checks of `Telemetry`: every provider it names is
//! defined in the `Mesh` (or is the built-in `envoy` access log) and is of
//! the right kind; at most one namespace-wide `Telemetry` per namespace.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::convert::DocInfo;
use crate::config::diag::Diagnostic;
use crate::config::model::{MeshSettings, Telemetry};

/// The `Telemetry` resources sorted by namespace and name, with errors
/// in `diags` and, in `warnings`, tracing that reaches no provider.
pub(crate) fn telemetries(
    mesh: &MeshSettings,
    mut telemetries: Vec<(Arc<DocInfo>, Telemetry)>,
    diags: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<Telemetry> {
    telemetries.sort_by_key(|(doc, _)| doc.qualified());
    warnings.extend(tracing_without_provider(mesh, &telemetries));
    let mut wide: BTreeMap<&str, &DocInfo> = BTreeMap::new();
    for (doc, t) in &telemetries {
        providers(mesh, doc, t, diags);
        if t.selector.is_some() {
            continue;
        }
        match wide.get(doc.namespace.as_str()) {
            None => {
                wide.insert(&doc.namespace, doc);
            }
            Some(first) => {
                let msg = format!(
                    "a namespace-wide Telemetry already exists in namespace {}: {} ({}); keep one, or add a selector",
                    doc.namespace,
                    first.qualified(),
                    first.place()
                );
                diags.push(doc.diagnostic("metadata.name", msg));
            }
        }
    }
    telemetries.into_iter().map(|(_, t)| t).collect()
}

/// Warnings for `tracing` entries that name no provider and inherit none
/// (from the `Mesh`'s `defaultProviders.tracing`, the root namespace's or
/// their own namespace's namespace-wide `Telemetry`): as in Istio, their
/// workloads report no spans, whatever sampling or tags they set.
fn tracing_without_provider(
    mesh: &MeshSettings,
    telemetries: &[(Arc<DocInfo>, Telemetry)],
) -> Vec<Diagnostic> {
    let names = |t: &Telemetry| t.tracing.as_ref().is_some_and(|s| !s.providers.is_empty());
    let wide_names = |ns: &str| {
        (telemetries.iter()).any(|(d, t)| d.namespace == ns && t.selector.is_none() && names(t))
    };
    if !mesh.telemetry.default_providers.tracing.is_empty() || wide_names(&mesh.root_namespace) {
        return Vec::new();
    }
    (telemetries.iter())
        .filter(|(_, t)| t.tracing.as_ref().is_some_and(|s| s.providers.is_empty()))
        .filter(|(_, t)| t.tracing.as_ref().and_then(|s| s.disable_span_reporting) != Some(true))
        .filter(|(d, t)| t.selector.is_none() || !wide_names(&d.namespace))
        .map(|(doc, _)| {
            let msg = "tracing names no provider and inherits none (the Mesh's \
                       defaultProviders.tracing, a namespace-wide Telemetry): these workloads \
                       report no spans";
            doc.diagnostic("spec.tracing[0]", msg)
        })
        .collect()
}

fn providers(mesh: &MeshSettings, doc: &DocInfo, t: &Telemetry, diags: &mut Vec<Diagnostic>) {
    let logs = t.access_logging.iter().flat_map(|a| &a.providers);
    let traces = t.tracing.iter().flat_map(|a| &a.providers);
    let named = logs
        .enumerate()
        .map(|(i, n)| {
            (
                format!("spec.accessLogging[0].providers[{i}].name"),
                n,
                false,
            )
        })
        .chain(
            traces
                .enumerate()
                .map(|(i, n)| (format!("spec.tracing[0].providers[{i}].name"), n, true)),
        );
    for (path, name, tracing) in named {
        if let Some(msg) = provider_error(mesh, name, tracing) {
            diags.push(doc.diagnostic(&path, msg));
        }
    }
}

/// Why `name` cannot be used for tracing (or access logging), if it
/// cannot.
pub(crate) fn provider_error(mesh: &MeshSettings, name: &str, tracing: bool) -> Option<String> {
    let Some(p) = mesh.telemetry.provider(name) else {
        let known: Vec<&str> = mesh
            .telemetry
            .extension_providers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        return Some(format!(
            "unknown provider {name:?}: define it in the Mesh resource's extensionProviders (defined: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ));
    };
    match (tracing, p.kind.is_tracing()) {
        (true, false) => Some(format!(
            "provider {name:?} is an access log provider, not a tracing provider"
        )),
        (false, true) => Some(format!(
            "provider {name:?} is a tracing provider, not an access log provider"
        )),
        _ => None,
    }
}
