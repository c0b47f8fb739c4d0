//! `AuthorizationPolicy` → Envoy `envoy.filters.http.rbac` filters for a
//! proxy's inbound HTTP connection manager (and network RBAC filters for
//! its TCP filter chains), as istiod builds them
//! (`pilot/pkg/security/authz/builder`):
//!
//! - the policies that apply to a proxy are those in the root namespace
//!   (mesh-wide) and in the proxy's namespace whose `selector` is absent or
//!   a subset of the proxy's labels;
//! - one filter per action present, in the order AUDIT (Envoy `LOG`), DENY,
//!   ALLOW; a request denied by DENY never reaches ALLOW; when an ALLOW
//!   policy applies, a request must match one of them; when none applies,
//!   there is no ALLOW filter and everything not denied is allowed;
//! - each rule is an Envoy policy named `ns[NS]-policy[NAME]-rule[I]`; a
//!   policy without rules is one that never matches (so ALLOW without
//!   rules denies everything);
//! - `istio.io/dry-run` policies go to `shadow_rules` (logged, counted under
//!   `istio_dry_run_allow_`/`istio_dry_run_deny_`, never enforced).
//!
//! Envoy answers a denied request with 403 `RBAC: access denied`; on TCP
//! filter chains (`envoy.filters.network.rbac`) it closes the connection.

mod jwt;
mod matchers;
mod tcp;

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::{filter, Filter};
use envoy_types::pb::envoy::config::rbac::v3::{rbac::Action, Policy, Rbac};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::util::pack_any;
use prost::{Message, Name};

use crate::config::model::{
    AuthorizationPolicy, AuthzAction, MeshConfig, DEFAULT_ROOT_NAMESPACE, DEFAULT_TRUST_DOMAIN,
};
use crate::registry::Proxy;
use matchers::Target;

/// Envoy's HTTP RBAC filter.
pub const RBAC_FILTER: &str = "envoy.filters.http.rbac";
/// Envoy's network RBAC filter (TCP filter chains).
pub const NETWORK_RBAC_FILTER: &str = "envoy.filters.network.rbac";
/// Istio's stat prefix of the network RBAC filter: its counters are
/// `tcp.rbac.allowed` / `tcp.rbac.denied`.
const TCP_STAT_PREFIX: &str = "tcp.";

/// Every `AuthorizationPolicy` and the root namespace whose policies apply
/// mesh-wide: what translation needs for any proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthzPolicies {
    /// The `Mesh` resource's `rootNamespace`.
    pub root_namespace: String,
    /// The `Mesh` resource's `trustDomain`: principals written with
    /// `cluster.local` mean this one (Istio's trust domain rule).
    pub trust_domain: String,
    /// Every policy, sorted by namespace and name.
    pub policies: Vec<Arc<AuthorizationPolicy>>,
}

impl Default for AuthzPolicies {
    /// No policies; Istio's default root namespace.
    fn default() -> Self {
        AuthzPolicies {
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            policies: Vec::new(),
        }
    }
}

impl AuthzPolicies {
    /// The policies of `mesh`.
    pub fn from_mesh(mesh: &MeshConfig) -> Self {
        AuthzPolicies {
            root_namespace: mesh.mesh.root_namespace.clone(),
            trust_domain: mesh.mesh.trust_domain.clone(),
            policies: mesh.authorization_policies.clone(),
        }
    }

    /// The policies that apply to `proxy` (Istio's selection rules).
    pub fn for_proxy<'a>(
        &'a self,
        proxy: &'a Proxy,
    ) -> impl Iterator<Item = &'a AuthorizationPolicy> {
        self.policies.iter().map(|p| p.as_ref()).filter(move |p| {
            let ns = &p.origin.namespace;
            let scope = *ns == proxy.namespace || *ns == self.root_namespace;
            let selected =
                (p.selector.iter().flatten()).all(|(k, v)| proxy.labels.get(k) == Some(v));
            scope && selected
        })
    }
}

/// The RBAC filters for `proxy`'s inbound HTTP connection manager, to go
/// right before the router; empty when no policy applies.
pub fn http_filters(authz: &AuthzPolicies, proxy: &Proxy) -> Vec<HttpFilter> {
    http_filters_on(authz, proxy, proxy.app_port)
}

/// [`http_filters`] for a listener on `port` (a Sidecar ingress port),
/// which the rules' `to.operation.ports` are checked against.
pub fn http_filters_on(authz: &AuthzPolicies, proxy: &Proxy, port: u16) -> Vec<HttpFilter> {
    let built = rule_sets(authz, proxy, Layer::Http, port);
    (built.into_iter())
        .map(|r| HttpFilter {
            name: RBAC_FILTER.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(HttpRbac {
                rules: r.rules,
                shadow_rules: r.shadow_rules,
                shadow_rules_stat_prefix: r.shadow_prefix,
                ..Default::default()
            }))),
            ..Default::default()
        })
        .collect()
}

