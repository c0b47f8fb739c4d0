//! `DestinationRule` conversion: subsets and traffic policies.

mod load_balancer;
mod locality;

use std::collections::{BTreeMap, BTreeSet};

use super::{is_dns_label, join, Cx};
use crate::config::model::{
    ClientTls, ConnectionPool, DestinationRule, Labels, OutlierDetection, ProxyProtocolVersion,
    Subset, TrafficPolicy, VsExportTo,
};
use crate::config::raw::destination_rule as raw;
use crate::config::raw::DurationText;

/// Converts a `DestinationRule`; `None` when its host is unusable.
pub(crate) fn destination_rule(
    cx: &mut Cx<'_>,
    dr: &raw::DestinationRule,
) -> Option<DestinationRule> {
    let (export_to, workload_selector) = visibility(cx, dr);
    // `*`: a rule for every service no more specific rule matches.
    let host = match dr.host.trim() {
        "*" => Some(crate::config::model::Host("*".to_string())),
        _ => cx.service_host("spec.host", &dr.host),
    };
    super::retry_budget::check_max_retries(cx, dr);
    let policy =
        (dr.traffic_policy.as_ref()).map(|tp| traffic_policy(cx, "spec.trafficPolicy", tp, false));
    // A subset inherits the top-level outlier detection block by block.
    let top_outlier = policy
        .as_ref()
        .is_some_and(|p| p.outlier_detection.is_some());
    let mut names = BTreeSet::new();
    let mut subsets = Vec::new();
    for (i, s) in dr.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if s.name.is_empty() {
            cx.err(&path, "subset name is required");
        } else if !is_dns_label(&s.name) {
            let msg = format!("subset name {:?} is not a valid DNS-1123 label", s.name);
            cx.err(&join(&path, "name"), msg);
        } else if !names.insert(s.name.as_str()) {
            cx.err(
                &join(&path, "name"),
                format!("duplicate subset name {:?}", s.name),
            );
        }
        cx.labels(&join(&path, "labels"), &s.labels);
        let tp = (s.traffic_policy.as_ref())
            .map(|tp| traffic_policy(cx, &join(&path, "trafficPolicy"), tp, top_outlier));
        subsets.push(Subset {
            name: s.name.clone(),
            labels: s.labels.clone(),
            traffic_policy: tp,
        });
    }
    Some(DestinationRule {
        host: host?,
        traffic_policy: policy,
        subsets,
        export_to,
        workload_selector,
        origin: cx.doc.origin(),
    })
}

/// `exportTo` and `workloadSelector`. A workload-selected rule applies in
/// its own namespace only (Istio makes it private whatever its
/// `exportTo`), so an `exportTo` that says otherwise is an error rather
/// than ignored.
fn visibility(cx: &mut Cx<'_>, dr: &raw::DestinationRule) -> (VsExportTo, Option<Labels>) {
    let export_to = super::virtual_service::export::export_to(cx, dr.export_to.as_deref());
    let Some(sel) = &dr.workload_selector else {
        return (export_to, None);
    };
    let path = "spec.workloadSelector.matchLabels";
    if sel.match_labels.is_empty() {
        cx.err(
            path,
            "workloadSelector needs matchLabels (omit workloadSelector to apply to every workload)",
        );
    }
    cx.labels(path, &sel.match_labels);
    let own = cx.doc.namespace.clone();
    if !export_to
        .namespaces
        .as_ref()
        .is_some_and(|n| n.len() == 1 && n.contains(&own))
        && dr.export_to.as_ref().is_some_and(|e| !e.is_empty())
    {
        let msg = "a DestinationRule with a workloadSelector applies only to workloads of its own namespace: exportTo must be absent or `.`";
        cx.err("spec.exportTo", msg);
    }
    let private = VsExportTo {
        namespaces: Some(BTreeSet::from([own])),
    };
    (private, Some(sel.match_labels.clone()))
}

