//! Envoy sidecars of service instances: `trellis bootstrap` writes the
//! bootstrap (node identity, ports, token), then Envoy runs from it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::bail;

use crate::envoy::{Envoy, READY_TIMEOUT};
use crate::ports::free_port;
use crate::trellis::{run_trellis, Trellis};

/// Ports and identity of one sidecar.
#[derive(Debug, Clone)]
pub struct SidecarSpec {
    /// Service name (`--service`).
    pub service: String,
    /// Labels (`--label k=v`), e.g. `version=v2`.
    pub labels: Vec<(String, String)>,
    /// The app's port (`--app-port`).
    pub app_port: u16,
    /// Envoy node id (`--node-id`).
    pub node_id: String,
    /// Inbound listener port.
    pub inbound_port: u16,
    /// Outbound listener port.
    pub outbound_port: u16,
    /// Envoy admin port.
    pub admin_port: u16,
    /// Prometheus stats port (`--stats-port`; only `/stats/prometheus`).
    pub stats_port: u16,
    /// `--token-file`; `None` lets [`Sidecar::start_spec`] mint a token for
    /// this service with `trellis token`.
    pub token_file: Option<PathBuf>,
    /// Extra `trellis bootstrap` arguments (e.g. `--service-account`).
    pub extra_args: Vec<String>,
    /// `(name, address)` pairs only this sidecar's Envoy resolves
    /// (its own `/etc/hosts`: [`Envoy::start_with_hosts`]).
    pub hosts: Vec<(String, String)>,
}

impl SidecarSpec {
    /// A spec with fresh ports and a unique node id.
    pub fn new(service: &str, labels: &[(&str, &str)], app_port: u16) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let version = labels
            .iter()
            .find(|(k, _)| *k == "version")
            .map(|(_, v)| *v)
            .unwrap_or("x");
        Self {
            service: service.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            app_port,
            node_id: format!("{service}-{version}-{}-{n}", std::process::id()),
            inbound_port: free_port(),
            outbound_port: free_port(),
            admin_port: free_port(),
            stats_port: free_port(),
            token_file: None,
            extra_args: Vec::new(),
            hosts: Vec::new(),
        }
    }

    /// Arguments of `trellis bootstrap` for this sidecar.
    pub fn bootstrap_args(&self, xds_addr: &str, out: &Path) -> Vec<String> {
        let mut args: Vec<String> =
            vec!["bootstrap".into(), "--service".into(), self.service.clone()];
        for (k, v) in &self.labels {
            args.extend(["--label".into(), format!("{k}={v}")]);
        }
        let num = |flag: &str, v: u16| [flag.to_string(), v.to_string()];
        args.extend(num("--app-port", self.app_port));
        args.extend(num("--inbound-port", self.inbound_port));
        args.extend(num("--outbound-port", self.outbound_port));
        args.extend(num("--admin-port", self.admin_port));
        args.extend(num("--stats-port", self.stats_port));
        args.extend(["--xds-addr".into(), xds_addr.to_string()]);
        args.extend(["--node-id".into(), self.node_id.clone()]);
        if let Some(t) = &self.token_file {
            args.extend(["--token-file".into(), t.display().to_string()]);
        }
        if let Some(mode) = crate::ads_mode::ads_mode() {
            args.extend(["--ads-mode".into(), mode]);
        }
        args.extend(self.extra_args.iter().cloned());
        args.extend(["-o".into(), out.display().to_string()]);
        args
    }

    /// Writes this sidecar's bootstrap with `trellis bootstrap`.
    pub fn write_bootstrap(&self, xds_addr: &str, out: &Path) -> anyhow::Result<()> {
        let args = self.bootstrap_args(xds_addr, out);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = run_trellis(&argv)?;
        if code != 0 {
            bail!("trellis {args:?} exited {code}:\n{stdout}{stderr}");
        }
        Ok(())
    }
}

/// An Envoy sidecar of one service instance, connected to a [`Trellis`].
#[derive(Debug)]
pub struct Sidecar {
    /// Identity and ports.
    pub spec: SidecarSpec,
    envoy: Envoy,
}

impl Sidecar {
    /// Writes a bootstrap with `trellis bootstrap`, starts Envoy, and waits
    /// until it is LIVE and has its outbound listener.
    pub async fn start(
        trellis: &Trellis,
        service: &str,
        labels: &[(&str, &str)],
        app_port: u16,
    ) -> anyhow::Result<Self> {
        Self::start_spec(trellis, SidecarSpec::new(service, labels, app_port)).await
    }

    /// Like [`Sidecar::start`] with a prepared spec.
    pub async fn start_spec(trellis: &Trellis, mut spec: SidecarSpec) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        if spec.token_file.is_none() {
            let token = dir.path().join("token");
            trellis.write_token(&spec.service, &spec.service, "1h", &token)?;
            spec.token_file = Some(token);
        }
        let file = dir.path().join(format!("{}.yaml", spec.node_id));
        spec.write_bootstrap(&trellis.xds_addr(), &file)?;
        let name = format!("envoy {}", spec.node_id);
        let envoy = if spec.hosts.is_empty() {
            Envoy::start(&name, &file, spec.admin_port).await?
        } else {
            let hosts = dir.path().join("hosts");
            let mut text = String::from("127.0.0.1 localhost\n");
            for (n, a) in &spec.hosts {
                text.push_str(&format!("{a} {n}\n"));
            }
            std::fs::write(&hosts, text)?;
            Envoy::start_with_hosts(&name, &file, spec.admin_port, &hosts).await?
        };
        // Keep the bootstrap beside Envoy's log for post-mortems.
        let _ = std::fs::copy(&file, envoy.dir().join("bootstrap.yaml"));
        envoy.wait_listener("outbound", READY_TIMEOUT).await?;
        Ok(Self { spec, envoy })
    }

    /// The outbound listener port: where the app sends mesh requests.
    pub fn outbound_port(&self) -> u16 {
        self.spec.outbound_port
    }

    /// The Envoy behind this sidecar.
    pub fn envoy(&self) -> &Envoy {
        &self.envoy
    }

    /// Kills the sidecar's Envoy now.
    pub fn kill(&mut self) {
        self.envoy.kill();
    }
}

impl std::ops::Deref for Sidecar {
    type Target = Envoy;
    fn deref(&self) -> &Envoy {
        &self.envoy
    }
}
