//! The control plane under test: the real `trellis serve` binary.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::child::ChildGuard;
use crate::client::http_get_at;
use crate::netns::Host;
use crate::ports::free_port;
use crate::wait::wait_until;

/// How long `trellis serve` may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The `trellis` binary built by `cargo build --workspace`.
///
/// `CARGO_BIN_EXE_trellis` exists only for tests of the `trellis` crate
/// itself, so this looks next to the running test binary
/// (`TARGET/PROFILE/deps/TEST` → `TARGET/PROFILE/trellis`, which follows
/// `CARGO_TARGET_DIR` and the profile), then in `$CARGO_TARGET_DIR/debug` and
/// `<repo>/target/debug`. `TRELLIS_BIN` overrides all of them.
pub fn trellis_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TRELLIS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("trellis"));
        }
    }
    let root = crate::repo_root();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(root.join(dir).join("debug/trellis"));
    }
    candidates.push(root.join("target/debug/trellis"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no trellis binary in {candidates:?}: run `cargo build --workspace` before \
                 `cargo test --workspace` (or `make test`, which does both)"
            )
        })
}

/// Options for [`Trellis::start_with`].
#[derive(Debug, Clone, Default)]
pub struct TrellisOptions {
    /// `--grace-period`, how long a disconnected sidecar stays an endpoint.
    pub grace_period: Option<Duration>,
    /// `RUST_LOG` for the child (default `info`).
    pub log_filter: Option<String>,
    /// More `trellis serve` arguments (e.g. `--insecure-xds`, `--xds-tls`).
    pub extra_args: Vec<String>,
    /// Another control plane's state directory whose CA (`ca/`) and token
    /// key are copied into this one's before it starts: replicas of one
    /// mesh.
    pub share_state_of: Option<PathBuf>,
    /// The (xDS, admin) ports to use instead of fresh ones, e.g. reserved
    /// with [`free_port`] for a replica started later.
    pub ports: Option<(u16, u16)>,
    /// The network namespace to run in, listening on its address instead
    /// of 127.0.0.1 (see [`crate::netns`]).
    pub host: Option<Host>,
}

/// A running `trellis serve`, killed on drop.
#[derive(Debug)]
pub struct Trellis {
    child: ChildGuard,
    ip: IpAddr,
    xds_port: u16,
    admin_port: u16,
    config_dir: PathBuf,
    opts: TrellisOptions,
    restarts: u32,
    _state: tempfile::TempDir,
}

impl Trellis {
    /// Starts `trellis serve --config DIR` on free ports and waits for
    /// `/readyz`.
    pub async fn start(config_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(config_dir, TrellisOptions::default()).await
    }

    /// Like [`Trellis::start`], with options.
    pub async fn start_with(config_dir: &Path, opts: TrellisOptions) -> anyhow::Result<Self> {
        let state = tempfile::tempdir()?;
        if let Some(other) = &opts.share_state_of {
            copy_trust(other, state.path())?;
        }
        let (xds_port, admin_port) = opts.ports.unwrap_or_else(|| (free_port(), free_port()));
        let child = spawn(config_dir, state.path(), (xds_port, admin_port), &opts, 0)?;
        let mut me = Self {
            child,
            ip: bind_ip(&opts),
            xds_port,
            admin_port,
            config_dir: config_dir.to_path_buf(),
            opts,
            restarts: 0,
            _state: state,
        };
        me.wait_ready().await?;
        Ok(me)
    }

    /// Kills the control plane and starts it again on the same ports with the
    /// same state directory (so the same CA and token key), then waits for
    /// `/readyz`.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.start_again().await
    }

    /// Kills the control plane with SIGKILL, as a crash would: no shutdown,
    /// its sidecars keep their last config and keep retrying their streams.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts a killed control plane again on the same ports with the same
    /// state directory, and waits for `/readyz`.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.restarts += 1;
        let ports = (self.xds_port, self.admin_port);
        self.child = spawn(
            &self.config_dir,
            self._state.path(),
            ports,
            &self.opts,
            self.restarts,
        )?;
        self.wait_ready().await
    }
}

/// Copies the CA directory and the token key of one state directory into
/// another (`cp -a`, keeping the private files' modes). A control plane
/// with a plug-in CA has no `ca/`: only its token key is copied. Every
/// replica of one mesh shares these (tests and the replica benchmark).
pub fn copy_trust(from: &Path, to: &Path) -> anyhow::Result<()> {
    for item in ["ca", "token.key"] {
        if item == "ca" && !from.join(item).exists() {
            continue;
        }
        let status = Command::new("cp")
            .arg("-a")
            .arg(from.join(item))
            .arg(to)
            .status()?;
        if !status.success() {
            bail!(
                "copying {} into {}",
                from.join(item).display(),
                to.display()
            );
        }
    }
    Ok(())
}

/// Spawns `trellis serve`; its log goes to `trellis.log` (`trellis-N.log`
/// after the Nth restart) in the state directory.
fn spawn(
    config_dir: &Path,
    state: &Path,
    (xds_port, admin_port): (u16, u16),
    opts: &TrellisOptions,
    restarts: u32,
) -> anyhow::Result<ChildGuard> {
    {
        let bin = trellis_bin()?;
        let mut cmd = match &opts.host {
            Some(host) => host.command(&bin.display().to_string()),
            None => Command::new(bin),
        };
        let ip = bind_ip(opts);
        cmd.arg("serve")
            .arg("--config")
            .arg(config_dir)
            .arg("--xds-addr")
            .arg(format!("{ip}:{xds_port}"))
            .arg("--admin-addr")
            .arg(format!("{ip}:{admin_port}"))
            .arg("--state-dir")
            .arg(state)
            .args(&opts.extra_args);
        if let Some(g) = opts.grace_period {
            cmd.arg("--grace-period")
                .arg(format!("{}ms", g.as_millis()));
        }
        cmd.env("RUST_LOG", opts.log_filter.as_deref().unwrap_or("info"));
        let log = match restarts {
            0 => state.join("trellis.log"),
            n => state.join(format!("trellis-{n}.log")),
        };
        ChildGuard::spawn("trellis serve", cmd, &log)
    }
}

