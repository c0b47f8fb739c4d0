//! Security settings of the validated model: the `Mesh` resource,
//! `PeerAuthentication` and `DestinationRule` client TLS.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Labels, Origin};

/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Istio's default root namespace: mesh-wide policies live there.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
/// Default lifetime of workload certificates (Istio's 24 h).
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(24 * 3600);

/// The `trellis.dev/v1alpha1` `Mesh` resource (at most one), with
/// defaults filled in when there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshSettings {
    /// `trustDomain`: the authority of every SPIFFE ID.
    pub trust_domain: String,
    /// `rootNamespace`: where mesh-wide `PeerAuthentication` and
    /// `AuthorizationPolicy` live.
    pub root_namespace: String,
    /// `certificates.workloadTTL`: lifetime of workload certificates.
    pub workload_ttl: Duration,
    /// The declaring resource; `None` for the defaults.
    pub origin: Option<Origin>,
    /// `extensionProviders` and `defaultProviders` (access logs on).
    pub telemetry: super::MeshTelemetry,
    /// `defaultSidecarScope`: what a sidecar reaches when no `Sidecar`
    /// applies to it (see [`super::effective_scope`]).
    pub default_sidecar_scope: super::DefaultSidecarScope,
    /// `outboundTrafficPolicy.mode`: what sidecars do with hosts not in
    /// the registry unless their `Sidecar` says otherwise.
    pub outbound_traffic_policy: super::OutboundTrafficPolicy,
    /// `multiCluster`: this cluster and the remote clusters it watches.
    pub multi_cluster: super::MultiCluster,
    /// `defaultRetryBudget`: the budget of every outbound cluster whose
    /// `DestinationRule` sets neither `retryBudget` nor `maxRetries`;
    /// `None` when disabled. [`super::RetryBudget::mesh_default`] unless set.
    pub default_retry_budget: Option<super::RetryBudget>,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
            workload_ttl: DEFAULT_WORKLOAD_TTL,
            origin: None,
            telemetry: Default::default(),
            default_sidecar_scope: Default::default(),
            outbound_traffic_policy: Default::default(),
            multi_cluster: Default::default(),
            default_retry_budget: Some(super::RetryBudget::mesh_default()),
        }
    }
}

/// `PeerAuthentication` mTLS mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum MtlsMode {
    /// `UNSET`: inherit from the parent scope (mesh default PERMISSIVE).
    #[default]
    Unset,
    /// `DISABLE`: plaintext only.
    Disable,
    /// `PERMISSIVE`: mTLS and plaintext on the same port.
    Permissive,
    /// `STRICT`: mTLS only.
    Strict,
}

/// A `PeerAuthentication`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerAuthentication {
    /// `selector.matchLabels`; `None` for a namespace-wide (or, in the
    /// root namespace, mesh-wide) policy.
    pub selector: Option<Labels>,
    /// `mtls.mode` (`Unset` when absent).
    pub mode: MtlsMode,
    /// `portLevelMtls` by workload port (only with a selector).
    pub port_level: BTreeMap<u16, MtlsMode>,
    /// The declaring resource (its namespace is the policy's scope).
    pub origin: Origin,
}

/// The inbound mTLS mode of one workload port, by Istio's precedence:
/// workload (selector, port level first) > namespace > mesh (root
/// namespace) > PERMISSIVE. `UNSET` at one level defers to the next.
/// Among several matching selector policies the oldest wins in Istio;
/// Trellis takes the first by namespace/name.
pub fn effective_mtls(
    policies: &[PeerAuthentication],
    root_namespace: &str,
    namespace: &str,
    labels: &Labels,
    port: u16,
) -> MtlsMode {
    let mut sorted: Vec<&PeerAuthentication> = policies.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.origin.namespace, &a.origin.name).cmp(&(&b.origin.namespace, &b.origin.name))
    });
    let workload = sorted.iter().find(|p| {
        p.origin.namespace == namespace
            && p.selector
                .as_ref()
                .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    });
    let in_ns = |ns: &str| {
        sorted
            .iter()
            .find(|p| p.origin.namespace == ns && p.selector.is_none())
            .map(|p| p.mode)
    };
    let levels = [
        workload.and_then(|p| p.port_level.get(&port).copied()),
        workload.map(|p| p.mode),
        in_ns(namespace),
        in_ns(root_namespace),
    ];
    levels
        .into_iter()
        .flatten()
        .find(|m| *m != MtlsMode::Unset)
        .unwrap_or(MtlsMode::Permissive)
}

/// `ClientTLSSettings.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTlsMode {
    /// `DISABLE`: plaintext.
    Disable,
    /// `SIMPLE`: TLS, the server is verified.
    Simple,
    /// `MUTUAL`: TLS with a client certificate from files.
    Mutual,
    /// `ISTIO_MUTUAL`: mTLS with the mesh's workload certificate.
    IstioMutual,
}

/// `trafficPolicy.tls` (`ClientTLSSettings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// `mode`.
    pub mode: ClientTlsMode,
    /// `clientCertificate` (file path; MUTUAL).
    pub client_certificate: Option<String>,
    /// `privateKey` (file path; MUTUAL).
    pub private_key: Option<String>,
    /// `caCertificates` (file path; SIMPLE, MUTUAL).
    pub ca_certificates: Option<String>,
    /// `sni`.
    pub sni: Option<String>,
    /// `subjectAltNames`: the server's certificate must carry one.
    pub subject_alt_names: Vec<String>,
    /// `insecureSkipVerify`: no CA or SAN verification.
    pub insecure_skip_verify: bool,
    /// `credentialName` (SIMPLE, MUTUAL): the client certificate and CA
    /// from the control plane's `--credentials-dir`, in the proxy's own
    /// namespace, served over SDS instead of files on the proxy's host.
    pub credential_name: Option<String>,
}
