//! `HTTPMatchRequest` → Envoy `RouteMatch` (istiod `TranslateRouteMatch`).

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier, HeaderMatcher, QueryParameterMatcher, RouteMatch,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use envoy_types::pb::google::protobuf::BoolValue;

use crate::config::model::{HttpMatch, StringMatch};

/// Translates one match; `None` is the catch-all (prefix `/`).
pub fn route_match(m: Option<&HttpMatch>) -> RouteMatch {
    let mut out = RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
        ..Default::default()
    };
    let Some(m) = m else { return out };
    if let Some(uri) = &m.uri {
        out.path_specifier = Some(match uri {
            StringMatch::Exact(p) => PathSpecifier::Path(p.clone()),
            // Gateway API prefixes take whole segments (Istio does the same
            // for routes from the Gateway API).
            StringMatch::Prefix(p) if m.path_separated_prefix && p != "/" => {
                PathSpecifier::PathSeparatedPrefix(p.clone())
            }
            StringMatch::Prefix(p) => PathSpecifier::Prefix(p.clone()),
            StringMatch::Regex(r) => PathSpecifier::SafeRegex(regex(r)),
            StringMatch::Present => PathSpecifier::Prefix("/".to_string()),
        });
    }
    // Istio always states case sensitivity; ignoreUriCase turns it off.
    out.case_sensitive = Some(BoolValue {
        value: !m.ignore_uri_case,
    });
    // BTreeMaps: headers come out sorted by name, as Istio sorts them.
    out.headers = m
        .headers
        .iter()
        .map(|(name, sm)| header(name, sm))
        .collect();
    out.headers
        .extend(m.without_headers.iter().map(|(name, sm)| {
            let mut h = header(name, sm);
            h.invert_match = true;
            // A missing header does not match a value, so "without" holds.
            h.treat_missing_header_as_empty = !is_present_match(sm);
            h
        }));
    out.headers.sort_by(|a, b| a.name.cmp(&b.name));
    // Istio matches these pseudo-headers after the named headers.
    for (name, sm) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        out.headers.extend(sm.as_ref().map(|sm| header(name, sm)));
    }
    out.query_parameters = m
        .query_params
        .iter()
        .map(|(name, sm)| query_param(name, sm))
        .collect();
    out
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }
}

/// `{}`: present with any value.
fn is_present_match(sm: &StringMatch) -> bool {
    matches!(sm, StringMatch::Present)
}

/// Istio's `ConvertToEnvoyMatch`.
pub fn string_matcher(sm: &StringMatch) -> StringMatcher {
    let pattern = match sm {
        StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(r) => MatchPattern::SafeRegex(regex(r)),
        // Only header and query matches are presence matches, and they
        // never come here; any value matches.
        StringMatch::Present => MatchPattern::SafeRegex(regex(".*")),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

fn header(name: &str, sm: &StringMatch) -> HeaderMatcher {
    let spec = if is_present_match(sm) {
        HeaderMatchSpecifier::PresentMatch(true)
    } else {
        HeaderMatchSpecifier::StringMatch(string_matcher(sm))
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

fn query_param(name: &str, sm: &StringMatch) -> QueryParameterMatcher {
    let spec = if is_present_match(sm) {
        QueryParameterMatchSpecifier::PresentMatch(true)
    } else {
        QueryParameterMatchSpecifier::StringMatch(string_matcher(sm))
    };
    QueryParameterMatcher {
        name: name.to_string(),
        query_parameter_match_specifier: Some(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> StringMatch {
        StringMatch::Exact(s.into())
    }

    #[test]
    fn catch_all() {
        let m = route_match(None);
        assert_eq!(m.path_specifier, Some(PathSpecifier::Prefix("/".into())));
        assert!(m.case_sensitive.is_none());
    }

    #[test]
    fn uri_kinds_and_case() {
        let mut hm = HttpMatch {
            uri: Some(exact("/pay")),
            ..Default::default()
        };
        assert_eq!(
            route_match(Some(&hm)).path_specifier,
            Some(PathSpecifier::Path("/pay".into()))
        );
        hm.uri = Some(StringMatch::Prefix("/api".into()));
        hm.ignore_uri_case = true;
        let m = route_match(Some(&hm));
        assert_eq!(m.path_specifier, Some(PathSpecifier::Prefix("/api".into())));
        assert_eq!(m.case_sensitive, Some(BoolValue { value: false }));
        hm.uri = Some(StringMatch::Regex("/v[0-9]+/.*".into()));
        let m = route_match(Some(&hm));
        assert_eq!(
            m.path_specifier,
            Some(PathSpecifier::SafeRegex(regex("/v[0-9]+/.*")))
        );
    }

    #[test]
    fn headers_method_and_query() {
        let hm = HttpMatch {
            headers: [
                ("x-b".to_string(), StringMatch::Prefix("p".into())),
                ("end-user".to_string(), exact("jason")),
            ]
            .into(),
            without_headers: [("x-debug".to_string(), StringMatch::Present)].into(),
            method: Some(exact("GET")),
            query_params: [("v".to_string(), StringMatch::Regex("[0-9]+".into()))].into(),
            ..Default::default()
        };
        let m = route_match(Some(&hm));
        let names: Vec<&str> = m.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["end-user", "x-b", "x-debug", ":method"]);
        assert_eq!(
            m.headers[0].header_match_specifier,
            Some(HeaderMatchSpecifier::StringMatch(string_matcher(&exact(
                "jason"
            ))))
        );
        let debug = &m.headers[2];
        assert!(debug.invert_match);
        assert!(!debug.treat_missing_header_as_empty);
        assert_eq!(
            debug.header_match_specifier,
            Some(HeaderMatchSpecifier::PresentMatch(true))
        );
        assert_eq!(m.query_parameters.len(), 1);
        assert_eq!(m.query_parameters[0].name, "v");
    }
}
