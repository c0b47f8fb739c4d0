//! `trellis rollout status|promote|abort`: the staged config rollout of a
//! running control plane, through its admin API.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::demo::http::HttpClient;

/// `trellis rollout ...`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
    /// The control plane's admin address.
    #[arg(long, global = true, default_value = "127.0.0.1:15014")]
    admin_addr: SocketAddr,
    /// `text` for people, `json` for programs (the `/debug/rollout` view).
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// The policy, the generation baking on the canary set, and how the
    /// recent generations ended.
    Status,
    /// Give the generation baking on the canary set to every proxy now.
    Promote,
    /// Roll the canary set back to the last good generation; the generation
    /// is marked failed. The config directory is not touched.
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Runs `trellis rollout ...`: exit 0 done, 1 refused (nothing to promote
/// or abort) or unreachable.
pub async fn run(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    let client = HttpClient::new(Duration::from_secs(10));
    let base = format!("http://{}", args.admin_addr);
    let reply = match args.command {
        RolloutCommand::Status => client.get(&format!("{base}/debug/rollout"), None).await?,
        RolloutCommand::Promote => client.post(&format!("{base}/rollout/promote")).await?,
        RolloutCommand::Abort => client.post(&format!("{base}/rollout/abort")).await?,
    };
    if reply.status != 200 {
        bail!(
            "the control plane refused: HTTP {}: {}",
            reply.status,
            reply.body.trim()
        );
    }
    let view: Value = serde_json::from_str(&reply.body).context("reading the rollout view")?;
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Format::Text => print!("{}", text(&view, unix_now())),
    }
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The view for people.
fn text(view: &Value, now: u64) -> String {
    let mut out = String::new();
    let p = &view["policy"];
    if p.is_null() {
        out.push_str("policy: none (each config change reaches every proxy at once)\n");
    } else {
        out.push_str(&format!(
            "policy: {} at {} (canary {}, bake {}s)\n",
            p["name"].as_str().unwrap_or("?"),
            p["source"].as_str().unwrap_or("?"),
            p["canary"],
            p["bake_time_seconds"]
        ));
    }
    let c = &view["current"];
    if c.is_null() {
        out.push_str("rollout: none in progress\n");
    } else {
        let ends = c["bake_ends_at"].as_u64().unwrap_or(0);
        let canary: Vec<&str> = (c["canary"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!(
            "rollout: generation {} {} on {} canary proxies ({}); bake ends in {}s\n",
            c["generation"],
            c["state"].as_str().unwrap_or("?"),
            canary.len(),
            canary.join(", "),
            ends.saturating_sub(now)
        ));
    }
    match view["last_good"].as_u64() {
        Some(n) => out.push_str(&format!("last good generation: {n}\n")),
        None => out.push_str("last good generation: none\n"),
    }
    // Replicas only: the one keeping the bake time (the canary list above
    // is the canary proxies connected to the replica asked).
    if let Some(driver) = view.get("driver") {
        let name = driver.as_str().unwrap_or("none (being elected)");
        out.push_str(&format!("driven by replica: {name}\n"));
    }
    let history = view["history"].as_array().cloned().unwrap_or_default();
    if !history.is_empty() {
        out.push_str("history (newest first):\n");
    }
    for e in history {
        let reason = e["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  generation {:<4} {:<10} {}s ago{}\n",
            e["generation"].as_u64().unwrap_or(0),
            e["outcome"].as_str().unwrap_or("?"),
            now.saturating_sub(e["at"].as_u64().unwrap_or(now)),
            reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_the_failed_generation_and_its_reason() {
        let view = serde_json::json!({
            "policy": {"name": "default/staged", "source": "c/r.yaml:1", "canary": {"percent": 10.0}, "bake_time_seconds": 30.0},
            "current": {"generation": 4, "state": "baking", "canary": ["a", "b"], "started_at": 90, "bake_ends_at": 120, "reason": null},
            "history": [{"generation": 3, "outcome": "failed", "reason": "canary proxy a rejected the RouteConfiguration: bad", "at": 95}],
            "last_good": 2,
        });
        let t = text(&view, 100);
        assert!(
            t.contains("generation 4 baking on 2 canary proxies (a, b); bake ends in 20s"),
            "{t}"
        );
        assert!(
            t.contains("generation 3    failed     5s ago: canary proxy a rejected"),
            "{t}"
        );
        assert!(t.contains("last good generation: 2"), "{t}");
    }
}
