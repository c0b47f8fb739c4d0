//! The control plane's alert rules, `deploy/prometheus/alerts.yml`, checked
//! by Prometheus' own `promtool` (Debian's `prometheus` package): the rules
//! parse, and the unit tests in `alerts_test.yml` give each alert series
//! that make it fire (and healthy series that must not). Needs `promtool`,
//! so it runs in `make test-system`; without it the test fails, never
//! skips. That every `trellis_*` name the rules use is exported is checked
//! against a live scrape in `dashboard.rs`.

use std::path::PathBuf;
use std::process::Command;

use trellis_integration_tests::repo_root;

fn promtool(args: &[&str]) -> String {
    let dir: PathBuf = repo_root().join("deploy/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("promtool not runnable ({e}): apt-get install prometheus"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Alert names in `alerts.yml`.
fn alerts() -> Vec<String> {
    let path = repo_root().join("deploy/prometheus/alerts.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    let groups = doc["groups"].as_sequence().unwrap();
    let rules = groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap());
    rules
        .map(|r| r["alert"].as_str().unwrap().to_string())
        .collect()
}

#[test]
#[ignore = "system test: needs promtool (Debian prometheus); make test-system"]
fn promtool_checks_the_rules() {
    let out = promtool(&["check", "rules", "alerts.yml"]);
    let want = format!("SUCCESS: {} rules found", alerts().len());
    assert!(out.contains(&want), "{out}");
}

#[test]
#[ignore = "system test: needs promtool (Debian prometheus); make test-system"]
fn promtool_unit_tests_fire_every_alert() {
    let out = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert has a case in which it fires (a non-empty exp_alerts).
    let path = repo_root().join("deploy/prometheus/alerts_test.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    let cases = doc["tests"].as_sequence().unwrap().iter();
    let cases = cases.flat_map(|t| t["alert_rule_test"].as_sequence().unwrap());
    let fired: Vec<&str> = cases
        .filter(|c| !c["exp_alerts"].as_sequence().unwrap().is_empty())
        .map(|c| c["alertname"].as_str().unwrap())
        .collect();
    for alert in alerts() {
        assert!(
            fired.contains(&alert.as_str()),
            "no test makes {alert} fire"
        );
    }
}

#[test]
fn the_rules_cover_the_control_plane_failures() {
    let want = [
        "TrellisControlPlaneDown",
        "TrellisNacksRising",
        "TrellisProxiesStale",
        "TrellisProxiesDisconnected",
        "TrellisConvergenceSlow",
        "TrellisWorkloadCertificateExpiring",
        "TrellisRootCertificateExpiring",
        "TrellisConfigReloadsFailing",
        "TrellisXdsStreamsRefused",
    ];
    let have = alerts();
    for a in want {
        assert!(have.iter().any(|h| h == a), "{a} missing from {have:?}");
    }
}
