//! etcd for the replica tests: Debian's `etcd` (3.4) started on free ports
//! with a temporary data directory, one process per member, each killed and
//! reaped on drop like every other child of the tests.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::child::ChildGuard;
use crate::client::http_get_at;
use crate::netns::Host;
use crate::ports::free_port;
use crate::wait::wait_until;

/// etcd's data on tmpfs (`/dev/shm`) where the machine has it: etcd syncs
/// its log on every write, and a disk shared with builds would make its
/// latency, not Trellis's, what a test or benchmark measures.
fn data_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("trellis-etcd")
            .tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
}

/// One member of a test etcd cluster.
#[derive(Debug)]
pub struct Member {
    /// `mN`, the member's name.
    pub name: String,
    /// Its address: 127.0.0.1, or its namespace's.
    pub ip: IpAddr,
    /// Its client port.
    pub client_port: u16,
    child: ChildGuard,
}

impl Member {
    /// Kills the member (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// The member's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// An etcd cluster of `n` members on 127.0.0.1.
#[derive(Debug)]
pub struct Etcd {
    /// The members, in start order.
    pub members: Vec<Member>,
    _data: tempfile::TempDir,
}

impl Etcd {
    /// Starts `n` members on 127.0.0.1 and waits until every one answers
    /// `/health`.
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        Self::start_on(&vec![None; n]).await
    }

    /// Starts one member per entry, in that host's network namespace on its
    /// address (`None`: on 127.0.0.1), and waits until every one is healthy.
    pub async fn start_on(hosts: &[Option<Host>]) -> anyhow::Result<Self> {
        let data = data_dir()?;
        let peers: Vec<(String, IpAddr, u16, u16)> = (hosts.iter().enumerate())
            .map(|(i, h)| {
                let ip = h
                    .as_ref()
                    .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), Host::addr);
                (format!("m{i}"), ip, free_port(), free_port())
            })
            .collect();
        let initial: Vec<String> = (peers.iter())
            .map(|(name, ip, _, peer)| format!("{name}=http://{ip}:{peer}"))
            .collect();
        let mut members = Vec::new();
        for ((name, ip, client, peer), host) in peers.iter().zip(hosts) {
            let dir = data.path().join(name);
            let mut cmd = match host {
                Some(h) => h.command("etcd"),
                None => Command::new("etcd"),
            };
            cmd.arg("--name").arg(name).arg("--data-dir").arg(&dir);
            let client_url = format!("http://{ip}:{client}");
            let peer_url = format!("http://{ip}:{peer}");
            cmd.args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args([
                    "--initial-cluster-token",
                    &format!("t{}", std::process::id()),
                ]);
            let log = data.path().join(format!("{name}.log"));
            let child = ChildGuard::spawn(&format!("etcd {name}"), cmd, &log)
                .context("starting etcd (Debian package etcd-server)")?;
            members.push(Member {
                name: name.clone(),
                ip: *ip,
                client_port: *client,
                child,
            });
        }
        let me = Etcd {
            members,
            _data: data,
        };
        for m in &me.members {
            me.wait_healthy(m.ip, m.client_port).await?;
        }
        Ok(me)
    }

    async fn wait_healthy(&self, ip: IpAddr, port: u16) -> anyhow::Result<()> {
        wait_until(
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async move {
                let (status, body) = http_get_at(ip, port, "/health").await.ok()?;
                (status == 200 && body.contains("true")).then_some(())
            },
        )
        .await
        .with_context(|| format!("etcd on {ip}:{port} not healthy"))?;
        Ok(())
    }

    /// `--store etcd://…` naming every member.
    pub fn store_url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    /// `IP:PORT` of every member's client URL.
    fn endpoints(&self) -> Vec<String> {
        (self.members.iter())
            .map(|m| format!("{}:{}", m.ip, m.client_port))
            .collect()
    }

    /// The data directory of all members (logs beside it).
    pub fn dir(&self) -> PathBuf {
        self._data.path().to_path_buf()
    }

    /// The index of the member that is the raft leader now, from
    /// `etcdctl endpoint status`.
    pub fn leader(&self) -> anyhow::Result<usize> {
        let endpoints = self.endpoints();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &endpoints.join(","),
                "endpoint",
                "status",
                "-w",
                "json",
            ])
            .output()
            .context("running etcdctl")?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).to_string())?;
        let rows = status.as_array().context("etcdctl status is not a list")?;
        rows.iter()
            .position(|r| r["Status"]["leader"] == r["Status"]["header"]["member_id"])
            .context("no member is the leader")
    }
}
