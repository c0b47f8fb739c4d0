//! One `AuthorizationPolicy` rule → one Envoy RBAC `Policy`, following
//! istiod (`pilot/pkg/security/authz/model`): each `to` is an AND of its
//! fields (plus the `when` keys about the destination), each `from` an AND
//! of its fields (plus the other `when` keys); a field's `values` are an
//! OR, its `notValues` a NOT(OR). A rule without `from`/`to` matches any.

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    permission, principal, Permission, Policy, Principal,
};
use envoy_types::pb::envoy::config::route::v3::{header_matcher, HeaderMatcher};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    path_matcher, string_matcher::MatchPattern, PathMatcher, RegexMatcher, StringMatcher,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::config::model::{
    AuthzCondition, AuthzKey, AuthzOperation, AuthzRule, AuthzSource, AuthzValues, Cidr,
};

/// Istio writes principals without the URI scheme; the peer certificate's
/// URI SAN has it.
const SPIFFE: &str = "spiffe://";

/// What a rule needs to know about the proxy it is built for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    /// The policy's namespace (default of `serviceAccounts` without one).
    pub namespace: &'a str,
    /// The app port: Istio's `ports` name the workload's port, which is
    /// the port the sidecar forwards to.
    pub app_port: u16,
    /// The mesh's trust domain (see [`local_principal`]).
    pub trust_domain: &'a str,
}

/// The Envoy policy of one rule.
pub(super) fn policy(rule: &AuthzRule, t: Target<'_>) -> Policy {
    let (dest_when, src_when): (Vec<&AuthzCondition>, Vec<&AuthzCondition>) =
        rule.when.iter().partition(|c| is_destination_key(&c.key));
    let base_perm: Vec<Permission> = dest_when
        .iter()
        .flat_map(|c| when_permission(c, t))
        .collect();
    let base_princ: Vec<Principal> = src_when.iter().flat_map(|c| when_principal(c, t)).collect();
    let mut permissions: Vec<Permission> = (rule.to.iter())
        .map(|op| {
            permission_and(
                operation(op, t)
                    .into_iter()
                    .chain(base_perm.clone())
                    .collect(),
            )
        })
        .collect();
    if rule.to.is_empty() {
        permissions.push(permission_and(base_perm));
    }
    let mut principals: Vec<Principal> = (rule.from.iter())
        .map(|s| principal_and(source(s, t).into_iter().chain(base_princ.clone()).collect()))
        .collect();
    if rule.from.is_empty() {
        principals.push(principal_and(base_princ));
    }
    Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

/// The policy of an `AuthorizationPolicy` without rules: never matches.
pub(super) fn match_never() -> Policy {
    Policy {
        permissions: vec![perm(permission::Rule::NotRule(Box::new(perm(
            permission::Rule::Any(true),
        ))))],
        principals: vec![princ(principal::Identifier::NotId(Box::new(princ(
            principal::Identifier::Any(true),
        ))))],
        ..Default::default()
    }
}

fn is_destination_key(k: &AuthzKey) -> bool {
    matches!(
        k,
        AuthzKey::DestinationIp | AuthzKey::DestinationPort | AuthzKey::ConnectionSni
    )
}

/// Fields in istiod's order: hosts, methods, paths, ports.
fn operation(op: &AuthzOperation, t: Target<'_>) -> Vec<Permission> {
    let mut out = Vec::new();
    out.extend(perm_field(&op.hosts, |v| header_perm(host_matcher(v))));
    out.extend(perm_field(&op.methods, |v| {
        header_perm(header_matcher(":method", v))
    }));
    out.extend(perm_field(&op.paths, |v| {
        perm(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(string_with_prefix(v, ""))),
        }))
    }));
    out.extend(perm_field(&op.ports, |p| port_perm(*p, t)));
    out
}

/// Fields in istiod's order: principals, requestPrincipals, serviceAccounts, trustDomains,
/// namespaces, remoteIpBlocks, ipBlocks.
fn source(s: &AuthzSource, t: Target<'_>) -> Vec<Principal> {
    let mut out = Vec::new();
    out.extend(princ_field(&s.principals, |v| principal(v, t)));
    out.extend(princ_field(&s.request_principals, |v| {
        super::jwt::request_principal(v)
    }));
    out.extend(princ_field(&s.service_accounts, |v| service_account(v, t)));
    out.extend(princ_field(&s.trust_domains, |v| trust_domain(v)));
    out.extend(princ_field(&s.namespaces, |v| namespace(v)));
    out.extend(princ_field(&s.remote_ip_blocks, |c| {
        princ(principal::Identifier::RemoteIp(cidr(c)))
    }));
    out.extend(princ_field(&s.ip_blocks, |c| {
        princ(principal::Identifier::DirectRemoteIp(cidr(c)))
    }));
    out
}

