//! The `trellis serve` child: started on free loopback ports, watched
//! through `/proc/PID`, killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// A running control plane.
pub struct Server {
    child: Child,
    /// Its ADS address.
    pub xds: SocketAddr,
    /// Its admin HTTP address (`/metrics`).
    pub admin: SocketAddr,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The `trellis` binary: `explicit`, or the one next to this program, built
/// first with the same profile (so `cargo run --release -p trellis-bench`
/// benchmarks a release `trellis`).
pub fn trellis_bin(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit.or_else(|| std::env::var_os("TRELLIS_BIN").map(PathBuf::from)) {
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no directory of the bench binary")?;
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "trellis", "--bin", "trellis"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("running cargo build for the trellis binary")?;
    if !status.success() {
        bail!("cargo build of the trellis binary failed");
    }
    Ok(dir.join("trellis"))
}

/// Issues a workload token for `service` with `trellis token`.
// Kept for callers of the one-namespace API (the envoy bench).
#[allow(dead_code)]
pub fn issue_token(bin: &Path, state: &Path, service: &str) -> anyhow::Result<String> {
    issue_token_in(bin, state, service, "default")
}

/// Issues a workload token for `service` of `namespace`.
pub fn issue_token_in(
    bin: &Path,
    state: &Path,
    service: &str,
    namespace: &str,
) -> anyhow::Result<String> {
    let out = std::process::Command::new(bin)
        .args(["token", "--service", service, "--namespace", namespace])
        .arg("--state-dir")
        .arg(state)
        .output()
        .context("running trellis token")?;
    if !out.status.success() {
        bail!(
            "trellis token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Resident set size of process `pid` in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kb_of(pid: u32) -> anyhow::Result<u64> {
    proc_status_kb(pid, "VmRSS:")
}

/// The `key` line (e.g. `RssAnon:`) of /proc/PID/status, in KiB.
pub fn proc_status_kb(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    let kb = line.split_whitespace().nth(1).context("bad status line")?;
    Ok(kb.parse()?)
}

/// Polls (bounded) until the ADS port accepts; fails if the child exits.
async fn wait_listening(child: &mut Child, xds: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(xds).await.is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("trellis serve exited: {status}");
        }
        if Instant::now() > deadline {
            bail!("trellis serve did not listen within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

impl Server {
    /// Starts `trellis serve` and waits (bounded) until ADS accepts.
    pub async fn start(
        bin: &Path,
        config: &Path,
        state: &Path,
        insecure: bool,
        log: &Path,
    ) -> anyhow::Result<Server> {
        Server::start_with(bin, config, state, insecure, log, &[]).await
    }

    /// [`Server::start`] with more `trellis serve` flags (e.g.
    /// `--grace-period 0s`).
    pub async fn start_with(
        bin: &Path,
        config: &Path,
        state: &Path,
        insecure: bool,
        log: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        let xds = free_port()?;
        let admin = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state);
        cmd.args([
            "--xds-addr",
            &xds.to_string(),
            "--admin-addr",
            &admin.to_string(),
        ]);
        if insecure {
            cmd.arg("--insecure-xds");
        }
        cmd.args(extra);
        let log = std::fs::File::create(log)?;
        cmd.env(
            "RUST_LOG",
            std::env::var("BENCH_TRELLIS_LOG").unwrap_or_else(|_| "warn".into()),
        );
        cmd.stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting trellis serve")?;
        wait_listening(&mut child, xds).await?;
        Ok(Server { child, xds, admin })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("trellis serve has exited")
    }

    /// Resident set size in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kb(&self) -> anyhow::Result<u64> {
        rss_kb_of(self.pid()?)
    }

    /// User plus system CPU seconds (/proc/PID/stat utime + stime, in
    /// clock ticks of 1/100 s, Linux's USER_HZ).
    pub fn cpu_s(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?))?;
        // Fields after the parenthesised command name start at field 3 (state).
        let rest = stat.rsplit_once(')').context("bad stat")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11).context("no utime")?.parse::<u64>()?
            + f.get(12).context("no stime")?.parse::<u64>()?;
        Ok(ticks as f64 / 100.0)
    }
}
