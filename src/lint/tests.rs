use super::*;

/// Loads a config written as `(file, text)` pairs into a temp dir and lints it.
fn lint_files(files: &[(&str, &str)]) -> Report {
    lint_observed(files, None)
}

/// [`lint_files`] with an observed service graph.
fn lint_observed(files: &[(&str, &str)], observed: Option<&crate::graph::Graph>) -> Report {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mesh = crate::config::load_dir(dir.path()).unwrap();
    let source = SourceIndex::read(&mesh.files).unwrap();
    lint(&Input {
        mesh: &mesh,
        source: &source,
        cost: MemoryCost::MEASURED,
        observed,
    })
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\nspec:\n  hosts: [{name}]\n  ports:\n  - {{number: 80, name: http, protocol: HTTP}}\n  resolution: STATIC\n  endpoints:\n  - address: 10.0.0.1\n    labels: {{app: {name}}}\n---\n"
    )
}

fn sidecar(name: &str, hosts: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: {name}\nspec:\n  workloadSelector:\n    labels: {{app: {name}}}\n  egress:\n  - hosts: [{hosts}]\n---\n"
    )
}

#[test]
fn default_retries_multiply_along_a_declared_chain() {
    let mut text = String::new();
    for s in ["a", "b", "c", "d"] {
        text.push_str(&service(s));
    }
    text.push_str(&sidecar("a", "\"./b\""));
    text.push_str(&sidecar("b", "\"./c\""));
    text.push_str(&sidecar("c", "\"./d\""));
    text.push_str(&sidecar("d", "\"~/*\""));
    let report = lint_files(&[("mesh.yaml", &text)]);
    let amp: Vec<_> = (report.findings.iter())
        .filter(|f| f.check == Check::RetryAmplification)
        .collect();
    assert_eq!(amp.len(), 1, "{amp:#?}");
    // Istio's default: 2 retries, 3 attempts per hop.
    assert!(
        amp[0].message.starts_with("a→b→c→d: up to 27 calls"),
        "{}",
        amp[0].message
    );
    assert!(!report.findings.iter().any(|f| f.check == Check::CallGraph));
}

#[test]
fn severity_orders_and_threshold_filters() {
    assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Info);
    let report = lint_files(&[("a.yaml", &service("a"))]);
    assert!(report.at_least(Severity::Warning).is_empty());
    assert!(!report.at_least(Severity::Info).is_empty());
}

#[test]
fn memory_estimate_follows_the_measured_model() {
    let c = MemoryCost::MEASURED;
    assert_eq!(c.estimate(0, 0), c.base_bytes);
    assert_eq!(c.estimate(10, 10), c.base_bytes + 10 * c.per_cluster_bytes);
    assert_eq!(
        c.estimate(1, 3),
        c.base_bytes + c.per_cluster_bytes + 2 * c.per_endpoint_bytes
    );
}

#[test]
fn an_observed_graph_places_services_without_sidecars() {
    let mut text = String::new();
    for s in ["a", "b", "c", "d"] {
        text.push_str(&service(s));
    }
    let declared = lint_files(&[("mesh.yaml", &text)]);
    assert!(declared
        .findings
        .iter()
        .any(|f| f.check == Check::CallGraph));
    let edge = |from: &str, to: &str| crate::graph::Edge {
        source: format!("{from}.default.svc.cluster.local"),
        destination: format!("{to}.default.svc.cluster.local"),
        rps: 1.0,
        success_rate: Some(1.0),
        p50_ms: None,
        p99_ms: None,
        requests: 10,
        errors: 0,
    };
    let observed = crate::graph::Graph {
        edges: vec![edge("a", "b"), edge("b", "c"), edge("c", "d")],
        ..Default::default()
    };
    let report = lint_observed(&[("mesh.yaml", &text)], Some(&observed));
    let amp: Vec<_> = (report.findings.iter())
        .filter(|f| f.check == Check::RetryAmplification)
        .collect();
    assert_eq!(amp.len(), 1, "{:#?}", report.findings);
    assert!(amp[0].message.starts_with("a→b→c→d: up to 27 calls"));
    // Only d, which was seen calling nothing, stays unplaced.
    let unplaced: Vec<_> = (report.findings.iter())
        .filter(|f| f.check == Check::CallGraph)
        .collect();
    assert_eq!(unplaced.len(), 1);
    assert!(
        unplaced[0].message.contains("1 service(s)"),
        "{}",
        unplaced[0].message
    );
}
