//! The validated mesh configuration: what every module downstream of
//! `config` sees. Nothing here is a raw serde type; every value has been
//! checked, every host is canonical and every reference resolved.
//!
//! Optional fields stay `Option` when Istio gives them a default that
//! depends on context; `translate` applies the defaults (documented in
//! docs/config-reference.md) so that this model says what the user wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod authentication;
mod authorization;
mod destination_rules;
mod envoy_filter;
mod export;
mod gateway;
mod ingress;
mod locality;
mod multicluster;
mod rate_limit;
mod rollout;
mod security;
mod sidecar;
mod telemetry;

pub use authorization::{
    AuthorizationPolicy, AuthzAction, AuthzCondition, AuthzKey, AuthzOperation, AuthzRule,
    AuthzSource, AuthzValues, Cidr,
};

pub use envoy_filter::{
    ApplyTo, ClusterMatch, ConfigPatch, EnvoyFilter, FilterChainMatch, ListenerMatch, ObjectMatch,
    Operation, PatchContext, PatchValue, RouteActionMatch, RouteConfigurationMatch, RouteMatch,
    VirtualHostMatch,
};

pub use authentication::{JwksSource, JwtHeader, JwtRule, RequestAuthentication};
pub use destination_rules::{Client as RuleClient, DestinationRules, HostRules};
pub use export::VsExportTo;

pub use gateway::{
    host_matches, Gateway, GatewayHost, GatewayProtocol, GatewayServer, ServerTls, ServerTlsMode,
    TlsSource, TlsVersion,
};

pub use ingress::{addresses_overlap, shared_socket, IngressEndpoint, IngressPort, SharedSocket};
pub use locality::{
    locality_matches, Locality, LocalityDistribute, LocalityFailover, LocalityLbSetting, Topology,
    CLUSTER_LABEL, NETWORK_LABEL, REGION_LABEL, SUBZONE_LABEL, ZONE_LABEL,
};
pub use multicluster::{MultiCluster, RemoteCluster};
pub use rate_limit::{
    Limit, LimitResponse, LimitUnit, RateLimit, RateLimitMode, RateLimitRule, RateLimitService,
    RateLimitTarget, RuleMatch, SourceMatch,
};

pub use rollout::{
    AbortThresholds, CanarySelector, RolloutPolicy, DEFAULT_MAX_ERROR_RATE_INCREASE,
    DEFAULT_MIN_REQUESTS,
};

pub use security::{
    effective_mtls, ClientTls, ClientTlsMode, MeshSettings, MtlsMode, PeerAuthentication,
    DEFAULT_ROOT_NAMESPACE, DEFAULT_TRUST_DOMAIN, DEFAULT_WORKLOAD_TTL,
};

pub use sidecar::{
    effective_scope, egress_proxy, outbound_policy, sidecar_for, DefaultSidecarScope, EgressHost,
    EgressNamespace, EgressPort, EgressProtocol, OutboundTrafficPolicy, SidecarScope,
    DEFAULT_SCOPE_NAME,
};
pub use telemetry::{
    effective_telemetry, AccessLogging, CustomTag, DefaultProviders, EffectiveTelemetry,
    EffectiveTracing, ExtensionProvider, LogFormat, MeshTelemetry, ProviderKind, Telemetry,
    TracingSpec, BUILTIN_ACCESS_LOG, DEFAULT_ACCESS_LOG_PATH, DEFAULT_SAMPLING_PERCENT,
    DEFAULT_ZIPKIN_PATH,
};

/// Labels on a workload or selector (`version: v2`).
pub type Labels = BTreeMap<String, String>;

/// A canonical service hostname.
///
/// Short names are qualified with the resource's namespace: `reviews` in
/// namespace `default` becomes `reviews.default.svc.cluster.local`, so short
/// and long forms name the same service. Names with a dot that are not
/// `NAME.NAMESPACE[.svc[.cluster[.local]]]` (e.g. `api.example.com`) stay as
/// written, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Host(pub String);

/// The cluster-local DNS suffix Istio users know.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

