//! `trellis demo --duration 20`: the control plane, three services and their
//! sidecars and an ingress gateway come up, traffic flows in over HTTPS, and
//! the split shifts from 90/10 to 50/50; mTLS is STRICT and payment sees the
//! frontend's SPIFFE ID. While it runs, the curl commands it prints are run:
//! HTTPS answers with the certificate the demo generated, HTTP with a 301.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;
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

/// One curl run: exit code and stdout.
async fn curl(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

/// The DER of the first certificate in a PEM text.
fn first_der(pem: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("a PEM certificate");
    p.contents
}

/// Runs the printed HTTPS curl command (`curl --cacert CA --resolve R URL`)
/// and checks the answer and the certificate served.
async fn check_https(line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (ca, resolve, url) = (words[2], words[4], words[5]);
    let (code, out) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        resolve,
        "-w",
        "\n%{http_code}",
        url,
    ])
    .await;
    assert_eq!(code, 0, "{line}: curl exit {code}");
    let (body, status) = out.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{line}: {out}");
    assert!(
        body.contains("\"frontend\"") && body.contains("payment-service"),
        "{body}"
    );
    // The certificate served is the one the demo wrote for the gateway.
    let cred = ca.strip_suffix("-ca.crt").unwrap();
    let written = std::fs::read_to_string(format!("{cred}/tls.crt")).unwrap();
    let args = [
        "--cacert",
        ca,
        "--resolve",
        resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{certs}",
        url,
    ];
    let (_, served) = curl(&args).await;
    assert_eq!(first_der(&served), first_der(&written), "served:\n{served}");
    // Nothing but the demo's CA vouches for it.
    let (code, _) = curl(&["--resolve", resolve, url]).await;
    assert_eq!(
        code, 60,
        "curl without --cacert must refuse the certificate"
    );
}

/// Runs the printed HTTP curl command's target: a 301 to https:// with
/// the path kept.
async fn check_redirect(line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (resolve, url) = (words[3], words[4]);
    let url = format!("{url}some/path");
    let (_, out) = curl(&[
        "--resolve",
        resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &url,
    ])
    .await;
    assert!(
        out.starts_with("301 https://frontend.demo.localhost"),
        "redirect: {out}"
    );
    assert!(
        out.ends_with("/some/path"),
        "redirect keeps the path: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shifts_the_canary_to_50_50() {
    let mut cmd = tokio::process::Command::new(trellis_bin().unwrap());
    cmd.args(["demo", "--duration", "20"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err_pipe = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s).await;
        s
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            all.push_str(&l);
            all.push('\n');
            let _ = tx.send(l);
        }
        all
    });
    let (mut https, mut http) = (None, None);
    let found = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(l) = rx.recv().await {
            if l.starts_with("  curl --cacert ") {
                https = Some(l);
            } else if l.starts_with("  curl -i --resolve ") {
                http = Some(l);
            }
            if https.is_some() && http.is_some() {
                return true;
            }
        }
        false
    })
    .await;
    if found == Ok(true) {
        check_https(https.as_deref().unwrap()).await;
        check_redirect(http.as_deref().unwrap()).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("demo did not finish within 120 s")
        .unwrap();
    let stdout = reader.await.unwrap();
    let stderr = stderr.await.unwrap();
    assert!(status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert_eq!(
        found,
        Ok(true),
        "no curl commands printed:\n{stdout}\n{stderr}"
    );
    for what in ["ingress gateway", "--port-map 443="] {
        assert!(stdout.contains(what), "no {what:?} in:\n{stdout}");
    }

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
