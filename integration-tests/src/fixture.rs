//! Building blocks most scenarios share: a service instance (backend plus
//! its sidecar) and a client sidecar that sends mesh requests.

use std::time::Duration;

use crate::backend::{Backend, Behavior};
use crate::client::{Client, Reply, Tally};
use crate::envoy::Sidecar;
use crate::trellis::Trellis;

/// How long a sidecar may take to see endpoints pushed over EDS.
pub const EDS_TIMEOUT: Duration = Duration::from_secs(15);

/// One instance of a service: an in-process backend and its Envoy sidecar
/// (registered with the control plane under `service`, `version: VERSION`).
#[derive(Debug)]
pub struct Instance {
    /// The application.
    pub backend: Backend,
    /// Its sidecar.
    pub sidecar: Sidecar,
}

impl Instance {
    /// Starts a backend named `name` answering `name version`, and its sidecar.
    pub async fn start(
        trellis: &Trellis,
        service: &str,
        version: &str,
        behavior: Behavior,
    ) -> anyhow::Result<Self> {
        Self::start_named(trellis, service, service, version, behavior).await
    }

    /// Like [`Instance::start`], with a backend label other than the service
    /// name, to tell instances of one subset apart.
    pub async fn start_named(
        trellis: &Trellis,
        service: &str,
        name: &str,
        version: &str,
        behavior: Behavior,
    ) -> anyhow::Result<Self> {
        let backend = Backend::start_with(name, version, behavior).await?;
        let sidecar =
            Sidecar::start(trellis, service, &[("version", version)], backend.port()).await?;
        Ok(Self { backend, sidecar })
    }

    /// Kills the sidecar and stops the backend, as a crashed host would.
    pub fn kill(mut self) {
        self.sidecar.kill();
    }
}

/// A client application's sidecar: requests go to its outbound port with a
/// `Host` header naming the service.
#[derive(Debug)]
pub struct MeshClient {
    /// The client's own (idle) app.
    pub app: Backend,
    /// Its sidecar.
    pub sidecar: Sidecar,
    /// HTTP client pointed at the outbound port.
    pub http: Client,
}

impl MeshClient {
    /// Starts a sidecar for a service named `client`.
    pub async fn start(trellis: &Trellis) -> anyhow::Result<Self> {
        let app = Backend::start("client", "v1").await?;
        let sidecar = Sidecar::start(trellis, "client", &[("version", "v1")], app.port()).await?;
        Ok(Self {
            app,
            sidecar,
            http: Client::new(),
        })
    }

    /// One request to `host` with extra headers.
    pub async fn get(&self, host: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
        self.http
            .get(self.sidecar.outbound_port(), host, "/", headers)
            .await
    }

    /// One request with any method and path to `host` through the sidecar.
    pub async fn send(
        &self,
        method: hyper::Method,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.sidecar.outbound_port()));
        self.http.send(method, addr, host, path, headers).await
    }

    /// `n` requests to `host`, `concurrency` at a time, counted by outcome.
    pub async fn tally(
        &self,
        host: &str,
        headers: &[(&str, &str)],
        n: usize,
        concurrency: usize,
    ) -> Tally {
        self.http
            .tally(self.sidecar.outbound_port(), host, headers, n, concurrency)
            .await
    }

    /// The routes the client's Envoy holds (`/config_dump?resource=dynamic_route_configs`),
    /// for failure messages.
    pub async fn routes_dump(&self) -> String {
        self.sidecar
            .admin("/config_dump?resource=dynamic_route_configs")
            .await
            .unwrap_or_else(|e| e.to_string())
    }

    /// Waits until the client's sidecar has `count` healthy endpoints in
    /// the clusters whose name contains `cluster` (e.g. `|v2|reviews.`).
    pub async fn wait_endpoints(&self, cluster: &str, count: usize) -> anyhow::Result<Duration> {
        self.sidecar
            .wait_healthy_endpoints(cluster, count, EDS_TIMEOUT)
            .await
    }
}

/// The `outbound|80|SUBSET|HOST` fragment of a subset's cluster name for a
/// short host in namespace `default` (as `translate` names clusters).
pub fn subset_cluster(subset: &str, short_host: &str) -> String {
    format!("|{subset}|{short_host}.default.svc.cluster.local")
}
