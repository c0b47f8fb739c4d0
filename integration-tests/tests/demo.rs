//! `trellis demo --duration 20`: the control plane, three services and their
//! sidecars come up, traffic flows, and the split shifts from 90/10 to 50/50;
//! mTLS is STRICT and payment sees the frontend's SPIFFE ID.

use std::time::Duration;

use trellis_integration_tests::trellis::trellis_bin;

/// One row of the demo's live table: (v1 %, v2 %, config column, caller).
fn rows(out: &str) -> Vec<(f64, f64, String, String)> {
    out.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.len() < 9
                || !cols[0].ends_with('s')
                || cols[0][..cols[0].len() - 1].parse::<u32>().is_err()
            {
                return None;
            }
            let pct = |s: &str| s.trim_end_matches('%').parse::<f64>().ok();
            Some((
                pct(cols[3])?,
                pct(cols[4])?,
                cols[7].to_string(),
                cols[8].to_string(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shifts_the_canary_to_50_50() {
    let mut cmd = tokio::process::Command::new(trellis_bin().unwrap());
    cmd.args(["demo", "--duration", "20"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("demo did not finish within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    let table = rows(&stdout);
    let before: Vec<_> = table.iter().filter(|r| r.2 == "90/10").collect();
    let after: Vec<_> = table.iter().filter(|r| r.2 == "50/50").collect();
    assert!(
        !before.is_empty() && !after.is_empty(),
        "no 90/10 and 50/50 rows:\n{stdout}"
    );
    let frontend = "spiffe://cluster.local/ns/default/sa/frontend";
    assert!(
        table.iter().filter(|r| r.3 == frontend).count() >= table.len() / 2,
        "payment should see the frontend's identity:\n{stdout}"
    );
    assert!(stdout.contains("STRICT"), "{stdout}");
    // The demo tells the user where metrics, logs and traces are.
    for what in ["/metrics", "/stats/prometheus", "access log", "Traces:"] {
        assert!(stdout.contains(what), "no {what:?} in:\n{stdout}");
    }
    let mean =
        |rs: &[&(f64, f64, String, String)]| rs.iter().map(|r| r.1).sum::<f64>() / rs.len() as f64;
    let (v2_before, v2_after) = (mean(&before), mean(&after[usize::from(after.len() > 1)..]));
    assert!(
        v2_before < 20.0,
        "v2 share before the shift: {v2_before:.1}%\n{stdout}"
    );
    assert!(
        (35.0..=65.0).contains(&v2_after),
        "v2 share after the shift: {v2_after:.1}%\n{stdout}"
    );
}