/// Where the control plane listens: its namespace's address, else 127.0.0.1.
fn bind_ip(opts: &TrellisOptions) -> IpAddr {
    match &opts.host {
        Some(host) => host.addr(),
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

impl Trellis {
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let (ip, port) = (self.ip, self.admin_port);
        let ready = wait_until(READY_TIMEOUT, Duration::from_millis(20), || async move {
            matches!(http_get_at(ip, port, "/readyz").await, Ok((200, _))).then_some(())
        });
        tokio::pin!(ready);
        loop {
            tokio::select! {
                r = &mut ready => {
                    return r.map(|_| ()).with_context(|| {
                        format!("trellis serve not ready:\n{}", self.child.log_tail())
                    });
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if let Some(status) = self.child.try_exited() {
                        bail!("trellis serve exited ({status}):\n{}", self.child.log_tail());
                    }
                }
            }
        }
    }

    /// `IP:PORT` of the ADS server, for `trellis bootstrap --xds-addr`.
    pub fn xds_addr(&self) -> String {
        format!("{}:{}", self.ip, self.xds_port)
    }

    /// The address the control plane listens on (127.0.0.1 unless it runs
    /// in a network namespace).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// `GET` an admin path: status and body, whatever the status.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get_at(self.ip, self.admin_port, path).await
    }

    /// The admin HTTP port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The control plane's `--state-dir` (CA, token key).
    pub fn state_dir(&self) -> &Path {
        self._state.path()
    }

    /// Mints a workload token with `trellis token` (same state dir) and
    /// writes it to `file`.
    pub fn write_token(
        &self,
        service: &str,
        service_account: &str,
        ttl: &str,
        file: &Path,
    ) -> anyhow::Result<()> {
        let state = self.state_dir().display().to_string();
        let args = [
            "token",
            "--service",
            service,
            "--service-account",
            service_account,
            "--ttl",
            ttl,
            "--state-dir",
            &state,
        ];
        let (code, stdout, stderr) = run_trellis(&args)?;
        if code != 0 {
            bail!("trellis {args:?} exited {code}:\n{stderr}");
        }
        std::fs::write(file, stdout.trim())?;
        Ok(())
    }

    /// The watched config directory.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The control plane's output so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// The control plane's process id (e.g. to read its `/proc` status).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `GET` an admin path; fails unless 200.
    pub async fn admin(&self, path: &str) -> anyhow::Result<String> {
        let (status, body) = self.admin_get(path).await?;
        if status != 200 {
            bail!("trellis admin {path}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// `/debug/config` as JSON.
    pub async fn debug_config(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.admin("/debug/config").await?)?)
    }

    /// `/debug/proxies` as JSON.
    pub async fn debug_proxies(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.admin("/debug/proxies").await?)?)
    }

    /// For each connected proxy in `/debug/proxies`, the last version it
    /// ACKed of the type whose URL ends with `type_suffix` (e.g.
    /// `RouteConfiguration`), and the last version sent to it.
    pub async fn acked_versions(
        &self,
        type_suffix: &str,
    ) -> anyhow::Result<BTreeMap<String, (Option<String>, Option<String>)>> {
        let proxies = self.debug_proxies().await?;
        let mut out = BTreeMap::new();
        for (node, status) in proxies.as_object().into_iter().flatten() {
            if status["connected"] != serde_json::Value::Bool(true) {
                continue;
            }
            let types = status["types"].as_object().into_iter().flatten();
            for (_, t) in types.filter(|(url, _)| url.ends_with(type_suffix)) {
                let text = |k: &str| t[k].as_str().map(str::to_string);
                out.insert(
                    node.clone(),
                    (text("last_acked_version"), text("last_sent_version")),
                );
            }
        }
        Ok(out)
    }

    /// Waits up to 10 s until `node` has ACKed the version last sent of
    /// every type it was sent. True when it did; with its `/debug/proxies`
    /// entry either way, to inspect or show in a failure.
    pub async fn wait_all_acked(&self, node: &str) -> (bool, serde_json::Value) {
        let acked = crate::wait::wait_for(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async {
                let Ok(p) = self.debug_proxies().await else {
                    return false;
                };
                let types = p[node]["types"].as_object().cloned().unwrap_or_default();
                !types.is_empty()
                    && types.values().all(|t| {
                        t["last_sent_version"].is_string()
                            && t["last_acked_version"] == t["last_sent_version"]
                    })
            },
        )
        .await;
        let status = match self.debug_proxies().await {
            Ok(p) => p[node].clone(),
            Err(e) => serde_json::Value::String(e.to_string()),
        };
        (acked.is_ok(), status)
    }

    /// `/metrics` (Prometheus text).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        self.admin("/metrics").await
    }
}

/// Runs `trellis ARGS...` to completion: exit code, stdout, stderr.
pub fn run_trellis(args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = Command::new(trellis_bin()?)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
