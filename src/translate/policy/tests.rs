use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{cluster::LbPolicy, Cluster as XdsCluster};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{explicit_http_config::ProtocolConfig, UpstreamProtocolOptions},
    HttpProtocolOptions,
};
use prost::{Message, Name};

use super::*;
use crate::config::model::RetryBudget;
use crate::config::model::{HashAlgorithm, HashKey, Protocol, SimpleLb, Warmup};
use crate::translate::fixtures::{origin, port, subset};

fn pool(max_conn: u32) -> ConnectionPool {
    ConnectionPool {
        max_connections: Some(max_conn),
        ..Default::default()
    }
}

fn dr(tp: TrafficPolicy, subsets: Vec<Subset>) -> DestinationRule {
    DestinationRule {
        host: crate::translate::fixtures::host("a"),
        traffic_policy: Some(tp),
        subsets,
        export_to: Default::default(),
        workload_selector: None,
        origin: origin("DestinationRule", "a"),
    }
}

fn http_options(c: &XdsCluster) -> HttpProtocolOptions {
    let any = &c.typed_extension_protocol_options[&HttpProtocolOptions::full_name()];
    assert_eq!(any.type_url, HttpProtocolOptions::type_url());
    HttpProtocolOptions::decode(any.value.as_slice()).unwrap()
}

fn applied(p: &Policy<'_>, protocol: Protocol) -> XdsCluster {
    let mut c = XdsCluster::default();
    apply(&mut c, p, &port(80, "http", protocol), None);
    c
}

fn budget_of(c: &XdsCluster) -> Option<(f64, u32, Option<i64>)> {
    let t = &c.circuit_breakers.as_ref()?.thresholds[0];
    let b = t.retry_budget.as_ref()?;
    Some((
        b.budget_percent.as_ref()?.value,
        b.min_retry_concurrency.as_ref()?.value,
        b.budget_interval.as_ref().map(|d| d.seconds),
    ))
}

#[test]
fn default_budget_unless_the_rule_sets_a_budget_or_max_retries() {
    let default = RetryBudget::mesh_default();
    let http = port(80, "http", Protocol::Http);
    let mut c = XdsCluster::default();
    apply(&mut c, &Policy::default(), &http, Some(&default));
    assert_eq!(budget_of(&c), Some((20.0, 10, None)), "the mesh default");
    assert_eq!(
        c.circuit_breakers.as_ref().unwrap().thresholds[0]
            .max_retries
            .unwrap()
            .value,
        u32::MAX,
        "max_retries stays Istio's; Envoy ignores it under a budget"
    );
    let mut c = XdsCluster::default();
    apply(&mut c, &Policy::default(), &http, None);
    assert_eq!(budget_of(&c), None, "disabled in the Mesh");

    let own = RetryBudget {
        percent: 50.0,
        min_retry_concurrency: 7,
        budget_interval: Some(Duration::from_secs(2)),
    };
    let p = Policy {
        retry_budget: Some(&own),
        ..Default::default()
    };
    let mut c = XdsCluster::default();
    apply(&mut c, &p, &http, Some(&default));
    assert_eq!(budget_of(&c), Some((50.0, 7, Some(2))), "the rule's wins");

    let pool = ConnectionPool {
        max_retries: Some(10),
        ..Default::default()
    };
    let p = Policy {
        connection_pool: Some(&pool),
        ..Default::default()
    };
    let mut c = XdsCluster::default();
    apply(&mut c, &p, &http, Some(&default));
    assert_eq!(budget_of(&c), None, "maxRetries keeps its meaning");
    let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_retries.unwrap().value, 10);
}

#[test]
fn a_subset_budget_wins_and_port_level_settings_keep_the_rules() {
    let top = RetryBudget {
        percent: 10.0,
        ..Default::default()
    };
    let sub = RetryBudget {
        percent: 30.0,
        ..Default::default()
    };
    let mut port_level = std::collections::BTreeMap::new();
    port_level.insert(80, TrafficPolicy::default());
    let tp = TrafficPolicy {
        retry_budget: Some(top),
        port_level,
        ..Default::default()
    };
    let v2 = Subset {
        name: "v2".into(),
        labels: Default::default(),
        traffic_policy: Some(TrafficPolicy {
            retry_budget: Some(sub),
            ..Default::default()
        }),
    };
    let dr = dr(tp, vec![v2]);
    assert_eq!(effective(Some(&dr), 80, None).retry_budget, Some(&top));
    assert_eq!(
        effective(Some(&dr), 80, Some(&dr.subsets[0])).retry_budget,
        Some(&sub)
    );
}

