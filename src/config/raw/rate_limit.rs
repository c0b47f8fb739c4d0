//! `RateLimit` (`trellis.dev/v1alpha1`), as written: limits on requests
//! to a service (or a subset of it) or a gateway, per rule.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::StringMatch;

/// `RateLimit.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RateLimit {
    pub target: Option<Target>,
    /// `local` (per proxy, the default) or `global` (a shared counter).
    pub mode: Option<String>,
    /// The rate-limit service of `global` mode.
    pub service: Option<Service>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// `spec.target`: a service host (optionally a subset) or a gateway.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Target {
    pub host: Option<String>,
    pub subset: Option<String>,
    /// A `Gateway`, `NAME` or `NAMESPACE/NAME`.
    pub gateway: Option<String>,
}

/// `spec.service`: where sidecars reach `trellis ratelimit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Service {
    /// `HOST:PORT`.
    #[serde(default)]
    pub address: String,
    /// The service's identity, checked on its certificate.
    pub namespace: Option<String>,
    pub service_account: Option<String>,
}

/// One rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Rule {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Option<Match>,
    pub limit: Option<Limit>,
    pub response: Option<Response>,
    #[serde(default)]
    pub shadow: bool,
}

/// `rules[].match`: every condition given must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Match {
    pub path: Option<StringMatch>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    pub source: Option<Source>,
}

/// `rules[].match.source`: one of a principal or a namespace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Source {
    pub principal: Option<String>,
    pub namespace: Option<String>,
}

/// `rules[].limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Limit {
    pub requests: i64,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub burst: i64,
}

/// `rules[].response`: what a limited request gets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Response {
    pub status: Option<i64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
