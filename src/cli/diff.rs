//! `trellis diff OLD NEW` and `trellis diff --git REV1..REV2 [DIR]`: what a
//! config change does to every proxy's Envoy resources.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use trellis::config::{load_dir, LoadError, MeshConfig};
use trellis::diff::{diff, Format};
use trellis::render::{
    declared_workloads, parse_proxy_spec, workloads_from_debug, Renderer, Workload,
};

use super::EXIT_USAGE;

/// Flags of `trellis diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old config directory; with `--git`, the config directory inside
    /// the work tree (default: the current directory).
    old: Option<PathBuf>,
    /// The new config directory (not with `--git`).
    new: Option<PathBuf>,
    /// Compare two revisions of the config directory: `REV1..REV2`.
    #[arg(long, value_name = "REV1..REV2")]
    git: Option<String>,
    /// Also render a sidecar of SERVICE[.NAMESPACE] with these labels
    /// (repeatable), e.g. `--proxy payment:version=v2`.
    #[arg(long = "proxy", value_name = "SERVICE[:k=v,...]")]
    proxies: Vec<String>,
    /// Render the proxies a running control plane reports (its
    /// `/debug/proxies`) instead of those the configs declare.
    #[arg(long, value_name = "ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    format: DiffFormat,
}

/// Output of `trellis diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
    Json,
}

/// Exit 0 when no proxy changes, 1 when some do, 2 on any error
/// (including an invalid config).
pub fn run(args: &DiffArgs) -> ExitCode {
    match run_inner(args) {
        Ok(changed) => ExitCode::from(u8::from(changed)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run_inner(args: &DiffArgs) -> anyhow::Result<bool> {
    let (old, new, _tmp) = match &args.git {
        Some(range) => {
            if args.new.is_some() {
                bail!("with --git give at most one directory (the config dir in the work tree)");
            }
            let dir = args.old.clone().unwrap_or_else(|| PathBuf::from("."));
            let (a, b) = range
                .split_once("..")
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .context("--git expects REV1..REV2")?;
            let tmp = tempfile::tempdir().context("creating a temporary directory")?;
            let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
            materialize(&dir, a, &old)?;
            materialize(&dir, b, &new)?;
            (old, new, Some(tmp))
        }
        None => match (&args.old, &args.new) {
            (Some(o), Some(n)) => (o.clone(), n.clone(), None),
            _ => bail!("give OLD and NEW config directories, or --git REV1..REV2"),
        },
    };
    let old_mesh = load("OLD", &old)?;
    let new_mesh = load("NEW", &new)?;
    let extra: Vec<Workload> = (args.proxies.iter())
        .map(|s| parse_proxy_spec(s))
        .collect::<Result<_, _>>()?;
    let live = match args.admin_addr {
        Some(addr) => Some(live_workloads(addr)?),
        None => None,
    };
    let workloads = |mesh: &MeshConfig| {
        let mut all = live.clone().unwrap_or_else(|| declared_workloads(mesh));
        all.extend(extra.iter().cloned());
        all
    };
    let mut renderer = Renderer::new()?;
    let before = renderer.render(&old_mesh, &workloads(&old_mesh));
    let after = renderer.render(&new_mesh, &workloads(&new_mesh));
    let report = diff(&before, &after)?;
    let format = match args.format {
        DiffFormat::Text => Format::Text,
        DiffFormat::Markdown => Format::Markdown,
        DiffFormat::Json => Format::Json,
    };
    print!("{}", report.render(format));
    Ok(!report.is_empty())
}

/// Loads a config, printing `validate`'s positioned errors when invalid.
fn load(which: &str, dir: &Path) -> anyhow::Result<MeshConfig> {
    match load_dir(dir) {
        Ok(mesh) => Ok(mesh),
        Err(LoadError::Invalid(diags)) => {
            println!("{diags}");
            bail!(
                "{which} config {} is invalid: {} error(s)",
                dir.display(),
                diags.0.len()
            )
        }
        Err(e) => Err(e).with_context(|| format!("loading {which} config {}", dir.display())),
    }
}

/// Writes revision `rev` of the work-tree directory `dir` into `to`, with
/// `git archive REV:PREFIX | tar -x`.
fn materialize(dir: &Path, rev: &str, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let prefix = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel", "--show-prefix"])
        .output()
        .context("running git (is it installed?)")?;
    if !prefix.status.success() {
        bail!(
            "{} is not in a Git work tree: {}",
            dir.display(),
            String::from_utf8_lossy(&prefix.stderr).trim()
        );
    }
    let out = String::from_utf8_lossy(&prefix.stdout).to_string();
    let mut lines = out.lines();
    let top = lines.next().context("git rev-parse printed no top level")?;
    let prefix = lines.next().unwrap_or_default().trim().to_string();
    // From the top level: in a subdirectory, git archive keeps only the
    // paths under it, which the `REV:PREFIX` tree no longer has.
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(top)
        .args(["archive", "--format=tar", &format!("{rev}:{prefix}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running git archive")?;
    let tar_in = archive.stdout.take().context("git archive's output")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(to)
        .stdin(tar_in)
        .output()
        .context("running tar")?;
    let git = archive.wait_with_output().context("git archive")?;
    if !git.status.success() {
        bail!(
            "git archive {rev}:{prefix}: {}",
            String::from_utf8_lossy(&git.stderr).trim()
        );
    }
    if !tar.status.success() {
        bail!("tar: {}", String::from_utf8_lossy(&tar.stderr).trim());
    }
    Ok(())
}

/// The proxies a running control plane reports.
fn live_workloads(addr: SocketAddr) -> anyhow::Result<Vec<Workload>> {
    let url = format!("http://{addr}/debug/proxies");
    let body = super::block_on(async {
        let client = crate::demo::http::HttpClient::new(Duration::from_secs(10));
        let reply = client.get(&url, None).await?;
        if reply.status != 200 {
            bail!("GET {url}: HTTP {}", reply.status);
        }
        Ok(reply.body)
    })
    .with_context(|| format!("GET {url}"))?;
    let view: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("reading {url}"))?;
    Ok(workloads_from_debug(&view)?)
}
