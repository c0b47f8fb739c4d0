//! Kubernetes Gateway API conversion: `Gateway` into the model's Gateway
//! (one server per listener), `HTTPRoute` and `GRPCRoute` into
//! VirtualService rules, `ReferenceGrant` as written. Which Gateway
//! listeners or Services a route attaches to, and whether a reference into
//! another namespace is granted, needs every resource: `check` resolves it.

mod backends;
mod filters;
mod grant;
mod grpc;
mod listener;
mod matches;
mod route;

use crate::config::model::{Host, HttpRoute};

pub(crate) use grant::reference_grant;
pub(crate) use grpc::grpc_route;
pub(crate) use listener::kube_gateway;
pub(crate) use route::{creation_timestamp, http_route};

/// The API group of the Gateway API kinds.
pub(crate) const GROUP: &str = "gateway.networking.k8s.io";

/// The label a gateway proxy carries to serve a Gateway API `Gateway`
/// (Istio's: its deployment for Gateway `NAME` is labelled so).
pub(crate) const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// What route attachment needs of a Gateway API `Gateway`.
#[derive(Debug, Clone)]
pub(crate) struct KubeGateway {
    /// `NAMESPACE/NAME`.
    pub qualified: String,
    /// The listeners, in order.
    pub listeners: Vec<ListenerInfo>,
}

/// One listener, as routes see it.
#[derive(Debug, Clone)]
pub(crate) struct ListenerInfo {
    /// `name` (a parentRef's `sectionName`).
    pub name: String,
    /// `port`.
    pub port: u16,
    /// `hostname`, lowercase; `None`: any.
    pub hostname: Option<String>,
    /// `allowedRoutes.namespaces.from: All`.
    pub all_namespaces: bool,
    /// Route kinds it admits (`HTTPRoute`, `GRPCRoute`, ...).
    pub kinds: Vec<String>,
}

/// A match's precedence among all the routes of one host, highest first
/// (Gateway API: the most specific match wins): for an HTTPRoute, path
/// kind (exact, regex, prefix, as Istio ranks them), path length, method,
/// header and query counts; for a GRPCRoute, service and method lengths
/// and header count.
pub(crate) type Rank = (u8, usize, usize, usize, usize);

/// A converted `HTTPRoute` or `GRPCRoute`, before attachment.
#[derive(Debug, Clone)]
pub(crate) struct KubeRoute {
    /// `parentRefs`.
    pub parents: Vec<Parent>,
    /// `hostnames` with their paths, lowercase.
    pub hostnames: Vec<(String, String)>,
    /// One rule per match with its rank, in Gateway API precedence order.
    pub http: Vec<(Rank, HttpRoute)>,
    /// `metadata.creationTimestamp` (RFC 3339, UTC): among routes whose
    /// matches tie, the oldest wins.
    pub created: Option<String>,
}

/// A `parentRefs` entry.
#[derive(Debug, Clone)]
pub(crate) struct Parent {
    /// Its path.
    pub path: String,
    /// What it names.
    pub target: ParentTarget,
}

/// What a route attaches to.
#[derive(Debug, Clone)]
pub(crate) enum ParentTarget {
    /// A Gateway's listeners (all, or those of `section`, `port`).
    Gateway {
        /// `NAMESPACE/NAME`.
        qualified: String,
        /// `sectionName`.
        section: Option<String>,
        /// `port`.
        port: Option<u16>,
    },
    /// A Service's sidecar traffic (GAMMA).
    Service {
        /// Its canonical host.
        host: Host,
        /// Its namespace: a route in another one is a consumer route.
        namespace: String,
        /// `port`.
        port: Option<u16>,
    },
}

/// A reference into another namespace, allowed only by a `ReferenceGrant`
/// there.
#[derive(Debug, Clone)]
pub(crate) struct CrossRef {
    /// Path of the reference.
    pub path: String,
    /// The referring kind (`HTTPRoute`, `GRPCRoute`, `Gateway`).
    pub from_kind: String,
    /// The referred kind (`Service`, `Secret`), core group.
    pub to_kind: &'static str,
    /// Its namespace.
    pub to_namespace: String,
    /// Its name.
    pub to_name: String,
}

/// A `ReferenceGrant`.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// Its namespace: where the referred objects are.
    pub namespace: String,
    /// `from`: `(group, kind, namespace)`.
    pub from: Vec<(String, String, String)>,
    /// `to`: `(group, kind, name)`.
    pub to: Vec<(String, String, Option<String>)>,
}

impl Grant {
    /// True when this grant lets `r`, in namespace `from_ns`, refer.
    pub(crate) fn allows(&self, from_ns: &str, r: &CrossRef) -> bool {
        let from =
            (self.from.iter()).any(|(g, k, ns)| g == GROUP && *k == r.from_kind && ns == from_ns);
        let to = self.to.iter().any(|(g, k, name)| {
            g.is_empty() && k == r.to_kind && name.as_ref().is_none_or(|n| *n == r.to_name)
        });
        self.namespace == r.to_namespace && from && to
    }
}
