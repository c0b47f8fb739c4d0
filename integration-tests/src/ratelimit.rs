//! Rate-limit scenarios: paced load, and the processes of global limits
//! (Debian's `redis-server` and `trellis ratelimit`), each started on a
//! free port and killed and reaped on drop.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::child::ChildGuard;
use crate::client::{Client, Reply};
use crate::ports::free_port;
use crate::trellis::{trellis_bin, Trellis};
use crate::wait::wait_until;

/// Sends GET `path` to `host` through the sidecar on `port`, `rate` per
/// second for `duration` (each request on its own task, so a slow answer
/// does not slow the pace). `Err` holds a transport error.
pub async fn paced(
    client: &Client,
    port: u16,
    host: &str,
    path: &str,
    rate: u32,
    duration: Duration,
) -> Vec<Result<Reply, String>> {
    let n = (f64::from(rate) * duration.as_secs_f64()).round() as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        tick.tick().await;
        let (client, host, path) = (client.clone(), host.to_string(), path.to_string());
        tasks.push(tokio::spawn(async move {
            (client.get(port, &host, &path, &[]).await).map_err(|e| e.to_string())
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

/// How many replies had `status`.
pub fn count(replies: &[Result<Reply, String>], status: u16) -> usize {
    (replies.iter())
        .filter(|r| matches!(r, Ok(r) if r.status == status))
        .count()
}

/// A `redis-server` on a free port, with no persistence.
#[derive(Debug)]
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts it and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
        let log = dir.path().join("redis.log");
        let child = ChildGuard::spawn("redis-server", cmd, &log)
            .context("starting redis-server (Debian package redis-server)")?;
        let redis = Redis {
            port,
            child,
            _dir: dir,
        };
        wait_port(port, "redis-server").await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill();
    }
}

/// A `trellis ratelimit` on a free port, with a workload certificate
/// issued by `trellis`'s CA (`trellis ca issue`) for
/// `trellis-system/ratelimit`.
#[derive(Debug)]
pub struct RatelimitService {
    /// Its gRPC port on 127.0.0.1.
    pub port: u16,
    child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl RatelimitService {
    /// Issues its certificate, starts it on `port` and waits until it listens.
    pub async fn start(trellis: &Trellis, redis: &Redis, port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let tls = dir.path().join("tls");
        issue_cert(trellis.state_dir(), &tls)?;
        let mut cmd = Command::new(trellis_bin()?);
        cmd.arg("ratelimit")
            .arg("--config")
            .arg(trellis.config_dir())
            .args(["--redis", &redis.url()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-dir")
            .arg(&tls);
        let log = dir.path().join("ratelimit.log");
        let child = ChildGuard::spawn("trellis ratelimit", cmd, &log)?;
        let me = RatelimitService {
            port,
            child,
            _dir: dir,
        };
        wait_port(port, "trellis ratelimit")
            .await
            .with_context(|| me.child.log_tail())?;
        Ok(me)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.child.log()
    }
}

fn issue_cert(state_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let status = Command::new(trellis_bin()?)
        .args(["ca", "issue", "--namespace", "trellis-system"])
        .args(["--service-account", "ratelimit", "--ttl", "1h"])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--out")
        .arg(out)
        .status()?;
    anyhow::ensure!(status.success(), "trellis ca issue failed: {status}");
    Ok(())
}

async fn wait_port(port: u16, what: &str) -> anyhow::Result<()> {
    wait_until(
        Duration::from_secs(15),
        Duration::from_millis(25),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await
    .with_context(|| format!("{what} not listening on {port}"))?;
    Ok(())
}
