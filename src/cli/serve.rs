//! `trellis serve`: flags → [`ServeOptions`], then the control plane until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::Args;
use trellis::ca::PluginCa;
use trellis::serve::{self, PerPeerLimits, ServeError, ServeOptions};
use trellis::store::etcd::parse_store_url;
use trellis::store::{EtcdOptions, EtcdTls};

/// Flags of `trellis serve`; docs/operations.md lists them with their
/// defaults.
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
    /// After a restart, how long the sidecars of the last run stay endpoints
    /// while they have not reconnected. Must outlast the sidecars' ADS retry
    /// backoff: 5 s with `trellis bootstrap`'s bootstraps, up to 30 s with
    /// Envoy's default. Ends early once every one has reconnected.
    #[arg(long, default_value = "60s", value_parser = super::parse_duration)]
    restart_grace_period: Duration,
    /// Accept ADS streams without a workload token. INSECURE: any process that
    /// reaches the xDS port can then claim any identity and get its key.
    #[arg(long)]
    insecure_xds: bool,
    /// Serve ADS over TLS with a certificate from the mesh CA (sidecars pin
    /// the root with `trellis bootstrap --xds-ca-file`).
    #[arg(long)]
    xds_tls: bool,
    /// Another DNS name or IP for the xDS TLS certificate (repeatable);
    /// 127.0.0.1, localhost and the --xds-addr IP are always included.
    #[arg(long = "xds-tls-name", value_name = "NAME", requires = "xds_tls")]
    xds_tls_names: Vec<String>,
    /// Lifetime of the xDS TLS server certificate; it is renewed at half of
    /// it (and when a root rotation changes the signing root), while serving.
    #[arg(long, default_value = "24h", value_parser = super::parse_duration, requires = "xds_tls")]
    xds_tls_ttl: Duration,
    /// Open xDS connections one client address may hold; one more is
    /// closed at once.
    #[arg(long, value_name = "N", default_value_t = PerPeerLimits::default().connections,
          value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    xds_max_connections_per_peer: usize,
    /// Open ADS streams one client address may hold; one more is refused
    /// with RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = PerPeerLimits::default().streams,
          value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    xds_max_streams_per_peer: usize,
    /// Plug-in CA directory with Istio's file names (ca-cert.pem, ca-key.pem,
    /// cert-chain.pem, root-cert.pem); default: a self-signed root in --state-dir.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["ca_cert", "ca_key", "ca_chain", "ca_root"])]
    ca_dir: Option<PathBuf>,
    /// Plug-in CA: the certificate that signs workload certificates.
    #[arg(long, value_name = "FILE", requires_all = ["ca_key", "ca_chain", "ca_root"])]
    ca_cert: Option<PathBuf>,
    /// Plug-in CA: the private key of --ca-cert.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Plug-in CA: the chain from --ca-cert up to the root.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    ca_chain: Option<PathBuf>,
    /// Plug-in CA: the root certificate(s) peers trust.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    ca_root: Option<PathBuf>,
    /// Gateway TLS credentials for `credentialName`, laid out like Kubernetes
    /// TLS secrets: DIR/NAMESPACE/NAME/{tls.crt,tls.key[,ca.crt]}. Watched: a
    /// replaced pair reaches gateways over SDS; a pair whose key does not
    /// match is never served (the last good one stays).
    #[arg(long, value_name = "DIR")]
    credentials_dir: Option<PathBuf>,
    /// How often the keys of each RequestAuthentication `jwksUri` are fetched
    /// again (a new URI is fetched at once; a failed fetch keeps the last
    /// good keys).
    #[arg(long, default_value = "20m", value_parser = super::parse_duration)]
    jwks_refresh_interval: Duration,
    /// Extra CA certificates (PEM) trusted for `jwksUri` servers, on top of
    /// the system roots.
    #[arg(long, value_name = "FILE")]
    jwks_ca_file: Option<PathBuf>,
    /// Where replicas share state: `local` (this process's --state-dir) or
    /// `etcd://HOST:PORT[,HOST:PORT...]` (the registry of every replica's
    /// sidecars and token revocations; see docs/operations.md, "Replicas on
    /// etcd").
    #[arg(long, value_name = "URL", default_value = "local")]
    store: String,
    /// Key prefix in etcd; replicas with the same prefix form one mesh.
    #[arg(long, value_name = "PREFIX", default_value = "/trellis")]
    store_prefix: String,
    /// CA certificate (PEM) of etcd's server certificate: talk TLS to etcd.
    #[arg(long, value_name = "FILE")]
    store_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth.
    #[arg(long, value_name = "FILE", requires_all = ["store_key", "store_ca"])]
    store_cert: Option<PathBuf>,
    /// Private key (PEM) of --store-cert.
    #[arg(long, value_name = "FILE", requires = "store_cert")]
    store_key: Option<PathBuf>,
    /// How often the control plane reads every sidecar's stats port (the
    /// service graph: `/debug/graph`, `trellis graph`).
    #[arg(long, default_value = "5s", value_parser = super::parse_duration)]
    stats_scrape_interval: Duration,
    /// The window the service graph's rates and latencies cover.
    #[arg(long, default_value = "60s", value_parser = super::parse_duration)]
    graph_window: Duration,
    /// Log format on stderr: `text` for people, `json` (one object per
    /// line) for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines (tracing-subscriber's JSON format).
    Json,
}

