//! `Telemetry` and the `Mesh` resource's `extensionProviders` and
//! `defaultProviders`. Provider names are checked against the `Mesh` in
//! `check::telemetry`, once every resource is known.

use std::collections::BTreeMap;

use super::{join, Cx};
use crate::config::model::{
    AccessLogging, CustomTag, DefaultProviders, ExtensionProvider, LogFormat, MeshTelemetry,
    ProviderKind, Telemetry, TracingSpec, BUILTIN_ACCESS_LOG, DEFAULT_ZIPKIN_PATH,
};
use crate::config::raw::peer_authentication::Mesh as RawMesh;
use crate::config::raw::telemetry as raw;

/// Converts a `Telemetry`; `None` when it is unusable.
pub(crate) fn telemetry(cx: &mut Cx<'_>, t: &raw::Telemetry) -> Option<Telemetry> {
    let before = cx.diags.len();
    cx.unsupported("spec", "metrics", &t.metrics);
    cx.unsupported("spec", "targetRef", &t.target_ref);
    cx.unsupported("spec", "targetRefs", &t.target_refs);
    let selector = t
        .selector
        .as_ref()
        .filter(|s| !s.match_labels.is_empty())
        .map(|s| s.match_labels.clone());
    if let Some(labels) = &selector {
        cx.labels("spec.selector.matchLabels", labels);
    }
    if t.access_logging.len() > 1 {
        let msg = "more than one accessLogging entry (one per match mode) is not supported yet";
        cx.err("spec.accessLogging[1]", msg);
    }
    if t.tracing.len() > 1 {
        let msg = "more than one tracing entry (one per match mode) is not supported yet";
        cx.err("spec.tracing[1]", msg);
    }
    let access_logging = t.access_logging.first().map(|a| access_logging(cx, a));
    let tracing = t.tracing.first().map(|tr| tracing(cx, tr));
    (cx.diags.len() == before).then(|| Telemetry {
        selector,
        access_logging,
        tracing,
        origin: cx.doc.origin(),
    })
}

fn provider_names(cx: &mut Cx<'_>, path: &str, refs: &[raw::ProviderRef]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        if r.name.is_empty() {
            cx.err(&format!("{path}[{i}].name"), "provider name is required");
        } else {
            out.push(r.name.clone());
        }
    }
    out
}