impl Host {
    /// Canonicalises `raw` as written in a resource of `namespace`.
    pub fn canonical(raw: &str, namespace: &str) -> Host {
        let raw = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let parts: Vec<&str> = raw.split('.').collect();
        let fq = match parts.as_slice() {
            [name] => format!("{name}.{namespace}.{CLUSTER_DOMAIN}"),
            [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster"] => {
                format!("{name}.{ns}.{CLUSTER_DOMAIN}")
            }
            _ => raw,
        };
        Host(fq)
    }

    /// The service's short name and namespace, when this is a cluster-local host.
    pub fn cluster_local_parts(&self) -> Option<(&str, &str)> {
        let rest = self.0.strip_suffix(CLUSTER_DOMAIN)?.strip_suffix('.')?;
        rest.split_once('.')
    }

    /// The host as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a resource came from, for messages and debug views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `ServiceEntry`, `VirtualService`, ...
    pub kind: String,
    /// `metadata.namespace` (defaults to `default`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// 1-based line of the document's start.
    pub line: usize,
}

/// The whole validated configuration.
#[derive(Debug, Clone, Default)]
pub struct MeshConfig {
    /// Services declared by `ServiceEntry`, one per host. Shared, so that
    /// a copy of the config (`with_wildcard_rules`, once per rebuild) does
    /// not copy every service.
    pub services: Arc<BTreeMap<Host, Service>>,
    /// `WorkloadEntry` instances; `registry` joins them to services by
    /// `ServiceEntry.workloadSelector`.
    pub workload_entries: Vec<WorkloadEntry>,
    /// Sidecar (`mesh`) routing for each host; one `VirtualService` may
    /// serve several hosts.
    pub virtual_services: BTreeMap<Host, Arc<VirtualService>>,
    /// `VirtualService`s bound to one or more gateways (a VirtualService
    /// bound to gateways and `mesh` is here and in `virtual_services`),
    /// sorted by namespace and name.
    pub gateway_virtual_services: Vec<Arc<VirtualService>>,
    /// `Gateway`s, sorted by namespace and name.
    pub gateways: Vec<Arc<Gateway>>,
    /// The `DestinationRule` most proxies see for each host: the one of
    /// the service's namespace exported everywhere, else the root
    /// namespace's ([`HostRules::default_rule`]). A proxy may see another
    /// one (`exportTo`, `workloadSelector`): see `destination_rule_set`.
    pub destination_rules: BTreeMap<Host, Arc<DestinationRule>>,
    /// Every `DestinationRule`, for the per-proxy lookup
    /// ([`HostRules::visible`]).
    pub destination_rule_set: DestinationRules,
    /// Every file that was loaded, sorted.
    pub files: Vec<PathBuf>,
    /// Warnings: valid config that probably does not do what was meant
    /// (printed by `trellis validate`, logged by `serve`).
    pub warnings: Vec<super::diag::Diagnostic>,
    /// The `Mesh` resource, or its defaults.
    pub mesh: MeshSettings,
    /// Every `PeerAuthentication` (see [`effective_mtls`]).
    pub peer_authentications: Vec<PeerAuthentication>,
    /// `AuthorizationPolicy` resources, sorted by namespace and name.
    pub authorization_policies: Vec<Arc<AuthorizationPolicy>>,
    /// `RequestAuthentication` resources, sorted by namespace and name.
    pub request_authentications: Vec<Arc<RequestAuthentication>>,
    /// `Telemetry` resources, sorted by namespace and name (see
    /// [`effective_telemetry`]).
    pub telemetries: Vec<Telemetry>,
    /// `Sidecar` resources (egress scopes), sorted by namespace and name
    /// (see [`sidecar_for`]).
    pub sidecars: Vec<SidecarScope>,
    /// `RateLimit` resources, sorted by namespace and name.
    pub rate_limits: Vec<Arc<RateLimit>>,
    /// `EnvoyFilter` resources, sorted by namespace and name.
    pub envoy_filters: Vec<Arc<EnvoyFilter>>,
    /// The `RolloutPolicy`, if any: new generations then reach a canary
    /// set first (`serve::rollout`).
    pub rollout: Option<Arc<RolloutPolicy>>,
}

/// The namespace of the service `host` names: its `ServiceEntry`'s (in
/// `services`), else the one a cluster-local host names.
pub fn service_namespace<'a>(
    services: &'a BTreeMap<Host, Service>,
    host: &'a Host,
) -> Option<&'a str> {
    match services.get(host) {
        Some(s) => Some(s.namespace.as_str()),
        None => host.cluster_local_parts().map(|(_, ns)| ns),
    }
}

