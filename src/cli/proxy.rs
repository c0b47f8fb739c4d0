//! `trellis proxy-status` and `trellis proxy-config`: what each proxy was
//! sent and whether it accepted it, read from the admin API.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::demo::http::HttpClient;
use trellis::xds::short_type_name;

/// Flags of `trellis proxy-status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The control plane's admin address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_addr: SocketAddr,
    /// `table` for people, `json` for programs.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Table)]
    output: StatusFormat,
}

/// Output of `proxy-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatusFormat {
    Table,
    Json,
}

/// Flags of `trellis proxy-config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The proxy's node id (as in `trellis proxy-status`).
    proxy: String,
    /// listeners, routes, clusters, endpoints or secrets (default: all);
    /// `ratelimits` lists the rate limits in force, read from the listeners.
    #[arg(value_parser = ["listeners", "routes", "clusters", "endpoints", "secrets", "ratelimits", "all"])]
    r#type: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ConfigFormat::Json)]
    output: ConfigFormat,
    /// The control plane's admin address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_addr: SocketAddr,
}

/// Output of `proxy-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConfigFormat {
    Json,
    Yaml,
}

/// The xDS types in the order Envoy applies them, as table columns.
const TYPES: [&str; 5] = ["cds", "eds", "lds", "rds", "sds"];

async fn get_json(client: &HttpClient, url: &str) -> anyhow::Result<Value> {
    let reply = client
        .get(url, None)
        .await
        .with_context(|| format!("GET {url}"))?;
    if reply.status != 200 {
        bail!("GET {url}: HTTP {}: {}", reply.status, reply.body.trim());
    }
    serde_json::from_str(&reply.body).with_context(|| format!("reading {url}"))
}

/// Runs `trellis proxy-status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = HttpClient::new(Duration::from_secs(10));
    let base = format!("http://{}", args.admin_addr);
    let proxies = get_json(&client, &format!("{base}/debug/proxies")).await?;
    // The CA view is optional: without it the expiry column stays empty.
    let ca = get_json(&client, &format!("{base}/debug/ca"))
        .await
        .unwrap_or(Value::Null);
    let rows = rows(&proxies, &ca, now_unix());
    match args.output {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        StatusFormat::Table => print!("{}{}", table(&rows), rejections(&rows)),
    }
    Ok(ExitCode::SUCCESS)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One type's state: SYNCED (the last response sent was ACKed), NACKED
/// (it was rejected), STALE (sent, not answered yet), or `-` (never sent).
fn type_state(t: &Value) -> &'static str {
    let sent = t["last_sent_version"].as_str();
    let acked = t["last_acked_version"].as_str();
    let nacked = t["last_nack"]["version"].as_str();
    match (sent, acked) {
        (None, _) => "-",
        (s, a) if s == a => "SYNCED",
        (s, _) if s == nacked => "NACKED",
        _ => "STALE",
    }
}

/// The worst state over the types: NACKED > STALE > SYNCED.
fn overall(states: &[&str], connected: bool) -> &'static str {
    if !connected {
        "DISCONNECTED"
    } else if states.contains(&"NACKED") {
        "NACKED"
    } else if states.contains(&"STALE") {
        "STALE"
    } else {
        "SYNCED"
    }
}

/// The first 8 characters of a version (content hashes are long).
fn short(v: Option<&str>) -> String {
    v.map_or_else(|| "-".into(), |v| v.chars().take(8).collect())
}

/// One row per proxy, as JSON (what `-o json` prints).
fn rows(proxies: &Value, ca: &Value, now: u64) -> Vec<Value> {
    let Some(map) = proxies.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(id, p)| {
            let mut types = serde_json::Map::new();
            for (url, t) in p["types"].as_object().into_iter().flatten() {
                let state = type_state(t);
                types.insert(
                    short_type_name(url),
                    serde_json::json!({
                        "state": state,
                        "sent": t["last_sent_version"],
                        "acked": t["last_acked_version"],
                        "nacked": t["last_nack"]["version"],
                        "nack_message": t["last_nack"]["message"],
                        "nack_origin": t["last_nack"]["origin"],
                    }),
                );
            }
            let states: Vec<&str> = types.values().filter_map(|t| t["state"].as_str()).collect();
            let connected = p["connected"].as_bool().unwrap_or(false);
            let expiry = ca["leaves"][id]["not_after"].as_u64();
            serde_json::json!({
                "proxy": id,
                "replica": p["replica"],
                "service": p["service"],
                "namespace": p["namespace"],
                "labels": p["labels"],
                "status": overall(&states, connected),
                "types": types,
                "cert_not_after": expiry,
                "cert_expires_in_seconds": expiry.map(|t| t as i64 - now as i64),
            })
        })
        .collect()
}

/// `12h3m`, `4m10s`, `expired`.
fn human(secs: Option<i64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s <= 0 => "expired".into(),
        Some(s) if s >= 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        Some(s) => format!("{}m{}s", s / 60, s % 60),
    }
}

