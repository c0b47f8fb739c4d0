//! `Sidecar`: the services a sidecar may reach (its egress scope).
//!
//! Istio's rules (`networking/v1/sidecar.proto`): a Sidecar with a
//! `workloadSelector` applies to the matching workloads of its namespace;
//! one without applies to the rest of its namespace; one without in the
//! root namespace is the mesh-wide default. With none, Trellis synthesizes
//! the default of [`effective_scope`] (the workload's namespace plus the
//! root namespace), which `Mesh.spec.defaultSidecarScope: ALL_SERVICES`
//! widens to every service (Istio's default).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{ConnectionPool, Destination, Host, IngressPort, MeshSettings, Origin};

/// The namespace half of an egress host `NAMESPACE/HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressNamespace {
    /// `*`: any namespace.
    Any,
    /// `~`: no namespace (the entry admits nothing).
    None,
    /// A namespace.
    Named(String),
    /// `.`: the namespace of the workload the Sidecar applies to. Istio
    /// converts a root-namespace Sidecar once per workload namespace
    /// (`pilot/pkg/model/push_context.go`, `convertToSidecarScope(ps,
    /// meshRootSidecarConfig, proxy.ConfigNamespace)`), so `./*` there
    /// means the workload's namespace, not the root's.
    /// [`SidecarScope::for_namespace`] resolves it.
    Current,
}

/// One egress host entry, `NAMESPACE/HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressHost {
    /// Which namespaces' services.
    pub namespace: EgressNamespace,
    /// `*`, `*.SUFFIX`, or an exact host: canonical FQDN form, except in
    /// a [`EgressNamespace::Current`] entry, where a short name is kept as
    /// written until the workload's namespace is known.
    pub host: String,
}

impl EgressHost {
    /// True when a service `host` declared in namespace `ns` is admitted.
    /// An unresolved `.` entry admits nothing: resolve the scope with
    /// [`SidecarScope::for_namespace`] first.
    pub fn admits(&self, host: &Host, ns: &str) -> bool {
        let ns_ok = match &self.namespace {
            EgressNamespace::Any => true,
            EgressNamespace::None | EgressNamespace::Current => false,
            EgressNamespace::Named(n) => n == ns,
        };
        ns_ok && host_matches(&self.host, host.as_str())
    }

    /// This entry with `.` standing for `namespace`.
    fn resolved(&self, namespace: &str) -> EgressHost {
        if self.namespace != EgressNamespace::Current {
            return self.clone();
        }
        let host = if self.host.starts_with('*') {
            self.host.clone()
        } else {
            Host::canonical(&self.host, namespace).as_str().to_string()
        };
        EgressHost {
            namespace: EgressNamespace::Named(namespace.to_string()),
            host,
        }
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

/// Protocol of a Sidecar egress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EgressProtocol {
    /// Opaque TCP (`TCP`, `MONGO`, `MYSQL`, `REDIS`, ...): `tcp` rules.
    Tcp,
    /// TLS (`TLS`, `HTTPS`) routed by SNI: `tls` rules, then `tcp` rules.
    Tls,
}

/// An egress listener with a `port`: the sidecar listens on
/// `bind:number` and routes connections with the `tcp`/`tls` rules of
/// the VirtualServices of `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPort {
    /// `port.number`.
    pub number: u16,
    /// `port.name` (the listener's name; default `PROTOCOL-NUMBER`).
    pub name: String,
    /// `port.protocol`.
    pub protocol: EgressProtocol,
    /// `bind`, an IP address; `127.0.0.1` when omitted.
    pub bind: String,
    /// This listener's `hosts`.
    pub hosts: Vec<EgressHost>,
}

/// A converted `Sidecar` resource, or the synthesized default scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarScope {
    /// Its namespace (`metadata.namespace`).
    pub namespace: String,
    /// `workloadSelector.labels`; `None` for a namespace-wide Sidecar.
    pub selector: Option<BTreeMap<String, String>>,
    /// Every egress listener's hosts.
    pub egress: Vec<EgressHost>,
    /// Egress listeners with a `port`: each is a listener of its own on
    /// `bind:number` (sidecars have no transparent interception).
    pub ports: Vec<EgressPort>,
    /// `ingress[]`: when not empty, the sidecar's only inbound listeners
    /// (Istio's rule), replacing the default one on its inbound port.
    pub ingress: Vec<IngressPort>,
    /// `inboundConnectionPool`: the limits of every inbound cluster (an
    /// ingress entry's own `connectionPool` wins).
    pub inbound_pool: Option<ConnectionPool>,
    /// `outboundTrafficPolicy.mode`; `None` when not written (the `Mesh`
    /// default applies, see [`outbound_policy`]).
    pub outbound_policy: Option<OutboundTrafficPolicy>,
    /// `outboundTrafficPolicy.egressProxy`: where `ALLOW_ANY` sends
    /// requests and tunnels for unknown hosts (with their `Host`), instead
    /// of the host they name.
    pub egress_proxy: Option<Destination>,
    /// Where it came from; for the default scope, kind `Sidecar`, name
    /// [`DEFAULT_SCOPE_NAME`], file `<mesh default>` and line 0.
    pub origin: Origin,
}

/// The name under which the synthesized default scope shows in debug
/// output (it is not a resource anyone wrote).
pub const DEFAULT_SCOPE_NAME: &str = "(default scope)";

