use super::*;

fn prefix(p: &str) -> StringMatch {
    StringMatch::Prefix(p.into())
}

#[test]
fn a_narrower_prefix_or_exact_falls_within_the_root() {
    let root = Some(prefix("/api"));
    assert!(!string_conflict(root.as_ref(), Some(&prefix("/api/v1"))));
    let exact = StringMatch::Exact("/api/x".into());
    assert!(!string_conflict(root.as_ref(), Some(&exact)));
    assert!(string_conflict(root.as_ref(), Some(&prefix("/web"))));
    assert!(string_conflict(Some(&exact), Some(&prefix("/api"))));
    assert!(!string_conflict(None, Some(&prefix("/web"))));
    assert!(!string_conflict(Some(&StringMatch::Present), Some(&exact)));
}

#[test]
fn matches_merge_with_the_root_conditions() {
    let root = HttpMatch {
        name: Some("r".into()),
        uri: Some(prefix("/api")),
        headers: [("x-team".to_string(), StringMatch::Exact("a".into()))].into(),
        ..Default::default()
    };
    let leaf = HttpMatch {
        name: Some("l".into()),
        uri: Some(prefix("/api/v2")),
        ..Default::default()
    };
    let merged = merge_matches(std::slice::from_ref(&root), &[leaf]).unwrap();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].name.as_deref(), Some("r-l"));
    assert_eq!(merged[0].uri, Some(prefix("/api/v2")));
    assert_eq!(merged[0].headers.len(), 1, "the root's header joins");
    let outside = HttpMatch {
        uri: Some(prefix("/web")),
        ..Default::default()
    };
    assert!(merge_matches(&[root], &[outside]).is_none());
}
