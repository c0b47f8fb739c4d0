//! `trellis assess`: answers from flags, from the config, and typed at a
//! terminal (a pseudo-terminal from util-linux `script`).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use std::io::Write;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn assess(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .arg("assess")
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Five services, no splits, no STRICT mTLS, no tracing.
const FIVE: &str = "tests/lint/premature-mesh/good";

#[test]
fn flags_give_mtls_first_and_a_starter_config_that_validates() {
    let out_dir = tempfile::tempdir().unwrap();
    let starter = out_dir.path().join("starter");
    let out = assess(&[
        FIVE,
        "--languages",
        "2",
        "--regulated",
        "no",
        "--canary",
        "no",
        "--latency-pain",
        "yes",
        "--kubernetes",
        "new",
        "--out",
        starter.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // +2 languages, +2 latency, -2 new to Kubernetes.
    assert!(text.contains("Score: 2\n"), "{text}");
    assert!(text.contains("Consider starting with mTLS only"), "{text}");
    assert!(
        text.contains(&format!("written to {}", starter.display())),
        "{text}"
    );
    let mesh = trellis::config::load_dir(&starter).unwrap();
    assert_eq!(mesh.services.len(), 5);
    assert!(mesh.virtual_services.is_empty() && mesh.destination_rules.is_empty());
    assert_eq!(mesh.peer_authentications.len(), 1);
    assert!(trellis::assess::facts(&mesh).tracing);
    // A second run does not overwrite the starter.
    let again = assess(&[
        FIVE,
        "--languages",
        "2",
        "--latency-pain",
        "yes",
        "--kubernetes",
        "new",
        "--out",
        starter.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn json_with_flags_overriding_the_config() {
    let out = assess(&[
        FIVE,
        "--format",
        "json",
        "--services",
        "20",
        "--languages",
        "3",
        "--regulated",
        "yes",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["assessment"]["score"], 7);
    assert_eq!(v["assessment"]["verdict"], "strong-case");
    assert_eq!(v["assessment"]["unknown"], 4);
    assert_eq!(v["assessment"]["factors"][0]["source"], "flag");
    assert_eq!(v["facts"]["services"], 5);
    assert!(v["starter"].is_null());
}

#[test]
fn without_a_terminal_unanswered_factors_count_zero() {
    let out = assess(&["tests/lint/premature-mesh/bad"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    // Two services: only "fewer than 5" is known, from the config.
    assert!(text.contains("Score: -3 (6 factor(s) unknown"), "{text}");
    assert!(text.contains("Too early"), "{text}");
}

#[test]
fn a_terminal_is_asked_the_rest() {
    let out_dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_trellis");
    let cmd = format!(
        "{bin} assess {FIVE} --out {}",
        out_dir.path().join("s").display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    // languages, regulated, canary (empty: skip), latency pain, Kubernetes.
    let answers = "3\nyes\n\nno\nexperienced\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("How many programming languages"), "{text}");
    assert!(text.contains("3 language(s) (answered)"), "{text}");
    assert!(
        text.contains("Need for traffic-level canary deployments")
            && text.contains("unknown, counted 0")
    );
    // +2 languages, +3 regulated, +1 Kubernetes.
    assert!(text.contains("Score: 6 (1 factor(s) unknown"), "{text}");
    assert!(text.contains("Strong case for a mesh"), "{text}");
}
