//! The control plane of one `xds` run: one `trellis serve`, or with
//! `--replicas R` R replicas sharing a real etcd (one member, data on
//! tmpfs), each with its own copy of the config directory and the first
//! replica's CA and token key, as docs/operations.md tells operators.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use trellis_integration_tests::client::http_get_at;
use trellis_integration_tests::etcd::Etcd;
use trellis_integration_tests::trellis::copy_trust;

use crate::mesh::Layout;
use crate::server::Server;

/// Every replica, its config directory, and the etcd they share.
pub struct Plane {
    /// The replicas, in start order; client I connects to replica I mod R.
    pub servers: Vec<Server>,
    configs: Vec<PathBuf>,
    // Dropped after the servers (fields drop in order): etcd outlives them.
    _etcd: Option<Etcd>,
}

impl Plane {
    /// Writes the mesh into one config directory per replica under `tmp`,
    /// starts etcd when `replicas > 1`, then the replicas (the first one
    /// with state directory `state`, which `trellis token` already used).
    pub async fn start(
        bin: &Path,
        tmp: &Path,
        state: &Path,
        layout: &Layout,
        replicas: usize,
        insecure: bool,
    ) -> anyhow::Result<Plane> {
        let etcd = match replicas {
            0 | 1 => None,
            _ => Some(Etcd::start(1).await.context("starting etcd")?),
        };
        let store: Vec<String> = match &etcd {
            Some(e) => vec!["--store".into(), e.store_url()],
            None => Vec::new(),
        };
        let extra: Vec<&str> = store.iter().map(String::as_str).collect();
        let mut servers = Vec::new();
        let mut configs = Vec::new();
        for r in 0..replicas.max(1) {
            let config = tmp.join(format!("config-{r}"));
            std::fs::create_dir_all(&config)?;
            layout.write_all(&config)?;
            let own_state = match r {
                0 => state.to_path_buf(),
                _ => {
                    let own = tmp.join(format!("state-{r}"));
                    std::fs::create_dir_all(&own)?;
                    copy_trust(state, &own)?;
                    own
                }
            };
            let log = tmp.join(format!("trellis-{r}.log"));
            let server = Server::start_with(bin, &config, &own_state, insecure, &log, &extra);
            servers.push(server.await?);
            configs.push(config);
        }
        Ok(Plane {
            servers,
            configs,
            _etcd: etcd,
        })
    }

    /// Applies the same file change to every replica's config directory,
    /// one after the other, as a GitOps sync would.
    pub fn rewrite(&self, layout: &Layout, i: usize, weight: u32, gen: u32) -> anyhow::Result<()> {
        for dir in &self.configs {
            layout.rewrite(dir, i, weight, gen)?;
        }
        Ok(())
    }

    /// Resident set size of all replicas together, in KiB.
    pub fn rss_kb(&self) -> anyhow::Result<u64> {
        self.servers.iter().map(Server::rss_kb).sum()
    }

    /// CPU seconds of all replicas together.
    pub fn cpu_s(&self) -> anyhow::Result<f64> {
        self.servers.iter().map(Server::cpu_s).sum()
    }

    /// Waits until every replica counts `n` registered sidecars (its own
    /// and, through etcd, every other replica's); false at the deadline.
    pub async fn wait_registered(&self, n: usize, deadline: Instant) -> bool {
        let line = format!("trellis_registered_sidecars {n}\n");
        for server in &self.servers {
            while !metrics(server.admin).await.is_ok_and(|m| m.contains(&line)) {
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        true
    }
}

/// `/metrics` of the replica whose admin API is at `admin`.
async fn metrics(admin: SocketAddr) -> anyhow::Result<String> {
    let (status, body) = http_get_at(admin.ip(), admin.port(), "/metrics").await?;
    if status != 200 {
        bail!("/metrics: HTTP {status}");
    }
    Ok(body)
}