impl MeshConfig {
    /// This config with the `DestinationRule`s of each of `hosts` (the
    /// services a rebuild translates) resolved as istiod looks them up, so
    /// that a wildcard rule (`*.ns.svc.cluster.local`, `*`) applies to the
    /// services it covers: [`DestinationRules::resolved`]. The config
    /// itself when no rule's host is a wildcard.
    pub fn with_wildcard_rules<'a>(
        &self,
        hosts: impl IntoIterator<Item = &'a Host>,
    ) -> std::borrow::Cow<'_, MeshConfig> {
        if !self.destination_rule_set.has_wildcards() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut out = self.clone();
        let root = &self.mesh.root_namespace;
        for host in hosts {
            let namespace = service_namespace(&self.services, host);
            let Some(rules) = self.destination_rule_set.resolved(host, namespace) else {
                continue;
            };
            match rules.default_rule(root) {
                Some(rule) => out.destination_rules.insert(host.clone(), Arc::clone(rule)),
                None => out.destination_rules.remove(host),
            };
            out.destination_rule_set.by_host.insert(host.clone(), rules);
        }
        std::borrow::Cow::Owned(out)
    }
}

/// Application protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (and h2c upgraded by policy).
    Http,
    /// HTTP/2 (prior knowledge).
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Opaque TCP.
    Tcp,
    /// TLS passthrough (`HTTPS`, `TLS`).
    Tls,
}

impl Protocol {
    /// True for protocols routed by the HTTP connection manager.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port clients use.
    pub number: u16,
    /// Port name; endpoint `ports` maps refer to it.
    pub name: String,
    /// Application protocol.
    pub protocol: Protocol,
    /// Port on the endpoint when it differs from `number`.
    pub target_port: Option<u16>,
}

/// `ServiceEntry.resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Endpoints are IP addresses (or registered sidecars).
    Static,
    /// Endpoints (or the hosts themselves) are resolved by DNS in Envoy.
    Dns,
    /// One name resolved by DNS, Envoy connecting to the first address of
    /// each answer (`LOGICAL_DNS`): for names behind many rotating
    /// addresses.
    DnsRoundRobin,
    /// `NONE`: no endpoints; each request or tunnel goes to the host it
    /// names, resolved when it arrives (Envoy's dynamic forward proxy),
    /// since a sidecar without interception sees no original destination.
    None,
}

impl Resolution {
    /// True when Envoy resolves the endpoints by DNS.
    pub fn is_dns(self) -> bool {
        matches!(self, Resolution::Dns | Resolution::DnsRoundRobin)
    }
}

/// `ServiceEntry.location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Part of the mesh (default).
    MeshInternal,
    /// Outside the mesh.
    MeshExternal,
}

/// A service: declared by a `ServiceEntry` host.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Canonical host.
    pub host: Host,
    /// Namespace of the declaring resource.
    pub namespace: String,
    /// Declared ports, in order.
    pub ports: Vec<ServicePort>,
    /// How endpoint addresses resolve.
    pub resolution: Resolution,
    /// Inside or outside the mesh.
    pub location: Location,
    /// Static endpoints written in the `ServiceEntry`.
    pub endpoints: Vec<StaticEndpoint>,
    /// Labels that select `WorkloadEntry`s and sidecars into this service.
    pub workload_selector: Option<Labels>,
    /// `subjectAltNames`: identities the service's servers may present
    /// over mesh mTLS, besides its sidecars' own.
    pub subject_alt_names: Vec<String>,
    /// `addresses`: VIPs (HTTP ports: extra `Host` names; TCP and TLS
    /// ports: destination addresses on Sidecar egress port listeners) and
    /// CIDR blocks (TCP and TLS ports only).
    pub addresses: Vec<Cidr>,
    /// `exportTo`: the namespaces whose proxies see the service.
    pub export_to: VsExportTo,
    /// The declaring resource.
    pub origin: Origin,
}

impl Service {
    /// True when each request goes to the host it names (resolution NONE,
    /// or a wildcard host resolved by DNS with nothing else to resolve):
    /// its clusters are dynamic forward proxies.
    pub fn forwards_dynamically(&self) -> bool {
        self.resolution == Resolution::None
            || (self.resolution.is_dns()
                && self.host.is_wildcard()
                && self.endpoints.is_empty()
                && self.workload_selector.is_none())
    }
}

