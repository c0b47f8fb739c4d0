//! Sidecar metrics: the Prometheus stats listener and the stat tags.
//!
//! Like Istio's port 15090, the stats listener forwards exactly
//! `/stats/prometheus` (and `/metrics`, rewritten to it) to Envoy's admin
//! interface through a static cluster; every other path gets a 404 from
//! the listener itself, so the admin API (`/config_dump`, `/clusters`,
//! `/quitquitquit`, ...) is not reachable through the stats port.
//!
//! Stat tags turn Trellis' cluster names (`outbound|PORT|SUBSET|HOST`,
//! `inbound|PORT||`) into Prometheus labels: `destination_service`,
//! `destination_port`, `destination_subset` and `cluster_name` (the whole
//! cluster name, dotted host included); `source_service`, `source_namespace`
//! and `source_version` are fixed per sidecar. Envoy's default tags stay
//! on, so response codes arrive as `envoy_response_code` /
//! `envoy_response_code_class` — all but `envoy.cluster_name`, whose regex
//! cuts a cluster name at its first dot (`outbound|80||payment` of
//! `outbound|80||payment.default.svc.cluster.local`), leaving the rest in
//! the metric name. Envoy ignores a configured regex for a default tag's
//! name, so, as Istio does, the defaults are listed one by one instead of
//! `use_all_default_tags` (a name without a regex gets Envoy's default).

use serde_json::{json, Value};

use super::SidecarSpec;

/// Name of the static listener serving Prometheus stats.
pub const STATS_LISTENER: &str = "prometheus_stats";
/// Name of the static cluster pointing at Envoy's own admin interface.
pub const STATS_CLUSTER: &str = "prometheus_stats";

/// Envoy's Prometheus handler on the admin interface.
const PROMETHEUS_PATH: &str = "/stats/prometheus";

/// Host part of a cluster stat name: an FQDN of a Kubernetes-style service
/// (`NAME.NS.svc.cluster.local`, which holds dots), else one dot-free
/// label. Stat names join the cluster name and the stat with dots, so the
/// end of a dotted host can only be found by its known suffix (as Istio's
/// bootstrap does); other dotted hosts (ServiceEntry) are cut at their
/// first dot, which Istio accepts too.
const HOST: &str = r"[^.|]+?(?:\.[^.|]+?\.svc\.cluster\.local)?";

/// Envoy 1.40's default tags but `envoy.cluster_name` (each was checked
/// with `envoy --mode validate`, which refuses an unknown name).
const DEFAULT_TAGS: &[&str] = &[
    "envoy.listener_address",
    "envoy.http_user_agent",
    "envoy.ssl_cipher",
    "envoy.ssl_curve",
    "envoy.ssl_sigalg",
    "envoy.ssl_version",
    "envoy.clientssl_prefix",
    "envoy.mongo_prefix",
    "envoy.mongo_cmd",
    "envoy.mongo_collection",
    "envoy.mongo_callsite",
    "envoy.ratelimit_prefix",
    "envoy.local_http_ratelimit_prefix",
    "envoy.local_network_ratelimit_prefix",
    "envoy.connection_limit_prefix",
    "envoy.dns_filter_prefix",
    "envoy.tcp_prefix",
    "envoy.udp_prefix",
    "envoy.fault_downstream_cluster",
    "envoy.dynamo_operation",
    "envoy.dynamo_table",
    "envoy.dynamo_partition_id",
    "envoy.grpc_bridge_service",
    "envoy.grpc_bridge_method",
    "envoy.virtual_host",
    "envoy.virtual_cluster",
    "envoy.response_code",
    "envoy.response_code_class",
    "envoy.route",
    "envoy.http_conn_manager_prefix",
    "envoy.worker_id",
    "envoy.thrift_prefix",
    "envoy.redis_prefix",
    "envoy.proxy_protocol_prefix",
    "envoy.rds_route_config",
    "envoy.scoped_rds_config",
    "envoy.ext_authz_prefix",
    "envoy.rbac_prefix",
    "envoy.rbac_policy_name",
    "envoy.rbac_http_prefix",
    "envoy.google_grpc_client_prefix",
];

