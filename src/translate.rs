//! Pure translation: `MeshConfig` + service instances (+ one proxy) →
//! Envoy resources. No I/O, no tonic. Names and shapes follow istiod's
//! sidecar output so Istio users recognise them in `/config_dump`.
//!
//! [`shared`] builds what every sidecar sees (outbound clusters, their
//! endpoints, the `outbound` route configuration) once per change;
//! [`for_proxy`] adds a proxy's own listeners and inbound cluster.
//!
//! Security, all pure:
//! - `shared(&MeshConfig, &ServiceInstances) -> Shared`: outbound clusters
//!   carry auto-mTLS `transport_socket_matches` (endpoints with EDS metadata
//!   `tlsMode: istio` get mTLS with SDS `default` + `ROOTCA` and the
//!   destination's SPIFFE IDs as SANs; others plaintext), or the
//!   `DestinationRule` `tls` mode. `Shared` also keeps the mesh settings and
//!   `PeerAuthentication`s for [`for_proxy`].
//! - `for_proxy(&Shared, &Proxy, &ProxySecurity) -> ProxyResources`: the
//!   inbound listener per the proxy's `PeerAuthentication` mode (STRICT: mTLS
//!   only; PERMISSIVE: `tls_inspector` + a TLS and a plaintext chain;
//!   DISABLE: plaintext). With `ProxySecurity { mtls: false, .. }` (the
//!   default) the inbound listener is plaintext; a runtime without a CA
//!   also calls [`Shared::without_mesh_tls`] so that clusters use no mesh
//!   TLS either. `ProxySecurity::certs`, when given, becomes
//!   `ProxyResources::secrets`.
//! - `secrets(cert_chain_pem, key_pem, bundle_pem) -> Vec<XdsSecret>`: the
//!   SDS secrets `default` and `ROOTCA` (names in [`WORKLOAD_SECRET`],
//!   [`ROOT_CA_SECRET`]); a runtime may also set `ProxyResources::secrets`
//!   itself.

mod addresses;
pub mod chunked;
mod clusters;
mod cors;
mod egress;
mod endpoints;
pub mod envoy_filter;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod gateway;
mod inbound;
pub mod ingress;
pub mod jwt;
mod l4;
mod listeners;
pub mod locality;
mod passthrough;
mod policy;
pub mod provenance;
mod proxy_protocol;
pub mod ratelimit;
pub mod rbac;
mod retry;
mod route_match;
mod route_rule;
mod routes;
pub mod rules;
pub mod scope;
mod secrets;
pub mod source;
pub mod telemetry;
mod tls;
mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret as XdsSecret;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::Name;

use crate::config::model::{
    Cidr, DestinationRule, Host, MeshConfig, MeshSettings, PeerAuthentication, Protocol,
    ServicePort, VirtualService, VsExportTo,
};
use crate::registry::{Proxy, ServiceInstances, ServiceView};

pub use chunked::ChunkedList;
pub use clusters::{cluster_name, ServiceClusters, ServiceMemo};
pub use listeners::inbound_cluster_name;
pub use policy::DEFAULT_CONNECT_TIMEOUT;
pub use retry::{DEFAULT_ATTEMPTS, DEFAULT_RETRIABLE_STATUS_CODES, DEFAULT_RETRY_ON};
pub use routes::{SharedRoutes, OUTBOUND_ROUTE};
pub use secrets::{secrets, workload_secrets, WorkloadCerts, ROOT_CA_SECRET, WORKLOAD_SECRET};

