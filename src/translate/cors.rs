//! `corsPolicy` → Envoy's CORS filter (in the HCM, after the fault filter
//! and authorization, as istiod places it) and its per-route `CorsPolicy`
//! (istiod's `TranslateCORSPolicy`).

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::route_match::string_matcher;
use super::CORS_FILTER;
use crate::config::model::CorsPolicy as Policy;

/// The CORS filter: it does nothing on routes without a `CorsPolicy`.
pub fn http_filter() -> HttpFilter {
    HttpFilter {
        name: CORS_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Cors::default(),
        ))),
        ..Default::default()
    }
}

/// A route's `CorsPolicy`. Envoy answers a preflight whose origin is
/// allowed; one whose origin is not is forwarded to the app unless
/// `unmatchedPreflights: IGNORE` (Istio's default is to forward).
pub fn policy(c: &Policy) -> CorsPolicy {
    let join = |v: &[String]| v.join(",");
    CorsPolicy {
        allow_origin_string_match: c.allow_origins.iter().map(string_matcher).collect(),
        allow_methods: join(&c.allow_methods),
        allow_headers: join(&c.allow_headers),
        expose_headers: join(&c.expose_headers),
        max_age: c
            .max_age
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: 100,
                denominator: DenominatorType::Hundred as i32,
            }),
            ..Default::default()
        }),
        forward_not_matching_preflights: Some(BoolValue {
            value: c.forward_unmatched_preflights.unwrap_or(true),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::StringMatch;
    use std::time::Duration;

    #[test]
    fn lists_join_and_max_age_is_seconds() {
        let p = policy(&Policy {
            allow_origins: vec![StringMatch::Exact("https://a.example".into())],
            allow_methods: vec!["GET".into(), "POST".into()],
            max_age: Some(Duration::from_secs(86400)),
            forward_unmatched_preflights: Some(false),
            ..Default::default()
        });
        assert_eq!(p.allow_methods, "GET,POST");
        assert_eq!(p.max_age, "86400");
        assert_eq!(p.allow_origin_string_match.len(), 1);
        assert_eq!(
            p.forward_not_matching_preflights,
            Some(BoolValue { value: false })
        );
        assert!(p.allow_credentials.is_none());
    }
}
