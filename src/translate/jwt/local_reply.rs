//! A token for another audience is answered 401, like every other token
//! that does not verify. Envoy's JWT filter answers that one failure 403
//! (`Audiences in Jwt are not allowed`), so each provider records its
//! failure in the filter's dynamic metadata (Envoy API:
//! `JwtProvider.failed_status_in_metadata`) and the HCM's local reply
//! mapper (`HttpConnectionManager.local_reply_config`) turns a 403 with
//! that failure, and no verified payload, into 401. An RBAC 403 has a
//! verified payload or no failure, so it stays 403.

use envoy_types::pb::envoy::config::accesslog::v3::{
    access_log_filter::FilterSpecifier, comparison_filter, AccessLogFilter, AndFilter,
    ComparisonFilter, MetadataFilter, StatusCodeFilter,
};
use envoy_types::pb::envoy::config::core::v3::RuntimeUInt32;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, LocalReplyConfig, ResponseMapper,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    metadata_matcher::{path_segment::Segment, PathSegment},
    string_matcher::MatchPattern,
    value_matcher, MetadataMatcher, StringMatcher, ValueMatcher,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use super::{JWT_FILTER, PAYLOAD_KEY};

/// The metadata key of a provider's failure (`{code, message}`).
pub const FAILED_STATUS_KEY: &str = "failed_status";

/// Envoy's message for `JwtAudienceNotAllowed`.
const AUDIENCE_MESSAGE: &str = "Audiences in Jwt are not allowed";

/// Adds the audience mapper to `hcm`'s local replies when it has the JWT
/// filter.
pub fn apply(hcm: &mut HttpConnectionManager) {
    if !hcm.http_filters.iter().any(|f| f.name == JWT_FILTER) {
        return;
    }
    let status_403 = filter(FilterSpecifier::StatusCodeFilter(StatusCodeFilter {
        comparison: Some(ComparisonFilter {
            op: comparison_filter::Op::Eq as i32,
            value: Some(RuntimeUInt32 {
                default_value: 403,
                runtime_key: "trellis.jwt.audience_status".to_string(),
            }),
        }),
    }));
    let audience = metadata(
        &[FAILED_STATUS_KEY, "message"],
        value_matcher::MatchPattern::StringMatch(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(AUDIENCE_MESSAGE.to_string())),
            ignore_case: false,
        }),
        false,
        false,
    );
    // No payload: absent key counts as a match, a present one is inverted.
    let no_payload = metadata(
        &[PAYLOAD_KEY],
        value_matcher::MatchPattern::PresentMatch(true),
        true,
        true,
    );
    let mapper = ResponseMapper {
        filter: Some(filter(FilterSpecifier::AndFilter(AndFilter {
            filters: vec![status_403, audience, no_payload],
        }))),
        status_code: Some(UInt32Value { value: 401 }),
        ..Default::default()
    };
    hcm.local_reply_config
        .get_or_insert_with(LocalReplyConfig::default)
        .mappers
        .push(mapper);
}

fn filter(f: FilterSpecifier) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(f),
    }
}

fn metadata(
    path: &[&str],
    value: value_matcher::MatchPattern,
    invert: bool,
    if_absent: bool,
) -> AccessLogFilter {
    filter(FilterSpecifier::MetadataFilter(MetadataFilter {
        matcher: Some(MetadataMatcher {
            filter: JWT_FILTER.to_string(),
            path: (path.iter())
                .map(|k| PathSegment {
                    segment: Some(Segment::Key(k.to_string())),
                })
                .collect(),
            value: Some(ValueMatcher {
                match_pattern: Some(value),
            }),
            invert,
        }),
        match_if_key_not_found: Some(BoolValue { value: if_absent }),
    }))
}
