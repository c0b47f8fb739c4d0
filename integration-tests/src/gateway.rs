//! A gateway under test: a stock Envoy from `trellis bootstrap --gateway`,
//! with a workload token; by default the ingress gateway, labelled
//! `istio=ingressgateway`.

use std::path::Path;
use std::time::Duration;

use crate::envoy::Envoy;
use crate::ports::free_port;
use crate::trellis::{run_trellis, Trellis};

/// How long the gateway may take to get its listeners.
const LISTENERS_TIMEOUT: Duration = Duration::from_secs(20);

/// Who a gateway is: its service, namespace, selector label, and any
/// further `trellis bootstrap` flags.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// `--service` (also the token's service account).
    pub service: String,
    /// `--namespace`.
    pub namespace: String,
    /// `--label`, `KEY=VALUE`.
    pub label: String,
    /// More bootstrap flags, e.g. `--endpoint-address 127.0.0.1`.
    pub extra_args: Vec<String>,
}

impl GatewaySpec {
    /// The ingress gateway: `ingress` in `default`, `istio=ingressgateway`.
    pub fn ingress() -> Self {
        GatewaySpec {
            service: "ingress".into(),
            namespace: "default".into(),
            label: "istio=ingressgateway".into(),
            extra_args: Vec::new(),
        }
    }
}

/// Starts the ingress gateway ([`GatewaySpec::ingress`]); see
/// [`start_gateway_spec`].
pub async fn start_gateway(
    trellis: &Trellis,
    dir: &Path,
    ports: &[(u16, u16)],
) -> anyhow::Result<Envoy> {
    start_gateway_spec(trellis, dir, &GatewaySpec::ingress(), ports).await
}

/// Starts the gateway `spec` with each `(server port, listener port)` of
/// `ports` in its `--port-map`, and waits until Envoy has a listener on
/// every mapped server port (named `127.0.0.1_SERVER_PORT`). Its files go
/// in `dir`.
pub async fn start_gateway_spec(
    trellis: &Trellis,
    dir: &Path,
    spec: &GatewaySpec,
    ports: &[(u16, u16)],
) -> anyhow::Result<Envoy> {
    let token = dir.join(format!("{}-token", spec.service));
    write_token(trellis, spec, &token)?;
    let map: Vec<String> = ports.iter().map(|(a, b)| format!("{a}={b}")).collect();
    let admin = free_port();
    let out = dir.join(format!("{}.yaml", spec.service));
    let mut args: Vec<String> = [
        "bootstrap",
        "--gateway",
        "--service",
        &spec.service,
        "--namespace",
        &spec.namespace,
        "--label",
        &spec.label,
        "--listen-address",
        "127.0.0.1",
        "--port-map",
        &map.join(","),
        "--admin-port",
        &admin.to_string(),
        "--stats-port",
        "0",
        "--xds-addr",
        &trellis.xds_addr(),
        "--token-file",
        &token.display().to_string(),
        "-o",
        &out.display().to_string(),
    ]
    .map(String::from)
    .into();
    args.extend(spec.extra_args.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, o, e) = run_trellis(&args)?;
    anyhow::ensure!(code == 0, "trellis bootstrap --gateway: {o}{e}");
    let envoy = Envoy::start(&spec.service, &out, admin).await?;
    for (server_port, _) in ports {
        let name = format!("127.0.0.1_{server_port}");
        envoy.wait_listener(&name, LISTENERS_TIMEOUT).await?;
    }
    Ok(envoy)
}

/// The gateway's workload token, for its service in its namespace.
fn write_token(trellis: &Trellis, spec: &GatewaySpec, file: &Path) -> anyhow::Result<()> {
    let state = trellis.state_dir().display().to_string();
    let args = [
        "token",
        "--service",
        &spec.service,
        "--namespace",
        &spec.namespace,
        "--ttl",
        "1h",
        "--state-dir",
        &state,
    ];
    let (code, out, err) = run_trellis(&args)?;
    anyhow::ensure!(code == 0, "trellis token: {err}");
    std::fs::write(file, out.trim())?;
    Ok(())
}