impl Host {
    /// True for a wildcard host (`*.example.com`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with('*')
    }

    /// The keys of a host-keyed map that are wildcards (`*`, `*.DOMAIN`):
    /// they sort together, before any letter or digit.
    pub fn wildcards() -> std::ops::Range<Host> {
        Host("*".to_string())..Host("+".to_string())
    }

    /// True when this wildcard host (`*.example.com`, or `*` for every
    /// host) covers `host`, another host: a name under its suffix, or a
    /// narrower wildcard (`*.api.example.com`).
    pub fn covers(&self, host: &Host) -> bool {
        match self.0.strip_prefix('*') {
            _ if self == host => false,
            Some("") => true,
            Some(suffix) => host.0.ends_with(suffix),
            None => false,
        }
    }
}

/// An endpoint written in a `ServiceEntry` or a `WorkloadEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticEndpoint {
    /// IP address or DNS name.
    pub address: String,
    /// Port name → port number overrides.
    pub ports: BTreeMap<String, u16>,
    /// Labels (subsets select on them).
    pub labels: Labels,
    /// Weight for load balancing (default 1).
    pub weight: Option<u32>,
    /// `locality` and `network` (the cluster is always the local one).
    pub topology: Topology,
}

/// A `WorkloadEntry`: a non-sidecar instance that services select by labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadEntry {
    /// The instance itself.
    pub endpoint: StaticEndpoint,
    /// `serviceAccount`, if given.
    pub service_account: Option<String>,
    /// The declaring resource.
    pub origin: Origin,
}

/// A `VirtualService`.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualService {
    /// Hosts it routes, canonical; one bound only to gateways may also
    /// have `*` and `*.SUFFIX` (kept as written, lowercase).
    pub hosts: Vec<Host>,
    /// Ordered HTTP rules; the first match wins.
    pub http: Vec<HttpRoute>,
    /// Ordered `tcp` rules; the first match wins.
    pub tcp: Vec<L4Route>,
    /// Ordered `tls` rules (each match has `sni_hosts`); the first match wins.
    pub tls: Vec<L4Route>,
    /// Gateways it binds to, as `NAMESPACE/NAME`.
    pub gateways: Vec<String>,
    /// True when it applies to sidecars (`mesh` in `gateways`, or no
    /// `gateways` at all).
    pub mesh: bool,
    /// `exportTo`: the namespaces whose proxies see it.
    pub export_to: VsExportTo,
    /// The declaring resource.
    pub origin: Origin,
}

impl VirtualService {
    /// The `gateways` of every `match` of every rule.
    fn match_gateways(&self) -> impl Iterator<Item = &String> {
        let http = (self.http.iter()).flat_map(|r| r.matches.iter().map(|m| &m.gateways));
        let l4 =
            (self.tcp.iter().chain(&self.tls)).flat_map(|r| r.matches.iter().map(|m| &m.gateways));
        http.chain(l4).flatten().flatten()
    }

    /// True when some rule may apply on sidecars: `mesh` is bound at the
    /// top level or named by a match (Istio's `getGatewayNames`).
    pub fn binds_mesh(&self) -> bool {
        self.mesh || self.match_gateways().any(|g| g == "mesh")
    }

    /// True when some rule may apply on `gateway` (`NAMESPACE/NAME`).
    pub fn binds_gateway(&self, gateway: &str) -> bool {
        self.gateways.iter().any(|g| g == gateway) || self.match_gateways().any(|g| g == gateway)
    }

    /// True when some rule may apply on some gateway.
    pub fn binds_any_gateway(&self) -> bool {
        !self.gateways.is_empty() || self.match_gateways().any(|g| g != "mesh")
    }
}

/// One `tcp` or `tls` rule of a `VirtualService`: connections, not
/// requests, are routed.
#[derive(Debug, Clone, PartialEq)]
pub struct L4Route {
    /// Any of these matches (empty: match every connection).
    pub matches: Vec<L4Match>,
    /// Weighted destinations (no `headers`: there are no requests).
    pub route: Vec<WeightedDestination>,
}

