//! Per-sidecar scope: which outbound clusters, endpoints and virtual hosts
//! one sidecar gets, from the `Sidecar` resource that applies to it
//! (`config::model::sidecar_for`). With none, every service (Istio's
//! default). Pure filtering of the shared resources: the kept resources
//! are equal to the shared ones, so their encoding is still shared.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use crate::config::model::{sidecar_for, Host, SidecarScope};
use crate::registry::Proxy;

use super::Shared;

/// The `Sidecar` that scopes `proxy`, if any.
pub fn scope_of<'a>(shared: &'a Shared, proxy: &Proxy) -> Option<&'a SidecarScope> {
    let root = &shared.mesh.root_namespace;
    sidecar_for(&shared.sidecars, &proxy.namespace, &proxy.labels, root)
}

/// Scope checks by host, with each service's namespace.
pub(crate) struct Scope<'a> {
    sidecar: &'a SidecarScope,
    namespaces: &'a BTreeMap<Host, String>,
}

impl<'a> Scope<'a> {
    /// The scope of `proxy`; `None` when it reaches every service.
    pub(crate) fn of(shared: &'a Shared, proxy: &Proxy) -> Option<Self> {
        Some(Scope {
            sidecar: scope_of(shared, proxy)?,
            namespaces: &shared.service_namespaces,
        })
    }

    fn admits_host(&self, host: &str) -> bool {
        let host = Host(host.to_string());
        match self.namespaces.get(&host) {
            Some(ns) => self.sidecar.admits(&host, ns),
            None => false,
        }
    }

    /// Outbound clusters (`outbound|PORT|SUBSET|HOST`) are scoped; every
    /// other cluster (inbound, telemetry collectors) stays.
    fn admits_cluster(&self, name: &str) -> bool {
        match name
            .strip_prefix("outbound|")
            .and_then(|r| r.splitn(3, '|').nth(2))
        {
            Some(host) => self.admits_host(host),
            None => true,
        }
    }

    /// The shared clusters in scope.
    pub(crate) fn clusters(&self, all: &[Cluster]) -> Vec<Cluster> {
        let keep = all.iter().filter(|c| self.admits_cluster(&c.name));
        keep.cloned().collect()
    }

    /// The load assignments in scope (named like their clusters).
    pub(crate) fn load_assignments(
        &self,
        all: &[ClusterLoadAssignment],
    ) -> Vec<ClusterLoadAssignment> {
        let keep = all.iter().filter(|c| self.admits_cluster(&c.cluster_name));
        keep.cloned().collect()
    }

    /// Route configurations without the virtual hosts (`HOST:PORT`) of
    /// services out of scope.
    pub(crate) fn routes(&self, all: &[RouteConfiguration]) -> Vec<RouteConfiguration> {
        all.iter()
            .map(|rc| {
                let mut rc = rc.clone();
                rc.virtual_hosts
                    .retain(|vh| match vh.name.rsplit_once(':') {
                        Some((host, _))
                            if self.namespaces.contains_key(&Host(host.to_string())) =>
                        {
                            self.admits_host(host)
                        }
                        _ => true,
                    });
                rc
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{for_proxy, shared, ProxySecurity};
    use crate::config::model::{EgressHost, EgressNamespace, SidecarScope};
    use crate::registry::instances;
    use crate::translate::fixtures::*;

    fn outbound_hosts(names: impl Iterator<Item = String>) -> Vec<String> {
        let mut hosts: Vec<String> = names
            .filter_map(|n| {
                Some(
                    n.strip_prefix("outbound|")?
                        .splitn(3, '|')
                        .nth(2)?
                        .to_string(),
                )
            })
            .collect();
        hosts.dedup();
        hosts
    }

    #[test]
    fn a_sidecar_scoped_to_one_service_gets_only_its_resources() {
        let mut mesh = canary_mesh();
        let si = instances(
            &mesh,
            &two_versions(&["payment-service", "frontend", "ledger"]),
        );
        let proxy = sidecar("frontend", "frontend-v1", "v1", 16000);
        let all = for_proxy(&shared(&mesh, &si), &proxy, &ProxySecurity::default());
        let all_hosts = outbound_hosts(all.clusters.iter().map(|c| c.name.clone()));
        assert!(
            all_hosts.len() >= 3,
            "default scope is every service: {all_hosts:?}"
        );

        let payment = "payment-service.default.svc.cluster.local";
        mesh.sidecars.push(SidecarScope {
            namespace: "default".into(),
            selector: None,
            egress: vec![EgressHost {
                namespace: EgressNamespace::Named("default".into()),
                host: payment.into(),
            }],
            origin: origin("Sidecar", "frontend"),
        });
        let scoped = for_proxy(&shared(&mesh, &si), &proxy, &ProxySecurity::default());
        let hosts = outbound_hosts(scoped.clusters.iter().map(|c| c.name.clone()));
        assert_eq!(hosts, [payment]);
        let eds = outbound_hosts(
            scoped
                .load_assignments
                .iter()
                .map(|c| c.cluster_name.clone()),
        );
        assert_eq!(eds, [payment]);
        assert!(scoped
            .clusters
            .iter()
            .any(|c| c.name.starts_with("inbound|")));
        let vhosts: Vec<&str> = scoped.routes[0]
            .virtual_hosts
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert!(vhosts.iter().all(|v| v.starts_with(payment)), "{vhosts:?}");
        assert!(!vhosts.is_empty());
    }
}