/// Name of every sidecar's inbound listener.
pub const INBOUND_LISTENER: &str = "inbound";
/// Name of every sidecar's outbound listener.
pub const OUTBOUND_LISTENER: &str = "outbound";
/// The HTTP fault filter (per-route config carries a rule's `fault`).
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The CORS filter's name (routes carry its per-route `CorsPolicy`).
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// Resources every sidecar shares; built once per config or registry
/// change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shared {
    /// Outbound clusters (`outbound|PORT|SUBSET|HOST`): each service's
    /// shared with its translation in `per_service`, then the clusters no
    /// service makes (collectors, rate-limit services, passthrough).
    pub clusters: ChunkedList<XdsCluster>,
    /// Endpoints of the EDS clusters, named like their cluster (shared
    /// with `per_service` too).
    pub load_assignments: ChunkedList<ClusterLoadAssignment>,
    /// The `outbound` route configuration.
    pub routes: Vec<SharedRoutes>,
    /// Its routes that only some clients get (see [`source`]).
    pub source_routes: source::SourceRoutes,
    /// `clusters` and `load_assignments` by outbound host, for scoping.
    pub cluster_index: scope::ClusterIndex,
    /// Each service's translation with its inputs (see [`shared_from`]).
    pub per_service: clusters::ServiceMemo,
    /// The virtual services the routes were translated from.
    pub virtual_services: BTreeMap<Host, Arc<VirtualService>>,
    /// The destination rules the routes were translated from (each host's
    /// default rule).
    pub destination_rules: BTreeMap<Host, Arc<DestinationRule>>,
    /// The clusters and routes of proxies that see another rule than a
    /// host's default (`exportTo`, `workloadSelector`).
    pub rule_variants: rules::RuleVariants,
    /// Ports of every service, for per-proxy inbound settings.
    pub service_ports: BTreeMap<Host, Vec<ServicePort>>,
    /// The `Mesh` settings (trust domain, root namespace).
    pub mesh: MeshSettings,
    /// Every `PeerAuthentication`, for each proxy's inbound mode.
    pub peer_authentications: Vec<PeerAuthentication>,
    /// Every `AuthorizationPolicy`, for each proxy's inbound RBAC filters.
    pub authz: rbac::AuthzPolicies,
    /// Every `RequestAuthentication` and the fetched `jwksUri` keys, for
    /// each proxy's JWT filter; the runtime sets `jwt.fetched` after
    /// [`shared_from`].
    pub jwt: jwt::JwtInputs,
    /// Every `Telemetry`, for each proxy's access logs and tracing.
    pub telemetries: Vec<crate::config::model::Telemetry>,
    /// Every `Sidecar` (egress scopes; see [`scope`]).
    pub sidecars: Vec<crate::config::model::SidecarScope>,
    /// The namespace of every service, for `Sidecar` egress hosts.
    pub service_namespaces: BTreeMap<Host, String>,
    /// Every `Gateway`, for gateway proxies' listeners.
    pub gateways: Vec<Arc<crate::config::model::Gateway>>,
    /// VirtualServices bound to gateways.
    pub gateway_virtual_services: Vec<Arc<VirtualService>>,
    /// Their routes per server port (see [`gateway::GatewayRoutes`]).
    pub gateway_routes: gateway::GatewayRoutes,
    /// TLS credentials for `credentialName` (the runtime's
    /// `--credentials-dir`); set by the runtime after [`shared_from`].
    pub credentials: gateway::Credentials,
    /// Every outbound cluster as AUTO_PASSTHROUGH gateway servers proxy to
    /// it (see [`gateway::SniCluster`]); empty without such a server.
    pub sni_clusters: Vec<gateway::SniCluster>,
    /// The EDS clusters whose endpoints depend on the client's locality
    /// or network, by name: each proxy gets its own assignment ([`scope::outbound_view`]).
    pub locality_clusters: BTreeMap<String, Arc<locality::LocalityCluster>>,
    /// The `failoverPriority` label keys those clusters read of a client,
    /// sorted and unique: part of every proxy's [`scope::ScopeKey`].
    pub locality_keys: Vec<String>,
    /// Every network's east-west gateways, through which clients on other
    /// networks reach its endpoints ([`locality::network`]).
    pub network_gateways: crate::registry::NetworkGateways,
    /// Every `RateLimit`, for the rate-limit filters of the proxies they
    /// target (see [`ratelimit`]).
    pub rate_limits: Vec<Arc<crate::config::model::RateLimit>>,
    /// Every `EnvoyFilter` (see [`envoy_filter`]).
    pub envoy_filters: Vec<Arc<crate::config::model::EnvoyFilter>>,
    /// The `addresses` of the services that have some: extra `Host` names
    /// of their HTTP ports, destination matches on egress port listeners.
    pub service_addresses: BTreeMap<Host, Vec<Cidr>>,
    /// The `exportTo` of the services exported to some namespaces only.
    pub service_exports: BTreeMap<Host, VsExportTo>,
    /// The services that forward to the host a request names
    /// (`clusters::forwards_dynamically`): with any, outbound listeners
    /// carry the dynamic forward proxy filter whatever their policy.
    pub dynamic_hosts: BTreeSet<Host>,
}