/// One `match` entry of a `tcp` or `tls` rule; all present conditions hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct L4Match {
    /// `sniHosts` (tls rules only; lowercase, `*` and `*.SUFFIX` allowed).
    pub sni_hosts: Vec<String>,
    /// `port`: the listener port the connection arrived on.
    pub port: Option<u16>,
    /// `sourceLabels`: labels the client proxy must carry.
    pub source_labels: Labels,
    /// `gateways` (`NAMESPACE/NAME` or `mesh`); `None`: the
    /// VirtualService's own.
    pub gateways: Option<Vec<String>>,
    /// `sourceNamespace`: the namespace the client proxy must be in.
    pub source_namespace: Option<String>,
}

/// One `http` rule of a `VirtualService`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    /// `name`, if given.
    pub name: Option<String>,
    /// Any of these matches (empty: match everything).
    pub matches: Vec<HttpMatch>,
    /// Where matching requests go.
    pub action: RouteAction,
    /// `rewrite`.
    pub rewrite: Option<Rewrite>,
    /// `timeout`; `None` means Istio's default (disabled).
    pub timeout: Option<Duration>,
    /// `retries`; `None` means Istio's default retry policy.
    pub retries: Option<Retries>,
    /// `fault`.
    pub fault: Option<Fault>,
    /// `headers` at the rule level.
    pub headers: Headers,
    /// `mirror` with `mirrorPercentage`, then `mirrors`, each with its
    /// own percentage.
    pub mirrors: Vec<Mirror>,
    /// `corsPolicy`.
    pub cors: Option<CorsPolicy>,
    /// Where the rule is written when that is not its VirtualService's
    /// `spec.http[i]`: a delegate's rule, or a Gateway API route's (whose
    /// rules merge into one VirtualService per host). Provenance blames it
    /// there.
    pub source: Option<Arc<RuleSource>>,
}

/// The object and field path a rule was written at (see
/// [`HttpRoute::source`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSource {
    /// The object.
    pub origin: Origin,
    /// The rule's path in it (`spec.http[2]`, `spec.rules[0].matches[1]`).
    pub path: String,
}

/// `corsPolicy`: Envoy's CORS filter answers preflights and adds the
/// `Access-Control-*` headers per route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    /// `allowOrigins` (and the deprecated `allowOrigin`, exact strings).
    pub allow_origins: Vec<StringMatch>,
    /// `allowMethods`.
    pub allow_methods: Vec<String>,
    /// `allowHeaders`.
    pub allow_headers: Vec<String>,
    /// `exposeHeaders`.
    pub expose_headers: Vec<String>,
    /// `maxAge`.
    pub max_age: Option<Duration>,
    /// `allowCredentials`.
    pub allow_credentials: Option<bool>,
    /// `unmatchedPreflights`: `Some(true)` for FORWARD, `Some(false)` for
    /// IGNORE, `None` for Istio's default (forward).
    pub forward_unmatched_preflights: Option<bool>,
}

/// A string match (`exact`, `prefix`, `regex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// RE2 full match (checked to compile).
    Regex(String),
    /// `{}`: present, whatever its value (header and query matches only).
    Present,
}

/// One entry of `match`; all present conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpMatch {
    /// `name`, if given.
    pub name: Option<String>,
    /// Path match.
    pub uri: Option<StringMatch>,
    /// A `Prefix` path match takes whole path segments only (Gateway API's
    /// `PathPrefix`: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`).
    pub path_separated_prefix: bool,
    /// Header matches by lowercase name.
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must not match.
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Method match.
    pub method: Option<StringMatch>,
    /// `scheme` (`:scheme`: `http` or `https`).
    pub scheme: Option<StringMatch>,
    /// `authority` (`:authority`, the `Host` header).
    pub authority: Option<StringMatch>,
    /// Query parameter matches.
    pub query_params: BTreeMap<String, StringMatch>,
    /// `ignoreUriCase`.
    pub ignore_uri_case: bool,
    /// `port`: the listener port (a sidecar's port for the host, a
    /// gateway's server port).
    pub port: Option<u16>,
    /// `sourceLabels`: labels the client proxy must carry.
    pub source_labels: Labels,
    /// `sourceNamespace`: the namespace the client proxy must be in.
    pub source_namespace: Option<String>,
    /// Namespaces whose client proxies skip this match: they have routes
    /// of their own for the host (Gateway API consumer routes, which
    /// replace the Service's own routes for their namespace).
    pub excluded_source_namespaces: BTreeSet<String>,
    /// `gateways` (`NAMESPACE/NAME` or `mesh`); `None`: the
    /// VirtualService's own.
    pub gateways: Option<Vec<String>>,
}

