//! `trellis ratelimit`: the rate-limit service of global `RateLimit`s.
//! It reads the mesh config directory (and reloads it on change, keeping
//! the last valid rules), keeps counters in Redis and serves
//! `envoy.service.ratelimit.v3.RateLimitService` over gRPC, with mTLS when
//! given a workload certificate (`trellis ca issue`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use clap::Args;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use trellis::config;
use trellis::ratelimit::{redis::Redis, Limits, RateLimitServer};

/// Flags of `trellis ratelimit`.
#[derive(Debug, Args)]
pub struct RatelimitArgs {
    /// The mesh config directory (its global RateLimits are served).
    #[arg(long, value_name = "DIR")]
    config: PathBuf,
    /// Redis holding the counters: `redis://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    redis: String,
    /// Address of the gRPC server.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Directory with this service's workload certificate (cert.pem,
    /// key.pem, root.pem, as `trellis ca issue` writes them): serve mTLS
    /// and accept only clients with a certificate of the mesh. Without
    /// it the service speaks plain text (a mesh without a CA).
    #[arg(long, value_name = "DIR")]
    tls_dir: Option<PathBuf>,
}

/// Runs the service until SIGINT or SIGTERM.
pub async fn run(args: RatelimitArgs) -> anyhow::Result<ExitCode> {
    let mesh = config::load_dir(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let limits = Arc::new(ArcSwap::from_pointee(Limits::from_mesh(&mesh)));
    tracing::info!(
        rules = limits.load().len(),
        "global rate-limit rules loaded"
    );
    let redis = Arc::new(Redis::new(&args.redis)?);
    let (_watcher, changes) = config::watch(&args.config)?;
    tokio::spawn(reload(args.config.clone(), Arc::clone(&limits), changes));
    let mut server = Server::builder();
    if let Some(dir) = &args.tls_dir {
        server = server.tls_config(tls(dir)?)?;
    }
    let service = RateLimitServer::new(limits, redis).into_service();
    tracing::info!(listen = %args.listen, tls = args.tls_dir.is_some(), "rate-limit service serving");
    server
        .add_service(service)
        .serve_with_shutdown(args.listen, super::shutdown_signal())
        .await
        .context("serving gRPC")?;
    Ok(ExitCode::SUCCESS)
}

/// Loads the config again on every change; a broken one keeps the last.
async fn reload(
    dir: PathBuf,
    limits: Arc<ArcSwap<Limits>>,
    mut changes: tokio::sync::mpsc::Receiver<()>,
) {
    while changes.recv().await.is_some() {
        match config::load_dir(&dir) {
            Ok(mesh) => {
                limits.store(Arc::new(Limits::from_mesh(&mesh)));
                tracing::info!(rules = limits.load().len(), "rate-limit rules reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "config rejected; the last rules stay"),
        }
    }
}

/// Server certificate and key, and the mesh roots that client
/// certificates must chain to.
fn tls(dir: &Path) -> anyhow::Result<ServerTlsConfig> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let identity = Identity::from_pem(read("cert.pem")?, read("key.pem")?);
    Ok(ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(Certificate::from_pem(read("root.pem")?)))
}