fn access_logging(cx: &mut Cx<'_>, a: &raw::AccessLogging) -> AccessLogging {
    let path = "spec.accessLogging[0]";
    cx.unsupported(path, "filter", &a.filter);
    cx.unsupported(path, "match", &a.r#match);
    AccessLogging {
        providers: provider_names(cx, &join(path, "providers"), &a.providers),
        disabled: a.disabled,
    }
}

fn tracing(cx: &mut Cx<'_>, t: &raw::Tracing) -> TracingSpec {
    let path = "spec.tracing[0]";
    cx.unsupported(path, "match", &t.r#match);
    cx.unsupported(
        path,
        "useRequestIdForTraceSampling",
        &t.use_request_id_for_trace_sampling,
    );
    cx.unsupported(path, "enableIstioTags", &t.enable_istio_tags);
    let sampling = t
        .random_sampling_percentage
        .and_then(|p| cx.percent(&join(path, "randomSamplingPercentage"), p));
    let mut custom_tags = BTreeMap::new();
    for (name, tag) in &t.custom_tags {
        let p = join(&join(path, "customTags"), name);
        if let Some(tag) = custom_tag(cx, &p, tag) {
            custom_tags.insert(name.clone(), tag);
        }
    }
    TracingSpec {
        providers: provider_names(cx, &join(path, "providers"), &t.providers),
        random_sampling_percentage: sampling,
        disable_span_reporting: t.disable_span_reporting,
        custom_tags,
    }
}

fn custom_tag(cx: &mut Cx<'_>, path: &str, t: &raw::CustomTag) -> Option<CustomTag> {
    cx.unsupported(path, "environment", &t.environment);
    match (&t.literal, &t.header) {
        (Some(l), None) => Some(CustomTag::Literal(l.value.clone())),
        (None, Some(h)) if !h.name.is_empty() => Some(CustomTag::Header {
            name: h.name.clone(),
            default_value: h.default_value.clone(),
        }),
        (None, Some(_)) => {
            cx.err(&join(path, "header.name"), "header name is required");
            None
        }
        _ if t.environment.is_some() => None,
        _ => {
            cx.err(path, "a custom tag needs exactly one of literal or header");
            None
        }
    }
}

/// Converts `Mesh.spec.extensionProviders` and `defaultProviders`.
pub(crate) fn mesh_telemetry(cx: &mut Cx<'_>, m: &RawMesh) -> MeshTelemetry {
    let mut out = MeshTelemetry::default();
    for (i, p) in m.extension_providers.iter().enumerate() {
        let path = format!("spec.extensionProviders[{i}]");
        let Some(provider) = extension_provider(cx, &path, p) else {
            continue;
        };
        let taken = provider.name == BUILTIN_ACCESS_LOG
            || out
                .extension_providers
                .iter()
                .any(|q| q.name == provider.name);
        if taken {
            let msg = format!("provider name {:?} is already taken", provider.name);
            cx.err(&join(&path, "name"), msg);
            continue;
        }
        out.extension_providers.push(provider);
    }
    if let Some(d) = &m.default_providers {
        cx.unsupported("spec.defaultProviders", "metrics", &d.metrics);
        let defaults = DefaultProviders::default();
        out.default_providers = DefaultProviders {
            access_logging: d.access_logging.clone().unwrap_or(defaults.access_logging),
            tracing: d.tracing.clone().unwrap_or(defaults.tracing),
        };
        default_names(cx, &out);
    }
    out
}

/// Every `defaultProviders` name is defined and of the right kind.
fn default_names(cx: &mut Cx<'_>, out: &MeshTelemetry) {
    let d = &out.default_providers;
    let logs = d.access_logging.iter().map(|n| (n, false, "accessLogging"));
    let traces = d.tracing.iter().map(|n| (n, true, "tracing"));
    for (i, (name, tracing, field)) in logs.chain(traces).enumerate() {
        let i = if tracing {
            i - d.access_logging.len()
        } else {
            i
        };
        let path = format!("spec.defaultProviders.{field}[{i}]");
        match out.provider(name) {
            None => cx.err(
                &path,
                format!("unknown provider {name:?}: not in extensionProviders"),
            ),
            Some(p) if p.kind.is_tracing() != tracing => {
                let what = if tracing {
                    "a tracing"
                } else {
                    "an access log"
                };
                cx.err(&path, format!("provider {name:?} is not {what} provider"));
            }
            Some(_) => {}
        }
    }
}

/// Istio's provider kinds Trellis does not support yet; true when `p`
/// is one of them (reported).
fn unsupported_kind(cx: &mut Cx<'_>, path: &str, p: &raw::ExtensionProvider) -> bool {
    let unsupported = [
        ("envoyExtAuthzHttp", &p.envoy_ext_authz_http),
        ("envoyExtAuthzGrpc", &p.envoy_ext_authz_grpc),
        ("datadog", &p.datadog),
        ("lightstep", &p.lightstep),
        ("skywalking", &p.skywalking),
        ("stackdriver", &p.stackdriver),
        ("prometheus", &p.prometheus),
        ("envoyHttpAls", &p.envoy_http_als),
        ("envoyTcpAls", &p.envoy_tcp_als),
        ("envoyOtelAls", &p.envoy_otel_als),
        ("sds", &p.sds),
    ];
    for (field, value) in unsupported {
        cx.unsupported(path, field, value);
    }
    unsupported.iter().any(|(_, v)| v.is_some())
}

fn extension_provider(
    cx: &mut Cx<'_>,
    path: &str,
    p: &raw::ExtensionProvider,
) -> Option<ExtensionProvider> {
    let other_kind = unsupported_kind(cx, path, p);
    if p.name.is_empty() {
        cx.err(&join(path, "name"), "provider name is required");
    }
    let kinds = [
        p.opentelemetry
            .as_ref()
            .map(|o| otel(cx, &join(path, "opentelemetry"), o)),
        p.zipkin
            .as_ref()
            .map(|z| zipkin(cx, &join(path, "zipkin"), z)),
        p.envoy_file_access_log
            .as_ref()
            .map(|f| file_log(cx, &join(path, "envoyFileAccessLog"), f)),
    ];
    let set: Vec<Option<ProviderKind>> = kinds.into_iter().flatten().collect();
    if set.len() != 1 {
        if !other_kind {
            let msg = "a provider needs exactly one of opentelemetry, zipkin or envoyFileAccessLog";
            cx.err(path, msg);
        }
        return None;
    }
    let kind = set.into_iter().next().flatten()?;
    (!p.name.is_empty()).then(|| ExtensionProvider {
        name: p.name.clone(),
        kind,
    })
}

fn collector(
    cx: &mut Cx<'_>,
    path: &str,
    service: &str,
    port: Option<i64>,
) -> Option<(String, u16)> {
    if service.is_empty() {
        cx.err(
            &join(path, "service"),
            "service (the collector's host) is required",
        );
    }
    let port = match port {
        Some(n) => cx.port(&join(path, "port"), n),
        None => {
            cx.err(&join(path, "port"), "port is required");
            None
        }
    };
    let service = service.trim_end_matches('.').to_ascii_lowercase();
    (!service.is_empty()).then_some(service).zip(port)
}

fn otel(cx: &mut Cx<'_>, path: &str, o: &raw::OpenTelemetry) -> Option<ProviderKind> {
    for (field, value) in [
        ("maxTagLength", &o.max_tag_length),
        ("http", &o.http),
        ("grpc", &o.grpc),
        ("resourceDetectors", &o.resource_detectors),
        ("dynatraceSampler", &o.dynatrace_sampler),
    ] {
        cx.unsupported(path, field, value);
    }
    let (service, port) = collector(cx, path, &o.service, o.port)?;
    Some(ProviderKind::OpenTelemetry { service, port })
}

fn zipkin(cx: &mut Cx<'_>, path: &str, z: &raw::Zipkin) -> Option<ProviderKind> {
    for (field, value) in [
        ("maxTagLength", &z.max_tag_length),
        ("enable64bitTraceId", &z.enable64bit_trace_id),
        ("traceContextOption", &z.trace_context_option),
        ("timeout", &z.timeout),
        ("headers", &z.headers),
    ] {
        cx.unsupported(path, field, value);
    }
    let span_path = z
        .path
        .clone()
        .unwrap_or_else(|| DEFAULT_ZIPKIN_PATH.to_string());
    if !span_path.starts_with('/') {
        cx.err(
            &join(path, "path"),
            format!("path {span_path:?} must start with '/'"),
        );
        return None;
    }
    let (service, port) = collector(cx, path, &z.service, z.port)?;
    Some(ProviderKind::Zipkin {
        service,
        port,
        path: span_path,
    })
}

fn file_log(cx: &mut Cx<'_>, path: &str, f: &raw::FileAccessLog) -> Option<ProviderKind> {
    if f.path.is_empty() {
        cx.err(
            &join(path, "path"),
            "path is required (/dev/stdout for the container log)",
        );
        return None;
    }
    let format = match &f.log_format {
        None => LogFormat::Default,
        Some(raw::LogFormat {
            text: Some(t),
            labels: None,
        }) => LogFormat::Text(t.clone()),
        Some(raw::LogFormat {
            text: None,
            labels: Some(l),
        }) => LogFormat::Labels(l.clone()),
        Some(_) => {
            cx.err(
                &join(path, "logFormat"),
                "logFormat needs exactly one of text or labels",
            );
            return None;
        }
    };
    Some(ProviderKind::FileAccessLog {
        path: f.path.clone(),
        format,
    })
}
