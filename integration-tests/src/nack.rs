//! Checks that a proxy's rejection was traced to the config object
//! responsible, everywhere Trellis reports it: the log line (`trellis
//! validate`'s format), `/debug/proxies`' `last_nack.origin`, `trellis
//! proxy-status` (text and JSON) and `trellis_proxy_rejections_total`.

use std::path::Path;
use std::time::Duration;

use crate::trellis::{run_trellis, Trellis};
use crate::wait;

/// 1-based line and column of the first line of `text` containing `key`
/// (the column of `key` itself, where YAML positions a field).
pub fn position_of(text: &str, key: &str) -> (u64, u64) {
    let (i, line) = (text.lines().enumerate())
        .find(|(_, l)| l.contains(key))
        .unwrap_or_else(|| panic!("{key:?} not in {text}"));
    let column = line.find(key).unwrap_or_default();
    (i as u64 + 1, column as u64 + 1)
}

/// The origin `/debug/proxies` shows for `node`'s last NACK of a type
/// whose URL ends with `type_suffix`.
pub fn nack_origin(
    proxies: &serde_json::Value,
    node: &str,
    type_suffix: &str,
) -> Option<serde_json::Value> {
    let types = proxies.get(node)?.get("types")?.as_object()?;
    let (_, t) = types.iter().find(|(url, _)| url.ends_with(type_suffix))?;
    let origin = t.get("last_nack")?.get("origin")?;
    (!origin.is_null()).then(|| origin.clone())
}

/// `trellis proxy-status` (`-o json` when `json`), against `trellis`.
pub async fn proxy_status(trellis: &Trellis, json: bool) -> String {
    let port = trellis.admin_port();
    let run = tokio::task::spawn_blocking(move || {
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["proxy-status", "--admin-addr", &addr];
        if json {
            args.extend(["-o", "json"]);
        }
        run_trellis(&args)
    });
    let (code, out, err) = run.await.expect("proxy-status task").expect("proxy-status");
    assert_eq!(code, 0, "proxy-status: {err}");
    out
}

/// The config object a rejection should be traced to.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// `VirtualService`, `EnvoyFilter`, ...
    pub kind: &'a str,
    /// Its name (namespace `default`).
    pub name: &'a str,
    /// Its file.
    pub file: &'a Path,
    /// 1-based line and column of the field blamed.
    pub at: (u64, u64),
}

/// Waits until `/debug/proxies` shows the origin of `node`'s NACK of a
/// `type_suffix` response; panics with the log's NACK lines if it never
/// does.
pub async fn wait_origin(trellis: &Trellis, node: &str, type_suffix: &str) -> serde_json::Value {
    let found = wait::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { nack_origin(&trellis.debug_proxies().await.ok()?, node, type_suffix) },
    )
    .await;
    match found {
        Ok((origin, _)) => origin,
        Err(_) => {
            let log = trellis.log();
            let nacks: Vec<&str> = (log.lines())
                .filter(|l| l.contains("NACK") || l.contains("traced") || l.contains("rejected"))
                .collect();
            panic!(
                "/debug/proxies never showed the origin of {node}'s {type_suffix} NACK: {:?}\n{nacks:#?}",
                trellis.debug_proxies().await
            );
        }
    }
}

/// Asserts that `node`'s rejection of a `type_suffix` response (`short`:
/// `rds`, `cds`, `lds`) was traced to `want`, in the log,
/// `/debug/proxies`, `proxy-status` (text and JSON) and the metric.
pub async fn assert_traced(
    trellis: &Trellis,
    node: &str,
    (type_suffix, short): (&str, &str),
    want: Expected<'_>,
) {
    let Expected {
        kind,
        name,
        file,
        at: (line, column),
    } = want;
    let origin = wait_origin(trellis, node, type_suffix).await;
    assert_eq!(origin["kind"], kind, "{origin}");
    assert_eq!(origin["name"], name, "{origin}");
    assert_eq!(origin["namespace"], "default", "{origin}");
    assert_eq!(origin["file"], file.display().to_string(), "{origin}");
    assert_eq!(
        (origin["line"].as_u64(), origin["column"].as_u64()),
        (Some(line), Some(column)),
        "{origin}"
    );
    assert!(origin["resource"].is_string(), "{origin}");

    let place = format!("{}:{line}:{column}: error: {kind}/{name}: ", file.display());
    let log = trellis.log();
    let by = format!("(rejected by proxy {node}: ");
    let logged = log.lines().find(|l| l.contains(&place) && l.contains(&by));
    assert!(logged.is_some(), "no log line {place}...{by}...: {log}");

    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&proxy_status(trellis, true).await).expect("proxy-status JSON");
    let row = rows.iter().find(|r| r["proxy"] == node).expect("proxy row");
    assert_eq!(row["types"][short]["state"], "NACKED", "{row}");
    assert_eq!(row["types"][short]["nack_origin"], origin, "{row}");
    let text = proxy_status(trellis, false).await;
    let at = format!(
        "{node} {}: {}:{line}:{column}: {kind}/{name}: rejected: ",
        short.to_uppercase(),
        file.display()
    );
    assert!(text.contains(&at), "{text}");

    let metrics = trellis.metrics().await.expect("metrics");
    let series = format!(
        "trellis_proxy_rejections_total{{kind=\"{kind}\",namespace=\"default\",name=\"{name}\"}}"
    );
    assert!(
        metrics.lines().any(|l| l.starts_with(&series)),
        "{series} in {metrics}"
    );
}

/// Runs `trellis validate --envoy DIR ARGS...` and returns the first
/// `FILE:LINE:COL: error: ` line and the exit code (with the whole output
/// for messages).
pub fn validate_envoy(dir: &Path, args: &[&str]) -> (i32, Option<String>, String) {
    let dir = dir.display().to_string();
    let mut all = vec!["validate", "--envoy", &dir];
    all.extend(args);
    let (code, out, err) = run_trellis(&all).expect("trellis validate --envoy");
    let line = out
        .lines()
        .find(|l| l.contains(": error: "))
        .map(str::to_string);
    (code, line, format!("{out}{err}"))
}