fn when_permission(c: &AuthzCondition, t: Target<'_>) -> Vec<Permission> {
    perm_field(&c.values, |v| match c.key {
        AuthzKey::DestinationIp => Cidr::parse(v).map_or_else(never_perm, |c| {
            perm(permission::Rule::DestinationIp(cidr(&c)))
        }),
        AuthzKey::DestinationPort => v.parse().map_or_else(|_| never_perm(), |p| port_perm(p, t)),
        _ => perm(permission::Rule::RequestedServerName(string_with_prefix(
            v, "",
        ))),
    })
}

fn when_principal(c: &AuthzCondition, t: Target<'_>) -> Vec<Principal> {
    princ_field(&c.values, |v| match &c.key {
        AuthzKey::RequestHeader(name) => {
            princ(principal::Identifier::Header(header_matcher(name, v)))
        }
        AuthzKey::SourceIp | AuthzKey::RemoteIp => match Cidr::parse(v) {
            Some(block) if c.key == AuthzKey::SourceIp => {
                princ(principal::Identifier::DirectRemoteIp(cidr(&block)))
            }
            Some(block) => princ(principal::Identifier::RemoteIp(cidr(&block))),
            None => never_princ(),
        },
        AuthzKey::SourceNamespace => namespace(v),
        AuthzKey::SourceServiceAccount => service_account(v, t),
        AuthzKey::SourceTrustDomain => trust_domain(v),
        AuthzKey::RequestPrincipal => super::jwt::request_principal(v),
        AuthzKey::RequestAudiences => super::jwt::claim(&["aud".to_string()], v),
        AuthzKey::RequestPresenter => super::jwt::claim(&["azp".to_string()], v),
        AuthzKey::RequestClaim(path) => super::jwt::claim(path, v),
        _ => principal(v, t),
    })
}

/// `values` → OR; `notValues` → NOT(OR); absent lists add nothing.
fn perm_field<T>(vals: &AuthzValues<T>, one: impl Fn(&T) -> Permission) -> Vec<Permission> {
    let mut out = Vec::new();
    if !vals.values.is_empty() {
        out.push(perm_or(vals.values.iter().map(&one).collect()));
    }
    if !vals.not_values.is_empty() {
        let or = perm_or(vals.not_values.iter().map(&one).collect());
        out.push(perm(permission::Rule::NotRule(Box::new(or))));
    }
    out
}

fn princ_field<T>(vals: &AuthzValues<T>, one: impl Fn(&T) -> Principal) -> Vec<Principal> {
    let mut out = Vec::new();
    if !vals.values.is_empty() {
        out.push(princ_or(vals.values.iter().map(&one).collect()));
    }
    if !vals.not_values.is_empty() {
        let or = princ_or(vals.not_values.iter().map(&one).collect());
        out.push(princ(principal::Identifier::NotId(Box::new(or))));
    }
    out
}

fn perm(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn princ(id: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(id),
    }
}

fn perm_or(rules: Vec<Permission>) -> Permission {
    perm(permission::Rule::OrRules(permission::Set { rules }))
}

fn princ_or(ids: Vec<Principal>) -> Principal {
    princ(principal::Identifier::OrIds(principal::Set { ids }))
}

/// An AND of `rules`, or of `any` when there are none (istiod's shape).
fn permission_and(mut rules: Vec<Permission>) -> Permission {
    if rules.is_empty() {
        rules.push(perm(permission::Rule::Any(true)));
    }
    perm(permission::Rule::AndRules(permission::Set { rules }))
}

fn principal_and(mut ids: Vec<Principal>) -> Principal {
    if ids.is_empty() {
        ids.push(princ(principal::Identifier::Any(true)));
    }
    princ(principal::Identifier::AndIds(principal::Set { ids }))
}

fn never_perm() -> Permission {
    perm(permission::Rule::NotRule(Box::new(perm(
        permission::Rule::Any(true),
    ))))
}

fn never_princ() -> Principal {
    princ(principal::Identifier::NotId(Box::new(princ(
        principal::Identifier::Any(true),
    ))))
}

/// Istio's `ports` are the workload's port. Each Trellis inbound listener
/// serves one workload port (the app port, or a Sidecar ingress port), so
/// the condition is decided per listener here: its port matches every
/// request, any other port none.
fn port_perm(port: u16, t: Target<'_>) -> Permission {
    if port == t.app_port {
        perm(permission::Rule::Any(true))
    } else {
        never_perm()
    }
}

fn header_perm(h: HeaderMatcher) -> Permission {
    perm(permission::Rule::Header(h))
}

