//! A YAML alias bomb (about 2 KB that would expand to 9^9 nodes) dropped
//! into the directory of a running `trellis serve`: refused at the alias
//! over the budget, with the process's peak memory staying small, the last
//! good config in force and the reload counted as failed.

use std::time::Duration;

use trellis_integration_tests::*;

const CANARY: &str = include_str!("../../config-examples/canary/payment.yaml");

/// Peak RSS the control plane may reach while refusing the bomb. Before the
/// budget, the same file grew RSS by about 200 MB/s without end.
const PEAK_RSS_BOUND_KB: u64 = 200 * 1024;

/// The classic "billion laughs" as a VirtualService: nine levels, each
/// repeating the one below nine times.
fn alias_bomb() -> String {
    let mut text = String::from(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: bomb\nspec:\n  hosts:\n  - payment\n  exportTo:\n  - &l0 \"lol\"\n",
    );
    for level in 1..10 {
        let aliases = vec![format!("*l{}", level - 1); 9].join(", ");
        text.push_str(&format!("  - &l{level} [{aliases}]\n"));
    }
    text
}

/// `trellis_config_reloads_total{result}`.
fn reloads(metrics: &str, result: &str) -> u64 {
    let prefix = format!("trellis_config_reloads_total{{result=\"{result}\"}} ");
    let line = metrics.lines().find_map(|l| l.strip_prefix(&prefix));
    line.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// `VmHWM` (peak resident set) of `pid`, in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_bomb_in_a_live_config_dir_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("payment.yaml"), CANARY).unwrap();
    let trellis = Trellis::start(dir.path()).await.unwrap();
    let pid = trellis.pid().unwrap();
    let bomb = alias_bomb();
    assert!(bomb.len() < 2048, "{} bytes", bomb.len());
    std::fs::write(dir.path().join("bomb.yaml"), &bomb).unwrap();

    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let metrics = trellis.metrics().await.ok()?;
            (reloads(&metrics, "failed") >= 1).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("no failed reload: {e}\n{}", trellis.log()));

    let peak = peak_rss_kb(pid);
    eprintln!("trellis peak RSS after the bomb: {peak} kB");
    assert!(peak < PEAK_RSS_BOUND_KB, "peak RSS {peak} kB");
    let config = trellis.debug_config().await.unwrap();
    assert_eq!(config["generation"], 1, "{config}");
    let diagnostic = config["last_rejected"]["diagnostics"][0].as_str().unwrap();
    // Levels 1-4 expand to 9 + 90 + 819 + 7,380 nodes; the first alias of
    // level 5 (line 14, column 10) takes the file over the budget.
    assert!(
        diagnostic.ends_with("bomb.yaml:14:10: error: -/-: -: alias expansion exceeds 10000 nodes"),
        "{diagnostic}"
    );
    assert_eq!(reloads(&trellis.metrics().await.unwrap(), "ok"), 0);
}
