//! `Sidecar`: the services a sidecar may reach (its egress scope).
//!
//! Istio's rules (`networking/v1/sidecar.proto`): a Sidecar with a
//! `workloadSelector` applies to the matching workloads of its namespace;
//! one without applies to the rest of its namespace; one without in the
//! root namespace is the mesh-wide default. With none, a sidecar reaches
//! every service (Istio's default).

use std::collections::BTreeMap;

use super::{Host, Origin};

/// The namespace half of an egress host `NAMESPACE/HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressNamespace {
    /// `*`: any namespace.
    Any,
    /// `~`: no namespace (the entry admits nothing).
    None,
    /// A namespace (`.` is resolved to the Sidecar's own).
    Named(String),
}

/// One egress host entry, `NAMESPACE/HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressHost {
    /// Which namespaces' services.
    pub namespace: EgressNamespace,
    /// `*`, `*.SUFFIX`, or an exact host (canonical FQDN form).
    pub host: String,
}

impl EgressHost {
    /// True when a service `host` declared in namespace `ns` is admitted.
    pub fn admits(&self, host: &Host, ns: &str) -> bool {
        let ns_ok = match &self.namespace {
            EgressNamespace::Any => true,
            EgressNamespace::None => false,
            EgressNamespace::Named(n) => n == ns,
        };
        ns_ok && host_matches(&self.host, host.as_str())
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

/// A converted `Sidecar` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarScope {
    /// Its namespace (`metadata.namespace`).
    pub namespace: String,
    /// `workloadSelector.labels`; `None` for a namespace-wide Sidecar.
    pub selector: Option<BTreeMap<String, String>>,
    /// Every egress listener's hosts.
    pub egress: Vec<EgressHost>,
    /// Where it came from.
    pub origin: Origin,
}

impl SidecarScope {
    /// True when a service `host` of namespace `ns` is in scope.
    pub fn admits(&self, host: &Host, ns: &str) -> bool {
        self.egress.iter().any(|e| e.admits(host, ns))
    }
}

/// The Sidecar that applies to a workload of `namespace` with `labels`:
/// a selecting one of its namespace, else its namespace-wide one, else the
/// root namespace's namespace-wide one; `None` means every service.
/// Among equals the first by name wins (Istio: the oldest).
pub fn sidecar_for<'a>(
    sidecars: &'a [SidecarScope],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
) -> Option<&'a SidecarScope> {
    let selects = |s: &&SidecarScope| {
        s.selector
            .as_ref()
            .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
    };
    let in_ns = |ns: &str, pick: &dyn Fn(&&SidecarScope) -> bool| {
        sidecars
            .iter()
            .filter(|s| s.namespace == ns)
            .find(|s| pick(s))
    };
    let wide = |s: &&SidecarScope| s.selector.is_none();
    in_ns(namespace, &selects)
        .or_else(|| in_ns(namespace, &wide))
        .or_else(|| in_ns(root_namespace, &wide))
}
