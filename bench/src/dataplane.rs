//! `trellis-bench dataplane`: what a request pays for crossing two
//! sidecars. At fixed request rates an open-loop generator (`load`) calls
//! the same app three ways on 127.0.0.1: directly, through two minimal
//! hand-written Envoys with mTLS (`minimal`), and through two Trellis
//! sidecars with their default config (`mesh`), plus any variants of the
//! Trellis config. Each point prints one JSON line (latency percentiles,
//! the sidecars' CPU over the measured window and their RSS, the load
//! average); the summary (`report`) gives the latency each path adds over
//! the direct call and each figure against the minimal pair, as medians
//! over runs with their spread.

mod app;
mod load;
mod mesh;
mod minimal;
mod procfs;
mod report;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::server;
use load::{Plan, Target};
use report::Point;

/// How long a freshly started path may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `trellis-bench dataplane`.
#[derive(Debug, clap::Args)]
pub struct DataplaneArgs {
    /// Request rates in requests per second (comma-separated); 0 measures
    /// the idle sidecars' CPU.
    #[arg(long, value_delimiter = ',', default_values_t = [500.0, 1000.0])]
    rates: Vec<f64>,
    /// Keep-alive HTTP/1.1 connections the generator spreads requests over.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Bytes of every response body.
    #[arg(long, default_value_t = 1024)]
    response_bytes: usize,
    /// Seconds each point is measured for.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of the same load before each point, not measured.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Runs over all points; the summary gives medians and spreads.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A further Trellis path, `NAME=FILE[+FILE...]`: its own control
    /// plane and sidecars with these config files added (repeatable), e.g.
    /// a `Telemetry` that turns the access log on.
    #[arg(long = "variant", value_name = "NAME=FILES", value_parser = parse_variant)]
    variants: Vec<Variant>,
    /// The trellis binary (default: $TRELLIS_BIN, else built next to this program).
    #[arg(long)]
    trellis: Option<PathBuf>,
    /// Exit 1 if any request failed.
    #[arg(long)]
    check: bool,
}

/// A Trellis path with extra config files.
#[derive(Debug, Clone)]
pub struct Variant {
    name: String,
    files: Vec<PathBuf>,
}

fn parse_variant(s: &str) -> Result<Variant, String> {
    let (name, files) = s.split_once('=').ok_or("expected NAME=FILE[+FILE...]")?;
    let files: Vec<PathBuf> = files.split('+').map(PathBuf::from).collect();
    if let Some(f) = files.iter().find(|f| !f.is_file()) {
        return Err(format!("{} is not a file", f.display()));
    }
    Ok(Variant {
        name: format!("trellis-{name}"),
        files,
    })
}

/// One way to reach the app: where the load goes and the sidecars whose
/// CPU and memory count.
struct Path {
    name: String,
    target: Target,
    sidecars: Vec<u32>,
}

