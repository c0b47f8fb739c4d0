//! Whether two rule matches can take the same request. Exact and prefix
//! conditions are compared exactly; a regex is compared with an exact
//! value by matching it, and with a prefix or another regex by its text
//! only (whether two regular expressions share a string is not decided
//! here), so such rules are trusted to be disjoint unless written alike.

use crate::config::model::{RuleMatch, SourceMatch, StringMatch};

/// True when some request may satisfy both `a` and `b`.
pub(super) fn may_overlap(a: &RuleMatch, b: &RuleMatch) -> bool {
    let methods = match (&a.method, &b.method) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    let headers = a.headers.iter().all(|(name, x)| match b.headers.get(name) {
        Some(y) => strings(x, y),
        None => true,
    });
    let paths = match (&a.path, &b.path) {
        (Some(x), Some(y)) => strings(x, y),
        _ => true,
    };
    let sources = match (&a.source, &b.source) {
        (Some(x), Some(y)) => sources(x, y),
        _ => true,
    };
    methods && headers && paths && sources
}

fn strings(a: &StringMatch, b: &StringMatch) -> bool {
    use StringMatch::{Exact, Prefix, Regex};
    match (a, b) {
        (Exact(x), Exact(y)) => x == y,
        (Exact(e), Prefix(p)) | (Prefix(p), Exact(e)) => e.starts_with(p.as_str()),
        (Prefix(x), Prefix(y)) => x.starts_with(y.as_str()) || y.starts_with(x.as_str()),
        (Exact(e), Regex(r)) | (Regex(r), Exact(e)) => full_match(r, e),
        (Regex(x), Regex(y)) => x == y,
        (Prefix(_), Regex(_)) | (Regex(_), Prefix(_)) => false,
        (StringMatch::Present, _) | (_, StringMatch::Present) => true,
    }
}

fn full_match(regex: &str, text: &str) -> bool {
    regex::Regex::new(&format!("^(?:{regex})$")).is_ok_and(|r| r.is_match(text))
}

fn sources(a: &SourceMatch, b: &SourceMatch) -> bool {
    use SourceMatch::{Namespace, Principal};
    match (a, b) {
        (Principal(x), Principal(y)) | (Namespace(x), Namespace(y)) => x == y,
        (Principal(p), Namespace(ns)) | (Namespace(ns), Principal(p)) => {
            p.split('/').nth(2) == Some(ns.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(m: StringMatch) -> RuleMatch {
        RuleMatch {
            path: Some(m),
            ..Default::default()
        }
    }

    #[test]
    fn paths_overlap_by_prefix_and_exact() {
        use StringMatch::*;
        let api = path(Prefix("/api".into()));
        assert!(may_overlap(&api, &path(Prefix("/api/v1".into()))));
        assert!(may_overlap(&api, &path(Exact("/api/x".into()))));
        assert!(!may_overlap(&api, &path(Prefix("/web".into()))));
        assert!(may_overlap(
            &path(Regex("/u/[0-9]+".into())),
            &path(Exact("/u/7".into()))
        ));
        assert!(!may_overlap(
            &path(Regex("/u/[0-9]+".into())),
            &path(Exact("/u/x".into()))
        ));
        assert!(
            may_overlap(&api, &RuleMatch::default()),
            "an empty match takes all"
        );
    }

    #[test]
    fn methods_and_sources_separate_rules() {
        let get = RuleMatch {
            method: Some("GET".into()),
            ..Default::default()
        };
        let post = RuleMatch {
            method: Some("POST".into()),
            ..Default::default()
        };
        assert!(!may_overlap(&get, &post));
        let ns = |n: &str| RuleMatch {
            source: Some(SourceMatch::Namespace(n.into())),
            ..Default::default()
        };
        let who = RuleMatch {
            source: Some(SourceMatch::Principal("td/ns/a/sa/x".into())),
            ..Default::default()
        };
        assert!(may_overlap(&who, &ns("a")));
        assert!(!may_overlap(&who, &ns("b")));
    }
}
