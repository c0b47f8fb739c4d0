//! The loader's resource limits: each refused with a positioned error,
//! none costing more than the limit.

use super::{errors, load, load_rel, VS_HEAD};
use crate::config::limits::{MAX_DOCUMENTS, MAX_FILES, MAX_FILE_BYTES};

/// The "billion laughs": nine levels, each repeating the one below nine
/// times (9^9 strings from about 2 KB).
fn alias_bomb() -> String {
    let mut text = format!("{VS_HEAD}  exportTo:\n  - &l0 \"lol\"\n");
    for level in 1..9 {
        let aliases = vec![format!("*l{}", level - 1); 9].join(", ");
        text.push_str(&format!("  - &l{level} [{aliases}]\n"));
    }
    text
}

#[test]
fn an_alias_bomb_is_refused_at_the_alias_over_the_budget() {
    // Levels 1-4 (lines 10-13) expand to 9 + 90 + 819 + 7,380 nodes; the
    // first alias of level 5 (7,381 more) takes the file over 10,000.
    assert_eq!(
        errors(&alias_bomb()),
        ["f.yaml:14:10: error: -/-: -: alias expansion exceeds 10000 nodes"]
    );
}

#[test]
fn a_few_aliases_still_work() {
    let text = format!(
        "{VS_HEAD}  http:\n  - route:\n    - destination: &d\n        host: pay\n      weight: 50\n    - destination: *d\n      weight: 50\n"
    );
    load(&[("f.yaml", &text)]).unwrap();
}

#[test]
fn deep_nesting_is_refused_at_the_level_over_the_limit() {
    // Block sequences nest two columns per level on one line.
    let text = format!("{}x\n", "- ".repeat(100));
    assert_eq!(
        errors(&text),
        ["f.yaml:1:129: error: -/-: -: nesting exceeds 64 levels"]
    );
    // The root mapping is level 1; the 64th `[` (column 3 + 64) is level 65.
    let flow = format!("a: {}{}\n", "[".repeat(70), "]".repeat(70));
    assert_eq!(
        errors(&flow),
        ["f.yaml:1:67: error: -/-: -: nesting exceeds 64 levels"]
    );
}

#[test]
fn too_many_documents_are_refused_at_the_first_one_over() {
    let text = "---\n".repeat(MAX_DOCUMENTS + 1);
    assert_eq!(
        errors(&text),
        [format!(
            "f.yaml:{}:1: error: -/-: -: a file holds at most {MAX_DOCUMENTS} documents",
            MAX_DOCUMENTS + 1
        )]
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_unread() {
    let text = format!("#{}\n", "x".repeat(MAX_FILE_BYTES as usize));
    assert_eq!(
        errors(&text),
        [format!("f.yaml:1:1: error: -/-: -: file is larger than {MAX_FILE_BYTES} bytes, the limit for one config file")]
    );
}

#[test]
fn a_directory_over_the_byte_budget_is_refused_at_the_file_over_it() {
    // Eight files of almost 8 MiB fit in 64 MiB; the ninth does not.
    let comment = format!("#{}\n", "x".repeat(MAX_FILE_BYTES as usize - 2));
    let names: Vec<String> = (0..9).map(|i| format!("f{i}.yaml")).collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), comment.as_str()))
        .collect();
    assert_eq!(
        load(&files).unwrap_err(),
        ["f8.yaml:1:1: error: -/-: -: config files together exceed 67108864 bytes, the limit for a config directory"]
    );
}

#[test]
fn too_many_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..=MAX_FILES {
        std::fs::write(dir.path().join(format!("f{i:05}.yaml")), "").unwrap();
    }
    assert_eq!(
        load_rel(dir.path()).unwrap_err(),
        [format!("f{MAX_FILES:05}.yaml:1:1: error: -/-: -: the config directory holds more than {MAX_FILES} config files")]
    );
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_refused_not_walked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let sub = root.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("dr.yaml"), super::dr("a", "a")).unwrap();
    // Two links back up: walked naively, 2^40 paths before ELOOP.
    std::os::unix::fs::symlink(&root, sub.join("up1")).unwrap();
    std::os::unix::fs::symlink(&root, sub.join("up2")).unwrap();
    std::os::unix::fs::symlink("self", root.join("self")).unwrap();
    let errs = load_rel(&root).unwrap_err();
    let shown = root.display();
    assert_eq!(
        errs,
        [
            "self:1:1: error: -/-: -: symlink loop; not followed".to_string(),
            format!("sub/up1:1:1: error: -/-: -: directory {shown} is reached a second time (a symlink loop, or a second link to it); not read again"),
            format!("sub/up2:1:1: error: -/-: -: directory {shown} is reached a second time (a symlink loop, or a second link to it); not read again"),
        ]
    );
}

/// The peer benchmark's file (`bench/trellis_push.py`): 1,000
/// ServiceEntries and a VirtualService, about 280 KB, in one file.
#[test]
fn the_peer_benchmarks_file_is_within_the_limits() {
    let mut docs: Vec<String> = (0..1000)
        .map(|i| format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{i}, namespace: default}}\nspec:\n  hosts: [svc-{i}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]", 31000 + i))
        .collect();
    docs.push("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: svc-0, namespace: default}\nspec:\n  hosts: [svc-0]\n  http:\n  - headers: {response: {set: {x-config-version: \"1\"}}}\n    route: [{destination: {host: svc-0}}]".into());
    let mesh = load(&[("mesh.yaml", &docs.join("\n---\n"))]).unwrap();
    assert_eq!(mesh.files.len(), 1);
}

#[test]
fn a_loader_panic_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vs.yaml");
    std::fs::write(&file, super::vs("a", "a")).unwrap();
    super::inject_panic(&file);
    let err = crate::config::load_dir(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: internal error while loading: injected loader panic",
            file.display()
        )
    );
    // The cross-file checks are guarded too, naming the directory.
    let other = tempfile::tempdir().unwrap();
    super::inject_panic(other.path());
    let err = crate::config::load_dir(other.path()).unwrap_err();
    assert!(matches!(err, crate::config::LoadError::Panicked { path, .. } if path == other.path()));
}
