//! Telemetry settings of the validated model: `Mesh.extensionProviders`
//! and `defaultProviders`, and the Istio `Telemetry` resource
//! (`telemetry.istio.io` v1alpha1), with Istio's precedence.

use std::collections::BTreeMap;

use super::{Labels, Origin};

/// Name of the built-in access log provider (Istio's `envoy`): JSON lines
/// with [the standard fields](ProviderKind::FileAccessLog) to stdout.
pub const BUILTIN_ACCESS_LOG: &str = "envoy";
/// Where the built-in access log provider writes.
pub const DEFAULT_ACCESS_LOG_PATH: &str = "/dev/stdout";
/// Istio's default trace sampling when a `Telemetry` names a tracing
/// provider without `randomSamplingPercentage` (MeshConfig's 1%).
pub const DEFAULT_SAMPLING_PERCENT: f64 = 1.0;
/// Zipkin's span endpoint (JSON v2).
pub const DEFAULT_ZIPKIN_PATH: &str = "/api/v2/spans";

/// The telemetry part of the `Mesh` resource.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeshTelemetry {
    /// `extensionProviders`, by name (user-defined ones; the built-in
    /// `envoy` provider is added by [`MeshTelemetry::provider`]).
    pub extension_providers: Vec<ExtensionProvider>,
    /// `defaultProviders`.
    pub default_providers: DefaultProviders,
}

impl MeshTelemetry {
    /// The provider called `name`: a user-defined one, or the built-in
    /// `envoy` access log.
    pub fn provider(&self, name: &str) -> Option<ExtensionProvider> {
        let user = self.extension_providers.iter().find(|p| p.name == name);
        match user {
            Some(p) => Some(p.clone()),
            None if name == BUILTIN_ACCESS_LOG => Some(ExtensionProvider {
                name: BUILTIN_ACCESS_LOG.to_string(),
                kind: ProviderKind::FileAccessLog {
                    path: DEFAULT_ACCESS_LOG_PATH.to_string(),
                    format: LogFormat::Default,
                },
            }),
            None => None,
        }
    }
}

/// `defaultProviders`: what applies when no `Telemetry` says otherwise.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DefaultProviders {
    /// `accessLogging`; by default none: access logs are off, as in Istio,
    /// Linkerd and Consul (at 1,000 req/s the JSON line costs the sidecar
    /// pair about 7 % more CPU; BENCHMARKS.md, "Data plane").
    pub access_logging: Vec<String>,
    /// `tracing`; by default none.
    pub tracing: Vec<String>,
}

/// One `extensionProviders` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionProvider {
    /// `name`, referenced from `Telemetry` and `defaultProviders`.
    pub name: String,
    /// What it is.
    pub kind: ProviderKind,
}

/// The kinds of provider Trellis supports.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    /// `opentelemetry`: spans over OTLP/gRPC to `service:port`.
    OpenTelemetry {
        /// Collector host (a mesh service host, a DNS name or an IP).
        service: String,
        /// Collector OTLP/gRPC port (4317).
        port: u16,
    },
    /// `zipkin`: spans as Zipkin JSON v2 over HTTP to `service:port` `path`.
    Zipkin {
        /// Collector host.
        service: String,
        /// Collector port (9411).
        port: u16,
        /// Span endpoint path (`/api/v2/spans`).
        path: String,
    },
    /// `envoyFileAccessLog`: access log lines to a file.
    FileAccessLog {
        /// `path` (`/dev/stdout` for the container log).
        path: String,
        /// `logFormat`.
        format: LogFormat,
    },
}

impl ProviderKind {
    /// True for tracing providers.
    pub fn is_tracing(&self) -> bool {
        !matches!(self, ProviderKind::FileAccessLog { .. })
    }

    /// The collector `(service, port)` of a tracing provider.
    pub fn collector(&self) -> Option<(&str, u16)> {
        match self {
            ProviderKind::OpenTelemetry { service, port }
            | ProviderKind::Zipkin { service, port, .. } => Some((service, *port)),
            ProviderKind::FileAccessLog { .. } => None,
        }
    }
}

/// `envoyFileAccessLog.logFormat`.
#[derive(Debug, Clone, PartialEq)]
pub enum LogFormat {
    /// Not set: JSON lines with Trellis' standard fields.
    Default,
    /// `text`: an Envoy format string (a newline is appended if missing).
    Text(String),
    /// `labels`: JSON lines with these keys and Envoy command operators.
    Labels(BTreeMap<String, String>),
}

/// A `Telemetry` resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// `selector.matchLabels`; `None` for namespace-wide (mesh-wide in
    /// the root namespace).
    pub selector: Option<Labels>,
    /// `accessLogging[0]`, if any.
    pub access_logging: Option<AccessLogging>,
    /// `tracing[0]`, if any.
    pub tracing: Option<TracingSpec>,
    /// The declaring resource.
    pub origin: Origin,
}

