//! The names a client subscribes to next: EDS names from clusters, RDS
//! names from listeners' HTTP connection managers.

use envoy_types::pb::envoy::config::cluster::v3::{cluster::ClusterDiscoveryType, Cluster};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

const EDS_TYPE: i32 = 3;
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// The EDS service name of a cluster, if it is an EDS cluster.
pub fn eds_name(any: &Any) -> Option<String> {
    let c = Cluster::decode(any.value.as_slice()).ok()?;
    if c.cluster_discovery_type != Some(ClusterDiscoveryType::Type(EDS_TYPE)) {
        return None;
    }
    let service = c
        .eds_cluster_config
        .map(|e| e.service_name)
        .unwrap_or_default();
    Some(if service.is_empty() { c.name } else { service })
}

/// The route config names a listener's HTTP connection managers use.
pub fn rds_names(any: &Any) -> Vec<String> {
    let Ok(l) = Listener::decode(any.value.as_slice()) else {
        return Vec::new();
    };
    let chains = l.filter_chains.iter().chain(l.default_filter_chain.iter());
    let mut out = Vec::new();
    for f in chains.flat_map(|c| c.filters.iter()) {
        let Some(ConfigType::TypedConfig(tc)) = &f.config_type else {
            continue;
        };
        if tc.type_url != HCM {
            continue;
        }
        if let Ok(hcm) = HttpConnectionManager::decode(tc.value.as_slice()) {
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                out.push(rds.route_config_name);
            }
        }
    }
    out
}
