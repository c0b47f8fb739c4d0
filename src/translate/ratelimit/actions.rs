//! The descriptor of a rule and the rate-limit actions that produce it.
//!
//! Entries, in order: `ratelimit` = `NAMESPACE/NAME`, `rule` = the rule's
//! name, then `match` = `true` when the rule has path, method or header
//! conditions (one `header_value_match`: no descriptor when they do not
//! hold), then `source` = `true` when it names a caller (a CEL expression
//! on the peer certificate's URI SAN; plain text has none, so no
//! descriptor). Envoy's local filter and the rate-limit service both
//! compare the whole descriptor with [`descriptor`].

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::rate_limit::action::{
    ActionSpecifier, GenericKey, HeaderValueMatch,
};
use envoy_types::pb::envoy::config::route::v3::rate_limit::Action;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, RateLimit as RouteRateLimit};
use envoy_types::pb::envoy::extensions::rate_limit_descriptors::expr::v3::{
    descriptor::ExprSpecifier, Descriptor as ExprDescriptor,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use crate::config::model::{RateLimit, RateLimitRule, SourceMatch, StringMatch};

/// The rate-limit domain every Trellis descriptor is sent in.
pub const DOMAIN: &str = "trellis";

const EXPR_EXTENSION: &str = "envoy.rate_limit_descriptors.expr";

/// The descriptor entries of `rule` in `rl` when a request matches it.
pub fn descriptor(rl: &RateLimit, rule: &RateLimitRule) -> Vec<(String, String)> {
    let mut out = vec![
        ("ratelimit".to_string(), rl.qualified()),
        ("rule".to_string(), rule.name.clone()),
    ];
    if !request_matchers(rule).is_empty() {
        out.push(("match".to_string(), "true".to_string()));
    }
    if rule.matches.source.is_some() {
        out.push(("source".to_string(), "true".to_string()));
    }
    out
}

/// The actions that produce [`descriptor`] for requests `rule` matches.
pub(super) fn actions(rl: &RateLimit, rule: &RateLimitRule, td: &str) -> RouteRateLimit {
    let key = |k: &str, v: String| {
        ActionSpecifier::GenericKey(GenericKey {
            descriptor_key: k.to_string(),
            descriptor_value: v,
            ..Default::default()
        })
    };
    let mut actions = vec![
        key("ratelimit", rl.qualified()),
        key("rule", rule.name.clone()),
    ];
    let headers = request_matchers(rule);
    if !headers.is_empty() {
        actions.push(ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
            descriptor_key: "match".to_string(),
            descriptor_value: "true".to_string(),
            expect_match: Some(BoolValue { value: true }),
            headers,
            ..Default::default()
        }));
    }
    if let Some(source) = &rule.matches.source {
        actions.push(source_action(source, td));
    }
    RouteRateLimit {
        actions: (actions.into_iter())
            .map(|a| Action {
                action_specifier: Some(a),
            })
            .collect(),
        ..Default::default()
    }
}

/// Path (without the query string), method and headers as header matchers.
fn request_matchers(rule: &RateLimitRule) -> Vec<HeaderMatcher> {
    let m = &rule.matches;
    let mut out = Vec::new();
    if let Some(path) = &m.path {
        out.push(header(":path", path_matcher(path)));
    }
    if let Some(method) = &m.method {
        out.push(header(
            ":method",
            pattern(MatchPattern::Exact(method.clone())),
        ));
    }
    for (name, sm) in &m.headers {
        out.push(header(name, super::super::route_match::string_matcher(sm)));
    }
    out
}

/// `:path` carries the query string; a rule's path does not.
fn path_matcher(path: &StringMatch) -> StringMatcher {
    const QUERY: &str = r"(?:\?.*)?";
    let regex = |r: String| {
        pattern(MatchPattern::SafeRegex(RegexMatcher {
            regex: r,
            ..Default::default()
        }))
    };
    match path {
        StringMatch::Exact(p) => regex(format!("{}{QUERY}", regex::escape(p))),
        StringMatch::Prefix(p) => pattern(MatchPattern::Prefix(p.clone())),
        StringMatch::Regex(r) => regex(format!("(?:{r}){QUERY}")),
        StringMatch::Present => regex(".*".to_string()),
    }
}

fn pattern(p: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(p),
        ..Default::default()
    }
}

fn header(name: &str, matcher: StringMatcher) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(matcher)),
        ..Default::default()
    }
}

/// `source` = `true` or `false` from the peer's SPIFFE ID; without a peer
/// certificate the expression fails and no descriptor is produced.
fn source_action(source: &SourceMatch, td: &str) -> ActionSpecifier {
    let test = match source {
        SourceMatch::Principal(p) => format!("== {}", cel_string(&format!("spiffe://{p}"))),
        SourceMatch::Namespace(ns) => {
            let prefix = format!("spiffe://{td}/ns/{ns}/sa/");
            format!(".startsWith({})", cel_string(&prefix))
        }
    };
    let text = format!("connection.uri_san_peer_certificate{test} ? 'true' : 'false'");
    ActionSpecifier::Extension(TypedExtensionConfig {
        name: EXPR_EXTENSION.to_string(),
        typed_config: Some(pack_any(ExprDescriptor {
            descriptor_key: "source".to_string(),
            skip_if_error: false,
            expr_specifier: Some(ExprSpecifier::Text(text)),
        })),
    })
}

/// A CEL string literal (single-quoted, backslash escapes).
fn cel_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}
