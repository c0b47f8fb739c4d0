//! `trellis serve`: flags → [`ServeOptions`], then the control plane until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use trellis::serve::{self, ServeError, ServeOptions};

/// Flags of `trellis serve`; defaults as in DESIGN.md.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config directory to load and watch.
    #[arg(long, value_name = "DIR")]
    config: PathBuf,
    /// Address of the ADS gRPC server.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_addr: SocketAddr,
    /// Address of the admin HTTP server.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_addr: SocketAddr,
    /// Directory for the control plane's state (created 0700).
    #[arg(long, value_name = "DIR", default_value = "./.trellis")]
    state_dir: PathBuf,
    /// How long a disconnected sidecar stays an endpoint (e.g. 3s, 500ms).
    #[arg(long, default_value = "3s", value_parser = super::parse_duration)]
    grace_period: Duration,
}

/// Runs the control plane until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let opts = ServeOptions {
        config_dir: args.config,
        xds_addr: args.xds_addr,
        admin_addr: args.admin_addr,
        state_dir: args.state_dir,
        grace_period: args.grace_period,
    };
    match serve::run(opts, super::shutdown_signal()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ServeError::Config(trellis::config::LoadError::Invalid(diags))) => {
            // The same lines `trellis validate` prints, so users can grep either.
            eprintln!("{diags}");
            eprintln!("error: the config is invalid; not starting");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
