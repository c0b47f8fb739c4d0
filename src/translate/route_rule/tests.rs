use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::route_action::{
    hash_policy::PolicySpecifier, ClusterSpecifier,
};
use prost::{Message, Name};

use super::*;
use crate::config::model::{
    self as m, AbortError, CookieAttribute, HashKey, HttpMatch, HttpRoute, LoadBalancer,
    MeshConfig, Mirror, Redirect, Retries, Rewrite, StringMatch,
};
use crate::registry::instances;
use crate::translate::fixtures::*;

/// Translates `rule` for payment-service (canary DR) on port 80.
fn translate(rule: HttpRoute, mesh: Option<MeshConfig>) -> Vec<Route> {
    let mesh = mesh.unwrap_or_else(canary_mesh);
    let si = instances(&mesh, &two_versions(&["payment-service", "ledger"]));
    routes(
        Ctx {
            mesh: &mesh,
            services: &si,
            overrides: None,
        },
        &rule,
        80,
    )
}

fn fwd(r: &Route) -> &RouteAction {
    match &r.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("{other:?}"),
    }
}

fn to(name: &str, subset: Option<&str>) -> RouteAction_ {
    RouteAction_::Route(vec![weighted(name, subset, 100)])
}
use crate::config::model::RouteAction as RouteAction_;

#[test]
fn one_route_per_match_with_names() {
    let mut r = rule(to("payment-service", Some("canary")));
    r.name = Some("r".into());
    r.matches = vec![
        HttpMatch {
            name: Some("jason".into()),
            headers: [("end-user".to_string(), StringMatch::Exact("jason".into()))].into(),
            ..Default::default()
        },
        HttpMatch {
            uri: Some(StringMatch::Prefix("/v2".into())),
            ..Default::default()
        },
    ];
    let out = translate(r, None);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].name, "r.jason");
    assert_eq!(out[1].name, "r");
    assert_eq!(out[0].r#match.as_ref().unwrap().headers[0].name, "end-user");
    assert_eq!(
        fwd(&out[1]).cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|80|canary|payment-service.default.svc.cluster.local".into()
        ))
    );
}

#[test]
fn timeout_and_zero_attempts() {
    let mut r = rule(to("ledger", None));
    r.timeout = Some(Duration::from_millis(1500));
    r.retries = Some(Retries {
        attempts: 0,
        per_try_timeout: None,
        retry_on: None,
        retriable_status_codes: vec![],
        retry_remote_localities: None,
        retry_ignore_previous_hosts: None,
        backoff: None,
    });
    let a = fwd(&translate(r, None)[0]).clone();
    assert_eq!(a.timeout.unwrap().nanos, 500_000_000);
    assert_eq!(a.timeout.unwrap().seconds, 1);
    assert!(a.retry_policy.is_none());
}

