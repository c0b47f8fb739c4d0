//! The command line: `trellis validate` exit codes and format, `trellis
//! bootstrap` output that Envoy accepts.

use trellis_integration_tests::envoy::envoy_validate;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

#[test]
fn validate_accepts_a_valid_dir() {
    let config = ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        (
            "nested/routes.yml",
            &weighted_routes("payment", &[("v1", 50), ("v2", 50)]),
        ),
    ])
    .unwrap();
    let (code, out, err) = run_trellis(&["validate", config.path().to_str().unwrap()]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn validate_reports_every_error_with_file_line_and_exit_1() {
    let config = ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        // Weights sum to 110, and a subset that does not exist.
        (
            "routes.yaml",
            &weighted_routes("payment", &[("v1", 10), ("v3", 100)]),
        ),
    ])
    .unwrap();
    let (code, out, err) = run_trellis(&["validate", config.path().to_str().unwrap()]).unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(": error: ")).collect();
    assert!(lines.len() >= 2, "both errors, one per line:\n{out}");
    for line in &lines {
        // FILE:LINE:COL: error: KIND/NAME: FIELD.PATH: message
        let (loc, rest) = line.split_once(": error: ").unwrap();
        let mut parts = loc.rsplitn(3, ':');
        let col: usize = parts.next().unwrap().parse().expect(line);
        let row: usize = parts.next().unwrap().parse().expect(line);
        assert!(parts.next().unwrap().ends_with("routes.yaml"), "{line}");
        assert!(row > 0 && col > 0, "{line}");
        assert!(rest.starts_with("VirtualService/payment: "), "{line}");
    }
    assert!(out.contains("v3"), "names the unknown subset:\n{out}");
}

#[test]
fn validate_exit_2_on_missing_dir_or_bad_usage() {
    let (code, _, _) = run_trellis(&["validate", "/nonexistent/trellis/config"]).unwrap();
    assert_eq!(code, 2);
    let (code, _, _) = run_trellis(&["validate"]).unwrap();
    assert_eq!(code, 2);
}

#[test]
fn bootstrap_is_accepted_by_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sidecar.yaml");
    let spec = envoy::SidecarSpec::new("payment", &[("version", "v2"), ("team", "pay")], 8080);
    spec.write_bootstrap("127.0.0.1:15010", &file).unwrap();
    envoy_validate(&file).unwrap();
    // The example in the repository is accepted too.
    let example = repo_root().join("envoy-bootstrap");
    for entry in std::fs::read_dir(&example).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            envoy_validate(&path).unwrap();
        }
    }
}
