//! `AuthorizationPolicy` (`security.istio.io` v1beta1 and v1), validated.
//!
//! Values keep Istio's spelling (principals without `spiffe://`, `*`
//! wildcards); `translate::rbac` turns them into Envoy RBAC matchers.

use std::net::IpAddr;

use super::{Labels, Origin};

/// One validated `AuthorizationPolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationPolicy {
    /// `selector.matchLabels`; `None` selects every workload of the
    /// namespace (or of the mesh, in the root namespace).
    pub selector: Option<Labels>,
    /// `action` (default ALLOW).
    pub action: AuthzAction,
    /// `rules`; empty means "matches nothing" (an ALLOW policy without
    /// rules therefore denies everything, as in Istio).
    pub rules: Vec<AuthzRule>,
    /// Annotation `istio.io/dry-run: "true"`: evaluated and logged
    /// (Envoy shadow rules), never enforced.
    pub dry_run: bool,
    /// The declaring resource (its namespace decides where it applies).
    pub origin: Origin,
}

/// `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthzAction {
    /// Requests must match an ALLOW policy when any applies.
    Allow,
    /// Matching requests are denied (403), before ALLOW is considered.
    Deny,
    /// Matching requests are marked for audit logging; never denied.
    Audit,
}

/// One entry of `rules`: every present part must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzRule {
    /// `from[].source`: any of them (empty: any source).
    pub from: Vec<AuthzSource>,
    /// `to[].operation`: any of them (empty: any operation).
    pub to: Vec<AuthzOperation>,
    /// `when`: all of them.
    pub when: Vec<AuthzCondition>,
}

/// A positive and a negative list: `values` (any) and `notValues` (none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzValues<T> {
    /// Any of these must match (ignored when empty).
    pub values: Vec<T>,
    /// None of these may match.
    pub not_values: Vec<T>,
}

impl<T> Default for AuthzValues<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            not_values: Vec::new(),
        }
    }
}

impl<T> AuthzValues<T> {
    /// True when neither list has an entry.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.not_values.is_empty()
    }
}

/// `from[].source`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzSource {
    /// `principals` / `notPrincipals` (`TD/ns/NS/sa/SA`, `*` at either end).
    pub principals: AuthzValues<String>,
    /// `requestPrincipals` / `notRequestPrincipals`: the verified JWT's
    /// `iss/sub` (`*` at either end).
    pub request_principals: AuthzValues<String>,
    /// `namespaces` / `notNamespaces` (`*` anywhere).
    pub namespaces: AuthzValues<String>,
    /// `serviceAccounts` / `notServiceAccounts` (`SA` or `NS/SA`).
    pub service_accounts: AuthzValues<String>,
    /// `trustDomains` / `notTrustDomains`.
    pub trust_domains: AuthzValues<String>,
    /// `ipBlocks` / `notIpBlocks`: the peer's address.
    pub ip_blocks: AuthzValues<Cidr>,
    /// `remoteIpBlocks` / `notRemoteIpBlocks`: the original client.
    pub remote_ip_blocks: AuthzValues<Cidr>,
}

/// `to[].operation`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzOperation {
    /// `hosts` / `notHosts` (case-insensitive, `*` at either end).
    pub hosts: AuthzValues<String>,
    /// `ports` / `notPorts`: the workload's (app) port.
    pub ports: AuthzValues<u16>,
    /// `methods` / `notMethods`.
    pub methods: AuthzValues<String>,
    /// `paths` / `notPaths` (`*` at either end).
    pub paths: AuthzValues<String>,
}

/// One `when` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzCondition {
    /// `key`, parsed.
    pub key: AuthzKey,
    /// `values` / `notValues`, checked for the key.
    pub values: AuthzValues<String>,
}

/// The `when` keys Trellis supports (Istio's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzKey {
    /// `request.headers[NAME]` (name lowercased).
    RequestHeader(String),
    /// `source.ip`.
    SourceIp,
    /// `remote.ip`.
    RemoteIp,
    /// `source.namespace`.
    SourceNamespace,
    /// `source.serviceAccount`.
    SourceServiceAccount,
    /// `source.principal`.
    SourcePrincipal,
    /// `source.trustDomain`.
    SourceTrustDomain,
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `connection.sni`.
    ConnectionSni,
    /// `request.auth.principal`: the verified JWT's `iss/sub`.
    RequestPrincipal,
    /// `request.auth.audiences`: the verified JWT's `aud`.
    RequestAudiences,
    /// `request.auth.presenter`: the verified JWT's `azp`.
    RequestPresenter,
    /// `request.auth.claims[A][B]...`: a claim of the verified JWT, by
    /// its path into nested objects.
    RequestClaim(Vec<String>),
}

/// An address block: a single IP is a /32 (or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address as written.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `10.0.0.1` or `10.0.0.0/8` (and IPv6 forms).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (ip, len) = match text.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = ip.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix_len })
    }
}
