//! The demo's mesh: which services run, their ports, the config files and
//! how each process is started.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use tokio::process::Command;
use trellis::bootstrap::{render, SidecarSpec, Token};

use super::ingress::Gateway;
use super::procs::Ports;

/// The canary config, as shipped in `config-examples/canary/`.
pub const CANARY: &str = include_str!("../../config-examples/canary/payment.yaml");

/// File name of the canary config inside the demo's config dir.
pub const CANARY_FILE: &str = "payment.yaml";

/// Mesh-wide STRICT mutual TLS: a `PeerAuthentication` in the root namespace.
pub const STRICT_MTLS: &str = "\
# Written by trellis demo: every sidecar accepts mutual TLS only.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system   # the root namespace: applies mesh-wide
spec:
  mtls:
    mode: STRICT
";

/// File name of [`STRICT_MTLS`] inside the demo's config dir.
pub const STRICT_MTLS_FILE: &str = "peer-authentication.yaml";

/// Access logs on mesh-wide: they are off by default, and the demo shows
/// them, as Istio's demo profile does.
pub const ACCESS_LOGS: &str = "\
# Written by trellis demo: every sidecar writes a JSON access log line per request.
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system   # the root namespace: applies mesh-wide
spec:
  accessLogging:
  - providers:
    - name: envoy           # the built-in JSON log on stdout
";

/// File name of [`ACCESS_LOGS`] inside the demo's config dir.
pub const ACCESS_LOGS_FILE: &str = "telemetry.yaml";

/// The host the demo's traffic enters by (the frontend service).
pub const FRONTEND: &str = "frontend";

/// The line the demo adds to the canary's `outlierDetection`.
const EJECT_ONE_OF_TWO: &str = "      maxEjectionPercent: 50  # added by trellis demo\n";

/// The canary config as the demo runs it: as shipped, plus
/// `maxEjectionPercent: 50`. With Istio's default (Envoy's 10%) Envoy 1.40
/// ejects a host only when at most 10% of the cluster would be ejected, so
/// it would never eject one of the demo's two v1 instances.
pub fn canary() -> anyhow::Result<String> {
    let anchor = "      baseEjectionTime: 60s\n";
    ensure!(
        CANARY.contains(anchor),
        "the embedded canary config has no baseEjectionTime to extend"
    );
    Ok(CANARY.replacen(anchor, &format!("{anchor}{EJECT_ONE_OF_TWO}"), 1))
}

/// The demo's canary config with the split changed to 50/50.
pub fn fifty_fifty() -> anyhow::Result<String> {
    let out = canary()?
        .replace("weight: 90", "weight: 50")
        .replace("weight: 10", "weight: 50");
    ensure!(
        out.matches("weight: 50").count() == 2,
        "the embedded canary config has no 90/10 split to change"
    );
    Ok(out)
}