#[test]
fn zero_weights_are_dropped() {
    let r = rule(RouteAction_::Route(vec![
        weighted("payment-service", Some("stable"), 0),
        weighted("payment-service", Some("canary"), 100),
    ]));
    match &fwd(&translate(r, None)[0]).cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            assert_eq!(w.clusters.len(), 1);
            assert!(w.clusters[0].name.contains("|canary|"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn headers_set_add_remove_and_authority() {
    let mut r = rule(to("ledger", None));
    r.headers.request.set = [
        ("x-set".to_string(), "1".to_string()),
        (":authority".to_string(), "ledger.internal".to_string()),
    ]
    .into();
    r.headers.request.add = [("x-add".to_string(), "2".to_string())].into();
    r.headers.request.remove = vec!["x-gone".into(), ":path".into()];
    r.headers.response.set = [("x-resp".to_string(), "3".to_string())].into();
    let out = &translate(r, None)[0];
    let req: Vec<(String, i32)> = out
        .request_headers_to_add
        .iter()
        .map(|h| (h.header.as_ref().unwrap().key.clone(), h.append_action))
        .collect();
    assert_eq!(
        req,
        vec![
            (
                "x-set".to_string(),
                HeaderAppendAction::OverwriteIfExistsOrAdd as i32
            ),
            (
                "x-add".to_string(),
                HeaderAppendAction::AppendIfExistsOrAdd as i32
            ),
        ]
    );
    assert_eq!(out.request_headers_to_remove, vec!["x-gone".to_string()]);
    assert_eq!(out.response_headers_to_add.len(), 1);
    assert_eq!(
        fwd(out).host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "ledger.internal".into()
        ))
    );
}

#[test]
fn weighted_destination_headers_stay_on_the_cluster() {
    let mut canary = weighted("payment-service", Some("canary"), 10);
    canary.headers.response.set = [("x-canary".to_string(), "yes".to_string())].into();
    let r = rule(RouteAction_::Route(vec![
        weighted("payment-service", Some("stable"), 90),
        canary,
    ]));
    let out = &translate(r, None)[0];
    assert!(out.response_headers_to_add.is_empty());
    match &fwd(out).cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            assert!(w.clusters[0].response_headers_to_add.is_empty());
            assert_eq!(w.clusters[1].response_headers_to_add.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rewrite_uri_and_authority() {
    let mut r = rule(to("ledger", None));
    r.rewrite = Some(Rewrite {
        uri: Some("/v1/".into()),
        authority: Some("new.host".into()),
        uri_regex: None,
    });
    let a = fwd(&translate(r, None)[0]).clone();
    assert_eq!(a.prefix_rewrite, "/v1/");
    assert_eq!(
        a.host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "new.host".into()
        ))
    );
}

#[test]
fn redirect_and_direct_response() {
    let r = rule(RouteAction_::Redirect(Redirect {
        uri: Some("/new".into()),
        authority: Some("other".into()),
        port: Some(80),
        scheme: None,
        redirect_code: Some(302),
        prefix_rewrite: None,
        derive_port: None,
    }));
    match &translate(r, None)[0].action {
        Some(route::Action::Redirect(rd)) => {
            assert_eq!(rd.host_redirect, "other");
            assert_eq!(rd.port_redirect, 0, "no explicit :80 for http");
            assert_eq!(
                rd.response_code,
                redirect_action::RedirectResponseCode::Found as i32
            );
            assert_eq!(
                rd.path_rewrite_specifier,
                Some(redirect_action::PathRewriteSpecifier::PathRedirect(
                    "/new".into()
                ))
            );
        }
        other => panic!("{other:?}"),
    }
    let r = rule(RouteAction_::DirectResponse {
        status: 418,
        body: Some("teapot".into()),
    });
    match &translate(r, None)[0].action {
        Some(route::Action::DirectResponse(d)) => {
            assert_eq!(d.status, 418);
            assert_eq!(
                d.body.as_ref().unwrap().specifier,
                Some(data_source::Specifier::InlineString("teapot".into()))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fault_goes_to_the_fault_filter() {
    let mut r = rule(to("ledger", None));
    r.fault = Some(m::Fault {
        delay: Some(m::FaultDelay {
            fixed_delay: Duration::from_secs(1),
            percentage: 100.0,
        }),
        abort: Some(m::FaultAbort {
            error: AbortError::Http(503),
            percentage: 50.0,
        }),
    });
    let out = &translate(r, None)[0];
    let any = &out.typed_per_filter_config[FAULT_FILTER];
    assert_eq!(any.type_url, HttpFault::type_url());
    let f = HttpFault::decode(any.value.as_slice()).unwrap();
    let delay = f.delay.unwrap();
    assert_eq!(delay.percentage.unwrap().numerator, 1_000_000);
    assert_eq!(
        delay.fault_delay_secifier,
        Some(fault_delay::FaultDelaySecifier::FixedDelay(duration(
            Duration::from_secs(1)
        )))
    );
    let abort = f.abort.unwrap();
    assert_eq!(
        abort.error_type,
        Some(fault_abort::ErrorType::HttpStatus(503))
    );
    assert_eq!(abort.percentage.unwrap().numerator, 500_000);
}

#[test]
fn mirror_with_percentage() {
    let mut r = rule(to("payment-service", Some("stable")));
    r.mirrors = vec![Mirror {
        destination: dest("payment-service", Some("canary")),
        percentage: 25.0,
    }];
    let a = fwd(&translate(r.clone(), None)[0]).clone();
    let m = &a.request_mirror_policies[0];
    assert!(m.cluster.contains("|canary|"));
    assert_eq!(
        m.runtime_fraction
            .as_ref()
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        250_000
    );
    r.mirrors[0].percentage = 0.0;
    assert!(fwd(&translate(r, None)[0])
        .request_mirror_policies
        .is_empty());
}

#[test]
fn consistent_hash_adds_hash_policy_and_keeps_host() {
    let mut mesh = canary_mesh();
    let mut dr = (*mesh.destination_rules[&host("payment-service")]).clone();
    dr.traffic_policy.as_mut().unwrap().load_balancer = Some(LoadBalancer::ConsistentHash(
        HashKey::Cookie {
            name: "session".into(),
            path: Some("/".into()),
            ttl: Some(Duration::from_secs(60)),
            attributes: vec![CookieAttribute {
                name: "SameSite".into(),
                value: "Strict".into(),
            }],
        },
        m::HashAlgorithm::RingHash {
            minimum_ring_size: None,
        },
    ));
    mesh.destination_rules
        .insert(host("payment-service"), Arc::new(dr));
    let a = fwd(&translate(rule(to("payment-service", None)), Some(mesh))[0]).clone();
    match &a.hash_policy[0].policy_specifier {
        Some(PolicySpecifier::Cookie(c)) => {
            assert_eq!((c.name.as_str(), c.path.as_str()), ("session", "/"));
            assert_eq!(c.ttl.unwrap().seconds, 60);
            assert_eq!(c.attributes[0].name, "SameSite");
            assert_eq!(c.attributes[0].value, "Strict");
        }
        other => panic!("{other:?}"),
    }
    assert!(a.retry_policy.unwrap().retry_host_predicate.is_empty());
}

#[test]
fn hash_policy_kinds() {
    let spec = |k: HashKey| hash_policy(&k).policy_specifier.unwrap();
    assert!(
        matches!(spec(HashKey::Header("x".into())), PolicySpecifier::Header(h) if h.header_name == "x")
    );
    assert!(
        matches!(spec(HashKey::SourceIp), PolicySpecifier::ConnectionProperties(c) if c.source_ip)
    );
    assert!(
        matches!(spec(HashKey::QueryParameter("q".into())), PolicySpecifier::QueryParameter(q) if q.name == "q")
    );
}

#[test]
fn redirect_prefix_and_derived_port() {
    let r = rule(RouteAction_::Redirect(Redirect {
        uri: None,
        authority: None,
        port: None,
        scheme: Some("https".into()),
        redirect_code: None,
        prefix_rewrite: Some("/v2/".into()),
        derive_port: Some(true),
    }));
    match &translate(r, None)[0].action {
        Some(route::Action::Redirect(rd)) => {
            assert_eq!(rd.port_redirect, 80, "the port the request came to");
            assert_eq!(
                rd.path_rewrite_specifier,
                Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
                    "/v2/".into()
                ))
            );
        }
        other => panic!("{other:?}"),
    }
}
