//! The invisible proxy tax: what each sidecar holds (clusters, routes,
//! endpoints in its scope, counted by `translate`'s own scoping) and the
//! Envoy memory that costs, from a per-cluster cost measured on a real
//! Envoy (BENCHMARKS.md, "Proxy tax"). Sidecars whose calls are declared
//! but whose scope admits far more get a suggested `Sidecar` scope.

use std::collections::BTreeSet;

use serde::Serialize;

use super::graph::{CallGraph, Workload};
use super::{short, Check, Finding, Input, Severity};
use crate::config::model::Host;
use crate::registry::{Proxy, ServiceInstances};
use crate::translate::{self, scope::outbound_view, Shared};

/// Envoy heap per sidecar: a base plus a cost per cluster and per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryCost {
    /// Heap with no cluster, bytes.
    pub base_bytes: u64,
    /// Heap per outbound cluster (with its first endpoint), bytes.
    pub per_cluster_bytes: u64,
    /// Heap per further endpoint, bytes.
    pub per_endpoint_bytes: u64,
}

impl MemoryCost {
    /// Measured with `bench/proxy-tax.sh` on Envoy 1.40.0 (`server.memory_allocated`,
    /// one sidecar reaching 0, 250, 500 and 1,000 single-endpoint services,
    /// then 500 services of 10 endpoints), with the sidecar bootstrap's
    /// stats matcher and clusters without auto-mTLS matches (the services
    /// have no sidecar endpoints, as lint counts static endpoints): linear
    /// within 0.3 %, see BENCHMARKS.md. A cluster whose endpoints are
    /// sidecars taking mTLS costs about 22 KB more (its auto-mTLS transport
    /// socket matches, `bench/sidecar-tax.py … mtls-clusters`), which this
    /// estimate leaves out.
    pub const MEASURED: MemoryCost = MemoryCost {
        base_bytes: 6_811_000,
        per_cluster_bytes: 45_900,
        per_endpoint_bytes: 1_600,
    };

    /// Estimated heap of a sidecar holding `clusters` and `endpoints`.
    pub fn estimate(&self, clusters: usize, endpoints: usize) -> u64 {
        let extra = endpoints.saturating_sub(clusters) as u64;
        self.base_bytes + clusters as u64 * self.per_cluster_bytes + extra * self.per_endpoint_bytes
    }
}

/// One sidecar's share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SidecarTax {
    /// The service whose workloads it fronts.
    pub service: String,
    /// Instances counted (static endpoints; at least 1).
    pub instances: usize,
    /// Services its scope admits.
    pub services_in_scope: usize,
    /// Clusters, virtual hosts (routes) and endpoints it gets.
    pub clusters: usize,
    /// Virtual hosts of its outbound route configuration.
    pub routes: usize,
    /// Endpoints of its clusters.
    pub endpoints: usize,
    /// Estimated Envoy heap, bytes.
    pub memory_bytes: u64,
    /// With a scope of only its declared calls: the estimated heap.
    pub scoped_memory_bytes: Option<u64>,
}

/// Every sidecar's share and the mesh total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyTax {
    /// The cost model used.
    pub cost: MemoryCost,
    /// One per mesh service (the sidecar of each of its instances).
    pub sidecars: Vec<SidecarTax>,
    /// Σ memory × instances.
    pub total_bytes: u64,
}

/// Saving per sidecar from which a scope is suggested.
const SUGGEST_FROM_BYTES: u64 = 1 << 20;

/// Counts what each sidecar holds.
pub fn measure(
    input: &Input<'_>,
    graph: &CallGraph,
    instances: &ServiceInstances,
    workloads: &[Workload],
) -> ProxyTax {
    let shared = translate::shared(input.mesh, instances);
    let sidecars: Vec<SidecarTax> = (workloads.iter())
        .map(|svc| one(input, &shared, graph, instances, svc))
        .collect();
    let total_bytes = sidecars
        .iter()
        .map(|s| s.memory_bytes * s.instances as u64)
        .sum();
    ProxyTax {
        cost: input.cost,
        sidecars,
        total_bytes,
    }
}