/// Runs every point and prints the JSON lines and the summary; Ok(false)
/// when `--check` saw a failed request. Ctrl-C drops the run, and with it
/// every child (their guards kill and reap them).
pub async fn dataplane(args: DataplaneArgs) -> anyhow::Result<bool> {
    tokio::select! {
        r = run(&args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}

async fn run(args: &DataplaneArgs) -> anyhow::Result<bool> {
    // The harness that starts `trellis serve` and the sidecars finds the
    // binary through TRELLIS_BIN; set before any child starts.
    std::env::set_var("TRELLIS_BIN", server::trellis_bin(args.trellis.clone())?);
    let app = app::App::start(args.response_bytes)?;
    let pair = minimal::MinimalPair::start(app.port()).await?;
    let mut meshes = vec![(
        "trellis".to_string(),
        mesh::TrellisPair::start(app.port(), &[]).await?,
    )];
    for v in &args.variants {
        meshes.push((
            v.name.clone(),
            mesh::TrellisPair::start(app.port(), &v.files).await?,
        ));
    }
    let mut paths = vec![
        Path {
            name: "direct".into(),
            target: target(app.port(), "app"),
            sidecars: Vec::new(),
        },
        Path {
            name: "minimal".into(),
            target: target(pair.port, mesh::SERVER_HOST),
            sidecars: pids(&[pair.client.pid(), pair.server.pid()])?,
        },
    ];
    for (name, m) in &meshes {
        println!(
            "{}",
            serde_json::json!({"path": name, "config": m.describe().await?})
        );
        paths.push(Path {
            name: name.clone(),
            target: target(m.client.outbound_port(), mesh::SERVER_HOST),
            sidecars: pids(&[m.client.pid(), m.server.pid()])?,
        });
    }
    for path in &paths {
        load::wait_answering(&path.target, READY_TIMEOUT).await?;
    }
    let points = sweep(args, &paths).await?;
    report::print(&points);
    Ok(!args.check || points.iter().all(|p| p.errors == 0))
}

fn target(port: u16, host: &str) -> Target {
    Target {
        addr: ([127, 0, 0, 1], port).into(),
        host: host.to_string(),
    }
}

fn pids(ids: &[Option<u32>]) -> anyhow::Result<Vec<u32>> {
    ids.iter()
        .map(|p| p.ok_or_else(|| anyhow::anyhow!("an Envoy exited before the run")))
        .collect()
}

/// Every run, rate and path in turn; each point is printed as it ends.
async fn sweep(args: &DataplaneArgs, paths: &[Path]) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for run in 1..=args.runs {
        for &rate in &args.rates {
            for path in paths {
                let p = measure(args, path, rate, run).await?;
                println!("{}", p.json());
                points.push(p);
            }
        }
    }
    Ok(points)
}

/// One point: a warm-up at the same rate, then the measured window with
/// the sidecars' CPU time read at its two ends and their RSS after it.
async fn measure(
    args: &DataplaneArgs,
    path: &Path,
    rate: f64,
    run: usize,
) -> anyhow::Result<Point> {
    let plan = |secs| Plan {
        rate,
        duration: Duration::from_secs(secs),
        connections: args.connections,
    };
    load::run(&path.target, &plan(args.warmup)).await?;
    let cpu_before = cpu_s(&path.sidecars)?;
    let started = Instant::now();
    let out = load::run(&path.target, &plan(args.duration)).await?;
    let window = started.elapsed().as_secs_f64();
    let cpu = cpu_s(&path.sidecars)? - cpu_before;
    let mut rss_kb = 0;
    for &pid in &path.sidecars {
        rss_kb += server::proc_status_kb(pid, "VmRSS:")?;
    }
    let answered_rate = out.latencies_us.len() as f64 / args.duration as f64;
    let has_sidecars = !path.sidecars.is_empty();
    Ok(Point {
        run,
        rate,
        path: path.name.clone(),
        p50_ms: ms(stats::percentile(&out.latencies_us, 50.0)),
        p90_ms: ms(stats::percentile(&out.latencies_us, 90.0)),
        p99_ms: ms(stats::percentile(&out.latencies_us, 99.0)),
        max_ms: ms(out.latencies_us.last().copied()),
        answered_rate,
        errors: out.errors,
        first_error: out.first_error,
        cpu_cores: has_sidecars.then_some(cpu / window),
        // Cores the pair used per 1,000 answered requests per second (none
        // at rate 0, which measures the idle pair).
        cpu_per_1k: (has_sidecars && answered_rate > 0.0)
            .then(|| cpu / window / (answered_rate / 1000.0)),
        rss_mib: has_sidecars.then(|| rss_kb as f64 / 1024.0),
        load1: procfs::load1()?,
    })
}

fn cpu_s(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|&p| procfs::cpu_s(p)).sum()
}

fn ms(us: Option<u64>) -> f64 {
    us.map_or(f64::NAN, |us| us as f64 / 1000.0)
}
