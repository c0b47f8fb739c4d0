//! `trellis lint` output: text for people, JSON for scripts, SARIF for
//! code-scanning UIs ([`super::sarif`]).

use std::fmt::Write;

use serde_json::json;

use super::proxy_tax::{mib, ProxyTax};
use super::{Finding, Report, Severity};

/// One finding per paragraph: `FILE:LINE:COL: SEVERITY: CHECK: KIND/NAME: what`,
/// then `why:` and `fix:` lines.
pub fn text(findings: &[&Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let _ = writeln!(
            out,
            "{}:{}:{}: {}: {}: {}: {}\n  why: {}\n  fix: {}",
            f.file.display(),
            f.line,
            f.col,
            f.severity.as_str(),
            f.check.id(),
            f.resource,
            f.message,
            f.why,
            f.fix
        );
    }
    out
}

/// The proxy-tax table: one line per sidecar, then the mesh total.
pub fn tax_table(tax: &ProxyTax) -> String {
    let mut out = String::from(
        "proxy tax (estimated Envoy heap per sidecar):\n  service                                  inst  scope  clusters  routes  endpoints     memory\n",
    );
    for s in &tax.sidecars {
        let _ = writeln!(
            out,
            "  {:<40} {:>4} {:>6} {:>9} {:>7} {:>10} {:>10}",
            s.service
                .strip_suffix(".svc.cluster.local")
                .unwrap_or(&s.service),
            s.instances,
            s.services_in_scope,
            s.clusters,
            s.routes,
            s.endpoints,
            mib(s.memory_bytes)
        );
    }
    let c = &tax.cost;
    let _ = writeln!(
        out,
        "  mesh total: {} (Σ memory × instances; model: {:.1} MiB + {:.1} KiB per cluster + {:.1} KiB per further endpoint, measured on Envoy 1.40)",
        mib(tax.total_bytes),
        c.base_bytes as f64 / 1048576.0,
        c.per_cluster_bytes as f64 / 1024.0,
        c.per_endpoint_bytes as f64 / 1024.0,
    );
    out
}

/// `{"findings": [...], "proxy_tax": {...}}` with the findings at or above `threshold`.
pub fn json(report: &Report, threshold: Severity) -> String {
    let value = json!({
        "findings": report.at_least(threshold),
        "proxy_tax": report.proxy_tax,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}