fn proxy_of(svc: &Workload) -> Proxy {
    Proxy {
        id: format!("lint~{}", svc.host),
        service: short(&svc.host).to_string(),
        namespace: svc.namespace.clone(),
        labels: svc.labels.clone(),
        service_account: short(&svc.host).to_string(),
        ..Proxy::default()
    }
}

/// The host of an outbound cluster name (`outbound|PORT|SUBSET|HOST`).
fn cluster_host(name: &str) -> Option<&str> {
    name.strip_prefix("outbound|")?.splitn(3, '|').nth(2)
}

fn one(
    input: &Input<'_>,
    shared: &Shared,
    graph: &CallGraph,
    instances: &ServiceInstances,
    svc: &Workload,
) -> SidecarTax {
    let view = outbound_view(shared, &proxy_of(svc));
    let endpoints_of = |keep: &dyn Fn(&str) -> bool| -> usize {
        (view.load_assignments.iter().copied().chain(&view.localized))
            .filter(|c| keep(&c.cluster_name))
            .flat_map(|c| &c.endpoints)
            .map(|l| l.lb_endpoints.len())
            .sum()
    };
    let hosts: BTreeSet<&str> = view
        .clusters
        .iter()
        .filter_map(|c| cluster_host(&c.name))
        .collect();
    let endpoints = endpoints_of(&|_| true);
    let routes = view.routes.iter().map(|r| r.virtual_hosts.len()).sum();
    let memory_bytes = input.cost.estimate(view.clusters.len(), endpoints);
    let scoped_memory_bytes = graph.calls.get(&svc.host).map(|calls| {
        let keep =
            |name: &str| cluster_host(name).is_none_or(|h| calls.contains(&Host(h.to_string())));
        let clusters = view.clusters.iter().filter(|c| keep(&c.name)).count();
        input.cost.estimate(clusters, endpoints_of(&keep))
    });
    let count = (instances.services.get(&svc.host)).map(|v| {
        v.instances
            .iter()
            .map(|i| &i.address)
            .collect::<BTreeSet<_>>()
            .len()
    });
    SidecarTax {
        service: svc.host.to_string(),
        instances: count.unwrap_or(0).max(1),
        services_in_scope: hosts.len(),
        clusters: view.clusters.len(),
        routes,
        endpoints,
        memory_bytes,
        scoped_memory_bytes,
    }
}

/// A suggested scope for each sidecar that would save at least 1 MiB.
pub fn check(input: &Input<'_>, tax: &ProxyTax, graph: &CallGraph) -> Vec<Finding> {
    (tax.sidecars.iter())
        .filter_map(|s| suggestion(input, graph, s))
        .collect()
}

fn suggestion(input: &Input<'_>, graph: &CallGraph, s: &SidecarTax) -> Option<Finding> {
    let scoped = s.scoped_memory_bytes?;
    let saving = s.memory_bytes.saturating_sub(scoped);
    if saving < SUGGEST_FROM_BYTES {
        return None;
    }
    let host = Host(s.service.clone());
    let origin = graph.declared_by.get(&host)?;
    let calls = graph.calls.get(&host)?;
    let hosts: Vec<String> = (calls.iter())
        .map(|h| match h.cluster_local_parts() {
            Some((name, ns)) => format!("\"{ns}/{name}.{ns}.svc.cluster.local\""),
            None => format!("\"*/{h}\""),
        })
        .collect();
    let msg = format!(
        "sidecar of {} may reach {} services ({} clusters, {} routes, {} endpoints, ~{}) but declares calls to {}",
        short(&host),
        s.services_in_scope,
        s.clusters,
        s.routes,
        s.endpoints,
        mib(s.memory_bytes),
        calls.len()
    );
    let why = "Every sidecar holds the config of every service in its scope: memory and push \
               work grow with the mesh, not with what the service calls.";
    let fix = format!(
        "Scope it to its calls: `egress: [{{hosts: [{}]}}]` (no wildcard): ~{} instead of ~{}, saving ~{} per instance, ~{} for its {} instance(s).",
        hosts.join(", "),
        mib(scoped),
        mib(s.memory_bytes),
        mib(saving),
        mib(saving * s.instances as u64),
        s.instances
    );
    let f = input.finding(Check::ProxyTax, Severity::Warning, origin, "spec.egress");
    Some(f.says(msg, why, fix))
}

/// Bytes as `12.3 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}
