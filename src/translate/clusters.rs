//! Outbound clusters: one per service port (`outbound|PORT||HOST`) and one
//! per `DestinationRule` subset (`outbound|PORT|SUBSET|HOST`), as istiod
//! builds them (`pilot/pkg/networking/core/cluster_builder.go`).

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster as XdsCluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use super::chunked::ChunkedList;
use super::endpoints::{load_assignment, selected};
use super::locality::{self, LocalityCluster, LocalityRule};
use super::policy::{self, effective, Policy};
use super::tls;
use super::util::{ads, zero_duration};
use crate::config::model::{
    ClientTls, ClientTlsMode, DestinationRule, Host, Location, MeshConfig, Resolution, RetryBudget,
    ServicePort, Subset,
};
use crate::registry::ServiceView;

/// Istio's outbound cluster name: `outbound|PORT|SUBSET|HOST`.
pub fn cluster_name(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// A cluster of one host outside the mesh's registry (a telemetry collector,
/// the rate-limit service): static for an IP, strict DNS for a name, with
/// the default connection pool; `h2` for gRPC.
pub(super) fn single_host(name: String, host: &str, port: u16, h2: bool) -> XdsCluster {
    let kind = match host.parse::<std::net::IpAddr>() {
        Ok(_) => cluster::DiscoveryType::Static,
        Err(_) => cluster::DiscoveryType::StrictDns,
    };
    let instance = crate::registry::Instance {
        address: host.to_string(),
        port,
        service_port: port,
        labels: Default::default(),
        weight: 1,
        sidecar: false,
        identity: None,
        mtls: false,
        topology: Default::default(),
    };
    let mut c = XdsCluster {
        load_assignment: Some(load_assignment(&name, &[instance], port, None)),
        name,
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(kind as i32)),
        ..Default::default()
    };
    let pool = crate::config::model::ConnectionPool::default();
    policy::apply_connection_pool(&mut c, &pool);
    policy::set_http_options(&mut c, &pool, h2);
    c
}

/// Clusters of every service, and the load assignments of those that use
/// EDS. Deterministic order: by host, port, then subset as declared.
#[cfg(test)]
pub fn outbound(
    mesh: &MeshConfig,
    services: &[&Arc<ServiceView>],
) -> (Vec<XdsCluster>, Vec<ClusterLoadAssignment>) {
    let (clusters, assignments) = flatten(&per_service(mesh, services, &ServiceMemo::new()));
    (
        clusters.iter().cloned().collect(),
        assignments.iter().cloned().collect(),
    )
}

/// One service's clusters and load assignments, with the inputs they were
/// translated from: a later change that leaves those inputs alone reuses
/// them instead of translating the service again.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceClusters {
    /// The view it was made from, shared with the join that made it.
    view: Arc<ServiceView>,
    dr: Option<Arc<DestinationRule>>,
    trust_domain: String,
    /// The mesh's default retry budget the clusters were built with.
    default_budget: Option<RetryBudget>,
    /// By port, then subset as declared. Shared with the translation it
    /// came from when only the service's endpoints changed.
    clusters: Arc<Vec<XdsCluster>>,
    /// Of the EDS clusters; shared like `clusters`, with every list of
    /// the shared assignments ([`flatten`]).
    assignments: Arc<Vec<ClusterLoadAssignment>>,
    /// The EDS clusters whose endpoints each client sees its own way.
    localities: Vec<Arc<LocalityCluster>>,
}

impl ServiceClusters {
    /// The service's clusters, by port then subset.
    pub fn clusters(&self) -> &[XdsCluster] {
        &self.clusters
    }

    /// The load assignments of its EDS clusters.
    pub fn assignments(&self) -> &[ClusterLoadAssignment] {
        &self.assignments
    }

    /// Its clusters balanced by the client's locality.
    pub fn localities(&self) -> &[Arc<LocalityCluster>] {
        &self.localities
    }

    /// The rule the clusters were made with.
    pub fn rule(&self) -> Option<&Arc<DestinationRule>> {
        self.dr.as_ref()
    }

    /// The same translation with `f` applied to every cluster.
    pub(super) fn map_clusters(&self, f: impl Fn(&mut XdsCluster)) -> ServiceClusters {
        let mut clusters = self.clusters.as_ref().clone();
        clusters.iter_mut().for_each(f);
        ServiceClusters {
            clusters: Arc::new(clusters),
            ..self.clone()
        }
    }

    /// True when `other` has the very clusters of `self` (reused, not
    /// translated again): their encodings can be reused too.
    pub fn same_clusters(&self, other: &ServiceClusters) -> bool {
        Arc::ptr_eq(&self.clusters, &other.clusters)
    }