/// `accessLogging` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessLogging {
    /// `providers[].name`; empty inherits.
    pub providers: Vec<String>,
    /// `disabled`; `None` inherits.
    pub disabled: Option<bool>,
}

/// `tracing` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TracingSpec {
    /// `providers[].name`; empty inherits.
    pub providers: Vec<String>,
    /// `randomSamplingPercentage`; `None` inherits.
    pub random_sampling_percentage: Option<f64>,
    /// `disableSpanReporting`; `None` inherits.
    pub disable_span_reporting: Option<bool>,
    /// `customTags`; merged by tag name, the more specific wins.
    pub custom_tags: BTreeMap<String, CustomTag>,
}

/// `customTags` value.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomTag {
    /// `literal.value`.
    Literal(String),
    /// `header.name` with `header.defaultValue`.
    Header {
        /// Request header name.
        name: String,
        /// Value when the header is absent.
        default_value: Option<String>,
    },
}

/// What one workload gets, after precedence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EffectiveTelemetry {
    /// Access log providers (empty: no access log).
    pub access_logs: Vec<ExtensionProvider>,
    /// The tracing provider and settings, when spans are reported.
    pub tracing: Option<EffectiveTracing>,
}

/// Tracing after precedence.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveTracing {
    /// The (first) tracing provider.
    pub provider: ExtensionProvider,
    /// Percentage of requests sampled, 0..=100.
    pub sampling_percent: f64,
    /// Custom span tags.
    pub custom_tags: BTreeMap<String, CustomTag>,
}

/// Applies Istio's precedence for one workload: mesh defaults, then the
/// root namespace's `Telemetry` without selector, then the workload
/// namespace's, then a selector match in the workload's namespace; each
/// level overrides the fields it sets. Several selector matches: the
/// first by name (Istio takes the oldest).
pub fn effective_telemetry(
    mesh: &MeshTelemetry,
    telemetries: &[Telemetry],
    root_namespace: &str,
    namespace: &str,
    labels: &Labels,
) -> EffectiveTelemetry {
    let mut sorted: Vec<&Telemetry> = telemetries.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.origin.namespace, &a.origin.name).cmp(&(&b.origin.namespace, &b.origin.name))
    });
    let wide = |ns: &str| {
        sorted
            .iter()
            .find(|t| t.origin.namespace == ns && t.selector.is_none())
            .copied()
    };
    let workload = sorted.iter().copied().find(|t| {
        t.origin.namespace == namespace
            && t.selector
                .as_ref()
                .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    });
    let mut levels = vec![wide(root_namespace)];
    if namespace != root_namespace {
        levels.push(wide(namespace));
    }
    levels.push(workload);
    let levels: Vec<&Telemetry> = levels.into_iter().flatten().collect();
    EffectiveTelemetry {
        access_logs: access_logs(mesh, &levels),
        tracing: tracing(mesh, &levels),
    }
}

fn access_logs(mesh: &MeshTelemetry, levels: &[&Telemetry]) -> Vec<ExtensionProvider> {
    let mut providers = mesh.default_providers.access_logging.clone();
    let mut disabled = false;
    for a in levels.iter().filter_map(|t| t.access_logging.as_ref()) {
        if !a.providers.is_empty() {
            providers = a.providers.clone();
        } else if providers.is_empty() && a.disabled != Some(true) {
            // An entry that names no provider asks for logs: the mesh's
            // defaults, or the built-in log when the mesh names none.
            providers = vec![BUILTIN_ACCESS_LOG.to_string()];
        }
        disabled = a.disabled.unwrap_or(disabled);
    }
    if disabled {
        return Vec::new();
    }
    providers.iter().filter_map(|p| mesh.provider(p)).collect()
}

fn tracing(mesh: &MeshTelemetry, levels: &[&Telemetry]) -> Option<EffectiveTracing> {
    let mut spec = TracingSpec {
        providers: mesh.default_providers.tracing.clone(),
        ..Default::default()
    };
    for t in levels.iter().filter_map(|t| t.tracing.as_ref()) {
        if !t.providers.is_empty() {
            spec.providers = t.providers.clone();
        }
        spec.random_sampling_percentage = t
            .random_sampling_percentage
            .or(spec.random_sampling_percentage);
        spec.disable_span_reporting = t.disable_span_reporting.or(spec.disable_span_reporting);
        spec.custom_tags.extend(t.custom_tags.clone());
    }
    if spec.disable_span_reporting == Some(true) {
        return None;
    }
    // Istio reports to the first provider only.
    let provider = spec.providers.first().and_then(|p| mesh.provider(p))?;
    provider.kind.is_tracing().then(|| EffectiveTracing {
        provider,
        sampling_percent: spec
            .random_sampling_percentage
            .unwrap_or(DEFAULT_SAMPLING_PERCENT),
        custom_tags: spec.custom_tags,
    })
}
