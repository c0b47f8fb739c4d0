//! `trellis serve`: the control plane process.
//!
//! Wiring, in the order of the data flow in docs/architecture.md: load and validate the
//! config (refuse to start if it is invalid), watch the directory, keep the
//! registry of connected sidecars, rebuild per-proxy snapshots on every
//! change (`snapshots`), serve them over ADS (`xds`) and show health,
//! metrics and debug views (`admin`).

mod auth;
mod ca_admin;
mod ca_metrics;
mod certs;
mod clusters;
mod core;
pub mod credentials;
mod graph;
mod incoming;
pub mod jwks;
mod lint_view;
mod listen;
mod metrics;
mod reload;
mod replicas;
mod rollout;
mod rotation;
pub(crate) mod snapshots;
mod status_share;
#[cfg(test)]
mod tests;
mod token_watch;
mod xds_tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use self::auth::StreamAuth;
use self::core::{Core, CoreParts, Hooks};
use self::listen::{bind, create_state_dir, drain, flatten, spawn_admin, spawn_grpc};
pub use self::metrics::ServeMetrics;
pub use self::snapshots::Rebuilder;
use crate::admin::AdminState;
use crate::ca::token::TokenAuthority;
use crate::ca::{Ca, CaConfig, CaError, PluginCa};
use crate::config::watch::{ConfigWatcher, WatchError};
use crate::config::{LoadCache, LoadError};
use crate::store::{EtcdFeed, EtcdOptions, Store, StoreError, StoreMetrics};
use crate::xds::{AdsServer, PeerLimit, ProxyStatusTable, SnapshotCache, XdsMetrics};

/// Everything `trellis serve` is told on its command line.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The config directory, loaded at start and watched.
    pub config_dir: PathBuf,
    /// Where the ADS gRPC server listens.
    pub xds_addr: SocketAddr,
    /// Where the admin HTTP server listens.
    pub admin_addr: SocketAddr,
    /// The control plane's private state directory (created 0700).
    pub state_dir: PathBuf,
    /// How long a disconnected sidecar stays an endpoint.
    pub grace_period: Duration,
    /// How long sidecars restored from the last run stay endpoints while
    /// they have not reconnected (`--restart-grace-period`).
    pub restart_grace_period: Duration,
    /// Accept ADS streams without a workload token (`--insecure-xds`).
    pub insecure_xds: bool,
    /// An operator's CA (Istio plug-in CA files) instead of the self-signed one.
    pub plugin_ca: Option<PluginCa>,
    /// Serve ADS over TLS with a certificate from the mesh CA (`--xds-tls`).
    pub xds_tls: bool,
    /// Extra DNS names or IPs for that certificate (the xDS address's IP,
    /// `127.0.0.1` and `localhost` are always in it).
    pub xds_tls_names: Vec<String>,
    /// Gateway TLS credentials, `DIR/NAMESPACE/NAME/{tls.crt,tls.key[,ca.crt]}`
    /// (`--credentials-dir`); watched.
    pub credentials_dir: Option<PathBuf>,
    /// Lifetime of that certificate; renewed at half of it while serving.
    pub xds_tls_ttl: Duration,
    /// What one client address may hold open on the xDS port.
    pub xds_per_peer: PerPeerLimits,
    /// How `jwksUri` keys are fetched (`--jwks-refresh-interval`,
    /// `--jwks-ca-file`).
    pub jwks: jwks::JwksOptions,
    /// The state shared with other replicas in etcd (`--store etcd://…`);
    /// `None`: this process's state directory only.
    pub store: Option<EtcdOptions>,
    /// The sidecar stats scraper behind the service graph.
    pub graph: GraphOptions,
    /// Hands the memory the allocator holds free back to the OS; called on
    /// a blocking thread once rebuilds pause (the binary's allocator keeps
    /// what a rebuild freed until it allocates again). `None`: never.
    pub release_memory: Option<fn()>,
}

/// How the service graph is observed (`--stats-scrape-interval`,
/// `--graph-window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphOptions {
    /// How often every sidecar's stats port is scraped.
    pub scrape_interval: Duration,
    /// The window the graph's rates cover.
    pub window: Duration,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions {
            scrape_interval: Duration::from_secs(5),
            window: Duration::from_secs(60),
        }
    }
}