    /// The same clusters with the load assignments of `view`, when nothing
    /// the clusters are made of changed: an EDS service whose view differs
    /// only in its instances, with the same workload identities (the
    /// clusters' SANs). Endpoint churn then costs only its assignments.
    fn with_endpoints(&self, view: &Arc<ServiceView>) -> Option<ServiceClusters> {
        // Exhaustive, so a field added to the view must be classed here.
        let ServiceView {
            host,
            namespace,
            ports,
            resolution,
            location,
            instances: _,
            subject_alt_names,
        } = &*self.view;
        let same_service = view.resolution == Resolution::Static
            && *host == view.host
            && *namespace == view.namespace
            && *ports == view.ports
            && *resolution == view.resolution
            && *location == view.location
            && *subject_alt_names == view.subject_alt_names;
        let same_ids =
            || spiffe_ids(&self.view, &self.trust_domain) == spiffe_ids(view, &self.trust_domain);
        let same_mtls = has_mtls_endpoint(&self.view) == has_mtls_endpoint(view);
        if !(same_service && same_mtls && same_ids()) {
            return None;
        }
        let rule = self.dr.as_deref();
        let mut assignments = Vec::with_capacity(self.clusters.len());
        let mut localities = Vec::new();
        // The clusters were made one per port and subset in this order, and
        // each is named `cluster_name` of them: their names need not be
        // formatted again.
        let names = self.clusters.iter().map(|c| c.name.as_str());
        for ((port, subset), name) in port_subsets(view, rule).zip(names) {
            let policy = effective(rule, port.number, subset);
            let (cla, local, _) = endpoints(view, port, &policy, subset, name);
            assignments.push(cla);
            localities.extend(local.map(Arc::new));
        }
        // Kept until the service changes; pushes leave room for four.
        assignments.shrink_to_fit();
        Some(ServiceClusters {
            view: Arc::clone(view),
            dr: self.dr.clone(),
            trust_domain: self.trust_domain.clone(),
            default_budget: self.default_budget,
            clusters: Arc::clone(&self.clusters),
            assignments: Arc::new(assignments),
            localities,
        })
    }
}

/// Every service's [`ServiceClusters`], by host.
pub type ServiceMemo = BTreeMap<Host, Arc<ServiceClusters>>;

/// Translates the services whose inputs (their view with its instances,
/// their `DestinationRule`, the trust domain) differ from `previous`, and
/// reuses the others.
pub fn per_service(
    mesh: &MeshConfig,
    services: &[&Arc<ServiceView>],
    previous: &ServiceMemo,
) -> ServiceMemo {
    services
        .iter()
        .map(|view| {
            let dr = mesh.destination_rules.get(&view.host);
            let memo = service_memo(mesh, view, dr, previous.get(&view.host));
            (view.host.clone(), memo)
        })
        .collect()
}

/// One service's clusters under `dr`: `previous` when it was made from the
/// same inputs, else translated (only the endpoints when only they changed).
pub(super) fn service_memo(
    mesh: &MeshConfig,
    view: &Arc<ServiceView>,
    dr: Option<&Arc<DestinationRule>>,
    previous: Option<&Arc<ServiceClusters>>,
) -> Arc<ServiceClusters> {
    let trust_domain = mesh.mesh.trust_domain.as_str();
    let budget = mesh.mesh.default_retry_budget;
    let same_inputs = previous.filter(|p| {
        p.dr.as_ref() == dr && p.trust_domain == trust_domain && p.default_budget == budget
    });
    match same_inputs {
        Some(p) if Arc::ptr_eq(&p.view, view) || p.view == *view => Arc::clone(p),
        Some(p) => p.with_endpoints(view).map_or_else(
            || Arc::new(translate_service(view, dr, trust_domain, budget)),
            Arc::new,
        ),
        None => Arc::new(translate_service(view, dr, trust_domain, budget)),
    }
}

/// Every service's clusters and load assignments, in host order: lists of
/// the translations `memo` holds, not copies of them.
pub fn flatten(
    memo: &ServiceMemo,
) -> (ChunkedList<XdsCluster>, ChunkedList<ClusterLoadAssignment>) {
    let (mut clusters, mut assignments) = (ChunkedList::new(), ChunkedList::new());
    for service in memo.values() {
        clusters.push_chunk(Arc::clone(&service.clusters));
        assignments.push_chunk(Arc::clone(&service.assignments));
    }
    (clusters, assignments)
}

