//! `trellis diff` and `trellis validate --envoy` as users run them: the
//! real binary on config directories, Git revisions, a live control plane
//! with a real Envoy sidecar, and Envoy's own validation.

use std::process::Command;

use trellis_integration_tests::canary_mesh::NACKED_ROUTES;
use trellis_integration_tests::mesh::{subsets_rule, weighted_routes};
use trellis_integration_tests::trellis::run_trellis;
use trellis_integration_tests::*;

fn canary(v1: u32, v2: u32) -> ConfigDir {
    ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        (
            "routes.yaml",
            &weighted_routes("payment", &[("v1", v1), ("v2", v2)]),
        ),
    ])
    .unwrap()
}

fn path(c: &ConfigDir) -> &str {
    c.path().to_str().unwrap()
}

#[test]
fn dir_diff_groups_proxies_and_exits_1() {
    let (old, new) = (canary(90, 10), canary(50, 50));
    let (code, out, err) =
        run_trellis(&["diff", path(&old), path(&new), "--proxy", "client"]).unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("3 of 3 proxies change (1 group)"), "{out}");
    assert!(out.contains("weights 90/10 → 50/50"), "{out}");
    assert!(out.contains("+          weight: 50"), "{out}");

    let (code, out, _) =
        run_trellis(&["diff", path(&old), path(&new), "--format", "json"]).unwrap();
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["unaffected"], 0);
    assert_eq!(v["groups"][0]["changes"][0]["kind"], "route");

    let (code, out, _) =
        run_trellis(&["diff", path(&old), path(&new), "--format", "markdown"]).unwrap();
    assert_eq!(code, 1);
    assert!(out.starts_with("### trellis diff"), "{out}");
    assert!(out.contains("```diff"), "{out}");
}

#[test]
fn no_change_exits_0_and_counts_unaffected() {
    let (old, new) = (canary(90, 10), canary(90, 10));
    let (code, out, err) = run_trellis(&["diff", path(&old), path(&new)]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 of 2 proxies change"), "{out}");
    assert!(out.contains("2 unaffected"), "{out}");
}

#[test]
fn invalid_new_is_reported_with_positions_and_exit_2() {
    let old = canary(90, 10);
    let new = canary(90, 20);
    let (code, out, err) = run_trellis(&["diff", path(&old), path(&new)]).unwrap();
    assert_eq!(code, 2, "{out}{err}");
    let line = out.lines().find(|l| l.contains(": error: ")).expect(&out);
    assert!(line.contains("routes.yaml:"), "{line}");
    assert!(line.contains("VirtualService/payment"), "{line}");
    assert!(err.contains("NEW config"), "{err}");
    let (code, _, _) = run_trellis(&["diff", path(&old), "/nonexistent/trellis"]).unwrap();
    assert_eq!(code, 2);
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn git_revisions_of_a_config_dir_in_a_work_tree() {
    let repo = tempfile::tempdir().unwrap();
    let config = repo.path().join("mesh");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(repo.path().join("README"), "not config: outside the dir\n").unwrap();
    std::fs::write(
        config.join("rule.yaml"),
        subsets_rule("payment", &["v1", "v2"]),
    )
    .unwrap();
    let routes = |a, b| weighted_routes("payment", &[("v1", a), ("v2", b)]);
    std::fs::write(config.join("routes.yaml"), routes(90, 10)).unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "one"]);
    std::fs::write(config.join("routes.yaml"), routes(10, 90)).unwrap();
    git(repo.path(), &["commit", "-qam", "two"]);
    // The work tree changes again: revisions are compared, not files.
    std::fs::write(config.join("routes.yaml"), routes(50, 50)).unwrap();

    let dir = config.to_str().unwrap();
    let (code, out, err) = run_trellis(&["diff", "--git", "HEAD~1..HEAD", dir]).unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("weights 90/10 → 10/90"), "{out}");
    let (code, out, err) = run_trellis(&["diff", "--git", "HEAD..HEAD", dir]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run_trellis(&["diff", "--git", "HEAD~5..HEAD", dir]).unwrap();
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_addr_diffs_the_live_proxies() {
    let mesh = CanaryMesh::weighted(90, 10, &["v1", "v2"]).await.unwrap();
    let new = canary(50, 50);
    let admin = format!("127.0.0.1:{}", mesh.trellis.admin_port());
    let args: Vec<String> = vec![
        "diff".into(),
        mesh.config.path().to_str().unwrap().into(),
        path(&new).into(),
        "--admin-addr".into(),
        admin,
        "--format".into(),
        "json".into(),
    ];
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_trellis(&args)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = v["groups"][0]["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    // Every registered Envoy sidecar (the client and both instances).
    for id in [
        &mesh.client.sidecar.spec.node_id,
        &mesh.v1.sidecar.spec.node_id,
        &mesh.v2.sidecar.spec.node_id,
    ] {
        assert!(ids.contains(&id.as_str()), "{id} not in {ids:?}");
    }
    assert_eq!(v["proxies"], 3, "{out}");
}

/// [`NACKED_ROUTES`] with a default route after it (as `nack.rs`).
fn nacked() -> ConfigDir {
    let routes = format!("{NACKED_ROUTES}  - route:\n    - destination:\n        host: payment\n        subset: v2\n");
    ConfigDir::with(&[
        ("rule.yaml", &subsets_rule("payment", &["v1", "v2"])),
        ("routes.yaml", &routes),
    ])
    .unwrap()
}

#[test]
fn validate_envoy_reports_the_rejected_regex_at_its_line() {
    let config = nacked();
    // `trellis validate` alone accepts it: only Envoy's RE2 limit rejects it.
    let (code, _, _) = run_trellis(&["validate", path(&config)]).unwrap();
    assert_eq!(code, 0);
    let (code, out, err) = run_trellis(&["validate", "--envoy", path(&config)]).unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let text = std::fs::read_to_string(config.file("routes.yaml")).unwrap();
    let regex_line = 1 + text.lines().position(|l| l.contains("regex:")).unwrap();
    let line = out.lines().find(|l| l.contains(": error: ")).expect(&out);
    let (loc, rest) = line.split_once(": error: ").unwrap();
    let mut parts = loc.rsplitn(3, ':');
    let _col: usize = parts.next().unwrap().parse().expect(line);
    let row: usize = parts.next().unwrap().parse().expect(line);
    assert!(parts.next().unwrap().ends_with("routes.yaml"), "{line}");
    assert_eq!(row, regex_line, "{line}");
    assert!(rest.starts_with("VirtualService/payment: "), "{line}");
    assert!(rest.contains("program size"), "{line}");
}

#[test]
fn validate_envoy_accepts_a_good_config() {
    let config = canary(90, 10);
    let (code, out, err) = run_trellis(&[
        "validate",
        "--envoy",
        path(&config),
        "--proxy",
        "client:app=web",
    ])
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("Envoy accepts the resources of 3 proxies"),
        "{err}"
    );
}

#[test]
fn validate_envoy_without_envoy_fails_clearly() {
    let config = canary(90, 10);
    let bin = trellis_integration_tests::trellis::trellis_bin().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args(["validate", "--envoy", path(&config)])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("envoy not found on PATH"), "{err}");
}