/// Connections and ADS streams one client address may hold open at once
/// (`--xds-max-connections-per-peer`, `--xds-max-streams-per-peer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerPeerLimits {
    /// Open TCP connections; one more is closed at once.
    pub connections: usize,
    /// Open ADS streams; one more is refused with RESOURCE_EXHAUSTED.
    pub streams: usize,
}

impl Default for PerPeerLimits {
    /// Every sidecar has its own connection, and a host may run many (the
    /// benchmark runs 10,000 from 127.0.0.1), so the defaults only stop a
    /// runaway client.
    fn default() -> Self {
        PerPeerLimits {
            connections: 16_384,
            streams: 16_384,
        }
    }
}

/// Why the control plane could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config at start is invalid or unreadable.
    #[error("loading the config: {0}")]
    Config(#[source] LoadError),
    /// The state directory could not be created.
    #[error("creating state dir {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("binding the {what} server to {addr}: {source}")]
    Bind {
        /// `gRPC` or `admin`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The CA or the token key could not be loaded or created.
    #[error("certificate authority: {0}")]
    Ca(#[from] CaError),
    /// The config directory could not be watched.
    #[error("watching the config dir: {0}")]
    Watch(#[from] WatchError),
    /// The xDS TLS server could not be set up.
    #[error("xDS TLS: {0}")]
    XdsTls(String),
    /// The `jwksUri` client could not be set up (`--jwks-ca-file`).
    #[error("JWKS client: {0}")]
    Jwks(#[from] jwks::JwksError),
    /// The shared store could not be set up.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The admin server failed.
    #[error("admin server: {0}")]
    Admin(#[source] std::io::Error),
    /// A server task ended although no shutdown was asked for.
    #[error("{0}")]
    Stopped(String),
}

/// A control plane whose config is loaded and listeners are bound; [`Server::run`]
/// serves until shutdown.
pub struct Server {
    core: Arc<Core>,
    ads: AdsServer,
    tls: Option<Arc<xds_tls::ServerCert>>,
    xds: TcpListener,
    xds_connections: PeerLimit,
    admin: TcpListener,
    watcher: ConfigWatcher,
    events: mpsc::Receiver<()>,
    /// The first load's per-file results: the first reload then parses only
    /// the files that changed, like every later one.
    load_cache: LoadCache,
    credentials_dir: Option<PathBuf>,
    jwks: (jwks::JwksClient, std::time::Duration),
    /// What other replicas do, from the etcd store.
    store_feed: Option<EtcdFeed>,
    /// The etcd TLS and metrics of the remote clusters' watches.
    remotes: (Option<crate::store::EtcdTls>, StoreMetrics),
    /// How the sidecar stats scraper runs.
    graph: GraphOptions,
    release_memory: Option<fn()>,
}

/// Loads the config, binds both listeners and starts watching; fails fast
/// on anything that would keep the control plane from serving.
pub async fn start(opts: ServeOptions) -> Result<Server, ServeError> {
    create_state_dir(&opts.state_dir)?;
    // Watch before the first load so that no change slips in between.
    let (watcher, events) = match crate::config::watch::watch(&opts.config_dir) {
        Ok(w) => w,
        Err(e) => {
            // A missing or unreadable dir is better told as a config error.
            reload::load_with_cache(&opts.config_dir)
                .await
                .map_err(ServeError::Config)?;
            return Err(e.into());
        }
    };
    let (loaded, load_cache) = reload::load_with_cache(&opts.config_dir)
        .await
        .map_err(ServeError::Config)?;
    let jwks_client = jwks::JwksClient::new(opts.jwks.ca_file.as_deref())?;
    let (ca, auth) = load_security(&opts)?;
    let tls = match opts.xds_tls {
        true => Some(Arc::new(xds_tls::ServerCert::new(
            Arc::clone(&ca),
            &opts,
            opts.xds_tls_ttl,
        )?)),
        false => None,
    };
    let mut metrics = prometheus_client::registry::Registry::default();
    let store_metrics = StoreMetrics::register(&mut metrics);
    let remotes = (
        opts.store.as_ref().and_then(|s| s.tls.clone()),
        store_metrics.clone(),
    );
    let (store, store_feed) = replicas::open_store(&opts, &ca, &auth, store_metrics).await?;
    let (core, ads) = wire(loaded, &opts, (ca, auth, store), metrics);
    if store_feed.is_some() {
        core.admin
            .set_store_problem(Some("store: connecting to etcd".into()));
    }
    if let Some(dir) = &opts.credentials_dir {
        credentials::refresh(&core, dir);
    }
    core.restore();
    let xds = bind("gRPC", opts.xds_addr).await?;
    let admin = bind("admin", opts.admin_addr).await?;
    Ok(Server {
        core,
        ads,
        tls,
        xds,
        xds_connections: PeerLimit::new(opts.xds_per_peer.connections),
        admin,
        watcher,
        events,
        load_cache,
        credentials_dir: opts.credentials_dir.clone(),
        jwks: (jwks_client, opts.jwks.refresh),
        store_feed,
        remotes,
        graph: opts.graph,
        release_memory: opts.release_memory,
    })
}

/// Loads (or creates, on first start) the CA and the token key.
fn load_security(opts: &ServeOptions) -> Result<(Arc<Ca>, StreamAuth), ServeError> {
    let ca = Ca::load_or_create(&CaConfig {
        state_dir: opts.state_dir.clone(),
        plugin: opts.plugin_ca.clone(),
    })?;
    let tokens = Arc::new(TokenAuthority::load_or_create(&opts.state_dir)?);
    let auth = if opts.insecure_xds {
        tracing::warn!(
            "INSECURE: --insecure-xds accepts ADS streams without a workload token; \
             any process that reaches the xDS port can register as any service and \
             receive its certificate and key. Use it only for local experiments."
        );
        StreamAuth::Insecure(tokens)
    } else {
        StreamAuth::Tokens(tokens)
    };
    let roots = ca.roots();
    let fingerprints: Vec<&str> = roots
        .iter()
        .map(|r| r.fingerprint_sha256.as_str())
        .collect();
    tracing::info!(plugin = ca.is_plugin(), phase = %ca.rotation_phase(), roots = ?fingerprints, "mesh CA loaded");
    Ok((Arc::new(ca), auth))
}

/// Builds the shared state, the metrics registry and the ADS service.
fn wire(
    loaded: reload::Loaded,
    opts: &ServeOptions,
    (ca, auth, store): (Arc<Ca>, StreamAuth, Store),
    mut registry: prometheus_client::registry::Registry,
) -> (Arc<Core>, AdsServer) {
    let xds_metrics = XdsMetrics::register(&mut registry);
    let metrics = ServeMetrics::register(&mut registry);
    let status = ProxyStatusTable::new();
    status.register_metrics(&mut registry);
    let rollout_metrics = rollout::RolloutMetrics::register(&mut registry);
    let rollout = match &opts.store {
        Some(etcd) => {
            rollout::Rollout::open_shared(&opts.state_dir, etcd.replica.clone(), rollout_metrics)
        }
        None => rollout::Rollout::open(Some(&opts.state_dir), rollout_metrics),
    };
    let ca_metrics = ca_metrics::CaMetrics::default();
    registry.register_collector(Box::new(ca_metrics.clone()));
    let (view, peers) = (status.clone(), status_share::PeerStatus::default());
    let (view_peers, me) = (
        peers.clone(),
        opts.store.as_ref().map(|s| s.replica.clone()),
    );
    let admin = AdminState::new(
        registry,
        Box::new(move || status_share::view(&view, &view_peers, me.as_deref())),
    );
    let core = Core::new(
        loaded,
        CoreParts {
            config_dir: opts.config_dir.clone(),
            cache: SnapshotCache::new(),
            status,
            peers,
            metrics,
            admin,
            grace: opts.grace_period,
            restart_grace: opts.restart_grace_period,
            auth,
            ca,
            store,
            rollout,
            samples: crate::graph::SampleStore::new(opts.graph.window),
        },
    );
    core.admin.set_graph(core.samples.clone());
    core.admin.set_lint(lint_view::view(&core));
    core.shared_rotation.set_plugin(opts.plugin_ca.clone());
    if let Some(etcd) = &opts.store {
        core.shared_rotation.set_me(etcd.replica.clone());
    }
    core.admin.set_ca(Arc::new(ca_admin::CaAdmin::new(&core)));
    ca_metrics.attach(&core);
    core.admin.set_snapshots(core.cache.clone());
    core.admin
        .set_rollout(Arc::new(rollout::RolloutAdmin(Arc::downgrade(&core))));
    let hooks = Arc::new(Hooks(core.clone()));
    let ads = AdsServer::new(core.cache.clone(), hooks, core.status.clone(), xds_metrics)
        .with_streams_per_peer(PeerLimit::new(opts.xds_per_peer.streams));
    (core, ads)
}

/// Starts and runs the control plane until `shutdown` resolves.
pub async fn run(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    start(opts).await?.run(shutdown).await
}

impl Server {
    /// The bound ADS address (useful with port 0).
    pub fn xds_addr(&self) -> Option<SocketAddr> {
        self.xds.local_addr().ok()
    }

    /// The bound admin address (useful with port 0).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    /// Serves ADS and admin, reloads and rebuilds until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let Server {
            core,
            ads,
            tls,
            xds,
            xds_connections,
            admin,
            watcher,
            events,
            load_cache,
            credentials_dir,
            jwks: (jwks_client, jwks_refresh),
            store_feed,
            remotes: (remote_tls, remote_metrics),
            graph,
            release_memory,
        } = self;
        log_serving(&core, &xds, &admin);
        let (stop_tx, stop) = watch::channel(false);
        let rebuild = tokio::spawn(snapshots::rebuild_loop(
            core.clone(),
            stop.clone(),
            release_memory,
        ));
        let renew = tokio::spawn(certs::renew_loop(core.clone(), stop.clone()));
        let bake = tokio::spawn(rollout::bake_loop(core.clone(), stop.clone()));
        let revocations = tokio::spawn(token_watch::revocation_loop(core.clone(), stop.clone()));
        let tls_renew = tls
            .clone()
            .map(|cert| tokio::spawn(xds_tls::renew_loop(cert, stop.clone())));
        let reload = tokio::spawn(reload::reload_loop(
            core.clone(),
            core.config_dir.clone(),
            events,
            load_cache,
            stop.clone(),
        ));
        let creds = credentials_dir
            .map(|dir| tokio::spawn(credentials::watch_loop(core.clone(), dir, stop.clone())));
        let jwks = tokio::spawn(jwks::fetch_loop(
            core.clone(),
            jwks_client,
            jwks_refresh,
            stop.clone(),
        ));
        let share_task = (store_feed.as_ref()).map(|feed| {
            let me = feed.replica.clone();
            tokio::spawn(status_share::publish_loop(core.clone(), me, stop.clone()))
        });
        let driver_task = (store_feed.as_ref())
            .map(|_| tokio::spawn(rotation::driver_loop(core.clone(), stop.clone())));
        let lead_task = (store_feed.as_ref())
            .map(|_| tokio::spawn(rollout::shared::lead_loop(core.clone(), stop.clone())));
        let store_task = store_feed
            .map(|feed| tokio::spawn(replicas::store_loop(core.clone(), feed, stop.clone())));
        let scraper = tokio::spawn(graph::scrape_loop(core.clone(), graph, stop.clone()));
        let clusters = tokio::spawn(clusters::clusters_loop(
            core.clone(),
            remote_tls,
            remote_metrics,
            stop.clone(),
        ));
        let mut grpc = spawn_grpc(ads, xds, tls, xds_connections, stop.clone());
        let mut admin_task = spawn_admin(core.admin.clone(), admin, stop.clone());
        // A bound listener queues connections until the server polls it, so
        // from here on Envoys can connect.
        core.admin.set_grpc_listening(true);
        let outcome = tokio::select! {
            _ = shutdown => {
                tracing::info!("shutting down");
                Ok(())
            }
            r = &mut grpc => flatten(r),
            r = &mut admin_task => flatten(r),
        };
        core.admin.set_grpc_listening(false);
        let _ = stop_tx.send(true);
        drop(watcher);
        drain(grpc).await;
        drain(admin_task).await;
        let _ = tokio::join!(
            rebuild,
            reload,
            renew,
            bake,
            revocations,
            jwks,
            clusters,
            scraper
        );
        if let Some(task) = creds {
            let _ = task.await;
        }
        if let Some(task) = store_task {
            let _ = task.await;
        }
        if let Some(task) = share_task {
            let _ = task.await;
        }
        for task in [driver_task, lead_task].into_iter().flatten() {
            let _ = task.await;
        }
        if let Some(task) = tls_renew {
            let _ = task.await;
        }
        tracing::info!("trellis stopped");
        outcome
    }
}

fn log_serving(core: &Core, xds: &TcpListener, admin: &TcpListener) {
    let addr = |l: &TcpListener| l.local_addr().map_or("?".into(), |a| a.to_string());
    tracing::info!(
        xds = %addr(xds),
        admin = %addr(admin),
        config = %core.config_dir.display(),
        generation = core.generation(),
        "trellis serving"
    );
}