impl SidecarScope {
    /// True when a service `host` of namespace `ns` is in scope.
    pub fn admits(&self, host: &Host, ns: &str) -> bool {
        self.egress.iter().any(|e| e.admits(host, ns))
    }

    /// True when an entry still says `.` (see [`Self::for_namespace`]).
    pub fn has_current(&self) -> bool {
        self.egress
            .iter()
            .any(|e| e.namespace == EgressNamespace::Current)
    }

    /// This scope applied to a workload of `namespace`: every `.` entry
    /// names that namespace.
    pub fn for_namespace(&self, namespace: &str) -> SidecarScope {
        let resolve = |hosts: &[EgressHost]| hosts.iter().map(|e| e.resolved(namespace)).collect();
        SidecarScope {
            egress: resolve(&self.egress),
            ports: (self.ports.iter())
                .map(|p| EgressPort {
                    hosts: resolve(&p.hosts),
                    ..p.clone()
                })
                .collect(),
            ..self.clone()
        }
    }

    /// The default scope of a workload of `namespace` when no `Sidecar`
    /// applies: what Istio's recommended root-namespace Sidecar
    /// `egress: [{hosts: ["./*", "ROOT/*"]}]` gives it.
    pub fn default_for(namespace: &str, root_namespace: &str) -> SidecarScope {
        let all_of = |ns: &str| EgressHost {
            namespace: EgressNamespace::Named(ns.to_string()),
            host: "*".to_string(),
        };
        let mut egress = vec![all_of(namespace)];
        if root_namespace != namespace {
            egress.push(all_of(root_namespace));
        }
        SidecarScope {
            namespace: root_namespace.to_string(),
            selector: None,
            egress,
            ports: Vec::new(),
            ingress: Vec::new(),
            inbound_pool: None,
            outbound_policy: None,
            egress_proxy: None,
            origin: Origin {
                kind: "Sidecar".to_string(),
                namespace: root_namespace.to_string(),
                name: DEFAULT_SCOPE_NAME.to_string(),
                file: PathBuf::from("<mesh default>"),
                line: 0,
            },
        }
    }
}

/// `Mesh.spec.defaultSidecarScope`: what a sidecar reaches when no
/// `Sidecar` applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultSidecarScope {
    /// `NAMESPACE` (the default): the services of the sidecar's own
    /// namespace and of the root namespace.
    #[default]
    Namespace,
    /// `ALL_SERVICES`: every service in the mesh (Istio's default).
    AllServices,
}

/// The Sidecar that applies to a workload of `namespace` with `labels`:
/// a selecting one of its namespace, else its namespace-wide one, else the
/// root namespace's namespace-wide one; `None` when none applies.
/// Among equals the first by name wins (Istio: the oldest).
/// `.` entries are not resolved: see [`effective_scope`].
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

/// The egress scope of a workload of `namespace` with `labels`: the
/// `Sidecar` that applies ([`sidecar_for`]) with `.` resolved to
/// `namespace`; else the mesh default (`Mesh.spec.defaultSidecarScope`):
/// [`SidecarScope::default_for`], or `None` — every service — for
/// `ALL_SERVICES`.
pub fn effective_scope<'a>(
    sidecars: &'a [SidecarScope],
    mesh: &MeshSettings,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Cow<'a, SidecarScope>> {
    let root = &mesh.root_namespace;
    match sidecar_for(sidecars, namespace, labels, root) {
        Some(s) if s.has_current() => Some(Cow::Owned(s.for_namespace(namespace))),
        Some(s) => Some(Cow::Borrowed(s)),
        None => match mesh.default_sidecar_scope {
            DefaultSidecarScope::Namespace => {
                Some(Cow::Owned(SidecarScope::default_for(namespace, root)))
            }
            DefaultSidecarScope::AllServices => None,
        },
    }
}

/// `outboundTrafficPolicy.mode`: what the outbound listener does with a
/// request (or `CONNECT`) for a host that is not in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutboundTrafficPolicy {
    /// `ALLOW_ANY` (Istio's mesh default): forwarded to the host the
    /// request names (Envoy's dynamic forward proxy).
    #[default]
    AllowAny,
    /// `REGISTRY_ONLY`: refused with 502, as Istio's `block_all` does.
    RegistryOnly,
}

/// The outbound traffic policy of a workload of `namespace` with
/// `labels`: that of the `Sidecar` that applies ([`sidecar_for`]) when it
/// writes one, else the mesh's (Istio: `SidecarScope.OutboundTrafficPolicy`
/// falls back to `MeshConfig.outboundTrafficPolicy`).
pub fn outbound_policy(
    sidecars: &[SidecarScope],
    mesh: &MeshSettings,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> OutboundTrafficPolicy {
    sidecar_for(sidecars, namespace, labels, &mesh.root_namespace)
        .and_then(|s| s.outbound_policy)
        .unwrap_or(mesh.outbound_traffic_policy)
}

/// The `egressProxy` of a workload of `namespace` with `labels`: that of
/// the `Sidecar` that applies ([`sidecar_for`]), if it writes one.
pub fn egress_proxy<'a>(
    sidecars: &'a [SidecarScope],
    mesh: &MeshSettings,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<&'a Destination> {
    sidecar_for(sidecars, namespace, labels, &mesh.root_namespace)
        .and_then(|s| s.egress_proxy.as_ref())
}
