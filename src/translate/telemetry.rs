//! Access logs and tracing on a sidecar's HTTP connection managers, and
//! the clusters of the trace collectors.
//!
//! Both the inbound and the outbound HCM log and trace, as istiod's
//! sidecars do: a call frontend → payment is then the outbound span of
//! frontend's sidecar, its upstream span (`spawn_upstream_span`), and the
//! inbound span of payment's sidecar, all linked through the B3 /
//! `traceparent` headers Envoy propagates and the apps forward.

mod access_log;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::core::v3::{grpc_service, GrpcService};
use envoy_types::pb::envoy::config::trace::v3::{
    tracing::{http, Http as TraceProvider},
    zipkin_config::CollectorEndpointVersion,
    OpenTelemetryConfig, ZipkinConfig,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::Tracing, HttpConnectionManager,
};
use envoy_types::pb::envoy::r#type::tracing::v3::{custom_tag, CustomTag as XdsCustomTag};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::Shared;
use crate::config::model::{
    effective_telemetry, CustomTag, EffectiveTelemetry, EffectiveTracing, MeshSettings,
    ProviderKind,
};
use crate::registry::Proxy;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;

pub use access_log::{DEFAULT_LOG_FIELDS, TCP_LOG_FIELDS};

/// Which of a sidecar's HCMs is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Mesh traffic into the sidecar's app.
    Inbound,
    /// The app's calls out.
    Outbound,
}

/// Sets the access logs and tracing of `proxy`'s HCM, per its effective
/// `Telemetry` (mesh defaults: JSON access log to stdout, no tracing).
pub fn apply(hcm: &mut HttpConnectionManager, shared: &Shared, proxy: &Proxy, dir: Direction) {
    let eff = effective(shared, proxy);
    hcm.access_log = access_logs(&eff, shared, proxy, (access_log::Layer::Http, dir));
    hcm.tracing = eff.tracing.as_ref().map(|t| tracing(t, proxy));
}

/// The access logs of `proxy`'s `tcp_proxy` filters, per its effective
/// `Telemetry`: the same providers as its HTTP connection managers, the
/// default JSON format with the fields of a connection
/// ([`TCP_LOG_FIELDS`]). Tracing needs requests: TCP has none.
pub fn tcp_access_logs(shared: &Shared, proxy: &Proxy, dir: Direction) -> Vec<AccessLog> {
    let eff = effective(shared, proxy);
    access_logs(&eff, shared, proxy, (access_log::Layer::Tcp, dir))
}

/// `proxy`'s effective `Telemetry`.
fn effective(shared: &Shared, proxy: &Proxy) -> EffectiveTelemetry {
    effective_telemetry(
        &shared.mesh.telemetry,
        &shared.telemetries,
        &shared.mesh.root_namespace,
        &proxy.namespace,
        &proxy.labels,
    )
}

/// The access logs of `eff`'s providers at `at` (HTTP or TCP, direction).
fn access_logs(
    eff: &EffectiveTelemetry,
    shared: &Shared,
    proxy: &Proxy,
    at: (access_log::Layer, Direction),
) -> Vec<AccessLog> {
    let identity = proxy.spiffe_id(&shared.mesh.trust_domain);
    (eff.access_logs.iter())
        .filter_map(|p| access_log::access_log(&p.kind, at, &identity))
        .collect()
}

fn percent(value: f64) -> Percent {
    Percent { value }
}

/// HCM tracing: the provider's tracer, random sampling, 100% client and
/// overall sampling (Envoy's defaults, written out), and an upstream span
/// per request so that each sidecar hop is its own span.
fn tracing(t: &EffectiveTracing, proxy: &Proxy) -> Tracing {
    Tracing {
        client_sampling: Some(percent(100.0)),
        random_sampling: Some(percent(t.sampling_percent)),
        overall_sampling: Some(percent(100.0)),
        custom_tags: t
            .custom_tags
            .iter()
            .map(|(name, tag)| custom_tag(name, tag))
            .collect(),
        provider: provider(&t.provider.kind, proxy),
        spawn_upstream_span: Some(BoolValue { value: true }),
        ..Default::default()
    }
}

