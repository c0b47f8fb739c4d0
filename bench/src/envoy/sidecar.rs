//! One real Envoy sidecar: its bootstrap written by `trellis bootstrap`,
//! the process in a kill-and-reap guard, and readers for its admin API.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use trellis_integration_tests::client::http_get;
use trellis_integration_tests::envoy::{envoy_bin, parse_stats};
use trellis_integration_tests::{free_port, ChildGuard};

use crate::server::proc_status_kb;

/// How often the waits below poll Envoy's admin API.
const POLL: Duration = Duration::from_millis(50);

/// What a sidecar is: its service, its number, the control plane it dials.
pub struct Spec<'a> {
    /// The `trellis` binary (writes the bootstrap).
    pub trellis: &'a Path,
    /// The control plane's ADS address.
    pub xds: SocketAddr,
    /// Service name (`--service`).
    pub service: String,
    /// Unique per sidecar: names the node and the files.
    pub index: usize,
    /// `--ads-mode`: `sotw` or `delta`.
    pub ads_mode: &'static str,
    /// Directory for the bootstrap and Envoy's log.
    pub dir: &'a Path,
}

/// A running Envoy, killed and reaped when dropped.
pub struct Sidecar {
    child: ChildGuard,
    /// Its admin port on 127.0.0.1.
    pub admin: u16,
    /// Its node id.
    pub node: String,
}

impl Spec<'_> {
    /// `trellis bootstrap` for this sidecar into `out`; returns the admin port.
    fn write_bootstrap(&self, node: &str, out: &Path) -> anyhow::Result<u16> {
        let admin = free_port();
        let port = |p: u16| p.to_string();
        let out = Command::new(self.trellis)
            .args(["bootstrap", "--service", &self.service, "--node-id", node])
            .args(["--app-port", &port(free_port())])
            .args(["--inbound-port", &port(free_port())])
            .args(["--outbound-port", &port(free_port())])
            .args(["--admin-port", &port(admin), "--stats-port", "0"])
            .args(["--xds-addr", &self.xds.to_string()])
            .args(["--ads-mode", self.ads_mode, "-o"])
            .arg(out)
            .output()
            .context("running trellis bootstrap")?;
        if !out.status.success() {
            bail!(
                "trellis bootstrap failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(admin)
    }
}

impl Sidecar {
    /// Writes the bootstrap and starts Envoy (without waiting for it).
    pub fn spawn(spec: &Spec<'_>) -> anyhow::Result<Sidecar> {
        let node = format!("bench-envoy-{}", spec.index);
        let bootstrap = spec.dir.join(format!("{node}.yaml"));
        let admin = spec.write_bootstrap(&node, &bootstrap)?;
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c").arg(&bootstrap);
        // Many Envoys share this host: no hot-restart shared memory (so no
        // base id to keep apart), no draining on listener updates, and one
        // worker thread each, as the machine has two cores for everything.
        cmd.args(["--disable-hot-restart", "--drain-strategy", "immediate"])
            .args(["--concurrency", "1", "--log-level", "warn"]);
        let log = spec.dir.join(format!("{node}.log"));
        let child = ChildGuard::spawn(&node, cmd, &log)?;
        Ok(Sidecar { child, admin, node })
    }

    /// `GET` an admin path; fails unless 200.
    pub async fn admin(&self, path: &str) -> anyhow::Result<String> {
        let (status, body) = http_get(self.admin, path).await?;
        if status != 200 {
            bail!("{} admin {path}: HTTP {status}", self.node);
        }
        Ok(body)
    }

    /// An admin path parsed as JSON.
    pub async fn admin_json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&self.admin(path).await?)?)
    }

    /// Counters and gauges of `/stats?filter=FILTER`.
    pub async fn stats(
        &self,
        filter: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        Ok(parse_stats(
            &self.admin(&format!("/stats?filter={filter}")).await?,
        ))
    }

    /// Polls `probe` until it returns `Some` or `deadline` passes; fails
    /// early (with the log's tail) if Envoy exits.
    pub async fn poll<T, F, Fut>(
        &mut self,
        what: &str,
        deadline: Instant,
        mut probe: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut(u16) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        loop {
            if let Some(v) = probe(self.admin).await {
                return Ok(v);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("{}: {what}: not within the deadline", self.node);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails (with the tail of its log) if Envoy has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_exited() {
            bail!(
                "{} exited ({status}):\n{}",
                self.node,
                self.child.log_tail()
            );
        }
        Ok(())
    }

    /// Waits until `/ready` says LIVE (initial xDS fetch done).
    pub async fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        self.poll("ready", deadline, |port| async move {
            matches!(http_get(port, "/ready").await, Ok((200, _))).then_some(())
        })
        .await
    }

    /// Envoy's resident set size in KiB: all of it (`VmRSS`), and the
    /// anonymous part (`RssAnon`: heap and stacks, without the pages of the
    /// binary that every Envoy on the host shares).
    pub fn rss_kb(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self.child.id().context("envoy has exited")?;
        Ok((
            proc_status_kb(pid, "VmRSS:")?,
            proc_status_kb(pid, "RssAnon:")?,
        ))
    }
}
