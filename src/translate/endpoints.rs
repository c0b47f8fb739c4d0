//! Instances → `ClusterLoadAssignment`s (EDS, or inline for DNS clusters).

use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{Locality as XdsLocality, Metadata};

use super::tls::{tls_mode_istio, SOCKET_MATCH_KEY};
use super::util::{socket, u32v};
use crate::config::model::{Labels, Locality};
use crate::registry::{labels_match, Instance};

/// The endpoints of one cluster: the instances serving `service_port`
/// whose labels include `subset_labels` (all of them for the default
/// cluster), one `LocalityLbEndpoints` per locality, all at priority 0.
pub fn load_assignment(
    cluster_name: &str,
    instances: &[Instance],
    service_port: u16,
    subset_labels: Option<&Labels>,
) -> ClusterLoadAssignment {
    let chosen = selected(instances, service_port, subset_labels).map(|i| (0, i));
    grouped(cluster_name, chosen)
}

/// The instances of one cluster (see [`load_assignment`]).
pub fn selected<'a>(
    instances: &'a [Instance],
    service_port: u16,
    subset_labels: Option<&'a Labels>,
) -> impl Iterator<Item = &'a Instance> {
    instances
        .iter()
        .filter(move |i| i.service_port == service_port)
        .filter(move |i| subset_labels.is_none_or(|sel| labels_match(sel, &i.labels)))
}

/// One `LocalityLbEndpoints` per (priority, locality), by priority then
/// locality; instances keep their order within a group. An unknown
/// locality is left unset, so a mesh without localities gets Envoy's
/// default (one unnamed locality).
pub fn grouped<'a>(
    cluster_name: &str,
    items: impl Iterator<Item = (u32, &'a Instance)>,
) -> ClusterLoadAssignment {
    let mut groups: BTreeMap<(u32, &Locality), Vec<LbEndpoint>> = BTreeMap::new();
    for (priority, i) in items {
        let key = (priority, &i.topology.locality);
        groups.entry(key).or_default().push(lb_endpoint(i));
    }
    let endpoints = groups
        .into_iter()
        .map(|((priority, loc), mut lb_endpoints)| {
            // Kept until the service changes: grown by pushes, a group of
            // one 424-byte endpoint held room for four.
            lb_endpoints.shrink_to_fit();
            LocalityLbEndpoints {
                locality: (!loc.is_empty()).then(|| XdsLocality {
                    region: loc.region.clone(),
                    zone: loc.zone.clone(),
                    sub_zone: loc.subzone.clone(),
                }),
                lb_endpoints,
                priority,
                ..Default::default()
            }
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints,
        ..Default::default()
    }
}

fn lb_endpoint(i: &Instance) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket(&i.address, i.port)),
            ..Default::default()
        })),
        load_balancing_weight: Some(u32v(i.weight.max(1))),
        metadata: i.mtls.then(tls_mode_metadata),
        ..Default::default()
    }
}

/// A sidecar that takes mTLS is labelled like Istio's: the clusters'
/// `transport_socket_matches` pick mTLS for it (auto mTLS).
fn tls_mode_metadata() -> Metadata {
    Metadata {
        filter_metadata: [(SOCKET_MATCH_KEY.to_string(), tls_mode_istio())].into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::fixtures::labels;

    fn inst(addr: &str, service_port: u16, version: &str) -> Instance {
        Instance {
            address: addr.into(),
            port: 9000,
            service_port,
            labels: labels(&[("version", version)]),
            weight: 1,
            sidecar: true,
            identity: None,
            mtls: false,
            topology: Default::default(),
        }
    }

    fn addresses(cla: &ClusterLoadAssignment) -> Vec<String> {
        cla.endpoints
            .iter()
            .flat_map(|l| &l.lb_endpoints)
            .map(|e| match &e.host_identifier {
                Some(HostIdentifier::Endpoint(ep)) => format!("{:?}", ep.address),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn filters_by_port_and_subset() {
        let all = vec![
            inst("10.0.0.1", 80, "v1"),
            inst("10.0.0.2", 80, "v2"),
            inst("10.0.0.3", 81, "v1"),
        ];
        let cla = load_assignment("c", &all, 80, None);
        assert_eq!(cla.cluster_name, "c");
        assert_eq!(addresses(&cla).len(), 2);
        let v2 = labels(&[("version", "v2")]);
        let cla = load_assignment("c", &all, 80, Some(&v2));
        let got = addresses(&cla);
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("10.0.0.2"));
    }

    #[test]
    fn one_group_per_locality_and_none_when_unknown() {
        let mut all = vec![
            inst("10.0.0.1", 80, "v1"),
            inst("10.0.0.2", 80, "v1"),
            inst("10.0.0.3", 80, "v1"),
        ];
        all[1].topology.locality = Locality::parse("r1/z1").unwrap();
        let cla = load_assignment("c", &all, 80, None);
        assert_eq!(cla.endpoints.len(), 2);
        assert_eq!(cla.endpoints[0].locality, None);
        assert_eq!(cla.endpoints[0].lb_endpoints.len(), 2);
        let named = cla.endpoints[1].locality.as_ref().unwrap();
        assert_eq!((named.region.as_str(), named.zone.as_str()), ("r1", "z1"));
        assert!(cla.endpoints.iter().all(|l| l.priority == 0));
    }

    #[test]
    fn no_instances_means_no_localities() {
        let cla = load_assignment("c", &[], 80, None);
        assert!(cla.endpoints.is_empty());
    }
}