/// `inherits_outlier`: the policy this one inherits blocks from has
/// `outlierDetection` (a subset's top-level policy).
fn traffic_policy(
    cx: &mut Cx<'_>,
    path: &str,
    tp: &raw::TrafficPolicy,
    inherits_outlier: bool,
) -> TrafficPolicy {
    cx.unsupported(path, "tunnel", &tp.tunnel);
    let mut port_level = BTreeMap::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let p = format!("{path}.portLevelSettings[{i}]");
        if let Some((number, policy)) = port_policy(cx, &p, pl) {
            if port_level.insert(number, policy).is_some() {
                let msg = format!("port {number} has more than one policy");
                cx.err(&join(&p, "port.number"), msg);
            }
        }
    }
    let (lb, pool, od) = (
        &tp.load_balancer,
        &tp.connection_pool,
        &tp.outlier_detection,
    );
    let retry_budget = (tp.retry_budget.as_ref())
        .and_then(|b| super::retry_budget::retry_budget(cx, &join(path, "retryBudget"), b));
    let policy = TrafficPolicy {
        port_level,
        tls: tls(cx, path, &tp.tls),
        retry_budget,
        proxy_protocol: (tp.proxy_protocol.as_ref())
            .and_then(|pp| proxy_protocol(cx, &join(path, "proxyProtocol"), pp)),
        ..parts(cx, path, lb, pool, od)
    };
    check_failover(cx, path, &policy, inherits_outlier);
    policy
}

/// Failover without outlier detection to drive it is an error (see
/// [`locality`]).
fn check_failover(cx: &mut Cx<'_>, path: &str, tp: &TrafficPolicy, inherits_outlier: bool) {
    let failover = tp
        .locality_lb
        .as_ref()
        .is_some_and(locality::wants_failover);
    if failover && tp.outlier_detection.is_none() && !inherits_outlier {
        let p = join(&join(path, "loadBalancer"), "localityLbSetting");
        locality::needs_outlier(cx, &p);
    }
}

fn port_policy(
    cx: &mut Cx<'_>,
    path: &str,
    pl: &raw::PortTrafficPolicy,
) -> Option<(u16, TrafficPolicy)> {
    let Some(sel) = &pl.port else {
        cx.err(path, "port is required");
        return None;
    };
    let number = cx.port(&join(path, "port.number"), sel.number)?;
    let (lb, pool, od) = (
        &pl.load_balancer,
        &pl.connection_pool,
        &pl.outlier_detection,
    );
    let policy = TrafficPolicy {
        tls: tls(cx, path, &pl.tls),
        ..parts(cx, path, lb, pool, od)
    };
    // A port's settings replace the policy wholesale: nothing is inherited.
    check_failover(cx, path, &policy, false);
    Some((number, policy))
}

fn tls(cx: &mut Cx<'_>, path: &str, t: &Option<raw::ClientTls>) -> Option<ClientTls> {
    (t.as_ref()).and_then(|t| super::security::client_tls(cx, &join(path, "tls"), t))
}

fn parts(
    cx: &mut Cx<'_>,
    path: &str,
    lb: &Option<raw::LoadBalancer>,
    pool: &Option<raw::ConnectionPool>,
    od: &Option<raw::OutlierDetection>,
) -> TrafficPolicy {
    let lb_path = join(path, "loadBalancer");
    let locality_lb = (lb.as_ref())
        .and_then(|lb| lb.locality_lb_setting.as_ref())
        .and_then(|s| locality::setting(cx, &join(&lb_path, "localityLbSetting"), s));
    let load_balancer = (lb.as_ref()).and_then(|lb| load_balancer::load_balancer(cx, &lb_path, lb));
    let warmup = (lb.as_ref())
        .and_then(|lb| load_balancer::warmup(cx, &lb_path, lb, load_balancer.as_ref()));
    TrafficPolicy {
        load_balancer,
        warmup,
        locality_lb,
        connection_pool: pool
            .as_ref()
            .map(|cp| connection_pool(cx, &join(path, "connectionPool"), cp)),
        outlier_detection: od
            .as_ref()
            .map(|od| outlier(cx, &join(path, "outlierDetection"), od)),
        port_level: BTreeMap::new(),
        tls: None,
        retry_budget: None,
        proxy_protocol: None,
    }
}

/// `proxyProtocol.version`; absent is `V1`, the enum's zero value, as
/// Istio reads it.
fn proxy_protocol(
    cx: &mut Cx<'_>,
    path: &str,
    pp: &raw::ProxyProtocol,
) -> Option<ProxyProtocolVersion> {
    match pp.version.as_deref() {
        None | Some("V1") => Some(ProxyProtocolVersion::V1),
        Some("V2") => Some(ProxyProtocolVersion::V2),
        Some(other) => {
            let msg = format!("unknown proxyProtocol version {other:?}: use V1 or V2");
            cx.err(&join(path, "version"), msg);
            None
        }
    }
}