/// Writes `content` to `path` the way editors do (write a temp file, then
/// rename over), so the control plane never reads half a file.
pub fn write_atomically(path: &Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Writes `text` to a new file readable by the owner only.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

/// One demo service instance and its sidecar.
#[derive(Debug, Clone)]
pub struct Instance {
    /// A short name for logs and the live view (`payment-v1`).
    pub label: String,
    /// The sidecar's identity and ports.
    pub sidecar: SidecarSpec,
    /// The service this app calls through its sidecar, if any.
    pub calls: Option<&'static str>,
    /// `--fail-every` for the app.
    pub fail_every: Option<u64>,
}

impl Instance {
    fn new(
        ports: &mut Ports,
        (label, service, version): (&str, &str, &str),
        xds_addr: &str,
    ) -> anyhow::Result<Self> {
        let mut sidecar = SidecarSpec::new(service, ports.pick()?);
        sidecar.labels.insert("app".into(), service.into());
        sidecar.labels.insert("version".into(), version.into());
        sidecar.inbound_port = ports.pick()?;
        sidecar.outbound_port = ports.pick()?;
        sidecar.admin_port = ports.pick()?;
        // Prometheus stats (only /stats/prometheus), as in docker-compose.
        sidecar.stats_port = Some(ports.pick()?);
        sidecar.xds_addr = xds_addr.to_string();
        Ok(Instance {
            label: label.to_string(),
            sidecar,
            calls: None,
            fail_every: None,
        })
    }

    /// The app's version label.
    pub fn version(&self) -> &str {
        self.sidecar
            .labels
            .get("version")
            .map_or("", String::as_str)
    }

    /// `trellis demo-app ...` for this instance.
    pub fn app_command(&self, trellis: &Path) -> Command {
        let mut cmd = Command::new(trellis);
        cmd.arg("demo-app")
            .args(["--name", &self.sidecar.service])
            .args(["--version", self.version()])
            .args(["--port", &self.sidecar.app_port.to_string()]);
        if let Some(host) = self.calls {
            let url = format!("http://127.0.0.1:{}", self.sidecar.outbound_port);
            cmd.args(["--call", &url, "--call-host", host]);
        }
        if let Some(n) = self.fail_every {
            cmd.args(["--fail-every", &n.to_string()]);
        }
        cmd
    }

    /// Writes the sidecar's bootstrap (with its token, so mode 0600) into
    /// `dir`; returns its path.
    pub fn write_bootstrap(&self, dir: &Path, token: Token) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{}.envoy.yaml", self.label));
        let mut spec = self.sidecar.clone();
        spec.token = Some(token);
        write_private(&path, &render(&spec)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// `envoy ...` for a sidecar or the gateway. Hot restart is off so that
/// several Envoys share the host without `--base-id`.
pub fn envoy_command(envoy: &Path, bootstrap: &Path) -> Command {
    let mut cmd = Command::new(envoy);
    cmd.arg("-c")
        .arg(bootstrap)
        .args([
            "--disable-hot-restart",
            "--drain-strategy",
            "immediate",
            "--concurrency",
            "1",
        ])
        .args(["--log-level", "warn"]);
    cmd
}

/// Everything the demo runs, with ports picked.
#[derive(Debug, Clone)]
pub struct Topology {
    /// `trellis serve --xds-addr`.
    pub xds_addr: String,
    /// `trellis serve --admin-addr`.
    pub admin_addr: String,
    /// frontend → payment-service (v1, a broken v1, v2) → ledger.
    pub instances: Vec<Instance>,
    /// The ingress gateway in front of the frontend.
    pub gateway: Gateway,
}

impl Topology {
    /// Picks free ports for everything.
    pub fn new() -> anyhow::Result<Self> {
        let mut ports = Ports::default();
        let xds_addr = format!("127.0.0.1:{}", ports.pick()?);
        let admin_addr = format!("127.0.0.1:{}", ports.pick()?);
        let (p, x) = (&mut ports, xds_addr.as_str());
        let mut frontend = Instance::new(p, ("frontend", FRONTEND, "v1"), x)?;
        frontend.calls = Some("payment-service");
        let mut pay1 = Instance::new(p, ("payment-v1", "payment-service", "v1"), x)?;
        pay1.calls = Some("ledger");
        // Always failing: outlier detection ejects it after 5 errors in a row,
        // and retries hide its failures from the caller meanwhile.
        let mut broken = Instance::new(p, ("payment-v1-broken", "payment-service", "v1"), x)?;
        broken.fail_every = Some(1);
        // Fails one request in four: each one is retried on another attempt.
        let mut pay2 = Instance::new(p, ("payment-v2", "payment-service", "v2"), x)?;
        pay2.calls = Some("ledger");
        pay2.fail_every = Some(4);
        let ledger = Instance::new(p, ("ledger", "ledger", "v1"), x)?;
        let gateway = Gateway::new(p, x)?;
        Ok(Topology {
            xds_addr,
            admin_addr,
            instances: vec![ledger, pay1, broken, pay2, frontend],
            gateway,
        })
    }

    /// The instance traffic enters by.
    pub fn frontend(&self) -> anyhow::Result<&Instance> {
        self.instances
            .iter()
            .find(|i| i.sidecar.service == FRONTEND)
            .context("the demo has no frontend")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_shifts_to_fifty_fifty() {
        assert!(CANARY.contains("weight: 90") && CANARY.contains("weight: 10"));
        assert!(canary().unwrap().contains(EJECT_ONE_OF_TWO));
        let shifted = fifty_fifty().unwrap();
        assert_eq!(shifted.matches("weight: 50").count(), 2);
    }

    #[test]
    fn topology_ports_are_distinct() {
        let t = Topology::new().unwrap();
        let mut ports: Vec<u16> = t
            .instances
            .iter()
            .flat_map(|i| {
                let s = &i.sidecar;
                let stats = s.stats_port.unwrap_or_default();
                [
                    s.app_port,
                    s.inbound_port,
                    s.outbound_port,
                    s.admin_port,
                    stats,
                ]
            })
            .collect();
        let gw = &t.gateway;
        ports.extend([gw.https_port, gw.http_port, gw.spec.admin_port]);
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "a port was handed out twice");
        let ids: std::collections::BTreeSet<String> =
            t.instances.iter().map(|i| i.sidecar.node_id()).collect();
        assert_eq!(ids.len(), t.instances.len());
    }
}