impl Shared {
    /// For a runtime without a CA: proxies get no certificates, so the
    /// outbound clusters lose auto mTLS and ISTIO_MUTUAL (TLS from files
    /// stays). Call once per build, before [`for_proxy`] with
    /// `ProxySecurity { mtls: false, .. }`.
    pub fn without_mesh_tls(&mut self) {
        // The clusters no longer equal their per-service translation.
        self.per_service.clear();
        self.clusters.map_each(strip_mesh_tls);
        self.rule_variants.map_clusters(strip_mesh_tls);
    }
}

/// `c` without auto mTLS and ISTIO_MUTUAL (see [`Shared::without_mesh_tls`]).
fn strip_mesh_tls(c: &mut XdsCluster) {
    // A PROXY protocol header stays, over plaintext.
    let header = (c.transport_socket.iter())
        .chain(
            c.transport_socket_matches
                .iter()
                .flat_map(|m| &m.transport_socket),
        )
        .find_map(proxy_protocol::version_of);
    c.transport_socket_matches.clear();
    if c.transport_socket
        .as_ref()
        .is_some_and(tls::uses_mesh_secrets)
    {
        c.transport_socket = None;
    }
    if let (None, Some(v)) = (&c.transport_socket, header) {
        proxy_protocol::wrap(c, v);
    }
}

/// What the runtime knows about one proxy's security.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxySecurity {
    /// True when the mesh CA serves this proxy certificates: the inbound
    /// listener uses mTLS per `PeerAuthentication`. False: plaintext
    /// (see [`Shared::without_mesh_tls`] for the clusters).
    pub mtls: bool,
    /// The proxy's certificate, key and trust bundle; `Some` puts the
    /// `default` and `ROOTCA` secrets into [`ProxyResources::secrets`].
    /// Shared with the CA's cache, so a rebuild neither copies the PEMs
    /// nor compares them byte by byte (`Arc` equality of an `Eq` type
    /// checks the pointer first).
    pub certs: Option<Arc<WorkloadCerts>>,
}

/// Everything one sidecar gets. `Debug` names secrets, never their keys.
#[derive(Clone, Default, PartialEq)]
pub struct ProxyResources {
    /// Shared outbound clusters plus the proxy's inbound cluster.
    pub clusters: Vec<XdsCluster>,
    /// Endpoints of the EDS clusters.
    pub load_assignments: Vec<ClusterLoadAssignment>,
    /// `inbound` and `outbound` listeners.
    pub listeners: Vec<Listener>,
    /// The `outbound` route configuration.
    pub routes: Vec<RouteConfiguration>,
    /// SDS secrets (`default`, `ROOTCA`) of this proxy only.
    pub secrets: Vec<XdsSecret>,
    /// What `EnvoyFilter` patches did to these resources.
    pub envoy_filters: envoy_filter::Report,
}

impl std::fmt::Debug for ProxyResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets: Vec<&str> = self.secrets.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("ProxyResources")
            .field("clusters", &self.clusters)
            .field("load_assignments", &self.load_assignments)
            .field("listeners", &self.listeners)
            .field("routes", &self.routes)
            .field("secrets", &secrets)
            .field("envoy_filters", &self.envoy_filters)
            .finish()
    }
}

/// Builds the shared resources for every service.
pub fn shared(mesh: &MeshConfig, services: &ServiceInstances) -> Shared {
    shared_from(mesh, services, None)
}