impl ServeArgs {
    /// `--store` and the flags around it; the lease of this replica's
    /// sidecars lasts the restart grace period.
    fn store(&self) -> anyhow::Result<Option<EtcdOptions>> {
        let Some(endpoints) = parse_store_url(&self.store)? else {
            return Ok(None);
        };
        let identity = self.store_cert.clone().zip(self.store_key.clone());
        Ok(Some(EtcdOptions {
            endpoints,
            prefix: self.store_prefix.clone(),
            tls: (self.store_ca.clone()).map(|ca| EtcdTls { ca, identity }),
            lease_ttl: self.restart_grace_period,
            replica: self.xds_addr.to_string(),
        }))
    }

    fn plugin_ca(&self) -> Option<PluginCa> {
        if let Some(dir) = &self.ca_dir {
            return Some(PluginCa::from_dir(dir));
        }
        Some(PluginCa {
            cert: self.ca_cert.clone()?,
            key: self.ca_key.clone()?,
            chain: self.ca_chain.clone()?,
            root: self.ca_root.clone()?,
        })
    }
}

/// Runs the control plane until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.graph_window < args.stats_scrape_interval * 2 {
        anyhow::bail!(
            "--graph-window ({:?}) must be at least twice --stats-scrape-interval ({:?})",
            args.graph_window,
            args.stats_scrape_interval
        );
    }
    let plugin_ca = args.plugin_ca();
    let store = args.store()?;
    let opts = ServeOptions {
        config_dir: args.config,
        xds_addr: args.xds_addr,
        admin_addr: args.admin_addr,
        state_dir: args.state_dir,
        grace_period: args.grace_period,
        restart_grace_period: args.restart_grace_period,
        insecure_xds: args.insecure_xds,
        plugin_ca,
        xds_tls: args.xds_tls,
        xds_tls_names: args.xds_tls_names,
        credentials_dir: args.credentials_dir,
        jwks: trellis::serve::jwks::JwksOptions {
            refresh: args.jwks_refresh_interval,
            ca_file: args.jwks_ca_file,
        },
        xds_tls_ttl: args.xds_tls_ttl,
        xds_per_peer: PerPeerLimits {
            connections: args.xds_max_connections_per_peer,
            streams: args.xds_max_streams_per_peer,
        },
        store,
        graph: trellis::serve::GraphOptions {
            scrape_interval: args.stats_scrape_interval,
            window: args.graph_window,
        },
        release_memory: Some(crate::release_free_memory),
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
