//! Instances → `ClusterLoadAssignment`s (EDS, or inline for DNS clusters).

use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};

use super::tls::{tls_mode_istio, SOCKET_MATCH_KEY};
use super::util::{socket, u32v};
use crate::config::model::Labels;
use crate::registry::{labels_match, Instance};
use envoy_types::pb::envoy::config::core::v3::Metadata;

/// The endpoints of one cluster: the instances serving `service_port`
/// whose labels include `subset_labels` (all of them for the default
/// cluster), in one locality.
pub fn load_assignment(
    cluster_name: &str,
    instances: &[Instance],
    service_port: u16,
    subset_labels: Option<&Labels>,
) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = instances
        .iter()
        .filter(|i| i.service_port == service_port)
        .filter(|i| subset_labels.is_none_or(|sel| labels_match(sel, &i.labels)))
        .map(lb_endpoint)
        .collect();
    let endpoints = if lb_endpoints.is_empty() {
        Vec::new()
    } else {
        vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }]
    };
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
    fn no_instances_means_no_localities() {
        let cla = load_assignment("c", &[], 80, None);
        assert!(cla.endpoints.is_empty());
    }
}