/// [`shared`], reusing from `previous` (the last change's result) the
/// translation of every service whose inputs did not change, and the
/// outbound routes when no route input (virtual services, destination
/// rules, service hosts and ports) changed: a change re-translates only
/// what it affects. The result equals `shared(mesh, services)`.
pub fn shared_from(
    mesh: &MeshConfig,
    services: &ServiceInstances,
    previous: Option<&Shared>,
) -> Shared {
    // Sidecars add services as they register: wildcard rules are matched
    // to the services of this translation.
    let mesh = &*mesh.with_wildcard_rules(services.services.keys());
    let views: Vec<&Arc<ServiceView>> = services.services.values().collect();
    let empty = clusters::ServiceMemo::new();
    let memo = clusters::per_service(mesh, &views, previous.map_or(&empty, |p| &p.per_service));
    let (mut clusters, load_assignments) = clusters::flatten(&memo);
    let mut others = telemetry::collector_clusters(&mesh.mesh, &clusters);
    others.extend(ratelimit::service_clusters(
        &mesh.rate_limits,
        &mesh.mesh.trust_domain,
    ));
    // Sidecars whose policy is ALLOW_ANY route unknown hosts to it; the
    // others' views leave it out (`scope::outbound_view`).
    others.push(passthrough::cluster());
    clusters.push_chunk(Arc::new(others));
    let service_ports: BTreeMap<Host, Vec<ServicePort>> = views
        .iter()
        .map(|v| (v.host.clone(), v.ports.clone()))
        .collect();
    let service_addresses: BTreeMap<Host, Vec<Cidr>> = (mesh.services.values())
        .filter(|s| !s.addresses.is_empty())
        .map(|s| (s.host.clone(), s.addresses.clone()))
        .collect();
    let same_routes = previous.filter(|p| {
        p.service_ports == service_ports
            && p.service_addresses == service_addresses
            && p.virtual_services == mesh.virtual_services
            && p.destination_rules == mesh.destination_rules
    });
    let (routes, source_routes) = match same_routes {
        Some(p) => (p.routes.clone(), p.source_routes.clone()),
        None => {
            let last = previous.and_then(previous_routes);
            let ctx = routes::Ctx::new(mesh, services);
            let (config, sources) = routes::outbound_with_sources(ctx, last);
            (vec![config], sources)
        }
    };
    let locality_clusters: BTreeMap<_, _> = (memo.values())
        .flat_map(|s| s.localities())
        .map(|l| (l.name.clone(), Arc::clone(l)))
        .collect();
    let empty_variants = rules::RuleVariants::default();
    let last_variants = previous.map_or(&empty_variants, |p| &p.rule_variants);
    let mut rule_variants = rules::RuleVariants::new(mesh, services, last_variants);
    let ctx = routes::Ctx::new(mesh, services);
    let gateway_routes = gateway::all_routes(ctx);
    rule_variants.gateway_alternatives(ctx, &gateway_routes);
    let variant_localities = (rule_variants.hosts.iter())
        .flat_map(|c| &c.variants)
        .flat_map(|v| v.1.localities());
    let locality_keys: BTreeSet<String> = (locality_clusters.values())
        .chain(variant_localities)
        .flat_map(|c| c.client_keys().map(str::to_string))
        .collect();
    let mut shared = Shared {
        cluster_index: scope::ClusterIndex::new(&clusters, &load_assignments),
        clusters,
        load_assignments,
        routes,
        source_routes,
        per_service: memo,
        virtual_services: mesh.virtual_services.clone(),
        destination_rules: mesh.destination_rules.clone(),
        rule_variants,
        service_ports,
        mesh: mesh.mesh.clone(),
        peer_authentications: mesh.peer_authentications.clone(),
        authz: rbac::AuthzPolicies::from_mesh(mesh),
        jwt: jwt::JwtInputs {
            root_namespace: mesh.mesh.root_namespace.clone(),
            resources: mesh.request_authentications.clone(),
            fetched: Default::default(),
        },
        telemetries: mesh.telemetries.clone(),
        sidecars: mesh.sidecars.clone(),
        service_namespaces: views
            .iter()
            .map(|v| (v.host.clone(), v.namespace.clone()))
            .collect(),
        gateways: mesh.gateways.clone(),
        gateway_virtual_services: mesh.gateway_virtual_services.clone(),
        gateway_routes,
        credentials: Default::default(),
        sni_clusters: Vec::new(),
        locality_clusters,
        locality_keys: locality_keys.into_iter().collect(),
        network_gateways: services.network_gateways.clone(),
        rate_limits: mesh.rate_limits.clone(),
        envoy_filters: mesh.envoy_filters.clone(),
        service_addresses,
        service_exports: (mesh.services.values())
            .filter(|s| s.export_to.is_restricted())
            .map(|s| (s.host.clone(), s.export_to.clone()))
            .collect(),
        dynamic_hosts: (views.iter())
            .filter(|v| clusters::forwards_dynamically(v))
            .map(|v| v.host.clone())
            .collect(),
    };
    shared.sni_clusters = gateway::sni_clusters(&shared);
    shared
}