/// What a rule does with a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    /// Forward to weighted destinations (weights sum to 100; one
    /// destination alone has weight 100).
    Route(Vec<WeightedDestination>),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer directly (`directResponse`).
    DirectResponse {
        /// HTTP status.
        status: u16,
        /// Body, if any (`body.string`, or `body.bytes` decoded).
        body: Option<Vec<u8>>,
    },
}

/// A route destination with its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedDestination {
    /// Where to.
    pub destination: Destination,
    /// Percentage, 0..=100.
    pub weight: u32,
    /// `headers` on this destination.
    pub headers: Headers,
}

/// `destination`: a known service, optional subset and port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    /// Canonical host (known: a `ServiceEntry` or a sidecar-only service).
    pub host: Host,
    /// Subset name (defined by the host's `DestinationRule`).
    pub subset: Option<String>,
    /// Port number; `None` when the service has one port or sidecars only.
    pub port: Option<u16>,
}

/// `redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// New path.
    pub uri: Option<String>,
    /// New authority.
    pub authority: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// New scheme.
    pub scheme: Option<String>,
    /// Status code (default 301).
    pub redirect_code: Option<u16>,
    /// `prefixRewrite`: replaces the matched prefix.
    pub prefix_rewrite: Option<String>,
    /// `derivePort`: `Some(true)` for FROM_REQUEST_PORT, `Some(false)`
    /// for FROM_PROTOCOL_DEFAULT.
    pub derive_port: Option<bool>,
}

/// `rewrite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// Replaces the matched prefix (or the whole path for exact matches).
    pub uri: Option<String>,
    /// Replaces the authority/Host header.
    pub authority: Option<String>,
    /// `uriRegexRewrite`: an RE2 pattern and its substitution.
    pub uri_regex: Option<(String, String)>,
}

/// `retries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retries {
    /// Number of retries (0 disables retries).
    pub attempts: u32,
    /// `perTryTimeout`.
    pub per_try_timeout: Option<Duration>,
    /// Envoy `retry_on` policy names from `retryOn` (validated); `None`
    /// means Istio's default list.
    pub retry_on: Option<Vec<String>>,
    /// HTTP status codes listed in `retryOn` (they imply
    /// `retriable-status-codes`).
    pub retriable_status_codes: Vec<u32>,
    /// `retryRemoteLocalities`.
    pub retry_remote_localities: Option<bool>,
    /// `retryIgnorePreviousHosts`; `None` keeps Istio's default (true,
    /// unless the cluster hashes).
    pub retry_ignore_previous_hosts: Option<bool>,
    /// `backoff`: the base interval of Envoy's exponential back-off
    /// (`None`: Envoy's 25 ms).
    pub backoff: Option<Duration>,
}

/// `fault`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Injected delay.
    pub delay: Option<FaultDelay>,
    /// Injected abort.
    pub abort: Option<FaultAbort>,
}

/// `fault.delay`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    /// `fixedDelay`.
    pub fixed_delay: Duration,
    /// Share of requests, 0.0..=100.0 (default 100).
    pub percentage: f64,
}

/// `fault.abort`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    /// The error to return.
    pub error: AbortError,
    /// Share of requests, 0.0..=100.0 (default 100).
    pub percentage: f64,
}

/// The error a fault abort returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortError {
    /// `httpStatus`.
    Http(u16),
    /// `grpcStatus`, as the numeric gRPC code.
    Grpc(u32),
}

/// `headers`: request and response manipulation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    /// Changes to the request.
    pub request: HeaderOps,
    /// Changes to the response.
    pub response: HeaderOps,
}

/// `set`, `add`, `remove`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderOps {
    /// Overwrite.
    pub set: BTreeMap<String, String>,
    /// Append.
    pub add: BTreeMap<String, String>,
    /// Remove.
    pub remove: Vec<String>,
}