#[test]
fn port_level_replaces_host_policy_wholesale() {
    let lb = LoadBalancer::Simple(SimpleLb::RoundRobin);
    let tp = TrafficPolicy {
        load_balancer: Some(lb.clone()),
        connection_pool: Some(pool(5)),
        port_level: BTreeMap::from([(
            8080,
            TrafficPolicy {
                connection_pool: Some(pool(7)),
                ..Default::default()
            },
        )]),
        ..Default::default()
    };
    let rule = dr(tp, vec![]);
    let p80 = effective(Some(&rule), 80, None);
    assert_eq!(p80.load_balancer, Some(&lb));
    assert_eq!(p80.connection_pool.unwrap().max_connections, Some(5));
    let p8080 = effective(Some(&rule), 8080, None);
    assert_eq!(p8080.load_balancer, None, "not inherited from the host");
    assert_eq!(p8080.connection_pool.unwrap().max_connections, Some(7));
}

#[test]
fn subset_blocks_override_host_blocks() {
    let lb = LoadBalancer::Simple(SimpleLb::Random);
    let host_tp = TrafficPolicy {
        load_balancer: Some(lb.clone()),
        connection_pool: Some(pool(5)),
        ..Default::default()
    };
    let mut s = subset("canary", "v2");
    s.traffic_policy = Some(TrafficPolicy {
        connection_pool: Some(pool(9)),
        ..Default::default()
    });
    let rule = dr(host_tp, vec![s]);
    let p = effective(Some(&rule), 80, Some(&rule.subsets[0]));
    assert_eq!(p.load_balancer, Some(&lb), "inherited");
    assert_eq!(
        p.connection_pool.unwrap().max_connections,
        Some(9),
        "overridden"
    );
}

#[test]
fn subset_port_level_replaces_everything() {
    let host_tp = TrafficPolicy {
        load_balancer: Some(LoadBalancer::Simple(SimpleLb::Random)),
        ..Default::default()
    };
    let mut s = subset("canary", "v2");
    s.traffic_policy = Some(TrafficPolicy {
        port_level: BTreeMap::from([(
            80,
            TrafficPolicy {
                connection_pool: Some(pool(3)),
                ..Default::default()
            },
        )]),
        ..Default::default()
    });
    let rule = dr(host_tp, vec![s]);
    let p = effective(Some(&rule), 80, Some(&rule.subsets[0]));
    assert_eq!(p.load_balancer, None);
    assert_eq!(p.connection_pool.unwrap().max_connections, Some(3));
}

#[test]
fn defaults_never_bite() {
    let c = applied(&Policy::default(), Protocol::Http);
    assert_eq!(c.connect_timeout.unwrap().seconds, 10);
    let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
    for v in [
        &t.max_connections,
        &t.max_pending_requests,
        &t.max_requests,
        &t.max_retries,
    ] {
        assert_eq!(v.as_ref().unwrap().value, u32::MAX);
    }
    assert!(t.track_remaining);
    assert_eq!(c.lb_policy, LbPolicy::LeastRequest as i32);
    assert!(
        c.typed_extension_protocol_options.is_empty(),
        "plain HTTP/1: Envoy's default"
    );
    assert!(c.outlier_detection.is_none());
}

#[test]
fn connection_pool_settings() {
    let p = ConnectionPool {
        max_connections: Some(10),
        connect_timeout: Some(Duration::from_millis(250)),
        http1_max_pending_requests: Some(1),
        http2_max_requests: Some(20),
        max_retries: Some(3),
        idle_timeout: Some(Duration::from_secs(30)),
        max_requests_per_connection: Some(100),
        h2_upgrade: None,
    };
    let c = applied(
        &Policy {
            connection_pool: Some(&p),
            ..Default::default()
        },
        Protocol::Http,
    );
    assert_eq!(c.connect_timeout.unwrap().nanos, 250_000_000);
    let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_connections.unwrap().value, 10);
    assert_eq!(t.max_pending_requests.unwrap().value, 1);
    assert_eq!(t.max_requests.unwrap().value, 20);
    assert_eq!(t.max_retries.unwrap().value, 3);
    let opts = http_options(&c);
    let common = opts.common_http_protocol_options.unwrap();
    assert_eq!(common.max_requests_per_connection.unwrap().value, 100);
    assert_eq!(common.idle_timeout.unwrap().seconds, 30);
    assert!(matches!(
        opts.upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ref e))
            if matches!(e.protocol_config, Some(ProtocolConfig::HttpProtocolOptions(_)))
    ));
}

fn is_h2(c: &XdsCluster) -> bool {
    matches!(
        http_options(c).upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ref e))
            if matches!(e.protocol_config, Some(ProtocolConfig::Http2ProtocolOptions(_)))
    )
}

