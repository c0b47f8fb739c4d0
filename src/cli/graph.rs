//! `trellis graph`: the service graph a running control plane observed,
//! read from its admin API (`/debug/graph`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use trellis::graph::{render, Graph};

use crate::demo::http::HttpClient;

/// Flags of `trellis graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The control plane's admin address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_addr: SocketAddr,
    /// `text` for people, `json` for programs, `dot` for Graphviz.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Dot,
}

/// Reads `/debug/graph` of the control plane at `admin_addr`.
pub async fn fetch(admin_addr: SocketAddr) -> anyhow::Result<Graph> {
    let url = format!("http://{admin_addr}/debug/graph");
    let reply = (HttpClient::new(Duration::from_secs(10))
        .get(&url, None)
        .await)
        .with_context(|| format!("GET {url}"))?;
    if reply.status != 200 {
        bail!("GET {url}: HTTP {}: {}", reply.status, reply.body.trim());
    }
    serde_json::from_str(&reply.body).with_context(|| format!("reading {url}"))
}

/// Runs `trellis graph`.
pub async fn run(args: GraphArgs) -> anyhow::Result<ExitCode> {
    let graph = fetch(args.admin_addr).await?;
    match args.format {
        Format::Text => print!("{}", render::text(&graph)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&graph)?),
        Format::Dot => print!("{}", render::dot(&graph)),
    }
    Ok(ExitCode::SUCCESS)
}
