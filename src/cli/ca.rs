//! `trellis ca rotate`: asks a running control plane to rotate its root and
//! follows the rotation until it is done.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::demo::http::HttpClient;
use trellis::ca::{Ca, CaConfig, PluginCa, SpiffeId};

/// `trellis ca ...`.
#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Rotate the self-signed root: trust a new root, move every leaf to it,
    /// then drop the old one, waiting for all proxies between the steps.
    Rotate(RotateArgs),
    /// Print the trust bundle (every trusted root, PEM): what
    /// `trellis bootstrap --xds-ca-file` pins. Creates the CA on first use.
    Root(RootArgs),
    /// Issue a workload certificate to files (cert.pem, key.pem 0600,
    /// root.pem), for a mesh process without a sidecar such as
    /// `trellis ratelimit --tls-dir`.
    Issue(IssueArgs),
}

/// Flags of `trellis ca issue`.
#[derive(Debug, Args)]
struct IssueArgs {
    /// The control plane's state directory.
    #[arg(long, value_name = "DIR", default_value = "./.trellis")]
    state_dir: PathBuf,
    /// Plug-in CA directory (as `trellis serve --ca-dir`).
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// The mesh's trust domain (the `Mesh` resource's `trustDomain`).
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// The workload's namespace.
    #[arg(long)]
    namespace: String,
    /// The workload's service account.
    #[arg(long)]
    service_account: String,
    /// How long the certificate is valid.
    #[arg(long, default_value = "720h", value_parser = super::parse_duration)]
    ttl: Duration,
    /// Where to write cert.pem, key.pem and root.pem (created 0700).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Flags of `trellis ca root`.
#[derive(Debug, Args)]
struct RootArgs {
    /// The control plane's state directory.
    #[arg(long, value_name = "DIR", default_value = "./.trellis")]
    state_dir: PathBuf,
    /// Plug-in CA directory (as `trellis serve --ca-dir`).
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Flags of `trellis ca rotate`.
#[derive(Debug, Args)]
struct RotateArgs {
    /// The control plane's admin address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_addr: SocketAddr,
    /// How long to follow the rotation before giving up (it keeps running).
    #[arg(long, default_value = "10m", value_parser = super::parse_duration)]
    timeout: Duration,
    /// Stop once the new root is trusted (the old one still signs): then
    /// give sidecars pinned with `--xds-ca-file` the bundle of both roots
    /// (`trellis ca root`) and run `trellis ca rotate` again to finish.
    #[arg(long)]
    begin_only: bool,
}

/// Runs `trellis ca ...`.
pub async fn run(args: CaArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CaCommand::Rotate(a) => rotate(a).await,
        CaCommand::Root(a) => root(&a),
        CaCommand::Issue(a) => issue(&a),
    }
}

fn issue(args: &IssueArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let ca = Ca::load_or_create(&CaConfig {
        state_dir: args.state_dir.clone(),
        plugin: args.ca_dir.as_deref().map(PluginCa::from_dir),
    })?;
    let id = SpiffeId::new(&args.trust_domain, &args.namespace, &args.service_account)?;
    let cert = ca.issue(&id, args.ttl)?;
    let out = &args.out;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, text: &str, mode: u32| -> anyhow::Result<()> {
        let path = out.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    };
    write("key.pem", cert.key.expose_secret(), 0o600)?;
    write("cert.pem", &cert.chain_pem, 0o644)?;
    write("root.pem", &ca.trust_bundle_pem(), 0o644)?;
    eprintln!(
        "wrote {}/cert.pem, key.pem (0600) and root.pem for {}",
        out.display(),
        id.uri()
    );
    Ok(ExitCode::SUCCESS)
}

fn root(args: &RootArgs) -> anyhow::Result<ExitCode> {
    let ca = Ca::load_or_create(&CaConfig {
        state_dir: args.state_dir.clone(),
        plugin: args.ca_dir.as_deref().map(PluginCa::from_dir),
    })?;
    let bundle = ca.trust_bundle_pem();
    match &args.output {
        // Replaced whole (temp file, then rename), so a reader never sees
        // half a bundle when the file is refreshed during a rotation.
        Some(path) => {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            std::fs::write(&tmp, bundle)
                .and_then(|()| std::fs::rename(&tmp, path))
                .with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{bundle}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate(args: RotateArgs) -> anyhow::Result<ExitCode> {
    let client = HttpClient::new(Duration::from_secs(10));
    let base = format!("http://{}", args.admin_addr);
    let query = if args.begin_only {
        "?begin_only=true"
    } else {
        ""
    };
    let reply = client.post(&format!("{base}/ca/rotate{query}")).await?;
    if reply.status != 202 {
        bail!(
            "the control plane refused: HTTP {}: {}",
            reply.status,
            reply.body.trim()
        );
    }
    eprintln!("root rotation started");
    let started = Instant::now();
    let mut phase = String::new();
    while started.elapsed() < args.timeout {
        let view: serde_json::Value =
            serde_json::from_str(&client.get(&format!("{base}/debug/ca"), None).await?.body)
                .context("reading /debug/ca")?;
        let now = view["phase"].as_str().unwrap_or("?").to_string();
        if now != phase {
            eprintln!("  phase: {now}");
            phase = now;
        }
        if view["rotation_running"] == false {
            let last = &view["last_rotation"];
            if last["ok"] == true && args.begin_only {
                println!(
                    "new root trusted (the old one still signs); roots: {}",
                    view["roots"]
                );
                return Ok(ExitCode::SUCCESS);
            }
            if last["ok"] == true {
                println!("root rotation finished; roots: {}", view["roots"]);
                return Ok(ExitCode::SUCCESS);
            }
            bail!("root rotation stopped: {}", last["error"]);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "the rotation did not finish within {:?} (it continues; see /debug/ca)",
        args.timeout
    )
}