/// The per-cluster stats of the mesh's clusters (`outbound|…`, `inbound|…`)
/// that nothing in Trellis reads: not the metrics and service graph
/// (`upstream_rq_*` totals, codes and times), the dashboards and alert
/// rules, nor what the docs send operators to (retries and their
/// overflow, timeouts, pending overflow, connection totals and failures,
/// `circuit_breakers.default.remaining_*`, `outlier_detection.*`,
/// `membership_healthy`/`_total`, `ssl.*`). Envoy makes 112 stats per
/// cluster; these 75 cost 21 KB of Envoy heap per service
/// (`bench/sidecar-tax.py … unread-cluster-stats`). Istio goes further
/// and keeps none of a cluster's stats by default. Stats are matched by
/// their full name before tag extraction; other clusters (xDS, stats)
/// keep all theirs. `--all-cluster-stats` turns this off.
const UNREAD_CLUSTER_STATS: &str = concat!(
    r"^cluster\.(?:outbound|inbound)\|.*\.(?:",
    r"assignment_[a-z_]+|bind_errors|circuit_breakers\.high\.[a-z_]+|default\.total_match_count",
    r"|lb_[a-z_]+|max_host_weight|membership_(?:change|degraded|excluded)",
    r"|original_dst_host_invalid|retry_or_shadow_abandoned|update_[a-z_]+",
    r"|upstream_cx_(?:close_notify|connect_attempts_exceeded|connect_with_0_rtt|destroy_[a-z_]+",
    r"|http[123]_total|idle_timeout|max_duration_reached|max_requests|pool_overflow",
    r"|preconnect_skipped|protocol_error|rx_bytes_buffered|tx_bytes_buffered|connect_ms|length_ms)",
    r"|upstream_flow_control_[a-z_]+|upstream_http3_broken|upstream_internal_redirect_[a-z_]+",
    r"|upstream_queue_overloaded|upstream_rq_(?:0rtt|active_overflow|maintenance_mode",
    r"|max_duration_reached|pending_failure_eject|per_try_idle_timeout|retry_backoff_[a-z]+",
    r"|rx_reset_no_error|per_cx)|version|warming_state)$",
);

/// `stats_config` for `spec`: Trellis' tags, then Envoy's defaults by
/// name, and the matcher that leaves out [`UNREAD_CLUSTER_STATS`].
pub fn stats_config(spec: &SidecarSpec) -> Value {
    let version = spec.labels.get("version").map_or("unknown", String::as_str);
    // Each regex: capture 1 is cut from the stat name, capture 2 is the
    // value. An empty capture 1 keeps the name intact, so several tags can
    // read the same part of it (Envoy runs every extractor on the full name).
    let outbound = r"^cluster\.()outbound\|";
    let mut tags = json!([
            { "tag_name": "cluster_name",
              "regex": format!(r"^cluster\.(((?:outbound|inbound)\|\d+\|[^|]*\|(?:{HOST})?|[^.]+)\.)") },
            { "tag_name": "destination_port",
              "regex": format!(r"{outbound}(\d+)\|") },
            { "tag_name": "destination_subset",
              "regex": format!(r"{outbound}\d+\|([^|]*)\|") },
            { "tag_name": "destination_service",
              "regex": format!(r"{outbound}\d+\|[^|]*\|({HOST})\.") },
            { "tag_name": "source_service", "fixed_value": spec.service },
            { "tag_name": "source_namespace", "fixed_value": spec.namespace },
            { "tag_name": "source_version", "fixed_value": version },
    ]);
    if let Some(list) = tags.as_array_mut() {
        list.extend(DEFAULT_TAGS.iter().map(|name| json!({ "tag_name": name })));
    }
    let mut config = json!({ "use_all_default_tags": false, "stats_tags": tags });
    if !spec.all_cluster_stats {
        config["stats_matcher"] = json!({ "exclusion_list": { "patterns": [
            { "safe_regex": { "regex": UNREAD_CLUSTER_STATS } },
        ] } });
    }
    config
}

/// The static listener on `spec.inbound_address:port` serving only the
/// Prometheus stats.
pub fn stats_listener(spec: &SidecarSpec, port: u16) -> Value {
    let to_stats = |path: &str| {
        json!({
            "match": { "path": path },
            "route": { "cluster": STATS_CLUSTER, "prefix_rewrite": PROMETHEUS_PATH },
        })
    };
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": STATS_LISTENER,
        "route_config": {
            "name": STATS_LISTENER,
            "virtual_hosts": [{
                "name": STATS_LISTENER,
                "domains": ["*"],
                "routes": [
                    to_stats(PROMETHEUS_PATH),
                    to_stats("/metrics"),
                    { "match": { "prefix": "/" },
                      "direct_response": { "status": 404, "body": { "inline_string": "not found: this port serves /stats/prometheus only\n" } } },
                ],
            }],
        },
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
        }],
    });
    json!({
        "name": STATS_LISTENER,
        "address": super::socket_address(&spec.inbound_address, port),
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }] }],
    })
}