/// The last build's outbound routes and their inputs, for translating
/// again only the virtual hosts whose inputs changed.
fn previous_routes(p: &Shared) -> Option<routes::Previous<'_>> {
    let config = (p.routes.iter()).find(|r| r.name() == routes::OUTBOUND_ROUTE)?;
    Some(routes::Previous {
        config,
        sources: &p.source_routes,
        virtual_services: &p.virtual_services,
        destination_rules: &p.destination_rules,
        service_ports: &p.service_ports,
        service_addresses: &p.service_addresses,
    })
}

/// What is one proxy's own: its inbound cluster, listeners and secrets.
/// The rest of its view is shared by every proxy of its
/// [`scope::ScopeKey`] ([`scope::outbound_view`]).
#[derive(Clone, PartialEq)]
pub struct OwnResources {
    /// `inbound|APP_PORT||`; `None` for a gateway (it has no app).
    pub inbound_cluster: Option<XdsCluster>,
    /// A gateway's AUTO_PASSTHROUGH clusters (`outbound_.PORT_.SUBSET_.HOST`);
    /// a sidecar's inbound clusters past `inbound_cluster` (one per
    /// `Sidecar` ingress port).
    pub gateway_clusters: Vec<XdsCluster>,
    /// `inbound` and `outbound` listeners, or a gateway's server listeners.
    pub listeners: Vec<Listener>,
    /// A gateway's `http.PORT` route configurations (a sidecar's routes
    /// are shared).
    pub routes: Vec<RouteConfiguration>,
    /// SDS secrets (`default`, `ROOTCA`, a gateway's server certificates).
    pub secrets: Vec<XdsSecret>,
    /// A gateway's servers, or a sidecar's ingress ports, left out:
    /// `(resource, server or entry index, why)`.
    pub skipped: Vec<(String, usize, String)>,
    /// What `EnvoyFilter` patches did to these resources.
    pub envoy_filters: envoy_filter::Report,
}

/// One proxy's own resources. They depend on the proxy, its security and
/// the per-proxy inputs of `shared` ([`Shared::same_proxy_inputs`]), not
/// on clusters, endpoints or routes.
pub fn proxy_own(shared: &Shared, proxy: &Proxy, security: &ProxySecurity) -> OwnResources {
    let mut own = translated_own(shared, proxy, security);
    let filters =
        envoy_filter::applicable(&shared.envoy_filters, &shared.mesh.root_namespace, proxy);
    let ports = envoy_filter::service_ports(shared, proxy);
    let mut patcher = envoy_filter::Patcher::new(&filters, proxy, &ports);
    envoy_filter::patch_listeners(&mut patcher, &mut own.listeners);
    envoy_filter::patch_route_configurations(&mut patcher, &mut own.routes);
    let service = Host::canonical(&proxy.service, &proxy.namespace);
    let mut clusters: Vec<XdsCluster> = own.inbound_cluster.take().into_iter().collect();
    clusters.append(&mut own.gateway_clusters);
    envoy_filter::patch_clusters(&mut patcher, &mut clusters, service.as_str(), false);
    let inbound = clusters.iter().position(|c| c.name.starts_with("inbound|"));
    own.inbound_cluster = inbound.map(|i| clusters.remove(i));
    own.gateway_clusters = clusters;
    own.envoy_filters = patcher.report;
    own
}

/// A proxy's own resources before `EnvoyFilter` patches.
fn translated_own(shared: &Shared, proxy: &Proxy, security: &ProxySecurity) -> OwnResources {
    let workload = || {
        security
            .certs
            .as_deref()
            .map(workload_secrets)
            .unwrap_or_default()
    };
    if let Some(node) = &proxy.gateway {
        let gw = gateway::resources(shared, proxy, node, security.mtls);
        let mut secrets = workload();
        secrets.extend(gw.secrets);
        client_credential_secrets(shared, proxy, &mut secrets);
        return OwnResources {
            inbound_cluster: None,
            gateway_clusters: gw.clusters,
            listeners: gw.listeners,
            routes: gw.routes,
            secrets,
            skipped: gw.skipped,
            envoy_filters: Default::default(),
        };
    }
    let ingress = ingress::sidecar_with_ingress(shared, proxy);
    let mut taken = addresses::Taken::sidecar(proxy, ingress.is_none());
    let mut inbound = sidecar_inbound(shared, proxy, security, ingress, &mut taken);
    let first = (!inbound.clusters.is_empty()).then(|| inbound.clusters.remove(0));
    let egress = egress::listeners(shared, proxy, &mut taken);
    inbound.skipped.extend(egress.skipped);
    OwnResources {
        inbound_cluster: first,
        // A sidecar's inbound clusters past the first (ingress listeners).
        gateway_clusters: inbound.clusters,
        listeners: (inbound.listeners.into_iter())
            .chain([listeners::outbound(shared, proxy)])
            .chain(egress.listeners)
            .collect(),
        routes: Vec::new(),
        secrets: {
            let mut secrets = workload();
            secrets.extend(inbound.secrets);
            client_credential_secrets(shared, proxy, &mut secrets);
            secrets
        },
        skipped: inbound.skipped,
        envoy_filters: Default::default(),
    }
}

