//! `EnvoyFilter`: patches to the Envoy resources Trellis generates,
//! applied by `translate::envoy_filter` with Istio's semantics.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, ListenerFilter};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;

use super::{Labels, Origin};
use crate::config::Diagnostic;

/// One `EnvoyFilter`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyFilter {
    /// Where it was read.
    pub origin: Origin,
    /// `workloadSelector.labels`; `None` selects every workload of its
    /// namespace (of every namespace, in the root namespace).
    pub selector: Option<Labels>,
    /// `targetRefs` of kind `Gateway` (`gateway.networking.k8s.io`): the
    /// names of the Kubernetes Gateways whose proxies it applies to.
    pub target_gateways: Vec<String>,
    /// `priority`: lower applies first.
    pub priority: i32,
    /// `configPatches`, in order.
    pub patches: Vec<ConfigPatch>,
}

/// One entry of `configPatches`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigPatch {
    /// Blames the patch (`spec.configPatches[N]`): file, line, resource;
    /// the message is set where it is used.
    pub site: Diagnostic,
    /// `applyTo`.
    pub apply_to: ApplyTo,
    /// `match.context`.
    pub context: PatchContext,
    /// `match.listener`, `match.routeConfiguration` or `match.cluster`.
    pub object: ObjectMatch,
    /// `patch.operation` (Istio turns `INSERT_*` into `ADD` where the
    /// object has no order: listeners, filter chains, clusters, ...).
    pub operation: Operation,
    /// `patch.value` read as the proto `applyTo` names; `None` for REMOVE.
    pub value: Option<PatchValue>,
    /// `MERGE_AND_REPLACE_LIST`: a [`Operation::Merge`] whose lists replace
    /// the generated lists instead of appending to them (filters'
    /// `typed_config`s still merge as with MERGE, as in Istio).
    pub replace_lists: bool,
}

/// `applyTo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplyTo {
    /// A whole listener.
    Listener,
    /// A listener filter (`listener_filters`) of a listener.
    ListenerFilter,
    /// A filter chain of a listener.
    FilterChain,
    /// A network filter of a filter chain.
    NetworkFilter,
    /// An HTTP filter of an HTTP connection manager.
    HttpFilter,
    /// A route configuration (RDS, or inline in the HCM).
    RouteConfiguration,
    /// A virtual host of a route configuration.
    VirtualHost,
    /// A route of a virtual host.
    HttpRoute,
    /// A cluster.
    Cluster,
}

/// `match.context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchContext {
    /// Every context.
    Any,
    /// A sidecar's inbound listener, its inline routes and inbound cluster.
    SidecarInbound,
    /// A sidecar's outbound listeners, routes and clusters.
    SidecarOutbound,
    /// A gateway proxy's listeners, routes and clusters.
    Gateway,
}

/// `patch.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Proto merge into the matched object.
    Merge,
    /// Append a new object.
    Add,
    /// Remove the matched object.
    Remove,
    /// Insert before the matched object (first without a match).
    InsertBefore,
    /// Insert after the matched object (last without a match).
    InsertAfter,
    /// Insert first in the list.
    InsertFirst,
    /// Replace the matched object.
    Replace,
}

/// What a patch selects, by the kind of object.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ObjectMatch {
    /// No object match: every object of the `applyTo` kind.
    #[default]
    None,
    /// `match.listener`.
    Listener(ListenerMatch),
    /// `match.routeConfiguration`.
    RouteConfiguration(RouteConfigurationMatch),
    /// `match.cluster`.
    Cluster(ClusterMatch),
}

/// `match.listener`; empty strings and zero ports match anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenerMatch {
    /// Listener name (Istio's names are translated, see the config reference).
    pub name: String,
    /// Listener port.
    pub port_number: u32,
    /// `listenerFilter`: a listener filter's name (LISTENER_FILTER only).
    pub listener_filter: String,
    /// `filterChain`.
    pub filter_chain: Option<FilterChainMatch>,
}

/// `match.listener.filterChain`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterChainMatch {
    /// Filter chain name.
    pub name: String,
    /// A server name of the chain's match.
    pub sni: String,
    /// The chain's `transport_protocol`.
    pub transport_protocol: String,
    /// Comma-separated; every one must be in the chain's match.
    pub application_protocols: String,
    /// The chain's `destination_port`.
    pub destination_port: u32,
    /// `filter.name` (deprecated Envoy names translated).
    pub filter: Option<String>,
    /// `filter.subFilter.name`.
    pub sub_filter: Option<String>,
}

/// `match.routeConfiguration`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteConfigurationMatch {
    /// Route configuration name.
    pub name: String,
    /// Port of the route configuration.
    pub port_number: u32,
    /// `vhost`.
    pub vhost: Option<VirtualHostMatch>,
}

/// `match.routeConfiguration.vhost`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VirtualHostMatch {
    /// Virtual host name.
    pub name: String,
    /// One of its domains.
    pub domain_name: String,
    /// `route`.
    pub route: Option<RouteMatch>,
}

/// `match.routeConfiguration.vhost.route`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteMatch {
    /// Route name.
    pub name: String,
    /// The route's action kind.
    pub action: RouteActionMatch,
}

/// `route.action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RouteActionMatch {
    /// Any action.
    #[default]
    Any,
    /// Routes to a cluster.
    Route,
    /// Redirects.
    Redirect,
    /// Answers directly.
    DirectResponse,
}

/// `match.cluster`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterMatch {
    /// Cluster name (when set, the other fields are not read, as in Istio).
    pub name: String,
    /// Service port.
    pub port_number: u32,
    /// Service host (canonical).
    pub service: String,
    /// Subset.
    pub subset: String,
}

/// `patch.value`, read (and type-checked) as the proto of its `applyTo`
/// (large messages boxed).
#[derive(Debug, Clone, PartialEq)]
pub enum PatchValue {
    /// `envoy.config.listener.v3.Listener`.
    Listener(Box<Listener>),
    /// `envoy.config.listener.v3.FilterChain`.
    FilterChain(Box<FilterChain>),
    /// `envoy.config.listener.v3.ListenerFilter`.
    ListenerFilter(ListenerFilter),
    /// `envoy.config.listener.v3.Filter`.
    NetworkFilter(Filter),
    /// `...http_connection_manager.v3.HttpFilter`.
    HttpFilter(HttpFilter),
    /// `envoy.config.route.v3.RouteConfiguration`.
    RouteConfiguration(Box<RouteConfiguration>),
    /// `envoy.config.route.v3.VirtualHost`.
    VirtualHost(Box<VirtualHost>),
    /// `envoy.config.route.v3.Route`.
    Route(Box<Route>),
    /// `envoy.config.cluster.v3.Cluster`.
    Cluster(Box<Cluster>),
}
