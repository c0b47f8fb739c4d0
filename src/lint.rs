//! `trellis lint`: findings on a loaded mesh config that `validate` cannot
//! call errors because the config is valid, yet does something harmful:
//! retry storms, timeouts that cancel each other, unsafe retries, outlier
//! detection that never ejects, the sidecars' memory, business rules in
//! routes, and a mesh too small to pay for itself.
//!
//! Pure: a [`MeshConfig`] and its [`SourceIndex`] in, [`Report`] out. One
//! file per check; `graph` is the call graph several checks walk.

mod app_logic;
mod graph;
mod idempotency;
mod outlier;
pub mod output;
mod premature;
pub mod proxy_tax;
mod retry_amplification;
mod routes;
pub mod sarif;
mod timeouts;

use std::path::PathBuf;

use serde::Serialize;

use crate::config::model::Origin;
use crate::config::{MeshConfig, SourceIndex};

pub use graph::CallGraph;
pub use proxy_tax::{MemoryCost, ProxyTax, SidecarTax};

/// How much a finding matters; `--severity` keeps those at or above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never harmful on its own.
    Info,
    /// Probably harmful under failure or load.
    Warning,
    /// Harmful: fix before it bites.
    Error,
}

impl Severity {
    /// The lowercase name (`error`, `warning`, `info`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The checks, by the id findings and SARIF rules carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Worst-case upstream calls per user request along a call path.
    RetryAmplification,
    /// Services whose calls are unknown, so no path through them is checked.
    CallGraph,
    /// Retries that can never happen, inverted and missing timeouts.
    Timeouts,
    /// Retries on 5xx for routes that carry non-idempotent methods.
    NonIdempotentRetry,
    /// Outlier detection that can never eject a host.
    OutlierNeverEjects,
    /// Sidecars that reach many services but call few.
    ProxyTax,
    /// Route matches that look like business rules.
    MeshAsAppLogic,
    /// A mesh of fewer than five services.
    PrematureMesh,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 8] = [
        Check::RetryAmplification,
        Check::CallGraph,
        Check::Timeouts,
        Check::NonIdempotentRetry,
        Check::OutlierNeverEjects,
        Check::ProxyTax,
        Check::MeshAsAppLogic,
        Check::PrematureMesh,
    ];

    /// The id (`retry-amplification`).
    pub fn id(self) -> &'static str {
        match self {
            Check::RetryAmplification => "retry-amplification",
            Check::CallGraph => "call-graph",
            Check::Timeouts => "timeouts",
            Check::NonIdempotentRetry => "non-idempotent-retry",
            Check::OutlierNeverEjects => "outlier-never-ejects",
            Check::ProxyTax => "proxy-tax",
            Check::MeshAsAppLogic => "mesh-as-app-logic",
            Check::PrematureMesh => "premature-mesh",
        }
    }

    /// One line on what the check looks for (SARIF `shortDescription`).
    pub fn summary(self) -> &'static str {
        match self {
            Check::RetryAmplification => "retries multiply along call paths",
            Check::CallGraph => "services whose calls are not declared",
            Check::Timeouts => "retry budgets and timeouts that contradict each other",
            Check::NonIdempotentRetry => "5xx retries on routes with non-idempotent methods",
            Check::OutlierNeverEjects => "outlier detection that can never eject a host",
            Check::ProxyTax => "sidecars holding config for services they never call",
            Check::MeshAsAppLogic => "routes that encode business rules",
            Check::PrematureMesh => "too few services for a mesh to pay for itself",
        }
    }
}

/// One finding, located at the field it blames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// How much it matters.
    pub severity: Severity,
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// `KIND/NAME` of the resource blamed (`-` for none).
    pub resource: String,
    /// What is wrong.
    pub message: String,
    /// Why it matters.
    pub why: String,
    /// What to do.
    pub fix: String,
}

/// What the checks read: the config, where its fields are, the call graph
/// and the measured sidecar memory cost.
pub struct Input<'a> {
    /// The loaded config.
    pub mesh: &'a MeshConfig,
    /// Its field positions.
    pub source: &'a SourceIndex,
    /// The memory a sidecar costs (see [`MemoryCost::MEASURED`]).
    pub cost: MemoryCost,
    /// The service graph a running control plane observed (`trellis lint
    /// --admin-addr`): its edges are calls too, beside the declared ones.
    pub observed: Option<&'a crate::graph::Graph>,
}

impl Input<'_> {
    /// A finding blaming the field at `path` of the resource `origin`.
    fn finding(&self, check: Check, severity: Severity, origin: &Origin, path: &str) -> Finding {
        let (line, col) = self.source.locate(origin, path);
        Finding {
            check,
            severity,
            file: origin.file.clone(),
            line,
            col,
            resource: format!("{}/{}", origin.kind, origin.name),
            message: String::new(),
            why: String::new(),
            fix: String::new(),
        }
    }
}

impl Finding {
    /// Sets what, why and fix.
    fn says(mut self, message: String, why: &str, fix: String) -> Finding {
        self.message = message;
        self.why = why.to_string();
        self.fix = fix;
        self
    }
}

/// Everything `lint` found, and the proxy-tax figures.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Findings sorted by file, line, column.
    pub findings: Vec<Finding>,
    /// Per-sidecar and mesh-wide memory estimates.
    pub proxy_tax: ProxyTax,
}

impl Report {
    /// The findings at or above `threshold`.
    pub fn at_least(&self, threshold: Severity) -> Vec<&Finding> {
        (self.findings.iter())
            .filter(|f| f.severity >= threshold)
            .collect()
    }
}

/// Runs every check.
pub fn lint(input: &Input<'_>) -> Report {
    // Static instances only: sidecars that register at run time are unknown here.
    let instances = crate::registry::instances(input.mesh, &crate::registry::Registry::new());
    // Wildcard rules checked where they apply, as a rebuild applies them.
    let mesh = input.mesh.with_wildcard_rules(instances.services.keys());
    let input = &Input {
        mesh: &mesh,
        ..*input
    };
    let workloads = graph::workloads(input.mesh, &instances);
    let mut graph = CallGraph::declared(input.mesh, &workloads);
    if let Some(observed) = input.observed {
        graph.observe(observed, &workloads);
    }
    let mut findings = Vec::new();
    findings.extend(retry_amplification::check(input, &graph));
    findings.extend(graph::unplaced(input, &graph, &workloads));
    findings.extend(timeouts::check(input, &graph));
    findings.extend(idempotency::check(input));
    findings.extend(outlier::check(input, &instances));
    let proxy_tax = proxy_tax::measure(input, &graph, &instances, &workloads);
    findings.extend(proxy_tax::check(input, &proxy_tax, &graph));
    findings.extend(app_logic::check(input));
    findings.extend(premature::check(input, &workloads));
    findings.sort_by(|a, b| {
        let key = |f: &Finding| (f.file.clone(), f.line, f.col, f.check, f.message.clone());
        key(a).cmp(&key(b))
    });
    findings.dedup();
    Report {
        findings,
        proxy_tax,
    }
}

/// A duration as users write it (`1.5s`, `250ms`).
fn show_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    match ms % 1000 {
        0 => format!("{}s", ms / 1000),
        _ if ms > 1000 => format!("{}s", d.as_secs_f64()),
        _ => format!("{ms}ms"),
    }
}

/// The short name of a host (`payment` for `payment.default.svc.cluster.local`).
fn short(host: &crate::config::model::Host) -> &str {
    match host.cluster_local_parts() {
        Some((name, _)) => name,
        None => host.as_str(),
    }
}

#[cfg(test)]
mod tests;