/// `mirror` and `mirrorPercentage`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// Where copies go.
    pub destination: Destination,
    /// Share of requests, 0.0..=100.0 (Istio's default 100).
    pub percentage: f64,
}

/// A `DestinationRule`.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationRule {
    /// Canonical host.
    pub host: Host,
    /// Policy for the whole host.
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets.
    pub subsets: Vec<Subset>,
    /// `exportTo`: the namespaces whose proxies may see it (a
    /// workload-selected rule: its own namespace only).
    pub export_to: VsExportTo,
    /// `workloadSelector.matchLabels`: the rule applies only to the
    /// outbound traffic of its namespace's workloads carrying these labels.
    pub workload_selector: Option<Labels>,
    /// The declaring resource.
    pub origin: Origin,
}

impl DestinationRule {
    /// Every `tls.credentialName` of the rule (host, subsets and their
    /// port settings): the credentials its clusters fetch over SDS.
    pub fn credential_names(&self) -> impl Iterator<Item = &str> {
        let top = self.traffic_policy.iter();
        let subsets = self
            .subsets
            .iter()
            .filter_map(|s| s.traffic_policy.as_ref());
        top.chain(subsets)
            .flat_map(|tp| std::iter::once(tp).chain(tp.port_level.values()))
            .filter_map(|tp| tp.tls.as_ref()?.credential_name.as_deref())
    }
}

/// A named subset of a service's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    /// Name (used in `destination.subset` and cluster names).
    pub name: String,
    /// Endpoints whose labels include all of these.
    pub labels: Labels,
    /// Policy for the subset; fields it sets override the host's.
    pub traffic_policy: Option<TrafficPolicy>,
}

/// `trafficPolicy`. Every part is optional so that subset and port
/// policies can be merged field by field over the host's (Istio's rule).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrafficPolicy {
    /// `loadBalancer` (`simple` or `consistentHash`).
    pub load_balancer: Option<LoadBalancer>,
    /// `loadBalancer.localityLbSetting`: part of the `loadBalancer` block
    /// when policies merge.
    pub locality_lb: Option<LocalityLbSetting>,
    /// `connectionPool`.
    pub connection_pool: Option<ConnectionPool>,
    /// `outlierDetection`.
    pub outlier_detection: Option<OutlierDetection>,
    /// `portLevelSettings`, by port number.
    pub port_level: BTreeMap<u16, TrafficPolicy>,
    /// `tls`; `None` means auto mTLS.
    pub tls: Option<ClientTls>,
    /// `retryBudget` (top level and subsets only: Istio's port-level
    /// settings have none).
    pub retry_budget: Option<RetryBudget>,
    /// `loadBalancer.warmup`: part of the `loadBalancer` block when
    /// policies merge.
    pub warmup: Option<Warmup>,
    /// `proxyProtocol` (top level and subsets only, as in Istio).
    pub proxy_protocol: Option<ProxyProtocolVersion>,
}

/// A retry budget: Envoy's `circuit_breakers.thresholds[].retry_budget`,
/// from a `DestinationRule`'s `retryBudget` or the `Mesh` default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// `percent`: concurrent retries as a share of active plus pending
    /// requests, 0 to 100.
    pub percent: f64,
    /// `minRetryConcurrency`: retries always allowed, whatever the share.
    pub min_retry_concurrency: u32,
    /// `budgetInterval`: count the requests started in this window instead
    /// of the active ones (`None`: active requests only).
    pub budget_interval: Option<Duration>,
}

impl Default for RetryBudget {
    /// Envoy's and Istio's defaults, for a `DestinationRule` budget: 20% and
    /// at least 3 concurrent retries.
    fn default() -> Self {
        RetryBudget {
            percent: 20.0,
            min_retry_concurrency: 3,
            budget_interval: None,
        }
    }
}

/// The `Mesh` default budget's floor of concurrent retries. Envoy's 3 is
/// below the requests a lightly loaded caller has in flight: when one
/// host of a service answers 503 (or is still picked while ejected), four
/// callers' requests failing at once need four retries, and the fourth is
/// refused (`upstream_rq_retry_overflow`) although nothing storms. Up to
/// 10 requests in flight every failure may be retried; above 50 the 20%
/// share governs, which is what bounds a storm.
pub const MESH_MIN_RETRY_CONCURRENCY: u32 = 10;

