//! An ingress gateway under test: a stock Envoy from `trellis bootstrap
//! --gateway`, labelled `istio=ingressgateway`, with a workload token.

use std::path::Path;
use std::time::Duration;

use crate::envoy::Envoy;
use crate::ports::free_port;
use crate::trellis::{run_trellis, Trellis};

/// How long the gateway may take to get its listeners.
const LISTENERS_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts the gateway with each `(server port, listener port)` of `ports`
/// in its `--port-map`, and waits until Envoy has a listener on every
/// mapped server port (named `127.0.0.1_SERVER_PORT`). Its files go in `dir`.
pub async fn start_gateway(
    trellis: &Trellis,
    dir: &Path,
    ports: &[(u16, u16)],
) -> anyhow::Result<Envoy> {
    let token = dir.join("gw-token");
    trellis.write_token("ingress", "ingress", "1h", &token)?;
    let map: Vec<String> = ports.iter().map(|(a, b)| format!("{a}={b}")).collect();
    let admin = free_port();
    let out = dir.join("gw.yaml");
    let (admin_arg, xds, token, out_arg) = (
        admin.to_string(),
        trellis.xds_addr(),
        token.display().to_string(),
        out.display().to_string(),
    );
    let args = [
        "bootstrap",
        "--gateway",
        "--service",
        "ingress",
        "--label",
        "istio=ingressgateway",
        "--listen-address",
        "127.0.0.1",
        "--port-map",
        &map.join(","),
        "--admin-port",
        &admin_arg,
        "--stats-port",
        "0",
        "--xds-addr",
        &xds,
        "--token-file",
        &token,
        "-o",
        &out_arg,
    ];
    let (code, o, e) = run_trellis(&args)?;
    anyhow::ensure!(code == 0, "trellis bootstrap --gateway: {o}{e}");
    let envoy = Envoy::start("gateway", &out, admin).await?;
    for (server_port, _) in ports {
        let name = format!("127.0.0.1_{server_port}");
        envoy.wait_listener(&name, LISTENERS_TIMEOUT).await?;
    }
    Ok(envoy)
}