fn custom_tag(name: &str, tag: &CustomTag) -> XdsCustomTag {
    let r#type = match tag {
        CustomTag::Literal(value) => custom_tag::Type::Literal(custom_tag::Literal {
            value: value.clone(),
        }),
        CustomTag::Header {
            name,
            default_value,
        } => custom_tag::Type::RequestHeader(custom_tag::Header {
            name: name.clone(),
            default_value: default_value.clone().unwrap_or_default(),
        }),
    };
    XdsCustomTag {
        tag: name.to_string(),
        r#type: Some(r#type),
    }
}

fn provider(kind: &ProviderKind, proxy: &Proxy) -> Option<TraceProvider> {
    let (name, config) = match kind {
        ProviderKind::OpenTelemetry { service, port } => (
            "envoy.tracers.opentelemetry",
            pack_any(otel(service, *port, proxy)),
        ),
        ProviderKind::Zipkin {
            service,
            port,
            path,
        } => (
            "envoy.tracers.zipkin",
            pack_any(zipkin(service, *port, path)),
        ),
        ProviderKind::FileAccessLog { .. } => return None,
    };
    Some(TraceProvider {
        name: name.to_string(),
        config_type: Some(http::ConfigType::TypedConfig(config)),
    })
}

fn otel(service: &str, port: u16, proxy: &Proxy) -> OpenTelemetryConfig {
    let grpc = GrpcService {
        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
            grpc_service::EnvoyGrpc {
                cluster_name: collector_cluster_name(service, port),
                authority: service.to_string(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    OpenTelemetryConfig {
        grpc_service: Some(grpc),
        // Istio's service name: `app.namespace`.
        service_name: format!("{}.{}", proxy.service, proxy.namespace),
        ..Default::default()
    }
}

/// As istiod: 128-bit trace ids, and client and server spans with their
/// own ids (no shared span context) so that every hop has a parent link.
fn zipkin(service: &str, port: u16, path: &str) -> ZipkinConfig {
    ZipkinConfig {
        collector_cluster: collector_cluster_name(service, port),
        collector_endpoint: path.to_string(),
        trace_id_128bit: true,
        shared_span_context: Some(BoolValue { value: false }),
        collector_endpoint_version: CollectorEndpointVersion::HttpJson as i32,
        collector_hostname: service.to_string(),
        ..Default::default()
    }
}

/// The cluster a collector at `service:port` is reached through: Istio's
/// outbound cluster name, so that a collector that is a mesh service uses
/// that service's cluster.
pub fn collector_cluster_name(service: &str, port: u16) -> String {
    format!("outbound|{port}||{service}")
}

/// A cluster for every tracing provider whose collector is not already a
/// cluster in `existing`: STATIC for an IP address, STRICT_DNS otherwise;
/// HTTP/2 for OTLP/gRPC.
pub fn collector_clusters<'a, I>(mesh: &MeshSettings, existing: I) -> Vec<XdsCluster>
where
    I: IntoIterator<Item = &'a XdsCluster> + Clone,
{
    let mut out: Vec<XdsCluster> = Vec::new();
    for p in &mesh.telemetry.extension_providers {
        let Some((service, port)) = p.kind.collector() else {
            continue;
        };
        let name = collector_cluster_name(service, port);
        let named = |c: &XdsCluster| c.name == name;
        if existing.clone().into_iter().any(named) || out.iter().any(named) {
            continue;
        }
        let h2 = matches!(p.kind, ProviderKind::OpenTelemetry { .. });
        out.push(super::clusters::single_host(name, service, port, h2));
    }
    out
}

#[cfg(test)]
mod tests;
