//! RBAC principals on the verified JWT. Stock Envoy has no Istio authn
//! filter, so these read what `envoy.filters.http.jwt_authn` writes into
//! the request's dynamic metadata: the verified payload under
//! [`crate::translate::jwt::PAYLOAD_KEY`] (Envoy API:
//! `JwtProvider.payload_in_metadata`, RBAC `Principal.sourced_metadata`).
//! A request without a verified token has no payload, so none of these
//! match it (an ALLOW that needs one denies it: 403).

use envoy_types::pb::envoy::config::rbac::v3::{principal, Principal, SourcedMetadata};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    list_matcher,
    metadata_matcher::{path_segment::Segment, PathSegment},
    string_matcher::MatchPattern,
    value_matcher, ListMatcher, MetadataMatcher, StringMatcher, ValueMatcher,
};

use super::matchers::string_with_prefix;
use crate::translate::jwt::{JWT_FILTER, PAYLOAD_KEY};

/// `requestPrincipals` / `request.auth.principal`: Istio's principal is
/// `iss + "/" + sub`. Envoy keeps the two claims apart, and an issuer
/// may itself contain `/`, so each place where the written value could
/// split into issuer and subject is one alternative of an OR.
pub(super) fn request_principal(v: &str) -> Principal {
    if v == "*" {
        return claim_value(&["iss"], present());
    }
    let slashes = v.match_indices('/').map(|(i, _)| i);
    let mut ors = Vec::new();
    if let Some(p) = v.strip_suffix('*') {
        // The issuer alone is longer than the prefix, or the prefix ends
        // inside the subject.
        ors.push(claim_value(
            &["iss"],
            string(MatchPattern::Prefix(p.into())),
        ));
        for k in p.match_indices('/').map(|(i, _)| i) {
            let sub = non_empty_prefix(&p[k + 1..]);
            ors.push(and(exact("iss", &p[..k]), claim_value(&["sub"], sub)));
        }
    } else if let Some(s) = v.strip_prefix('*') {
        ors.push(claim_value(
            &["sub"],
            string(MatchPattern::Suffix(s.into())),
        ));
        for k in s.match_indices('/').map(|(i, _)| i) {
            let iss = non_empty_suffix(&s[..k]);
            ors.push(and(claim_value(&["iss"], iss), exact("sub", &s[k + 1..])));
        }
    } else {
        for k in slashes {
            ors.push(and(exact("iss", &v[..k]), exact("sub", &v[k + 1..])));
        }
    }
    or(ors)
}

/// A claim (by its path into the payload) against one written value: a
/// string claim must match it, a list claim must contain a match (as
/// istiod does for `request.auth.claims`).
pub(super) fn claim(path: &[String], v: &str) -> Principal {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let m = || {
        value(value_matcher::MatchPattern::StringMatch(
            string_with_prefix(v, ""),
        ))
    };
    let list = ListMatcher {
        match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(m()))),
    };
    let list = value(value_matcher::MatchPattern::ListMatch(Box::new(list)));
    or(vec![claim_value(&path, m()), claim_value(&path, list)])
}

fn or(ids: Vec<Principal>) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

fn exact(claim: &str, v: &str) -> Principal {
    claim_value(&[claim], string(MatchPattern::Exact(v.into())))
}

fn non_empty_prefix(p: &str) -> ValueMatcher {
    if p.is_empty() {
        present()
    } else {
        string(MatchPattern::Prefix(p.into()))
    }
}

fn non_empty_suffix(s: &str) -> ValueMatcher {
    if s.is_empty() {
        present()
    } else {
        string(MatchPattern::Suffix(s.into()))
    }
}

fn and(a: Principal, b: Principal) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::AndIds(principal::Set {
            ids: vec![a, b],
        })),
    }
}

fn present() -> ValueMatcher {
    value(value_matcher::MatchPattern::PresentMatch(true))
}

fn string(p: MatchPattern) -> ValueMatcher {
    value(value_matcher::MatchPattern::StringMatch(StringMatcher {
        match_pattern: Some(p),
        ignore_case: false,
    }))
}

fn value(p: value_matcher::MatchPattern) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(p),
    }
}

/// The payload value at `path` (under the payload key) against `value`.
fn claim_value(path: &[&str], value: ValueMatcher) -> Principal {
    let segments = std::iter::once(PAYLOAD_KEY)
        .chain(path.iter().copied())
        .map(|k| PathSegment {
            segment: Some(Segment::Key(k.to_string())),
        })
        .collect();
    let matcher = MetadataMatcher {
        filter: JWT_FILTER.to_string(),
        path: segments,
        value: Some(value),
        invert: false,
    };
    Principal {
        identifier: Some(principal::Identifier::SourcedMetadata(SourcedMetadata {
            metadata_matcher: Some(matcher),
            metadata_source: 0,
        })),
    }
}