/// The static cluster to Envoy's own admin interface (loopback).
pub fn stats_cluster(spec: &SidecarSpec) -> Value {
    json!({
        "name": STATS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": STATS_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                "address": super::socket_address("127.0.0.1", spec.admin_port),
            } }] }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn tag_regex(config: &Value, name: &str) -> Regex {
        let tags = config["stats_tags"].as_array().unwrap();
        let tag = tags.iter().find(|t| t["tag_name"] == name).unwrap();
        Regex::new(tag["regex"].as_str().unwrap()).unwrap()
    }

    /// Runs one tag's regex as Envoy does: (cut, value).
    fn extract(config: &Value, name: &str, stat: &str) -> Option<(String, String)> {
        let caps = tag_regex(config, name).captures(stat)?;
        let cut = caps.get(1).map_or("", |m| m.as_str()).to_string();
        let value = caps.get(2).or(caps.get(1)).map_or("", |m| m.as_str());
        Some((cut, value.to_string()))
    }

    #[test]
    fn tags_split_outbound_cluster_names() {
        let mut spec = SidecarSpec::new("frontend", 8080);
        spec.labels.insert("version".into(), "v1".into());
        let c = stats_config(&spec);
        let stat = "cluster.outbound|80|canary|payment.default.svc.cluster.local.upstream_rq_200";
        let name = "outbound|80|canary|payment.default.svc.cluster.local";
        assert_eq!(
            extract(&c, "cluster_name", stat),
            Some((format!("{name}."), name.to_string()))
        );
        let value = |tag| extract(&c, tag, stat).map(|(cut, v)| (cut.is_empty(), v));
        assert_eq!(
            value("destination_service"),
            Some((true, "payment.default.svc.cluster.local".into()))
        );
        assert_eq!(value("destination_subset"), Some((true, "canary".into())));
        assert_eq!(value("destination_port"), Some((true, "80".into())));
        let plain = "cluster.outbound|80||ledger.upstream_rq_total";
        assert_eq!(
            extract(&c, "destination_service", plain).unwrap().1,
            "ledger"
        );
        assert_eq!(extract(&c, "destination_subset", plain).unwrap().1, "");
        let inbound = "cluster.inbound|8080||.upstream_rq_total";
        assert_eq!(
            extract(&c, "cluster_name", inbound).unwrap().1,
            "inbound|8080||"
        );
        assert!(extract(&c, "destination_service", inbound).is_none());
        let xds = "cluster.xds_cluster.upstream_cx_total";
        assert_eq!(extract(&c, "cluster_name", xds).unwrap().1, "xds_cluster");
        let tags = c["stats_tags"].as_array().unwrap();
        assert!(tags.contains(&json!({ "tag_name": "source_version", "fixed_value": "v1" })));
        assert!(tags.contains(&json!({ "tag_name": "source_service", "fixed_value": "frontend" })));
    }

    #[test]
    fn matcher_leaves_out_only_unread_mesh_cluster_stats() {
        let mut spec = SidecarSpec::new("frontend", 8080);
        let c = stats_config(&spec);
        let pattern = &c["stats_matcher"]["exclusion_list"]["patterns"][0]["safe_regex"]["regex"];
        let unread = Regex::new(pattern.as_str().unwrap()).unwrap();
        let mesh = "cluster.outbound|80|v1|payment.default.svc.cluster.local.";
        for stat in [
            "lb_healthy_panic",
            "update_success",
            "upstream_cx_destroy_local",
            "version",
            "circuit_breakers.high.rq_open",
            "upstream_cx_length_ms",
            "upstream_rq_retry_backoff_exponential",
        ] {
            assert!(unread.is_match(&format!("{mesh}{stat}")), "{stat}");
            assert!(
                unread.is_match(&format!("cluster.inbound|8080||.{stat}")),
                "{stat}"
            );
        }
        for stat in [
            "upstream_rq_total",
            "upstream_rq_2xx",
            "upstream_rq_503",
            "upstream_rq_time",
            "external.upstream_rq_time",
            "upstream_rq_retry",
            "upstream_rq_retry_overflow",
            "upstream_rq_retry_limit_exceeded",
            "upstream_rq_timeout",
            "upstream_rq_pending_overflow",
            "upstream_rq_completed",
            "upstream_cx_total",
            "upstream_cx_connect_fail",
            "upstream_cx_tx_bytes_total",
            "upstream_cx_destroy",
            "membership_healthy",
            "circuit_breakers.default.remaining_retries",
            "outlier_detection.ejections_active",
            "ssl.handshake",
        ] {
            assert!(!unread.is_match(&format!("{mesh}{stat}")), "{stat}");
        }
        assert!(!unread.is_match("cluster.xds_cluster.update_success"));
        spec.all_cluster_stats = true;
        assert!(stats_config(&spec).get("stats_matcher").is_none());
    }

    #[test]
    fn listener_routes_only_prometheus_paths() {
        let spec = SidecarSpec::new("frontend", 8080);
        let l = stats_listener(&spec, 15090);
        let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
        let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap();
        let forwarded: Vec<&str> = routes
            .iter()
            .filter(|r| r.get("route").is_some())
            .map(|r| r["match"]["path"].as_str().unwrap())
            .collect();
        assert_eq!(forwarded, ["/stats/prometheus", "/metrics"]);
        assert_eq!(routes[2]["direct_response"]["status"], 404);
        assert_eq!(l["address"]["socket_address"]["port_value"], 15090);
    }
}