impl RetryBudget {
    /// The `Mesh` default: Envoy's 20%, at least
    /// [`MESH_MIN_RETRY_CONCURRENCY`] concurrent retries.
    pub fn mesh_default() -> Self {
        RetryBudget {
            min_retry_concurrency: MESH_MIN_RETRY_CONCURRENCY,
            ..RetryBudget::default()
        }
    }
}

/// `loadBalancer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadBalancer {
    /// `simple`.
    Simple(SimpleLb),
    /// `consistentHash`: what is hashed, and how hosts are placed.
    ConsistentHash(HashKey, HashAlgorithm),
}

/// How a consistent hash places hosts (`ringHash`, `maglev`, or the
/// deprecated top-level `minimumRingSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// Envoy's ring hash; `None` keeps Istio's minimum of 1024 entries.
    RingHash {
        /// `minimumRingSize`.
        minimum_ring_size: Option<u64>,
    },
    /// Envoy's Maglev; `None` keeps Envoy's table of 65537 entries.
    Maglev {
        /// `tableSize` (a prime).
        table_size: Option<u64>,
    },
}

/// `loadBalancer.warmup` (or the deprecated `warmupDurationSecs`): Envoy's
/// slow start, which ramps a new endpoint's share of traffic up over
/// `duration` instead of giving it a full share at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warmup {
    /// The ramp's length (Envoy's `slow_start_window`).
    pub duration: Duration,
    /// The share a new endpoint starts at, percent (Istio's default 10).
    pub minimum_percent: f64,
    /// How the ramp curves: 1 is linear, more is slower at first.
    pub aggression: f64,
}

/// `loadBalancer.consistentHash.httpCookie.attributes[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttribute {
    /// Attribute name (`SameSite`, `Secure`, ...).
    pub name: String,
    /// Attribute value; empty for a flag such as `Secure`.
    pub value: String,
}

/// `trafficPolicy.proxyProtocol.version`: the PROXY protocol header sent
/// at the start of each upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// The text header.
    V1,
    /// The binary header.
    V2,
}

/// `loadBalancer.simple`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleLb {
    /// `ROUND_ROBIN`.
    RoundRobin,
    /// `LEAST_REQUEST` (and the deprecated `LEAST_CONN`).
    LeastRequest,
    /// `RANDOM`.
    Random,
    /// `PASSTHROUGH`.
    Passthrough,
    /// `UNSPECIFIED`: Istio's default (least request).
    Unspecified,
}

/// What a consistent hash hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `httpHeaderName`.
    Header(String),
    /// `httpCookie`.
    Cookie {
        /// Cookie name.
        name: String,
        /// Path attribute.
        path: Option<String>,
        /// TTL; when set, Envoy generates the cookie.
        ttl: Option<Duration>,
        /// Attributes of a generated cookie.
        attributes: Vec<CookieAttribute>,
    },
    /// `useSourceIp`.
    SourceIp,
    /// `httpQueryParameterName`.
    QueryParameter(String),
}

/// `connectionPool`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionPool {
    /// `tcp.maxConnections`.
    pub max_connections: Option<u32>,
    /// `tcp.connectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `http.http1MaxPendingRequests`.
    pub http1_max_pending_requests: Option<u32>,
    /// `http.http2MaxRequests`.
    pub http2_max_requests: Option<u32>,
    /// `http.maxRequestsPerConnection`.
    pub max_requests_per_connection: Option<u32>,
    /// `http.maxRetries`.
    pub max_retries: Option<u32>,
    /// `http.idleTimeout`.
    pub idle_timeout: Option<Duration>,
    /// `http.h2UpgradePolicy`: `Some(true)` for UPGRADE.
    pub h2_upgrade: Option<bool>,
}

/// `outlierDetection`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutlierDetection {
    /// `consecutive5xxErrors`.
    pub consecutive_5xx_errors: Option<u32>,
    /// `consecutiveGatewayErrors`.
    pub consecutive_gateway_errors: Option<u32>,
    /// `interval`.
    pub interval: Option<Duration>,
    /// `baseEjectionTime`.
    pub base_ejection_time: Option<Duration>,
    /// `maxEjectionPercent`.
    pub max_ejection_percent: Option<u32>,
    /// `minHealthPercent`.
    pub min_health_percent: Option<u32>,
}