fn translate_service(
    view: &Arc<ServiceView>,
    dr: Option<&Arc<DestinationRule>>,
    trust_domain: &str,
    default_budget: Option<RetryBudget>,
) -> ServiceClusters {
    let mut clusters = Vec::new();
    let mut assignments = Vec::new();
    let mut localities = Vec::new();
    let rule = dr.map(|d| d.as_ref());
    for (port, subset) in port_subsets(view, rule) {
        let (mut c, cla, local) = build(view, port, rule, subset, default_budget.as_ref());
        let tls = effective(rule, port.number, subset).tls;
        let subset_name = subset.map(|s| s.name.as_str());
        set_tls(&mut c, tls, view, port.number, subset_name, trust_domain);
        if let Some(v) = effective(rule, port.number, subset).proxy_protocol {
            super::proxy_protocol::wrap(&mut c, v);
        }
        if forwards_dynamically(view) {
            super::passthrough::make_dynamic(&mut c);
        }
        clusters.push(c);
        assignments.extend(cla);
        localities.extend(local.map(Arc::new));
    }
    // Kept until the service changes; pushes leave room for four.
    assignments.shrink_to_fit();
    ServiceClusters {
        view: Arc::clone(view),
        dr: dr.cloned(),
        trust_domain: trust_domain.to_string(),
        default_budget,
        clusters: Arc::new(clusters),
        assignments: Arc::new(assignments),
        localities,
    }
}

/// Every cluster of a service: each port, plain then with each subset of
/// `dr` as declared.
fn port_subsets<'a>(
    view: &'a ServiceView,
    dr: Option<&'a DestinationRule>,
) -> impl Iterator<Item = (&'a ServicePort, Option<&'a Subset>)> + 'a {
    view.ports.iter().flat_map(move |port| {
        let subsets = dr.map(|d| d.subsets.iter()).into_iter().flatten();
        std::iter::once(None)
            .chain(subsets.map(Some))
            .map(move |subset| (port, subset))
    })
}

/// The SPIFFE IDs of the service's sidecar instances and its
/// `ServiceEntry`'s `subjectAltNames` (Istio appends them alike), sorted:
/// the names an auto-mTLS client accepts from its endpoints.
fn spiffe_ids(view: &ServiceView, trust_domain: &str) -> Vec<String> {
    let mut ids: Vec<String> = (view.instances.iter())
        .filter_map(|i| i.identity.as_ref())
        .map(|id| id.spiffe_id(trust_domain))
        .chain(view.subject_alt_names.iter().cloned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// One cluster; the assignment is returned for EDS clusters and inlined
/// for DNS ones, with the cluster's locality balancing when it depends on
/// the client.
fn build(
    view: &ServiceView,
    port: &ServicePort,
    dr: Option<&DestinationRule>,
    subset: Option<&Subset>,
    default_budget: Option<&RetryBudget>,
) -> (
    XdsCluster,
    Option<ClusterLoadAssignment>,
    Option<LocalityCluster>,
) {
    let name = cluster_name(
        port.number,
        subset.map(|s| s.name.as_str()),
        view.host.as_str(),
    );
    let policy = effective(dr, port.number, subset);
    let (cla, local, distribute) = endpoints(view, port, &policy, subset, &name);
    let mut c = XdsCluster {
        name,
        ..Default::default()
    };
    policy::apply(&mut c, &policy, port, default_budget);
    if distribute {
        set_locality_weighted(&mut c);
    }
    if forwards_dynamically(view) {
        return (c, None, None);
    }
    let eds = set_discovery(&mut c, view.resolution, cla);
    (c, eds, local)
}

/// True when the service's requests and tunnels go to the host they name,
/// resolved when they arrive (Envoy's dynamic forward proxy): resolution
/// NONE, or a wildcard host resolved by DNS with no endpoint to resolve.
/// Without interception the app names its destination, so that host is
/// where a sidecar with interception would have sent it (the address the
/// app resolved).
pub fn forwards_dynamically(view: &ServiceView) -> bool {
    view.resolution == Resolution::None
        || (view.resolution.is_dns() && view.host.is_wildcard() && view.instances.is_empty())
}

/// The load assignment of cluster `name`; with `distribute`, its default
/// locality weights (and true); when its balancing depends on the
/// client's locality or network, the endpoints each client sees its own
/// way. Per-client
/// endpoints need EDS: a DNS cluster's are inline and shared.
fn endpoints(
    view: &ServiceView,
    port: &ServicePort,
    policy: &Policy<'_>,
    subset: Option<&Subset>,
    name: &str,
) -> (ClusterLoadAssignment, Option<LocalityCluster>, bool) {
    let labels = subset.map(|s| &s.labels);
    let mut cla = load_assignment(name, &view.instances, port.number, labels);
    let rule = locality::rule(policy).filter(|_| view.resolution == Resolution::Static);
    let distribute = matches!(rule, Some(LocalityRule::Distribute(_)));
    if distribute {
        locality::default_weights(&mut cla);
    }
    // Only instances on a named network make a cluster without a rule
    // vary by client (split horizon); checked before copying any.
    let mine = || selected(&view.instances, port.number, labels);
    let networked = || mine().any(|i| !i.topology.network.is_empty());
    let static_eds = view.resolution == Resolution::Static;
    let local = (static_eds && (rule.is_some() || networked()))
        .then(|| LocalityCluster::new(name, rule, mine().cloned().collect()))
        .flatten();
    (cla, local, distribute)
}

/// Envoy weighs localities by `LocalityLbEndpoints.load_balancing_weight`
/// only with `common_lb_config.locality_weighted_lb_config` set.
fn set_locality_weighted(c: &mut XdsCluster) {
    use cluster::common_lb_config::{LocalityConfigSpecifier, LocalityWeightedLbConfig};
    c.common_lb_config
        .get_or_insert_with(Default::default)
        .locality_config_specifier = Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
        LocalityWeightedLbConfig {},
    ));
}

