//! `Telemetry` (`telemetry.istio.io` v1alpha1) and the telemetry fields of
//! the `Mesh` resource (the shape of Istio's `MeshConfig.extensionProviders`
//! and `defaultProviders`), as written.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::peer_authentication::WorkloadSelector;
use super::Unsupported;

/// `Telemetry.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Telemetry {
    pub selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub tracing: Vec<Tracing>,
    #[serde(default)]
    pub access_logging: Vec<AccessLogging>,
    pub metrics: Option<Unsupported>,
    pub target_ref: Option<Unsupported>,
    pub target_refs: Option<Unsupported>,
}

/// `ProviderRef`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProviderRef {
    #[serde(default)]
    pub name: String,
}

/// `Tracing`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Tracing {
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    pub random_sampling_percentage: Option<f64>,
    pub disable_span_reporting: Option<bool>,
    #[serde(default)]
    pub custom_tags: BTreeMap<String, CustomTag>,
    #[serde(rename = "match")]
    pub r#match: Option<Unsupported>,
    pub use_request_id_for_trace_sampling: Option<Unsupported>,
    pub enable_istio_tags: Option<Unsupported>,
}

/// `Tracing.CustomTag`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CustomTag {
    pub literal: Option<Literal>,
    pub header: Option<RequestHeader>,
    pub environment: Option<Unsupported>,
}

/// `Tracing.Literal`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Literal {
    #[serde(default)]
    pub value: String,
}

/// `Tracing.RequestHeader`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RequestHeader {
    #[serde(default)]
    pub name: String,
    pub default_value: Option<String>,
}

/// `AccessLogging`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AccessLogging {
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    pub disabled: Option<bool>,
    pub filter: Option<Unsupported>,
    #[serde(rename = "match")]
    pub r#match: Option<Unsupported>,
}

/// `MeshConfig.ExtensionProvider`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ExtensionProvider {
    #[serde(default)]
    pub name: String,
    pub opentelemetry: Option<OpenTelemetry>,
    pub zipkin: Option<Zipkin>,
    pub envoy_file_access_log: Option<FileAccessLog>,
    pub envoy_ext_authz_http: Option<Unsupported>,
    pub envoy_ext_authz_grpc: Option<Unsupported>,
    pub datadog: Option<Unsupported>,
    pub lightstep: Option<Unsupported>,
    pub skywalking: Option<Unsupported>,
    pub stackdriver: Option<Unsupported>,
    pub prometheus: Option<Unsupported>,
    pub envoy_http_als: Option<Unsupported>,
    pub envoy_tcp_als: Option<Unsupported>,
    pub envoy_otel_als: Option<Unsupported>,
    pub sds: Option<Unsupported>,
}

/// `ExtensionProvider.OpenTelemetryTracingProvider`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OpenTelemetry {
    #[serde(default)]
    pub service: String,
    pub port: Option<i64>,
    pub max_tag_length: Option<Unsupported>,
    pub http: Option<Unsupported>,
    pub grpc: Option<Unsupported>,
    pub resource_detectors: Option<Unsupported>,
    pub dynatrace_sampler: Option<Unsupported>,
}

/// `ExtensionProvider.ZipkinTracingProvider`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Zipkin {
    #[serde(default)]
    pub service: String,
    pub port: Option<i64>,
    pub path: Option<String>,
    pub max_tag_length: Option<Unsupported>,
    pub enable64bit_trace_id: Option<Unsupported>,
    pub trace_context_option: Option<Unsupported>,
    pub timeout: Option<Unsupported>,
    pub headers: Option<Unsupported>,
}

/// `ExtensionProvider.EnvoyFileAccessLogProvider`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FileAccessLog {
    #[serde(default)]
    pub path: String,
    pub log_format: Option<LogFormat>,
}

/// `EnvoyFileAccessLogProvider.LogFormat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LogFormat {
    pub text: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// `MeshConfig.DefaultProviders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DefaultProviders {
    pub tracing: Option<Vec<String>>,
    pub access_logging: Option<Vec<String>>,
    pub metrics: Option<Unsupported>,
}