/// The network RBAC filters for a TCP filter chain of `proxy`, to go
/// before `tcp_proxy`; empty when no policy applies. `port` is what a
/// rule's `ports` are checked against: the app port on a sidecar, the
/// server port on a gateway. Rules are translated for TCP (see [`tcp`]).
/// Envoy closes a denied connection and counts it in
/// `tcp.rbac.denied`.
pub fn network_filters(authz: &AuthzPolicies, proxy: &Proxy, port: u16) -> Vec<Filter> {
    let built = rule_sets(authz, proxy, Layer::Tcp, port);
    (built.into_iter())
        .map(|r| Filter {
            name: NETWORK_RBAC_FILTER.to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(NetworkRbac {
                rules: r.rules,
                shadow_rules: r.shadow_rules,
                shadow_rules_stat_prefix: r.shadow_prefix,
                stat_prefix: TCP_STAT_PREFIX.to_string(),
                ..Default::default()
            }))),
        })
        .collect()
}

/// Which filter the rules are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Http,
    Tcp,
}

/// The enforced and shadow rules of one action's filter.
struct RuleSet {
    rules: Option<Rbac>,
    shadow_rules: Option<Rbac>,
    shadow_prefix: String,
}

/// One rule set per action present, in filter order (AUDIT, DENY, ALLOW).
fn rule_sets(authz: &AuthzPolicies, proxy: &Proxy, layer: Layer, port: u16) -> Vec<RuleSet> {
    let applying: Vec<&AuthorizationPolicy> = authz.for_proxy(proxy).collect();
    let cx = Cx {
        trust_domain: &authz.trust_domain,
        port,
        layer,
    };
    [AuthzAction::Audit, AuthzAction::Deny, AuthzAction::Allow]
        .into_iter()
        .filter_map(|action| {
            let of_action = applying.iter().copied().filter(|p| p.action == action);
            rule_set(action, of_action, cx)
        })
        .collect()
}

/// What every rule of one filter is built with.
#[derive(Debug, Clone, Copy)]
struct Cx<'a> {
    trust_domain: &'a str,
    port: u16,
    layer: Layer,
}

fn rule_set<'a>(
    action: AuthzAction,
    policies: impl Iterator<Item = &'a AuthorizationPolicy>,
    cx: Cx<'_>,
) -> Option<RuleSet> {
    let mut enforced: Option<HashMap<String, Policy>> = None;
    let mut shadow: Option<HashMap<String, Policy>> = None;
    for p in policies {
        let set = if p.dry_run {
            &mut shadow
        } else {
            &mut enforced
        };
        set.get_or_insert_with(HashMap::new)
            .extend(envoy_policies(p, cx));
    }
    if enforced.is_none() && shadow.is_none() {
        return None;
    }
    let envoy_action = match action {
        AuthzAction::Allow => Action::Allow,
        AuthzAction::Deny => Action::Deny,
        AuthzAction::Audit => Action::Log,
    };
    let shadow_prefix = match (action, &shadow) {
        (_, None) | (AuthzAction::Audit, _) => "",
        (AuthzAction::Allow, _) => "istio_dry_run_allow_",
        (AuthzAction::Deny, _) => "istio_dry_run_deny_",
    };
    // The policy maps encode in key order like every map Trellis sends:
    // snapshots encode through `crate::canonical`, nested `Any`s included.
    let rules = |policies: Option<HashMap<String, Policy>>| {
        policies.map(|policies| Rbac {
            action: envoy_action.into(),
            policies,
            ..Default::default()
        })
    };
    Some(RuleSet {
        rules: rules(enforced),
        shadow_rules: rules(shadow),
        shadow_prefix: shadow_prefix.to_string(),
    })
}

/// One Envoy policy per rule, named as istiod names them. For TCP a rule
/// is first reduced to what a connection can match ([`tcp::for_tcp`]);
/// an ALLOW rule that cannot be is left out.
fn envoy_policies(p: &AuthorizationPolicy, cx: Cx<'_>) -> Vec<(String, Policy)> {
    let name = |i: usize| {
        format!(
            "ns[{}]-policy[{}]-rule[{i}]",
            p.origin.namespace, p.origin.name
        )
    };
    if p.rules.is_empty() {
        return vec![(name(0), matchers::match_never())];
    }
    let target = Target {
        namespace: &p.origin.namespace,
        app_port: cx.port,
        trust_domain: cx.trust_domain,
    };
    (p.rules.iter().enumerate())
        .filter_map(|(i, r)| match cx.layer {
            Layer::Http => Some((name(i), matchers::policy(r, target))),
            Layer::Tcp => {
                tcp::for_tcp(r, p.action).map(|r| (name(i), matchers::policy(&r, target)))
            }
        })
        .collect()
}

/// Decodes a filter built here (for tests and debug views).
pub fn decode(filter: &HttpFilter) -> Option<HttpRbac> {
    match &filter.config_type {
        Some(http_filter::ConfigType::TypedConfig(any)) if any.type_url == HttpRbac::type_url() => {
            HttpRbac::decode(any.value.as_slice()).ok()
        }
        _ => None,
    }
}

/// Decodes a network filter built here (for tests and debug views).
pub fn decode_network(filter: &Filter) -> Option<NetworkRbac> {
    match &filter.config_type {
        Some(filter::ConfigType::TypedConfig(any)) if any.type_url == NetworkRbac::type_url() => {
            NetworkRbac::decode(any.value.as_slice()).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
