//! `RequestAuthentication` → Envoy's `envoy.filters.http.jwt_authn`
//! filter, as istiod builds it (`pilot/pkg/security/authn`):
//!
//! - the resources that apply to a proxy are those in the root namespace
//!   and in the proxy's namespace whose `selector` is absent or a subset
//!   of its labels (the same rule as `AuthorizationPolicy`);
//! - each `jwtRules` entry is one provider with its keys inline: a
//!   `jwksUri` is fetched by the control plane (the runtime passes the
//!   keys in as [`FetchedJwks`]), so Envoy never calls out;
//! - one requirement for every path: any provider, or no token at all
//!   (`requires_any` of the providers and `allow_missing`; Envoy API
//!   `JwtRequirement`). A token that is present and fails every provider
//!   (expired, bad signature, unknown issuer) is answered 401; a request without one goes on, and RBAC decides (a policy that
//!   needs a request principal denies it: 403);
//! - every provider writes the verified payload under [`PAYLOAD_KEY`] in
//!   the filter's dynamic metadata, where `translate::rbac` matches
//!   principals and claims;
//! - a token for another audience is 401 too (see [`local_reply`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::config::route::v3::{route_match, RouteMatch};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    jwt_provider::JwksSourceSpecifier, jwt_requirement::RequiresType, requirement_rule,
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementOrList, RequirementRule,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::util::pack_any;

use crate::config::model::{JwksSource, JwtRule, RequestAuthentication};

pub mod local_reply;
use crate::registry::Proxy;

/// Envoy's JWT authentication filter (also the metadata namespace it
/// writes the payload into).
pub const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";

/// The dynamic-metadata key of the verified payload, for every provider.
pub const PAYLOAD_KEY: &str = "payload";

/// Keys fetched from `jwksUri`s: URI → JSON Web Key Set.
pub type FetchedJwks = BTreeMap<String, String>;

/// Served for a `jwksUri` whose keys have never been fetched: a P-256
/// public key whose private half was discarded when it was generated, so
/// no token verifies (fail closed, as istiod's fake JWKS).
pub const UNFETCHED_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"trellis-unfetched","x":"3G4iY5-tIGUPkB2eC2IdtJ3VrnIHXa_OJgWHxDHq7D4","y":"iZcEX74KBjPj6pVya-R8phEFWn9S10uHTqmC5niSaNI"}]}"#;

/// Every `RequestAuthentication` and what selecting and serving them
/// needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JwtInputs {
    /// The mesh's root namespace (resources there apply mesh-wide).
    pub root_namespace: String,
    /// Every `RequestAuthentication`, sorted by namespace and name.
    pub resources: Vec<Arc<RequestAuthentication>>,
    /// Keys fetched by the runtime (see [`FetchedJwks`]).
    pub fetched: FetchedJwks,
}

impl JwtInputs {
    /// The resources that apply to `proxy`.
    fn for_proxy<'a>(
        &'a self,
        proxy: &'a Proxy,
    ) -> impl Iterator<Item = &'a RequestAuthentication> {
        self.resources.iter().map(|r| r.as_ref()).filter(move |r| {
            let ns = &r.origin.namespace;
            if !r.target_services.is_empty() {
                // A target is a service of the policy's own namespace.
                return *ns == proxy.namespace && r.target_services.contains(&proxy.service);
            }
            let scope = *ns == proxy.namespace || *ns == self.root_namespace;
            let selected =
                (r.selector.iter().flatten()).all(|(k, v)| proxy.labels.get(k) == Some(v));
            scope && selected
        })
    }
}

/// The JWT filter for `proxy`'s HCM, to go before RBAC; `None` when no
/// `RequestAuthentication` applies.
pub fn http_filter(inputs: &JwtInputs, proxy: &Proxy) -> Option<HttpFilter> {
    let mut providers = HashMap::new();
    for ra in inputs.for_proxy(proxy) {
        for (i, rule) in ra.jwt_rules.iter().enumerate() {
            let name = format!(
                "ns[{}]-ra[{}]-rule[{i}]",
                ra.origin.namespace, ra.origin.name
            );
            providers.insert(name, provider(rule, &inputs.fetched));
        }
    }
    if providers.is_empty() {
        return None;
    }
    let mut names: Vec<&String> = providers.keys().collect();
    names.sort();
    let requirements = (names.into_iter())
        .map(|n| requirement(RequiresType::ProviderName(n.clone())))
        .chain([requirement(RequiresType::AllowMissing(Default::default()))])
        .collect();
    let rule = RequirementRule {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
            ..Default::default()
        }),
        requirement_type: Some(requirement_rule::RequirementType::Requires(requirement(
            RequiresType::RequiresAny(JwtRequirementOrList { requirements }),
        ))),
    };
    let config = JwtAuthentication {
        providers,
        rules: vec![rule],
        ..Default::default()
    };
    Some(HttpFilter {
        name: JWT_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    })
}

fn requirement(t: RequiresType) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(t),
    }
}

fn provider(rule: &JwtRule, fetched: &FetchedJwks) -> JwtProvider {
    let jwks = match &rule.keys {
        JwksSource::Inline(j) => j.clone(),
        JwksSource::Uri(u) => fetched
            .get(u)
            .cloned()
            .unwrap_or_else(|| UNFETCHED_JWKS.to_string()),
    };
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        forward: rule.forward_original_token,
        from_headers: (rule.from_headers.iter())
            .map(|h| JwtHeader {
                name: h.name.clone(),
                value_prefix: h.prefix.clone(),
            })
            .collect(),
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        forward_payload_header: rule.output_payload_to_header.clone().unwrap_or_default(),
        payload_in_metadata: PAYLOAD_KEY.to_string(),
        failed_status_in_metadata: local_reply::FAILED_STATUS_KEY.to_string(),
        claim_to_headers: (rule.output_claim_to_headers.iter())
            .map(|(header, claim)| JwtClaimToHeader {
                header_name: header.clone(),
                claim_name: claim.clone(),
                ..Default::default()
            })
            .collect(),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(jwks)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Every `jwksUri` named by `resources`, for the runtime's fetcher.
pub fn jwks_uris(resources: &[Arc<RequestAuthentication>]) -> Vec<String> {
    let mut uris: Vec<String> = (resources.iter())
        .flat_map(|r| r.jwt_rules.iter())
        .filter_map(|rule| match &rule.keys {
            JwksSource::Uri(u) => Some(u.clone()),
            JwksSource::Inline(_) => None,
        })
        .collect();
    uris.sort();
    uris.dedup();
    uris
}

#[cfg(test)]
mod tests;