pub(super) fn connection_pool(
    cx: &mut Cx<'_>,
    path: &str,
    cp: &raw::ConnectionPool,
) -> ConnectionPool {
    let mut out = ConnectionPool::default();
    if let Some(tcp) = &cp.tcp {
        let p = join(path, "tcp");
        cx.unsupported(&p, "tcpKeepalive", &tcp.tcp_keepalive);
        cx.unsupported(&p, "maxConnectionDuration", &tcp.max_connection_duration);
        cx.unsupported(&p, "idleTimeout", &tcp.idle_timeout);
        out.max_connections = tcp
            .max_connections
            .and_then(|n| cx.count(&join(&p, "maxConnections"), n));
        out.connect_timeout = (tcp.connect_timeout.as_ref())
            .and_then(|t| cx.duration(&join(&p, "connectTimeout"), t));
    }
    if let Some(http) = &cp.http {
        let p = join(path, "http");
        cx.unsupported(&p, "useClientProtocol", &http.use_client_protocol);
        cx.unsupported(&p, "maxConcurrentStreams", &http.max_concurrent_streams);
        cx.unsupported(&p, "http2KeepAlive", &http.http2_keep_alive);
        let mut count = |field: &str, v: Option<i64>| v.and_then(|n| cx.count(&join(&p, field), n));
        out.http1_max_pending_requests =
            count("http1MaxPendingRequests", http.http1_max_pending_requests);
        out.http2_max_requests = count("http2MaxRequests", http.http2_max_requests);
        out.max_requests_per_connection =
            count("maxRequestsPerConnection", http.max_requests_per_connection);
        out.max_retries = count("maxRetries", http.max_retries);
        out.idle_timeout =
            (http.idle_timeout.as_ref()).and_then(|t| cx.duration(&join(&p, "idleTimeout"), t));
        out.h2_upgrade = match http.h2_upgrade_policy.as_deref() {
            None | Some("DEFAULT") => None,
            Some("UPGRADE") => Some(true),
            Some("DO_NOT_UPGRADE") => Some(false),
            Some(other) => {
                let msg = format!(
                    "unknown h2UpgradePolicy {other:?}: use DEFAULT, DO_NOT_UPGRADE or UPGRADE"
                );
                cx.err(&join(&p, "h2UpgradePolicy"), msg);
                None
            }
        };
    }
    out
}

fn outlier(cx: &mut Cx<'_>, path: &str, od: &raw::OutlierDetection) -> OutlierDetection {
    cx.unsupported(
        path,
        "splitExternalLocalOriginErrors",
        &od.split_external_local_origin_errors,
    );
    cx.unsupported(
        path,
        "consecutiveLocalOriginFailures",
        &od.consecutive_local_origin_failures,
    );
    let codes = &od.outlier_detection_http_error_codes;
    cx.unsupported(path, "outlierDetectionHttpErrorCodes", codes);
    if od.consecutive_errors.is_some() {
        let p = join(path, "consecutiveErrors");
        cx.err(&p, "`consecutiveErrors` was removed from Istio: use consecutive5xxErrors or consecutiveGatewayErrors");
    }
    let mut count = |field: &str, v: Option<i64>| v.and_then(|n| cx.count(&join(path, field), n));
    let consecutive_5xx_errors = count("consecutive5xxErrors", od.consecutive_5xx_errors);
    let consecutive_gateway_errors =
        count("consecutiveGatewayErrors", od.consecutive_gateway_errors);
    let mut pct = |field: &str, v: Option<i64>| {
        v.and_then(|n| {
            if (0..=100).contains(&n) {
                Some(n as u32)
            } else {
                cx.err(&join(path, field), format!("{n} is not in 0..100"));
                None
            }
        })
    };
    let max_ejection_percent = pct("maxEjectionPercent", od.max_ejection_percent);
    let min_health_percent = pct("minHealthPercent", od.min_health_percent);
    let mut dur = |field: &str, v: &Option<DurationText>| {
        v.as_ref().and_then(|t| cx.duration(&join(path, field), t))
    };
    OutlierDetection {
        consecutive_5xx_errors,
        consecutive_gateway_errors,
        interval: dur("interval", &od.interval),
        base_ejection_time: dur("baseEjectionTime", &od.base_ejection_time),
        max_ejection_percent,
        min_health_percent,
    }
}