/// Upstream TLS per `DestinationRule` `tls`, else Istio's auto mTLS for
/// in-mesh EDS services with a sidecar endpoint: mTLS to endpoints
/// labelled `tlsMode: istio` (sidecars), plaintext to the rest. The server must present the SPIFFE
/// ID of one of the service's sidecars (ISTIO_MUTUAL: or the rule's
/// `subjectAltNames`). SNI is Istio's `outbound_.PORT_.SUBSET_.HOST`.
fn set_tls(
    c: &mut XdsCluster,
    tls: Option<&ClientTls>,
    view: &ServiceView,
    port: u16,
    subset: Option<&str>,
    trust_domain: &str,
) {
    let sni = format!("outbound_.{port}_.{}_.{}", subset.unwrap_or(""), view.host);
    let ids = spiffe_ids(view, trust_domain);
    match tls {
        None if view.resolution == Resolution::Static
            && view.location == Location::MeshInternal
            && has_mtls_endpoint(view) =>
        {
            let mtls = tls::istio_mutual(&ids, trust_domain, &sni);
            c.transport_socket_matches = tls::auto_mtls_matches(mtls);
        }
        None => {}
        Some(t) => match t.mode {
            ClientTlsMode::Disable => {}
            ClientTlsMode::IstioMutual => {
                let sans = if t.subject_alt_names.is_empty() {
                    &ids
                } else {
                    &t.subject_alt_names
                };
                let sni = t.sni.as_deref().unwrap_or(&sni);
                c.transport_socket = Some(tls::istio_mutual(sans, trust_domain, sni));
            }
            ClientTlsMode::Simple | ClientTlsMode::Mutual => {
                c.transport_socket = Some(tls::client_tls(t, view.host.as_str()));
            }
        },
    }
}

/// True when an endpoint of the service is a sidecar that takes mTLS, i.e.
/// carries the `tlsMode: istio` metadata the auto-mTLS match selects.
/// Without one, every endpoint would match the plaintext fallback, and the
/// TLS context Envoy builds per cluster for the other match (about 20 KB of
/// its heap, BENCHMARKS.md "Proxy tax") would never be used; the cluster is
/// translated again (a CDS change) when the first such sidecar registers.
fn has_mtls_endpoint(view: &ServiceView) -> bool {
    view.instances.iter().any(|i| i.mtls)
}

/// EDS over ADS for STATIC services (the assignment is returned, to be
/// served on its own); STRICT_DNS with the assignment inline for DNS.
fn set_discovery(
    c: &mut XdsCluster,
    resolution: Resolution,
    cla: ClusterLoadAssignment,
) -> Option<ClusterLoadAssignment> {
    let kind = match resolution {
        // NONE clusters are dynamic forward proxies (`forwards_dynamically`).
        Resolution::Static | Resolution::None => cluster::DiscoveryType::Eds,
        Resolution::Dns => cluster::DiscoveryType::StrictDns,
        Resolution::DnsRoundRobin => cluster::DiscoveryType::LogicalDns,
    };
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(kind as i32));
    match resolution {
        Resolution::Static | Resolution::None => {
            let mut eds_config = ads();
            // Istio waits for EDS as long as it takes (0 = no timeout).
            eds_config.initial_fetch_timeout = Some(zero_duration());
            c.eds_cluster_config = Some(cluster::EdsClusterConfig {
                eds_config: Some(eds_config),
                service_name: c.name.clone(),
            });
            Some(cla)
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
            c.load_assignment = Some(cla);
            None
        }
    }
}

#[cfg(test)]
mod tests;
