//! Raw serde types: the YAML as written, checked only for shape.
//!
//! Every struct denies unknown fields. Fields Istio has but Trellis does
//! not support yet are kept as `Option<Unsupported>` so that conversion can
//! name them in an error instead of ignoring them.

pub(crate) mod authorization_policy;
pub(crate) mod destination_rule;
pub(crate) mod envoy_filter;
pub(crate) mod gateway;
pub(crate) mod gateway_api;
pub(crate) mod kube_service;
pub(crate) mod peer_authentication;
pub(crate) mod rate_limit;
pub(crate) mod request_authentication;
pub(crate) mod rollout;
pub(crate) mod service_entry;
pub(crate) mod sidecar;
pub(crate) mod telemetry;
pub(crate) mod virtual_service;

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;

/// A field we accept in the YAML only to reject it with a clear message.
pub(crate) type Unsupported = yaml_serde::Value;

/// A whole Kubernetes-style resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Resource<S> {
    #[allow(dead_code)]
    pub api_version: String,
    #[allow(dead_code)]
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default = "Option::default")]
    pub spec: Option<S>,
    /// What a cluster reports about the object (`kubectl get -o yaml`
    /// output has it): state, not configuration, so it is read and dropped.
    #[allow(dead_code)]
    pub status: Option<IgnoredAny>,
}

/// `metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Metadata {
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Accepted and kept for nothing yet: labels on the resource itself
    /// carry no traffic meaning in Istio.
    #[allow(dead_code)]
    pub labels: Option<BTreeMap<String, String>>,
    #[allow(dead_code)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The fields the API server adds to every object: bookkeeping, not
    /// configuration, read and dropped so that `kubectl get -o yaml`
    /// output loads as is.
    #[allow(dead_code)]
    pub creation_timestamp: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub uid: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub resource_version: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub generation: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub managed_fields: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub self_link: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub finalizers: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub owner_references: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub deletion_timestamp: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub deletion_grace_period_seconds: Option<IgnoredAny>,
}

/// `StringMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

/// `Percent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Percent {
    pub value: f64,
}

/// `PortSelector`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PortSelector {
    pub number: i64,
}

/// `Destination`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Destination {
    #[serde(default)]
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelector>,
}

/// `Headers`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Headers {
    pub request: Option<HeaderOps>,
    pub response: Option<HeaderOps>,
}

/// `HeaderOperations`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HeaderOps {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A duration as written (`2s`); checked in conversion. Its own type so
/// that a number (`timeout: 2`) is reported as "expected a duration".
#[derive(Debug)]
pub(crate) struct DurationText(pub String);

impl std::ops::Deref for DurationText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as 2s, 500ms or 1m")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
        }
        d.deserialize_str(Visitor)
    }
}
