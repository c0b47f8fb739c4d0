//! Child processes of the demo: started with their output in log files,
//! killed and reaped when the demo ends, also on error or panic.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// Every process the demo started. Dropping it kills them all
/// (`kill_on_drop`); [`Children::shutdown`] also waits for them.
#[derive(Default)]
pub struct Children {
    procs: Vec<Proc>,
}

struct Proc {
    name: String,
    log: PathBuf,
    child: Child,
}

impl Children {
    /// Starts `cmd` as `name`, stdout and stderr to `log`.
    pub fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<()> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        self.procs.push(Proc {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
        });
        Ok(())
    }

    /// Fails, with the end of its log, if any child has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for p in &mut self.procs {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "{} exited ({status}); end of its log:\n{}",
                    p.name,
                    tail(&p.log, 20)
                );
            }
        }
        Ok(())
    }

    /// Kills every child and waits for it, newest first (sidecars before
    /// the control plane, so they do not log reconnect attempts).
    pub async fn shutdown(&mut self) {
        while let Some(mut p) = self.procs.pop() {
            if let Err(e) = p.child.kill().await {
                tracing::debug!(name = %p.name, "kill: {e}");
            }
        }
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Picks free ports: each is bound (port 0) and held until the picker is
/// dropped, so one picker never hands out the same port twice.
#[derive(Default)]
pub struct Ports {
    held: Vec<std::net::TcpListener>,
}

impl Ports {
    /// A port that is free now (and stays reserved while `self` lives).
    pub fn pick(&mut self) -> anyhow::Result<u16> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("picking a free port")?;
        let port = l.local_addr()?.port();
        self.held.push(l);
        Ok(port)
    }
}

/// Polls `check` every 50 ms until it yields a value, `what` timing out
/// after `limit`; `children` must stay alive meanwhile.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    limit: Duration,
    children: &mut Children,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        children.check_alive()?;
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The full path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
