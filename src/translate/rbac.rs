//! `AuthorizationPolicy` → Envoy `envoy.filters.http.rbac` filters for a
//! proxy's inbound HTTP connection manager, as istiod builds them
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
//! Envoy answers a denial with 403 `RBAC: access denied`.

mod matchers;

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::rbac::v3::{rbac::Action, Policy};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::google::protobuf::Any;
use prost::encoding::{self, WireType};
use prost::{Message, Name};

use crate::config::model::{
    AuthorizationPolicy, AuthzAction, MeshConfig, DEFAULT_ROOT_NAMESPACE, DEFAULT_TRUST_DOMAIN,
};
use crate::registry::Proxy;
use matchers::Target;

/// Envoy's HTTP RBAC filter.
pub const RBAC_FILTER: &str = "envoy.filters.http.rbac";

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
    let applying: Vec<&AuthorizationPolicy> = authz.for_proxy(proxy).collect();
    [AuthzAction::Audit, AuthzAction::Deny, AuthzAction::Allow]
        .into_iter()
        .filter_map(|action| {
            let of_action = applying.iter().copied().filter(|p| p.action == action);
            filter(action, of_action, proxy, &authz.trust_domain)
        })
        .collect()
}

fn filter<'a>(
    action: AuthzAction,
    policies: impl Iterator<Item = &'a AuthorizationPolicy>,
    proxy: &Proxy,
    trust_domain: &str,
) -> Option<HttpFilter> {
    let mut enforced: Option<BTreeMap<String, Policy>> = None;
    let mut shadow: Option<BTreeMap<String, Policy>> = None;
    for p in policies {
        let set = if p.dry_run {
            &mut shadow
        } else {
            &mut enforced
        };
        set.get_or_insert_with(BTreeMap::new)
            .extend(envoy_policies(p, proxy, trust_domain));
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
    let bytes = http_rbac_bytes(
        envoy_action,
        enforced.as_ref(),
        shadow.as_ref(),
        shadow_prefix,
    );
    Some(HttpFilter {
        name: RBAC_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(Any {
            type_url: HttpRbac::type_url(),
            value: bytes,
        })),
        ..Default::default()
    })
}

/// One Envoy policy per rule, named as istiod names them.
fn envoy_policies(
    p: &AuthorizationPolicy,
    proxy: &Proxy,
    trust_domain: &str,
) -> Vec<(String, Policy)> {
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
        app_port: proxy.app_port,
        trust_domain,
    };
    (p.rules.iter().enumerate())
        .map(|(i, r)| (name(i), matchers::policy(r, target)))
        .collect()
}

/// Encodes the filter config with its policy maps in name order. prost
/// encodes `map` fields from a `HashMap` in iteration order, which differs
/// between runs; snapshot versions hash the bytes, so they must be stable.
fn http_rbac_bytes(
    action: Action,
    enforced: Option<&BTreeMap<String, Policy>>,
    shadow: Option<&BTreeMap<String, Policy>>,
    shadow_prefix: &str,
) -> Vec<u8> {
    // envoy.extensions.filters.http.rbac.v3.RBAC: rules = 1,
    // shadow_rules = 2, shadow_rules_stat_prefix = 3.
    let mut buf = Vec::new();
    for (tag, rules) in [(1, enforced), (2, shadow)] {
        if let Some(policies) = rules {
            let inner = rbac_bytes(action, policies);
            encoding::bytes::encode(tag, &inner, &mut buf);
        }
    }
    if !shadow_prefix.is_empty() {
        encoding::string::encode(3, &shadow_prefix.to_string(), &mut buf);
    }
    buf
}

/// `envoy.config.rbac.v3.RBAC`: action = 1, policies = 2 (map entries:
/// key = 1, value = 2).
fn rbac_bytes(action: Action, policies: &BTreeMap<String, Policy>) -> Vec<u8> {
    let mut buf = Vec::new();
    if action != Action::Allow {
        encoding::int32::encode(1, &(action as i32), &mut buf);
    }
    for (name, policy) in policies {
        let len =
            encoding::string::encoded_len(1, name) + encoding::message::encoded_len(2, policy);
        encoding::encode_key(2, WireType::LengthDelimited, &mut buf);
        encoding::encode_varint(len as u64, &mut buf);
        encoding::string::encode(1, name, &mut buf);
        encoding::message::encode(2, policy, &mut buf);
    }
    buf
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

#[cfg(test)]
mod tests;
