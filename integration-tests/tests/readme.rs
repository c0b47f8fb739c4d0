//! The README's quick start, run as written: the shell block between the
//! `<!-- quick-start:start -->` and `<!-- quick-start:end -->` markers runs
//! in bash, in a temporary directory holding a copy of `config-examples/`,
//! with this build's `trellis` and Envoy on PATH. Its last command (the app
//! calling payment-service through its sidecar) must print the app's answer.
//!
//! The quick start uses the fixed ports a user gets by default, so the test
//! first checks that they are free and fails saying which one is taken.
//! Everything the block starts runs in one process group, which the test
//! kills and waits out whatever happens.
//!
//! Also here: every relative link in the README and in `docs/` names a file
//! that exists, and the README holds no copy of the config reference.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trellis_integration_tests::envoy::envoy_bin;
use trellis_integration_tests::repo_root;
use trellis_integration_tests::trellis::trellis_bin;

const START: &str = "<!-- quick-start:start -->";
const END: &str = "<!-- quick-start:end -->";

/// The ports `trellis serve` and `trellis bootstrap` use by default; the
/// block may name more (`--app-port 8080`, the second sidecar's ports).
const DEFAULT_PORTS: [u16; 6] = [15010, 15014, 15000, 15001, 15006, 15090];

/// How long the whole quick start may take (it waits for both sidecars).
const DEADLINE: Duration = Duration::from_secs(120);

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

/// The commands of the fenced `sh` block between the markers.
fn quick_start(readme: &str) -> String {
    let start = readme.find(START).expect("no quick-start:start marker");
    let end = readme.find(END).expect("no quick-start:end marker");
    assert!(start < end, "quick-start markers out of order");
    let section = &readme[start + START.len()..end];
    let mut lines = section.lines().skip_while(|l| l.trim() != "```sh");
    assert!(lines.next().is_some(), "no ```sh block between the markers");
    let block: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    assert!(!block.is_empty(), "empty quick-start block");
    block.join("\n") + "\n"
}

/// Every port the block needs: the defaults and each 4- or 5-digit number
/// it names.
fn ports(block: &str) -> BTreeSet<u16> {
    let mut ports: BTreeSet<u16> = DEFAULT_PORTS.into_iter().collect();
    for word in block.split(|c: char| !c.is_ascii_digit()) {
        if (4..=5).contains(&word.len()) {
            if let Ok(port) = word.parse::<u16>() {
                ports.insert(port);
            }
        }
    }
    ports
}

fn assert_ports_free(ports: &BTreeSet<u16>) {
    for &port in ports {
        assert!(
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok(),
            "port {port} on 127.0.0.1 is in use, and the README's quick start needs it \
             (ports {ports:?}): stop what listens there and run this test again"
        );
    }
}

/// A directory with `trellis` and `envoy` in it, for the front of PATH.
fn bin_dir(tmp: &Path) -> PathBuf {
    let bin = tmp.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(trellis_bin().unwrap(), bin.join("trellis")).unwrap();
    let envoy = envoy_bin();
    if envoy.components().count() > 1 {
        std::os::unix::fs::symlink(std::path::absolute(&envoy).unwrap(), bin.join("envoy"))
            .unwrap();
    }
    bin
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Live (not zombie) processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            pids.push(pid);
        }
    }
    pids
}

/// The quick start's shell: bash in a process group of its own. Drop kills
/// the group and waits until none of it is left.
struct Shell {
    child: Child,
    pgid: u32,
}

impl Shell {
    fn kill_group(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid)])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !group_members(self.pgid).is_empty() {
            assert!(
                Instant::now() < deadline,
                "quick-start processes outlived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Runs `block` as the README shows it: `set -e` so a failing step fails the
/// run, and on exit the shell stops (and waits for) what it started in the
/// background, as the README tells the user to.
fn run_block(block: &str, dir: &Path, bin: &Path) -> (Shell, PathBuf) {
    let script = format!("trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\nset -e\n{block}");
    let log = dir.join("quick-start.out");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("quick-start.err")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    (Shell { child, pgid }, log)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    text.get(start..).unwrap_or(&text).to_string()
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in [
        "quick-start.out",
        "quick-start.err",
        "trellis.log",
        "payment-v1.log",
        "payment-v2.log",
    ] {
        out += &format!("----- {name} -----\n{}\n", tail(&dir.join(name)));
    }
    out
}

#[test]
fn quick_start_runs_as_written() {
    let block = quick_start(&readme());
    assert!(
        !block.contains("HTTP_PROXY"),
        "curl ignores upper-case HTTP_PROXY; the quick start must use -x or http_proxy"
    );
    assert_ports_free(&ports(&block));
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    copy_dir(
        &repo_root().join("config-examples"),
        &work.join("config-examples"),
    );
    let bin = bin_dir(tmp.path());
    let (mut shell, out) = run_block(&block, &work, &bin);

    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = shell.child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            shell.kill_group();
            panic!(
                "the quick start did not finish within {DEADLINE:?}\n{}",
                logs(&work)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "quick start failed: {status}\n{}",
        logs(&work)
    );

    let stdout = std::fs::read_to_string(&out).unwrap();
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let answer: serde_json::Value = last
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("the last command printed no JSON answer\n{}", logs(&work)));
    assert_eq!(answer["service"], "payment-service", "{answer}");
    assert!(
        answer["version"] == "v1" || answer["version"] == "v2",
        "{answer}"
    );
    // The call crossed the mesh: the app saw its caller's verified identity.
    assert_eq!(
        answer["caller"], "spiffe://cluster.local/ns/default/sa/payment-service",
        "{answer}"
    );
    drop(shell);
}

/// Link targets (`](path)`, `](path#anchor)`, `](#anchor)`) of a markdown
/// text that are not URLs, as (path, anchor).
fn relative_links(text: &str) -> Vec<(String, Option<String>)> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|t| !t.contains("://") && !t.starts_with("mailto:"))
        .map(|target| match target.split_once('#') {
            Some((path, anchor)) => (path.to_string(), Some(anchor.to_string())),
            None => (target.to_string(), None),
        })
        .collect()
}

/// The anchors GitHub gives a markdown file's headings: lower case, spaces
/// to `-`, punctuation other than `-` and `_` dropped.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        anchors.insert(slug);
    }
    anchors
}

/// Every link between the README, BENCHMARKS.md and `docs/` names a file
/// that exists and, with `#anchor`, one of its headings.
#[test]
fn links_in_the_readme_and_docs_resolve() {
    let root = repo_root();
    let mut files = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let base = file.parent().unwrap();
        for (path, anchor) in relative_links(&text) {
            let target = if path.is_empty() {
                file.clone()
            } else {
                base.join(&path)
            };
            if !target.exists() {
                broken.push(format!("{}: {path}: no such file", file.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            let headings = anchors(&std::fs::read_to_string(&target).unwrap_or_default());
            if !headings.contains(&anchor) {
                broken.push(format!(
                    "{}: {path}#{anchor}: no such heading",
                    file.display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_config_reference_has_one_source() {
    let readme = readme();
    let reference = std::fs::read_to_string(repo_root().join("docs/config-reference.md")).unwrap();
    assert!(
        readme.contains("docs/config-reference.md"),
        "the README must link it"
    );
    // Its sections' headings appear in the reference only.
    for heading in reference.lines().filter(|l| l.starts_with("## ")) {
        let title = heading.trim_start_matches('#').trim();
        let copied = readme
            .lines()
            .any(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == title);
        assert!(
            !copied,
            "README repeats the config reference's section {title:?}"
        );
    }
}