#[test]
fn h2_upgrade_and_h2_ports() {
    let up = ConnectionPool {
        h2_upgrade: Some(true),
        ..Default::default()
    };
    assert!(is_h2(&applied(
        &Policy {
            connection_pool: Some(&up),
            ..Default::default()
        },
        Protocol::Http
    )));
    assert!(is_h2(&applied(&Policy::default(), Protocol::Grpc)));
    assert!(is_h2(&applied(&Policy::default(), Protocol::Http2)));
}

#[test]
fn outlier_detection_like_istio() {
    let o = OutlierDetection {
        consecutive_5xx_errors: Some(5),
        consecutive_gateway_errors: Some(0),
        interval: Some(Duration::from_secs(30)),
        base_ejection_time: Some(Duration::from_secs(60)),
        max_ejection_percent: Some(50),
        min_health_percent: None,
    };
    let c = applied(
        &Policy {
            outlier_detection: Some(&o),
            ..Default::default()
        },
        Protocol::Http,
    );
    let od = c.outlier_detection.unwrap();
    assert_eq!(od.consecutive_5xx.unwrap().value, 5);
    assert_eq!(od.enforcing_consecutive_5xx.unwrap().value, 100);
    assert_eq!(od.consecutive_gateway_failure.unwrap().value, 0);
    assert_eq!(od.enforcing_consecutive_gateway_failure.unwrap().value, 0);
    assert_eq!(od.enforcing_success_rate.unwrap().value, 0);
    assert_eq!(od.interval.unwrap().seconds, 30);
    assert_eq!(od.base_ejection_time.unwrap().seconds, 60);
    assert_eq!(od.max_ejection_percent.unwrap().value, 50);
    let panic = c.common_lb_config.unwrap().healthy_panic_threshold.unwrap();
    assert_eq!(
        panic.value, 0.0,
        "minHealthPercent defaults to 0: panic mode off"
    );
}

#[test]
fn load_balancers() {
    let rr = LoadBalancer::Simple(SimpleLb::RoundRobin);
    let c = applied(
        &Policy {
            load_balancer: Some(&rr),
            ..Default::default()
        },
        Protocol::Http,
    );
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin as i32);
    let hash = LoadBalancer::ConsistentHash(
        HashKey::Header("x-user".into()),
        HashAlgorithm::RingHash {
            minimum_ring_size: None,
        },
    );
    let c = applied(
        &Policy {
            load_balancer: Some(&hash),
            ..Default::default()
        },
        Protocol::Http,
    );
    assert_eq!(c.lb_policy, LbPolicy::RingHash as i32);
    match c.lb_config {
        Some(cluster::LbConfig::RingHashLbConfig(r)) => {
            assert_eq!(r.minimum_ring_size.unwrap().value, 1024)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn maglev_ring_size_and_slow_start_reach_the_cluster() {
    let maglev = LoadBalancer::ConsistentHash(
        HashKey::SourceIp,
        HashAlgorithm::Maglev {
            table_size: Some(65537),
        },
    );
    let c = applied(
        &Policy {
            load_balancer: Some(&maglev),
            ..Default::default()
        },
        Protocol::Http,
    );
    assert_eq!(c.lb_policy, LbPolicy::Maglev as i32);
    let Some(cluster::LbConfig::MaglevLbConfig(m)) = c.lb_config else {
        panic!("{:?}", c.lb_config)
    };
    assert_eq!(m.table_size.unwrap().value, 65537);

    let warmup = Warmup {
        duration: Duration::from_secs(30),
        minimum_percent: 20.0,
        aggression: 2.0,
    };
    let rr = LoadBalancer::Simple(SimpleLb::RoundRobin);
    let c = applied(
        &Policy {
            load_balancer: Some(&rr),
            warmup: Some(&warmup),
            ..Default::default()
        },
        Protocol::Http,
    );
    let Some(cluster::LbConfig::RoundRobinLbConfig(r)) = c.lb_config else {
        panic!("{:?}", c.lb_config)
    };
    let s = r.slow_start_config.unwrap();
    assert_eq!(s.slow_start_window.unwrap().seconds, 30);
    assert_eq!(s.aggression.unwrap().default_value, 2.0);
    assert_eq!(s.min_weight_percent.unwrap().value, 20.0);
    // Default algorithm (least request) gets it too.
    let c = applied(
        &Policy {
            warmup: Some(&warmup),
            ..Default::default()
        },
        Protocol::Http,
    );
    assert_eq!(c.lb_policy, LbPolicy::LeastRequest as i32);
    assert!(matches!(
        c.lb_config,
        Some(cluster::LbConfig::LeastRequestLbConfig(ref l)) if l.slow_start_config.is_some()
    ));
}