/// A sidecar's inbound listeners and clusters: those of its Sidecar's
/// `ingress` when it has any (Istio then builds no other inbound
/// listener), else the one listener on its inbound port to the app.
fn sidecar_inbound(
    shared: &Shared,
    proxy: &Proxy,
    security: &ProxySecurity,
    ingress: Option<&crate::config::model::SidecarScope>,
    taken: &mut addresses::Taken,
) -> ingress::Built {
    if let Some(sc) = ingress {
        return ingress::build(shared, proxy, security, sc, taken);
    }
    // The app speaks HTTP/2 when its service's port says so (a sidecar
    // fronts one app port).
    let h2 = matches!(
        inbound::app_protocol(shared, proxy),
        Protocol::Http2 | Protocol::Grpc
    );
    let root = &shared.mesh.root_namespace;
    let pool = (crate::config::model::sidecar_for(
        &shared.sidecars,
        &proxy.namespace,
        &proxy.labels,
        root,
    ))
    .and_then(|s| s.inbound_pool.clone())
    .unwrap_or_default();
    ingress::Built {
        listeners: vec![listeners::inbound(shared, proxy, security)],
        clusters: vec![listeners::inbound_cluster(proxy, h2, &pool)],
        ..Default::default()
    }
}

/// The names of every `DestinationRule` `credentialName`.
fn client_credential_names(shared: &Shared) -> BTreeSet<&str> {
    (shared.destination_rules.values())
        .chain(shared.rule_variants.rules())
        .flat_map(|dr| dr.credential_names())
        .collect()
}

/// Adds to `secrets` the `credentialName` certificates of the proxy's own
/// namespace that `DestinationRule`s name (Istio serves a workload the
/// secrets of its namespace only). A proxy fetches over SDS only the
/// names its clusters use, so the others are never sent. A missing
/// credential leaves its clusters warming, as in Istio; `trellis validate
/// --credentials-dir` reports it.
fn client_credential_secrets(shared: &Shared, proxy: &Proxy, secrets: &mut Vec<XdsSecret>) {
    for name in client_credential_names(shared) {
        let key = (proxy.namespace.clone(), name.to_string());
        let Some(cred) = shared.credentials.get(&key) else {
            continue;
        };
        for s in gateway::client_secrets(name, cred) {
            // A gateway may serve the same credential as a server.
            if !secrets.iter().any(|have| have.name == s.name) {
                secrets.push(s);
            }
        }
    }
}

impl Shared {
    /// True when `other` has the same inputs to [`proxy_own`]: everything
    /// but clusters, endpoints, routes and scopes.
    pub fn same_proxy_inputs(&self, other: &Shared) -> bool {
        self.service_ports == other.service_ports
            && self.mesh == other.mesh
            && self.peer_authentications == other.peer_authentications
            && self.authz == other.authz
            && self.telemetries == other.telemetries
            && self.gateways == other.gateways
            && self.gateway_virtual_services == other.gateway_virtual_services
            && self.gateway_routes == other.gateway_routes
            && self.rule_variants.same_gateway_routes(&other.rule_variants)
            && self.l4_virtual_services().eq(other.l4_virtual_services())
            && self.sidecars == other.sidecars
            && self.service_namespaces == other.service_namespaces
            && self.credentials == other.credentials
            && client_credential_names(self) == client_credential_names(other)
            && self.jwt == other.jwt
            && self.sni_clusters == other.sni_clusters
            // An AUTO_PASSTHROUGH gateway proxies to the clusters of the
            // rules it sees (`gateway::sni`).
            && (self.sni_clusters.is_empty() || self.rule_variants.hosts == other.rule_variants.hosts)
            && self.rate_limits == other.rate_limits
            && self.envoy_filters == other.envoy_filters
            && self.service_addresses == other.service_addresses
            && self.service_exports == other.service_exports
            && self.dynamic_hosts == other.dynamic_hosts
    }
}

