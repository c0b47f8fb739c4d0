//! Merging routes: the Gateway API's precedence across routes and the
//! consumer and producer routes of one Service.

use std::sync::Arc;

use super::*;
use crate::config::convert::gateway_api::Rank;
use crate::config::model::HttpMatch;
use crate::translate::fixtures::{rule, weighted};

fn doc(ns: &str, name: &str) -> Arc<DocInfo> {
    Arc::new(DocInfo {
        file: "r.yaml".into(),
        kind: "HTTPRoute".into(),
        name: name.into(),
        namespace: ns.into(),
        positions: Default::default(),
        strings: Default::default(),
    })
}

/// A rule named `name` with one match.
fn named(name: &str) -> HttpRoute {
    let mut r = rule(crate::config::model::RouteAction::Route(vec![weighted(
        "web", None, 100,
    )]));
    r.name = Some(name.into());
    r.matches = vec![HttpMatch::default()];
    r
}

fn part(ns: &str, name: &str, created: Option<&str>, rules: &[(Rank, &str)]) -> Part {
    Part {
        doc: doc(ns, name),
        path: "spec.parentRefs[0]".into(),
        created: created.map(String::from),
        rules: rules.iter().map(|(k, n)| (*k, named(n))).collect(),
    }
}

fn names(rules: &[HttpRoute]) -> Vec<&str> {
    rules.iter().filter_map(|r| r.name.as_deref()).collect()
}

const EXACT: Rank = (3, 5, 0, 0, 0);
const LONG_PREFIX: Rank = (1, 8, 0, 0, 0);
const SHORT_PREFIX: Rank = (1, 4, 0, 0, 0);
const PREFIX_METHOD: Rank = (1, 4, 1, 0, 0);
const PREFIX_HEADERS: Rank = (1, 4, 0, 2, 0);

#[test]
fn the_most_specific_match_wins_across_routes() {
    let mut parts = vec![
        part(
            "default",
            "a",
            None,
            &[(SHORT_PREFIX, "a-short"), (EXACT, "a-exact")],
        ),
        part(
            "default",
            "b",
            None,
            &[(PREFIX_HEADERS, "b-headers"), (LONG_PREFIX, "b-long")],
        ),
        part("default", "c", None, &[(PREFIX_METHOD, "c-method")]),
    ];
    // Within a route rules are already ranked; across routes they interleave.
    parts
        .iter_mut()
        .for_each(|p| p.rules.sort_by_key(|r| Reverse(r.0)));
    let got = merged(&mut parts);
    assert_eq!(
        names(&got),
        ["a-exact", "b-long", "c-method", "b-headers", "a-short"]
    );
}

#[test]
fn ties_go_to_the_oldest_route_then_namespace_and_name() {
    let mut parts = vec![
        part(
            "default",
            "zeta",
            Some("2024-01-01T00:00:00Z"),
            &[(SHORT_PREFIX, "zeta")],
        ),
        part(
            "default",
            "alpha",
            Some("2025-01-01T00:00:00Z"),
            &[(SHORT_PREFIX, "alpha")],
        ),
        part("default", "beta", None, &[(SHORT_PREFIX, "beta")]),
        part("apps", "omega", None, &[(SHORT_PREFIX, "omega")]),
        part(
            "default",
            "eta",
            Some("2024-01-01T00:00:00Z"),
            &[(SHORT_PREFIX, "eta-1"), (SHORT_PREFIX, "eta-2")],
        ),
    ];
    let got = merged(&mut parts);
    assert_eq!(
        names(&got),
        ["eta-1", "eta-2", "zeta", "alpha", "omega", "beta"]
    );
}

#[test]
fn a_consumer_route_replaces_the_producer_route_for_its_namespace() {
    let host = Host("web.shop.svc.cluster.local".into());
    let parts = vec![
        part("shop", "producer", None, &[(SHORT_PREFIX, "producer")]),
        part("front", "consumer", None, &[(SHORT_PREFIX, "consumer")]),
    ];
    let (d, _, vs) = mesh_vs(&host, "shop", parts).unwrap();
    assert_eq!(d.name, "producer");
    assert_eq!(names(&vs.http), ["consumer", "producer"]);
    assert_eq!(
        vs.http[0].matches[0].source_namespace.as_deref(),
        Some("front")
    );
    let excluded = &vs.http[1].matches[0].excluded_source_namespaces;
    assert_eq!(excluded.iter().collect::<Vec<_>>(), ["front"]);
    // The producer route routes every other namespace.
    assert!(vs.export_to.admits("other"));
}

#[test]
fn without_a_producer_route_only_consumers_see_the_routes() {
    let host = Host("web.shop.svc.cluster.local".into());
    let parts = vec![
        part("front", "f", None, &[(SHORT_PREFIX, "f")]),
        part("back", "b", None, &[(SHORT_PREFIX, "b")]),
    ];
    let (d, _, vs) = mesh_vs(&host, "shop", parts).unwrap();
    assert_eq!(d.name, "b");
    assert_eq!(names(&vs.http), ["b", "f"]);
    assert!(vs.export_to.admits("front") && vs.export_to.admits("back"));
    assert!(!vs.export_to.admits("shop"));
    assert!(vs.http[0].matches[0].excluded_source_namespaces.is_empty());
}
