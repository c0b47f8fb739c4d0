//! SARIF 2.1.0 (OASIS, "Static Analysis Results Interchange Format"):
//! one run whose driver lists every check as a rule (§3.19.23), one result
//! per finding with its physical location (§3.28, region §3.30).

use serde_json::{json, Value};

use super::{Check, Finding, Severity};

/// SARIF's `level` for a severity (§3.27.10): info is a `note`.
fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn rule(c: Check) -> Value {
    json!({
        "id": c.id(),
        "name": c.id(),
        "shortDescription": {"text": c.summary()},
        "help": {"text": format!("docs/lint.md, section {}", c.id())},
    })
}

fn result(f: &Finding) -> Value {
    let index = Check::ALL.iter().position(|c| *c == f.check).unwrap_or(0);
    let uri = f.file.to_string_lossy().replace('\\', "/");
    json!({
        "ruleId": f.check.id(),
        "ruleIndex": index,
        "level": level(f.severity),
        "message": {"text": format!("{}: {} Why: {} Fix: {}", f.resource, f.message, f.why, f.fix)},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": {"uri": uri},
                "region": {"startLine": f.line, "startColumn": f.col},
            },
        }],
    })
}

/// The SARIF log of `findings`.
pub fn sarif(findings: &[&Finding]) -> String {
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "trellis lint",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": Check::ALL.iter().map(|c| rule(*c)).collect::<Vec<_>>(),
            }},
            "results": findings.iter().map(|f| result(f)).collect::<Vec<_>>(),
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default()
}