impl Shared {
    /// The mesh VirtualServices with `tcp` or `tls` rules: a sidecar's
    /// egress listeners depend on them, not on the HTTP-only ones (so an
    /// HTTP weight change re-translates no proxy's own listeners).
    fn l4_virtual_services(&self) -> impl Iterator<Item = (&Host, &Arc<VirtualService>)> {
        (self.virtual_services.iter()).filter(|(_, v)| !v.tcp.is_empty() || !v.tls.is_empty())
    }
}

/// One proxy's view: the shared resources in its scope plus its own.
pub fn for_proxy(shared: &Shared, proxy: &Proxy, security: &ProxySecurity) -> ProxyResources {
    let view = scope::outbound_view(shared, proxy);
    let own = proxy_own(shared, proxy, security);
    let shared_clusters = view.clusters.into_iter().chain(view.varied_clusters);
    let mut clusters: Vec<XdsCluster> = shared_clusters.cloned().collect();
    let mut view_routes: Vec<RouteConfiguration> = view
        .routes
        .iter()
        .map(scope::RouteView::to_config)
        .collect();
    let mut report = patch_shared_view(shared, proxy, &mut clusters, &mut view_routes);
    report.extend(own.envoy_filters);
    let mut load_assignments: Vec<ClusterLoadAssignment> = (view.load_assignments.into_iter())
        .chain(view.varied_assignments)
        .cloned()
        .collect();
    load_assignments.extend(view.localized);
    clusters.extend(own.inbound_cluster);
    clusters.extend(own.gateway_clusters);
    // A gateway routes with its own `http.PORT` configurations only.
    let routes = match proxy.gateway {
        Some(_) => own.routes,
        None => view_routes,
    };
    ProxyResources {
        clusters,
        load_assignments,
        listeners: own.listeners,
        routes,
        secrets: own.secrets,
        envoy_filters: report,
    }
}

/// Applies `proxy`'s `EnvoyFilter` patches to the resources it shares
/// with the proxies of its [`scope::ScopeKey`]: outbound clusters (and
/// added ones) and, for a sidecar, the `outbound` routes.
pub fn patch_shared_view(
    shared: &Shared,
    proxy: &Proxy,
    clusters: &mut Vec<XdsCluster>,
    routes: &mut [RouteConfiguration],
) -> envoy_filter::Report {
    let filters =
        envoy_filter::applicable(&shared.envoy_filters, &shared.mesh.root_namespace, proxy);
    let ports = envoy_filter::service_ports(shared, proxy);
    let mut patcher = envoy_filter::Patcher::new(&filters, proxy, &ports);
    let service = Host::canonical(&proxy.service, &proxy.namespace);
    envoy_filter::patch_clusters(&mut patcher, clusters, service.as_str(), true);
    if proxy.gateway.is_none() {
        envoy_filter::patch_route_configurations(&mut patcher, routes);
    }
    patcher.report
}

/// One packed resource with its type URL and name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedResource {
    /// Full type URL (`type.googleapis.com/envoy.config.cluster.v3.Cluster`).
    pub type_url: String,
    /// Resource name.
    pub name: String,
    /// The packed resource.
    pub resource: Any,
}

impl ProxyResources {
    /// Every resource packed, sorted by type URL then name.
    pub fn packed(&self) -> Vec<NamedResource> {
        let mut out = Vec::new();
        out.extend(self.clusters.iter().map(|c| packed(&c.name, c)));
        out.extend(
            self.load_assignments
                .iter()
                .map(|c| packed(&c.cluster_name, c)),
        );
        out.extend(self.listeners.iter().map(|l| packed(&l.name, l)));
        out.extend(self.routes.iter().map(|r| packed(&r.name, r)));
        out.extend(self.secrets.iter().map(|s| packed(&s.name, s)));
        out.sort_by(|a, b| (&a.type_url, &a.name).cmp(&(&b.type_url, &b.name)));
        out
    }
}

fn packed<M: prost::Message + Name + Clone>(name: &str, msg: &M) -> NamedResource {
    NamedResource {
        type_url: M::type_url(),
        name: name.to_string(),
        resource: pack_any(msg.clone()),
    }
}

#[cfg(test)]
mod tests;
