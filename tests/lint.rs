//! `trellis lint` golden tests: for every check, `tests/lint/CHECK/bad`
//! must give exactly the findings of `tests/lint/CHECK/expected.txt` for
//! that check, and `tests/lint/CHECK/good` none of that check. Then the
//! binary's exit codes and output formats. `UPDATE_GOLDEN=1 cargo test
//! --test lint` rewrites the expected files; review the diff like code.

use std::path::Path;
use std::process::{Command, Output};

use trellis::config::{load_dir, SourceIndex};
use trellis::lint::{lint, output, Check, Input, MemoryCost, Report};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Lints `tests/lint/CHECK/KIND`, named relative to the crate so that
/// file names in the output are stable.
fn report(check: Check, kind: &str) -> Report {
    std::env::set_current_dir(root()).unwrap();
    let dir = format!("tests/lint/{}/{kind}", check.id());
    let mesh = load_dir(Path::new(&dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
    let source = SourceIndex::read(&mesh.files).unwrap();
    lint(&Input {
        mesh: &mesh,
        source: &source,
        cost: MemoryCost::MEASURED,
        observed: None,
    })
}

fn of(report: &Report, check: Check) -> Vec<&trellis::lint::Finding> {
    (report.findings.iter())
        .filter(|f| f.check == check)
        .collect()
}

#[test]
fn every_check_matches_its_golden_and_passes_its_clean_config() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for check in Check::ALL {
        let bad = report(check, "bad");
        let got = output::text(&of(&bad, check));
        let path = root().join(format!("tests/lint/{}/expected.txt", check.id()));
        if update {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got.is_empty() || got != want {
            failures.push(format!("{}: bad config gave\n{got}", check.id()));
        }
        let good = report(check, "good");
        let extra = of(&good, check);
        if !extra.is_empty() {
            failures.push(format!("{}: clean config gave {extra:#?}", check.id()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn retry_amplification_names_the_path_and_multiplier() {
    let r = report(Check::RetryAmplification, "bad");
    let f = of(&r, Check::RetryAmplification);
    assert_eq!(f.len(), 1);
    assert!(
        f[0].message
            .starts_with("frontend→payment→ledger: up to 36 calls"),
        "{}",
        f[0].message
    );
}

#[test]
fn proxy_tax_counts_the_scope_and_estimates_the_saving() {
    let r = report(Check::ProxyTax, "bad");
    let client = (r.proxy_tax.sidecars.iter())
        .find(|s| s.service == "client.default.svc.cluster.local")
        .unwrap();
    // 32 services in the namespace, each one cluster, plus the passthrough cluster.
    assert_eq!((client.services_in_scope, client.clusters), (32, 33));
    let cost = MemoryCost::MEASURED;
    assert_eq!(client.memory_bytes, cost.estimate(33, 32));
    assert_eq!(client.scoped_memory_bytes, Some(cost.estimate(2, 1)));
    let sum: u64 = r.proxy_tax.sidecars.iter().map(|s| s.memory_bytes).sum();
    assert_eq!(r.proxy_tax.total_bytes, sum);
}

fn trellis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn exit_codes_follow_the_threshold() {
    // Only an info finding (premature mesh): clean at the default threshold.
    let clean = trellis(&["lint", "tests/lint/retry-amplification/good"]);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    let info = trellis(&[
        "lint",
        "tests/lint/retry-amplification/good",
        "--severity",
        "info",
    ]);
    assert_eq!(info.status.code(), Some(1));
    let bad = trellis(&["lint", "tests/lint/retry-amplification/bad"]);
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("routes.yaml:22:15: warning: retry-amplification:"),
        "{text}"
    );
    assert!(text.contains("  why: ") && text.contains("  fix: ") && text.contains("mesh total:"));
    let errors_only = trellis(&[
        "lint",
        "tests/lint/retry-amplification/bad",
        "--severity",
        "error",
    ]);
    assert_eq!(errors_only.status.code(), Some(0));
    let missing = trellis(&["lint", "tests/lint/no-such-dir"]);
    assert_eq!(missing.status.code(), Some(2));
    let usage = trellis(&["lint", "tests/lint/timeouts/bad", "--format", "xml"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn json_and_sarif_have_their_shapes() {
    let json = trellis(&["lint", "tests/lint/timeouts/bad", "--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 4);
    assert_eq!(v["findings"][0]["check"], "timeouts");
    assert!(v["proxy_tax"]["total_bytes"].as_u64().unwrap() > 0);

    let sarif = trellis(&["lint", "tests/lint/timeouts/bad", "--format", "sarif"]);
    let v: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), Check::ALL.len());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(region["startColumn"].as_u64().unwrap() >= 1);
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(uri.starts_with("tests/lint/timeouts/bad/"), "{uri}");
    }
}

#[test]
fn an_invalid_config_fails_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "kind: Nope\n").unwrap();
    let out = trellis(&["lint", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("a.yaml:"));
}