/// The table: per type `STATE sent[/acked][ nack:VERSION]`; with
/// replicas (`--store etcd`), a REPLICA column says which one serves each
/// proxy.
fn table(rows: &[Value]) -> String {
    let replicas = rows.iter().any(|r| r["replica"].is_string());
    let mut lines = vec![{
        let mut h = vec!["PROXY"];
        if replicas {
            h.push("REPLICA");
        }
        h.extend(["SERVICE", "LABELS", "STATUS"]);
        h.extend(["CDS", "EDS", "LDS", "RDS", "SDS", "CERT EXPIRES"]);
        h.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    }];
    for r in rows {
        let labels = r["labels"]
            .as_object()
            .map(|m| {
                let kv: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                kv.join(",")
            })
            .unwrap_or_default();
        let mut line = vec![
            r["proxy"].as_str().unwrap_or("").to_string(),
            r["service"].as_str().unwrap_or("-").to_string(),
            if labels.is_empty() {
                "-".into()
            } else {
                labels
            },
            r["status"].as_str().unwrap_or("").to_string(),
        ];
        if replicas {
            line.insert(1, r["replica"].as_str().unwrap_or("-").to_string());
        }
        for t in TYPES {
            line.push(type_cell(&r["types"][t]));
        }
        line.push(human(r["cert_expires_in_seconds"].as_i64()));
        lines.push(line);
    }
    render_columns(&lines)
}

/// Below the table, one line per type a proxy currently rejects: where
/// the rejected content comes from, in `trellis validate`'s format, with
/// Envoy's message.
fn rejections(rows: &[Value]) -> String {
    let mut out = String::new();
    for r in rows {
        let proxy = r["proxy"].as_str().unwrap_or("");
        for t in TYPES {
            let ty = &r["types"][t];
            if ty["state"] != "NACKED" {
                continue;
            }
            let o = &ty["nack_origin"];
            let place = match o["file"].as_str() {
                Some(file) => format!(
                    "{file}:{}:{}: {}/{}",
                    o["line"],
                    o["column"],
                    o["kind"].as_str().unwrap_or(""),
                    o["name"].as_str().unwrap_or("")
                ),
                None => "(not traced to a config object)".into(),
            };
            let msg = ty["nack_message"].as_str().unwrap_or("").trim();
            let msg = msg.replace('\n', " ");
            out.push_str(&format!(
                "\n{proxy} {}: {place}: rejected: {msg}",
                t.to_uppercase()
            ));
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn type_cell(t: &Value) -> String {
    let Some(state) = t["state"].as_str() else {
        return "-".into();
    };
    let sent = short(t["sent"].as_str());
    let mut cell = format!("{state} {sent}");
    if state != "SYNCED" {
        cell.push_str(&format!("/acked:{}", short(t["acked"].as_str())));
    }
    if let Some(n) = t["nacked"].as_str() {
        cell.push_str(&format!(" nack:{}", short(Some(n))));
    }
    cell
}

/// Left-aligned columns separated by two spaces.
fn render_columns(lines: &[Vec<String>]) -> String {
    let cols = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs `trellis proxy-config`.
pub async fn config(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let client = HttpClient::new(Duration::from_secs(10));
    let kind = args.r#type.as_deref().unwrap_or("all");
    let url = format!(
        "http://{}/debug/proxies/{}/config?type={kind}",
        args.admin_addr, args.proxy
    );
    let body = get_json(&client, &url).await?;
    let configs = &body["configs"];
    let shown = if kind == "all" {
        configs
    } else {
        &configs[kind]
    };
    match args.output {
        ConfigFormat::Json => println!("{}", serde_json::to_string_pretty(shown)?),
        ConfigFormat::Yaml => print!("{}", yaml_serde::to_string(shown)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_and_table() {
        let cds = trellis::xds::CLUSTER_TYPE.as_str();
        let rds = trellis::xds::ROUTE_TYPE.as_str();
        let proxies = json!({
            "a": { "connected": true, "service": "payment", "labels": { "version": "v1" }, "types": {
                cds: { "last_sent_version": "v1", "last_acked_version": "v1" },
                rds: { "last_sent_version": "v2", "last_acked_version": "v1",
                       "last_nack": { "version": "v2", "message": "bad regex", "origin": {
                           "kind": "VirtualService", "namespace": "default", "name": "payment",
                           "file": "c/routes.yaml", "line": 13, "column": 9,
                           "resource": "outbound" } } },
            } },
            "b": { "connected": true, "types": {
                cds: { "last_sent_version": "v2", "last_acked_version": "v1" },
            } },
        });
        let ca = json!({ "leaves": { "a": { "not_after": 1000 + 7200 } } });
        let rows = rows(&proxies, &ca, 1000);
        assert_eq!(rows[0]["status"], "NACKED");
        assert_eq!(rows[0]["types"]["cds"]["state"], "SYNCED");
        assert_eq!(rows[0]["cert_expires_in_seconds"], 7200);
        assert_eq!(rows[1]["status"], "STALE");
        let text = table(&rows);
        assert!(text.starts_with("PROXY"), "{text}");
        assert!(text.contains("NACKED v2/acked:v1 nack:v2"), "{text}");
        assert!(text.contains("version=v1"), "{text}");
        assert!(text.contains("2h0m"), "{text}");
        assert!(!text.contains("REPLICA"), "one control plane: {text}");
        assert_eq!(rows[0]["types"]["rds"]["nack_origin"]["line"], 13);
        let nacks = rejections(&rows);
        assert_eq!(
            nacks,
            "\na RDS: c/routes.yaml:13:9: VirtualService/payment: rejected: bad regex\n"
        );
    }

    #[test]
    fn replicas_get_a_column() {
        let cds = trellis::xds::CLUSTER_TYPE.as_str();
        let proxies = json!({
            "a": { "connected": true, "replica": "10.0.0.12:15010", "types": {
                cds: { "last_sent_version": "v1", "last_acked_version": "v1" },
            } },
        });
        let rows = rows(&proxies, &Value::Null, 0);
        assert_eq!(rows[0]["replica"], "10.0.0.12:15010");
        let text = table(&rows);
        let header = text.lines().next().unwrap();
        assert!(header.starts_with("PROXY  REPLICA"), "{text}");
        assert!(text.contains("a      10.0.0.12:15010  -"), "{text}");
    }
}