/// The peer certificate's URI SAN (Envoy `authenticated.principal_name`).
fn authenticated(name: StringMatcher) -> Principal {
    princ(principal::Identifier::Authenticated(
        principal::Authenticated {
            principal_name: Some(name),
        },
    ))
}

/// A principal (`TD/ns/NS/sa/SA`) against the peer's URI SAN.
fn principal(v: &str, t: Target<'_>) -> Principal {
    let v = local_principal(v, t.trust_domain);
    authenticated(string_with_prefix(&v, SPIFFE))
}

/// Istio (`trustdomain.Bundle`): a principal whose trust domain is
/// `cluster.local` or the mesh's own names the mesh's trust domain, so
/// policies written for Istio's default keep working under another one.
/// Principals not of the form `TD/ns/NS/sa/SA`, or with `*` as the trust
/// domain, stay as written.
pub(super) fn local_principal(v: &str, trust_domain: &str) -> String {
    let parts: Vec<&str> = v.split('/').collect();
    match parts.as_slice() {
        [td, rest @ ..] if rest.len() == 4 && (*td == "cluster.local" || *td == trust_domain) => {
            format!("{trust_domain}/{}", rest.join("/"))
        }
        _ => v.to_string(),
    }
}

fn namespace(v: &str) -> Principal {
    let ns = v.split('*').map(quote_meta).collect::<Vec<_>>().join(".*");
    authenticated(regex(&format!(".*/ns/{ns}/.*")))
}

fn service_account(v: &str, t: Target<'_>) -> Principal {
    let (ns, sa) = v.split_once('/').unwrap_or((t.namespace, v));
    let (ns, sa) = (quote_meta(ns), quote_meta(sa));
    authenticated(regex(&format!("spiffe://.+/ns/{ns}/(.+/|)sa/{sa}(/.+)?")))
}

fn trust_domain(v: &str) -> Principal {
    let m = match v.split_once('*') {
        None => prefix(&format!("{SPIFFE}{v}/"), false),
        Some(("", "")) => prefix(SPIFFE, false),
        Some((a, b)) => regex(&format!(
            "spiffe://{}[^/]*{}/.*",
            quote_meta(a),
            quote_meta(b)
        )),
    };
    authenticated(m)
}

fn cidr(c: &Cidr) -> CidrRange {
    CidrRange {
        address_prefix: c.addr.to_string(),
        prefix_len: Some(UInt32Value {
            value: u32::from(c.prefix_len),
        }),
    }
}

/// istiod's `StringMatcherWithPrefix`: `*` alone is "non-empty", a
/// leading `*` a suffix match (a regex when there is a prefix to keep), a
/// trailing `*` a prefix match.
pub(super) fn string_with_prefix(v: &str, pre: &str) -> StringMatcher {
    if v == "*" {
        regex(".+")
    } else if let Some(suffix) = v.strip_prefix('*') {
        if pre.is_empty() {
            string(MatchPattern::Suffix(suffix.to_string()), false)
        } else {
            regex(&format!("{}.*{}", quote_meta(pre), quote_meta(suffix)))
        }
    } else if let Some(p) = v.strip_suffix('*') {
        prefix(&format!("{pre}{p}"), false)
    } else {
        string(MatchPattern::Exact(format!("{pre}{v}")), false)
    }
}

/// istiod's `HeaderMatcher`: `*` is "present".
fn header_matcher(name: &str, v: &str) -> HeaderMatcher {
    header_with_case(name, v, false)
}

/// istiod's `HostMatcher`: like a header, case-insensitive.
fn host_matcher(v: &str) -> HeaderMatcher {
    header_with_case(":authority", v, true)
}

fn header_with_case(name: &str, v: &str, ignore_case: bool) -> HeaderMatcher {
    let spec = if v == "*" {
        header_matcher::HeaderMatchSpecifier::PresentMatch(true)
    } else {
        let pattern = if let Some(s) = v.strip_prefix('*') {
            MatchPattern::Suffix(s.to_string())
        } else if let Some(p) = v.strip_suffix('*') {
            MatchPattern::Prefix(p.to_string())
        } else {
            MatchPattern::Exact(v.to_string())
        };
        header_matcher::HeaderMatchSpecifier::StringMatch(string(pattern, ignore_case))
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

fn string(pattern: MatchPattern, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

fn prefix(p: &str, ignore_case: bool) -> StringMatcher {
    string(MatchPattern::Prefix(p.to_string()), ignore_case)
}

fn regex(r: &str) -> StringMatcher {
    string(
        MatchPattern::SafeRegex(RegexMatcher {
            regex: r.to_string(),
            ..Default::default()
        }),
        false,
    )
}

/// Go's `regexp.QuoteMeta` (what istiod uses): RE2 reads it the same way.
pub(super) fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
