use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType as LogConfig;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;

use super::*;
use crate::config::model::{ExtensionProvider, MeshTelemetry, Telemetry, TracingSpec};
use crate::translate::fixtures::{origin, sidecar};
use envoy_types::pb::envoy::config::cluster::v3::cluster;

fn mesh(providers: Vec<ExtensionProvider>, tracing: &[&str]) -> MeshSettings {
    let mut telemetry = MeshTelemetry {
        extension_providers: providers,
        ..Default::default()
    };
    telemetry.default_providers.tracing = tracing.iter().map(|s| s.to_string()).collect();
    MeshSettings {
        telemetry,
        ..Default::default()
    }
}

fn zipkin() -> ExtensionProvider {
    ExtensionProvider {
        name: "zipkin".into(),
        kind: ProviderKind::Zipkin {
            service: "127.0.0.1".into(),
            port: 9411,
            path: "/api/v2/spans".into(),
        },
    }
}

fn otel() -> ExtensionProvider {
    ExtensionProvider {
        name: "otel".into(),
        kind: ProviderKind::OpenTelemetry {
            service: "otel.example".into(),
            port: 4317,
        },
    }
}

fn configured(shared: &Shared, dir: Direction) -> HttpConnectionManager {
    let mut hcm = HttpConnectionManager::default();
    apply(
        &mut hcm,
        shared,
        &sidecar("frontend", "f1", "v1", 15006),
        dir,
    );
    hcm
}

#[test]
fn default_is_neither_access_log_nor_tracing() {
    let hcm = configured(&Shared::default(), Direction::Outbound);
    assert!(hcm.tracing.is_none());
    assert!(hcm.access_log.is_empty());
}

#[test]
fn builtin_access_log_is_json_to_stdout_with_the_default_fields() {
    let mut shared = Shared::default();
    let defaults = &mut shared.mesh.telemetry.default_providers;
    defaults.access_logging = vec![crate::config::model::BUILTIN_ACCESS_LOG.to_string()];
    let hcm = configured(&shared, Direction::Outbound);
    assert_eq!(hcm.access_log.len(), 1);
    let Some(LogConfig::TypedConfig(any)) = &hcm.access_log[0].config_type else {
        panic!("typed config expected");
    };
    let file = FileAccessLog::decode(any.value.as_slice()).unwrap();
    assert_eq!(file.path, "/dev/stdout");
    let text = format!("{file:?}");
    for (key, _) in DEFAULT_LOG_FIELDS {
        assert!(text.contains(key), "{key} missing");
    }
    assert!(
        text.contains("spiffe://cluster.local/ns/default/sa/frontend"),
        "own identity on outbound"
    );
}

#[test]
fn zipkin_tracing_with_sampling_and_upstream_spans() {
    let shared = Shared {
        mesh: mesh(vec![zipkin()], &["zipkin"]),
        telemetries: vec![Telemetry {
            selector: None,
            access_logging: None,
            tracing: Some(TracingSpec {
                random_sampling_percentage: Some(25.0),
                ..Default::default()
            }),
            origin: origin("Telemetry", "t"),
        }],
        ..Default::default()
    };
    for dir in [Direction::Inbound, Direction::Outbound] {
        let t = configured(&shared, dir)
            .tracing
            .expect("tracing on both HCMs");
        assert_eq!(t.random_sampling.unwrap().value, 25.0);
        assert_eq!(t.spawn_upstream_span, Some(BoolValue { value: true }));
        let p = t.provider.unwrap();
        assert_eq!(p.name, "envoy.tracers.zipkin");
        let Some(http::ConfigType::TypedConfig(any)) = p.config_type else {
            panic!()
        };
        let z = ZipkinConfig::decode(any.value.as_slice()).unwrap();
        assert_eq!(z.collector_cluster, "outbound|9411||127.0.0.1");
        assert_eq!(
            z.collector_endpoint_version,
            CollectorEndpointVersion::HttpJson as i32
        );
    }
}

#[test]
fn collector_clusters_static_dns_h2_and_reused() {
    let m = mesh(vec![zipkin(), otel()], &[]);
    let cs = collector_clusters(&m, &[]);
    let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["outbound|9411||127.0.0.1", "outbound|4317||otel.example"]
    );
    let kind = |c: &XdsCluster| c.cluster_discovery_type.clone();
    let t = |k: cluster::DiscoveryType| Some(cluster::ClusterDiscoveryType::Type(k as i32));
    assert_eq!(kind(&cs[0]), t(cluster::DiscoveryType::Static));
    assert_eq!(kind(&cs[1]), t(cluster::DiscoveryType::StrictDns));
    assert!(
        !cs[1].typed_extension_protocol_options.is_empty(),
        "OTLP/gRPC needs HTTP/2"
    );
    let reused = collector_clusters(&m, &cs[..1]);
    assert_eq!(reused.len(), 1, "an existing cluster is reused");
}
