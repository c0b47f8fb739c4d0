//! `RateLimit` (`trellis.dev/v1alpha1`): request limits on the inbound side
//! of a service's sidecars or on a gateway, one token bucket per rule,
//! counted per proxy (`local`) or across every proxy of the target through
//! `trellis ratelimit` (`global`). See docs/config-reference.md.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Host, Origin, StringMatch};

/// One `RateLimit` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Where it was read.
    pub origin: Origin,
    /// The proxies whose inbound requests it limits.
    pub target: RateLimitTarget,
    /// Per proxy or shared.
    pub mode: RateLimitMode,
    /// Its rules; no two can match one request (checked).
    pub rules: Vec<RateLimitRule>,
}

impl RateLimit {
    /// `NAMESPACE/NAME`: the descriptor value that names it to the
    /// rate-limit service.
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.origin.namespace, self.origin.name)
    }
}

/// `spec.target`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RateLimitTarget {
    /// Every sidecar of a service, or of one of its subsets.
    Service {
        /// The service.
        host: Host,
        /// A `DestinationRule` subset of it.
        subset: Option<String>,
    },
    /// The proxies serving a `Gateway` (`NAMESPACE/NAME`).
    Gateway(String),
}

/// `spec.mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitMode {
    /// A bucket per proxy: Envoy's local rate-limit filter.
    Local,
    /// One bucket for all proxies of the target, kept by the rate-limit
    /// service (`trellis ratelimit`) that proxies call.
    Global(RateLimitService),
}

/// Where proxies reach the rate-limit service (`spec.service`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RateLimitService {
    /// Host name or IP address.
    pub host: String,
    /// Its gRPC port.
    pub port: u16,
    /// The SPIFFE identity its certificate must carry: namespace and
    /// service account (`None`: any identity of the trust domain).
    pub identity: Option<(String, String)>,
}

/// One rule: requests it matches share one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRule {
    /// Unique in its resource; names the bucket in stats and descriptors.
    pub name: String,
    /// Which requests count.
    pub matches: RuleMatch,
    /// How many pass.
    pub limit: Limit,
    /// What a limited request gets.
    pub response: LimitResponse,
    /// Counted in stats, never enforced.
    pub shadow: bool,
}

/// `rules[].match`; an empty match takes every request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleMatch {
    /// The path without the query string.
    pub path: Option<StringMatch>,
    /// `GET`, `POST`, ...
    pub method: Option<String>,
    /// Request headers (lowercase names).
    pub headers: BTreeMap<String, StringMatch>,
    /// The caller, by its mTLS identity.
    pub source: Option<SourceMatch>,
}

/// `rules[].match.source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceMatch {
    /// A principal, `TRUST_DOMAIN/ns/NS/sa/SA` (Istio's form).
    Principal(String),
    /// Any workload of a namespace.
    Namespace(String),
}

/// `rules[].limit`: `requests` per `unit`, plus `burst` more at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// At least 1.
    pub requests: u32,
    /// The period.
    pub unit: LimitUnit,
    /// Extra requests a full bucket lets through at once.
    pub burst: u32,
}

impl Limit {
    /// The bucket's size: the steady rate's `requests` plus `burst`.
    pub fn capacity(&self) -> u32 {
        self.requests.saturating_add(self.burst)
    }
}

/// `rules[].limit.unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitUnit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
}

impl LimitUnit {
    /// The period as a duration.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            LimitUnit::Second => 1,
            LimitUnit::Minute => 60,
            LimitUnit::Hour => 3600,
        })
    }

    /// `second`, `minute`, `hour`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitUnit::Second => "second",
            LimitUnit::Minute => "minute",
            LimitUnit::Hour => "hour",
        }
    }
}

/// `rules[].response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitResponse {
    /// 429 unless written.
    pub status: u16,
    /// Extra headers on a limited response (the `x-ratelimit-*` headers
    /// are always sent).
    pub headers: BTreeMap<String, String>,
}

impl Default for LimitResponse {
    fn default() -> Self {
        LimitResponse {
            status: 429,
            headers: BTreeMap::new(),
        }
    }
}
