//! Type URLs of the resource types the ADS stream treats specially, and the
//! order in which one push sends them.

use std::borrow::Cow;
use std::sync::LazyLock;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener as XdsListener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret as XdsSecret;
use prost::Name;

/// Type URL of `envoy.config.cluster.v3.Cluster` (CDS).
pub static CLUSTER_TYPE: LazyLock<String> = LazyLock::new(XdsCluster::type_url);
/// Type URL of `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub static ENDPOINT_TYPE: LazyLock<String> = LazyLock::new(ClusterLoadAssignment::type_url);
/// Type URL of `envoy.config.listener.v3.Listener` (LDS).
pub static LISTENER_TYPE: LazyLock<String> = LazyLock::new(XdsListener::type_url);
/// Type URL of `envoy.config.route.v3.RouteConfiguration` (RDS).
pub static ROUTE_TYPE: LazyLock<String> = LazyLock::new(RouteConfiguration::type_url);
/// Type URL of `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
pub static SECRET_TYPE: LazyLock<String> = LazyLock::new(XdsSecret::type_url);

/// A type URL as a map key: the known types without an allocation of
/// their own (a stream and a snapshot each key a few maps by type).
pub(crate) type TypeKey = Cow<'static, str>;

/// The type URLs Trellis serves.
pub fn known_types() -> [&'static String; 5] {
    [
        &*CLUSTER_TYPE,
        &*ENDPOINT_TYPE,
        &*LISTENER_TYPE,
        &*ROUTE_TYPE,
        &*SECRET_TYPE,
    ]
}

/// `type_url` as a [`TypeKey`].
pub(crate) fn type_key(type_url: &str) -> TypeKey {
    match known_types().into_iter().find(|t| t.as_str() == type_url) {
        Some(t) => Cow::Borrowed(t.as_str()),
        None => Cow::Owned(type_url.to_string()),
    }
}

/// The wildcard resource name (xDS spec, "How the client specifies what
/// resources to return").
pub(crate) const WILDCARD: &str = "*";

/// Whether an initial request with no names means "all resources": the spec
/// allows this legacy wildcard only for Listener and Cluster ("How the client
/// specifies what resources to return").
pub(crate) fn legacy_wildcard(type_url: &str) -> bool {
    type_url == *CLUSTER_TYPE || type_url == *LISTENER_TYPE
}

/// Push rank of a type: CDS, EDS, LDS, RDS first (xDS spec, "Eventual
/// consistency considerations"), then any other type (e.g. SDS) after them.
pub(crate) fn push_rank(type_url: &str) -> usize {
    [
        &*CLUSTER_TYPE,
        &*ENDPOINT_TYPE,
        &*LISTENER_TYPE,
        &*ROUTE_TYPE,
    ]
    .iter()
    .position(|t| t.as_str() == type_url)
    .unwrap_or(4)
}

/// Types that refer to clusters and so wait for CDS (xDS spec, "Eventual
/// consistency considerations"); shared by the SotW and delta streams.
pub(crate) fn routing_type(type_url: &str) -> bool {
    type_url == *LISTENER_TYPE || type_url == *ROUTE_TYPE
}

/// Suffix of `version_info` (SotW) or `system_version_info` (delta) on a
/// make-before-break CDS response sent while clusters the new snapshot
/// dropped are still kept.
pub(crate) const KEPT_SUFFIX: &str = "+kept";

/// A short label for a type URL, for metrics: `cds`, `eds`, `lds`, `rds`,
/// `sds`, or the message name for any other type.
pub fn short_type_name(type_url: &str) -> String {
    let known = [
        (&*CLUSTER_TYPE, "cds"),
        (&*ENDPOINT_TYPE, "eds"),
        (&*LISTENER_TYPE, "lds"),
        (&*ROUTE_TYPE, "rds"),
        (&*SECRET_TYPE, "sds"),
    ];
    if let Some((_, short)) = known.iter().find(|(t, _)| t.as_str() == type_url) {
        return (*short).to_string();
    }
    type_url
        .rsplit(['/', '.'])
        .next()
        .unwrap_or(type_url)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_type_keys_are_not_allocated() {
        assert!(matches!(type_key(&ENDPOINT_TYPE.clone()), Cow::Borrowed(_)));
        assert!(matches!(
            type_key("type.googleapis.com/a.b.Thing"),
            Cow::Owned(_)
        ));
        assert_eq!(
            type_key("type.googleapis.com/a.b.Thing"),
            "type.googleapis.com/a.b.Thing"
        );
    }

    #[test]
    fn short_names() {
        assert_eq!(short_type_name(&CLUSTER_TYPE), "cds");
        assert_eq!(short_type_name(&ROUTE_TYPE), "rds");
        assert_eq!(short_type_name("type.googleapis.com/a.b.Thing"), "Thing");
    }

    #[test]
    fn push_order_is_cds_eds_lds_rds_then_others() {
        let mut urls = [
            SECRET_TYPE.clone(),
            ROUTE_TYPE.clone(),
            LISTENER_TYPE.clone(),
            ENDPOINT_TYPE.clone(),
            CLUSTER_TYPE.clone(),
        ];
        urls.sort_by_key(|u| push_rank(u));
        assert_eq!(urls[0], *CLUSTER_TYPE);
        assert_eq!(urls[3], *ROUTE_TYPE);
        assert_eq!(urls[4], *SECRET_TYPE);
    }
}
