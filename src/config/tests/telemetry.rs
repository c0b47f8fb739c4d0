//! `Telemetry` and the `Mesh` resource's providers, loaded and rejected.

use super::{errors, load};
use crate::config::model::{
    effective_telemetry, CustomTag, Labels, LogFormat, ProviderKind, BUILTIN_ACCESS_LOG,
};

const MESH: &str = "apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata:
  name: mesh
spec:
  extensionProviders:
  - name: otel
    opentelemetry:
      service: otel-collector.observability.svc.cluster.local
      port: 4317
  - name: zipkin
    zipkin:
      service: 127.0.0.1
      port: 9411
  - name: json-file
    envoyFileAccessLog:
      path: /var/log/envoy.log
      logFormat:
        labels:
          code: \"%RESPONSE_CODE%\"
  defaultProviders:
    tracing: [zipkin]
";

fn telemetry(name: &str, ns: &str, spec: &str) -> String {
    format!("apiVersion: telemetry.istio.io/v1alpha1\nkind: Telemetry\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_neither_log_nor_trace() {
    let m = load(&[(
        "m.yaml",
        "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: m\nspec: {}\n",
    )])
    .unwrap();
    let eff = effective_telemetry(
        &m.mesh.telemetry,
        &[],
        "istio-system",
        "default",
        &Labels::new(),
    );
    assert!(eff.access_logs.is_empty(), "access logs are off by default");
    assert!(eff.tracing.is_none());
}

#[test]
fn an_access_logging_entry_without_providers_turns_on_the_builtin_json_log() {
    let t = telemetry("mesh-default", "istio-system", "  accessLogging:\n  - {}\n")
        .replace("/v1alpha1", "/v1");
    let m = load(&[("t.yaml", &t)]).unwrap();
    let eff = effective_telemetry(
        &m.mesh.telemetry,
        &m.telemetries,
        "istio-system",
        "default",
        &Labels::new(),
    );
    assert_eq!(eff.access_logs.len(), 1);
    assert_eq!(eff.access_logs[0].name, BUILTIN_ACCESS_LOG);
    assert_eq!(
        eff.access_logs[0].kind,
        ProviderKind::FileAccessLog {
            path: "/dev/stdout".into(),
            format: LogFormat::Default
        }
    );
}

#[test]
fn providers_and_precedence_workload_over_namespace_over_root() {
    let root = telemetry("mesh-default", "istio-system", "  tracing:\n  - randomSamplingPercentage: 100\n    customTags:\n      env:\n        literal:\n          value: prod\n");
    let ns = telemetry("ns", "shop", "  tracing:\n  - providers:\n    - name: otel\n  accessLogging:\n  - providers:\n    - name: json-file\n");
    let wl = telemetry("pay", "shop", "  selector:\n    matchLabels:\n      app: pay\n  tracing:\n  - randomSamplingPercentage: 0\n    customTags:\n      user:\n        header:\n          name: x-user\n  accessLogging:\n  - disabled: true\n");
    let files = [
        ("mesh.yaml", MESH.to_string()),
        ("r.yaml", root),
        ("n.yaml", ns),
        ("w.yaml", wl),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let m = load(&files).unwrap();
    assert_eq!(m.telemetries.len(), 3);
    let eff = |ns: &str, l: &Labels| {
        effective_telemetry(&m.mesh.telemetry, &m.telemetries, "istio-system", ns, l)
    };
    let other = eff("default", &Labels::new());
    let t = other.tracing.unwrap();
    assert_eq!(t.provider.name, "zipkin", "mesh default provider");
    assert_eq!(t.sampling_percent, 100.0, "root namespace Telemetry");
    assert!(other.access_logs.is_empty(), "off: no level turns logs on");
    let shop = eff("shop", &labels(&[("app", "web")]));
    assert_eq!(shop.tracing.as_ref().unwrap().provider.name, "otel");
    assert_eq!(shop.access_logs[0].name, "json-file");
    let pay = eff("shop", &labels(&[("app", "pay")]));
    let t = pay.tracing.unwrap();
    assert_eq!(
        (t.provider.name.as_str(), t.sampling_percent),
        ("otel", 0.0)
    );
    assert_eq!(t.custom_tags["env"], CustomTag::Literal("prod".into()));
    assert!(matches!(t.custom_tags["user"], CustomTag::Header { .. }));
    assert!(pay.access_logs.is_empty(), "disabled at workload level");
}

#[test]
fn unknown_and_wrong_kind_providers_are_errors() {
    let t = telemetry("t", "default", "  tracing:\n  - providers:\n    - name: jaeger\n  accessLogging:\n  - providers:\n    - name: otel\n");
    let e = load(&[("mesh.yaml", MESH), ("t.yaml", &t)]).unwrap_err();
    assert_eq!(e, vec![
        "t.yaml:9:7: error: Telemetry/t: spec.tracing[0].providers[0].name: unknown provider \"jaeger\": define it in the Mesh resource's extensionProviders (defined: otel, zipkin, json-file)",
        "t.yaml:12:7: error: Telemetry/t: spec.accessLogging[0].providers[0].name: provider \"otel\" is a tracing provider, not an access log provider",
    ]);
}

#[test]
fn unsupported_telemetry_fields_are_named() {
    let spec = "  metrics:\n  - providers:\n    - name: prometheus\n  tracing:\n  - match:\n      mode: CLIENT\n    useRequestIdForTraceSampling: true\n    customTags:\n      e:\n        environment:\n          name: HOME\n  accessLogging:\n  - filter:\n      expression: response.code >= 400\n";
    let e = errors(&telemetry("t", "default", spec));
    assert_eq!(e, vec![
        "f.yaml:7:3: error: Telemetry/t: spec.metrics: field `metrics` is not supported yet",
        "f.yaml:11:5: error: Telemetry/t: spec.tracing[0].match: field `match` is not supported yet",
        "f.yaml:13:5: error: Telemetry/t: spec.tracing[0].useRequestIdForTraceSampling: field `useRequestIdForTraceSampling` is not supported yet",
        "f.yaml:16:9: error: Telemetry/t: spec.tracing[0].customTags.e.environment: field `environment` is not supported yet",
        "f.yaml:19:5: error: Telemetry/t: spec.accessLogging[0].filter: field `filter` is not supported yet",
    ]);
}

#[test]
fn bad_values_are_errors() {
    let spec = "  tracing:\n  - randomSamplingPercentage: 150\n  accessLogging:\n  - providers:\n    - {}\n  bogus: 1\n";
    let e = errors(&telemetry("t", "default", spec));
    assert_eq!(e, vec!["f.yaml:12:3: error: Telemetry/t: spec.bogus: unknown field `bogus`, expected one of `selector`, `tracing`, `accessLogging`, `metrics`, `targetRef`, `targetRefs`"]);
    let spec = "  tracing:\n  - randomSamplingPercentage: 150\n  accessLogging:\n  - providers:\n    - {}\n";
    let e = errors(&telemetry("t", "default", spec));
    assert_eq!(e, vec![
        "f.yaml:8:5: error: Telemetry/t: spec.tracing[0].randomSamplingPercentage: percentage 150 is not in 0..100",
        "f.yaml:11:7: error: Telemetry/t: spec.accessLogging[0].providers[0].name: provider name is required",
    ]);
}

#[test]
fn mesh_provider_errors() {
    let spec = "  extensionProviders:\n  - name: a\n    zipkin:\n      service: zipkin\n  - name: b\n    datadog:\n      service: dd\n  - name: c\n    opentelemetry:\n      service: otel\n      port: 4317\n    zipkin:\n      service: z\n      port: 9411\n  - name: envoy\n    envoyFileAccessLog:\n      path: /tmp/x\n  - name: f\n    envoyFileAccessLog:\n      path: /tmp/f\n      logFormat:\n        text: x\n        labels: {}\n  defaultProviders:\n    tracing: [nope]\n    accessLogging: [a]\n";
    let text = format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: m\nspec:\n{spec}"
    );
    let e = errors(&text);
    assert_eq!(e, vec![
        "f.yaml:8:5: error: Mesh/m: spec.extensionProviders[0].zipkin.port: port is required",
        "f.yaml:11:5: error: Mesh/m: spec.extensionProviders[1].datadog: field `datadog` is not supported yet",
        "f.yaml:13:5: error: Mesh/m: spec.extensionProviders[2]: a provider needs exactly one of opentelemetry, zipkin or envoyFileAccessLog",
        "f.yaml:20:5: error: Mesh/m: spec.extensionProviders[3].name: provider name \"envoy\" is already taken",
        "f.yaml:26:7: error: Mesh/m: spec.extensionProviders[4].envoyFileAccessLog.logFormat: logFormat needs exactly one of text or labels",
        "f.yaml:30:15: error: Mesh/m: spec.defaultProviders.tracing[0]: unknown provider \"nope\": not in extensionProviders",
        "f.yaml:31:21: error: Mesh/m: spec.defaultProviders.accessLogging[0]: unknown provider \"a\": not in extensionProviders",
    ]);
}

#[test]
fn tracing_that_reaches_no_provider_is_a_warning() {
    let sampled = "  tracing:\n  - randomSamplingPercentage: 10\n";
    let warnings = |files: &[(&str, &str)]| -> Vec<String> {
        let cfg = load(files).unwrap();
        cfg.warnings.iter().map(|w| w.warning()).collect()
    };
    let alone = telemetry("mesh-default", "istio-system", sampled);
    let w = warnings(&[("t.yaml", &alone)]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("Telemetry/mesh-default: spec.tracing[0]: tracing names no provider"),
        "{w:?}"
    );
    // A provider from the Mesh's defaults, or from a namespace-wide
    // Telemetry above it: the sampling applies to it, no warning.
    assert_eq!(
        warnings(&[("m.yaml", MESH), ("t.yaml", &alone)]),
        Vec::<String>::new()
    );
    let mut mesh = MESH.replace("  defaultProviders:\n    tracing: [zipkin]\n", "");
    mesh.push_str("---\n");
    mesh.push_str(&telemetry(
        "root",
        "istio-system",
        "  tracing:\n  - providers: [{name: zipkin}]\n",
    ));
    let team = telemetry("team", "shop", sampled);
    assert_eq!(
        warnings(&[("m.yaml", &mesh), ("t.yaml", &team)]),
        Vec::<String>::new()
    );
    // Spans switched off: nothing to warn about.
    let off = telemetry(
        "off",
        "shop",
        "  tracing:\n  - disableSpanReporting: true\n",
    );
    assert_eq!(warnings(&[("t.yaml", &off)]), Vec::<String>::new());
}
