//! Tests of loading and validation. Each error case asserts the exact
//! `FILE:LINE:COL: error: KIND/NAME: FIELD: message` line.

mod destination_rule;
mod envoy_filter;
mod errors;
mod gateway;
mod gateway_api;
mod kube_service;
mod l4;
mod limits;
mod locality;
mod multicluster;
mod rate_limit;
mod reference;
mod rejected_values;
mod retries;
mod rollout;
mod samples;
mod security;
mod service_entry;
mod telemetry;
mod virtual_service;

use std::path::Path;

use super::{load_dir, LoadError, MeshConfig};

/// Writes `files` (relative path, content) into a temp dir and loads it;
/// diagnostics come back as lines with paths relative to the dir.
pub(super) fn load(files: &[(&str, &str)]) -> Result<MeshConfig, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    load_rel(dir.path())
}

/// Loads `dir`; diagnostics as lines with paths relative to `dir`.
pub(super) fn load_rel(dir: &Path) -> Result<MeshConfig, Vec<String>> {
    load_dir(dir).map_err(|e| match e {
        LoadError::Invalid(d) => {
            d.0.into_iter()
                .map(|mut d| {
                    d.file = d.file.strip_prefix(dir).unwrap().to_path_buf();
                    let prefix = format!("{}/", dir.display());
                    d.message = d.message.replace(&prefix, "");
                    d.to_string()
                })
                .collect()
        }
        other => panic!("not a validation error: {other}"),
    })
}

/// The errors of loading one file `f.yaml`.
pub(super) fn errors(text: &str) -> Vec<String> {
    match load(&[("f.yaml", text)]) {
        Ok(_) => panic!("expected errors, config loaded"),
        Err(e) => e,
    }
}

/// A VirtualService for `pay` up to its `hosts`; tests append the rest
/// (its `http` starts on line 8).
pub(super) const VS_HEAD: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pay
spec:
  hosts:
  - pay
";

/// `VS_HEAD` plus one rule routing to `pay`; tests append rule fields
/// (line 12 onwards).
pub(super) fn vs_rule(rest: &str) -> String {
    format!("{VS_HEAD}  http:\n  - route:\n    - destination:\n        host: pay\n{rest}")
}

pub(super) fn dr(name: &str, host: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\nspec:\n  host: {host}\n")
}

pub(super) fn vs(name: &str, host: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  hosts:\n  - {host}\n  http:\n  - route:\n    - destination:\n        host: {host}\n")
}

#[test]
fn yaml_syntax() {
    assert_eq!(
        errors("apiVersion: v1\nkind: [unclosed\n"),
        ["f.yaml:3:1: error: -/-: -: YAML syntax error: while parsing a flow sequence, expected ',' or ']'"]
    );
    assert_eq!(
        errors("a: b\n c: d\n"),
        ["f.yaml:2:3: error: -/-: -: YAML syntax error: mapping values are not allowed in this context"]
    );
    assert_eq!(
        errors("a:\n\t- b\n"),
        ["f.yaml:2:2: error: -/-: -: YAML syntax error: tabs disallowed within this context (block indentation)"]
    );
}

#[test]
fn a_cached_reload_parses_changed_files_only_and_equals_a_fresh_load() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("a.yaml", &dr("a", "a"));
    write("b.yaml", &vs("b", "b"));
    let mut cache = super::LoadCache::default();
    let first = super::load_dir_cached(dir.path(), &mut cache).unwrap();
    assert_eq!(first.files, load_dir(dir.path()).unwrap().files);
    // One file changes, one is added: the result is a fresh load's.
    write("b.yaml", &vs("b2", "b2"));
    write("c.yaml", &dr("c", "c"));
    let again = super::load_dir_cached(dir.path(), &mut cache).unwrap();
    let fresh = load_dir(dir.path()).unwrap();
    assert_eq!(again.virtual_services, fresh.virtual_services);
    assert_eq!(again.destination_rules, fresh.destination_rules);
    assert_eq!(again.files, fresh.files);
    // A broken file is reported with its position, as a fresh load does.
    write("a.yaml", "apiVersion: [");
    let err = |r: Result<MeshConfig, LoadError>| match r {
        Err(e @ LoadError::Invalid(_)) => e.to_string(),
        other => panic!("expected errors, got {other:?}"),
    };
    let cached = err(super::load_dir_cached(dir.path(), &mut cache));
    assert_eq!(cached, err(load_dir(dir.path())));
    // A file removed is gone from the next load.
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let last = super::load_dir_cached(dir.path(), &mut cache).unwrap();
    assert!(last
        .destination_rules
        .keys()
        .all(|h| !h.as_str().starts_with("a.")));
}

/// Paths whose loading panics, to show what a loader bug does.
static PANIC_ON: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Makes every later load of `path` (a file, or a directory's cross-file
/// checks) panic, as a bug in the loader would.
pub(crate) fn inject_panic(path: &Path) {
    PANIC_ON.lock().unwrap().push(path.to_path_buf());
}

/// Panics when `path` was given to [`inject_panic`].
pub(super) fn panic_if_injected(path: &Path) {
    let injected = PANIC_ON
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|p| p == path);
    if injected {
        panic!("injected loader panic");
    }
}
