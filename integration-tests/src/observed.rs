//! A mesh whose control plane scrapes its sidecars' stats quickly, so that
//! the service graph (`/debug/graph`) shows edges within a second or two:
//! a client calling `payment` (answers after [`PAYMENT_DELAY`]) and
//! `ledger` (always 500).

use std::time::Duration;

use serde_json::Value;

use crate::backend::Behavior;
use crate::fixture::{Instance, MeshClient};
use crate::mesh::{subsets_rule, ConfigDir};
use crate::trellis::{Trellis, TrellisOptions};
use crate::wait::wait_until;

/// How long `payment` takes to answer.
pub const PAYMENT_DELAY: Duration = Duration::from_millis(30);
/// `--stats-scrape-interval` of the control plane.
pub const SCRAPE_INTERVAL: &str = "200ms";
/// Canonical hosts of the services.
pub const CLIENT: &str = "client.default.svc.cluster.local";
/// `payment`'s host.
pub const PAYMENT: &str = "payment.default.svc.cluster.local";
/// `ledger`'s host.
pub const LEDGER: &str = "ledger.default.svc.cluster.local";

/// The mesh; drops the client first and the config dir last.
#[derive(Debug)]
pub struct ObservedMesh {
    /// The calling sidecar (service `client`).
    pub client: MeshClient,
    /// `ledger` v1, always 500.
    pub ledger: Instance,
    /// `payment` v1, 200 after [`PAYMENT_DELAY`].
    pub payment: Instance,
    /// The control plane.
    pub trellis: Trellis,
    /// Its config dir (`rule.yaml`: subset v1 of `payment`).
    pub config: ConfigDir,
}

impl ObservedMesh {
    /// Starts everything and waits until the client has both services'
    /// endpoints and every sidecar was scraped at least twice.
    pub async fn start() -> anyhow::Result<Self> {
        let config = ConfigDir::with(&[("rule.yaml", &subsets_rule("payment", &["v1"]))])?;
        let opts = TrellisOptions {
            extra_args: vec![
                "--stats-scrape-interval".into(),
                SCRAPE_INTERVAL.into(),
                "--graph-window".into(),
                "30s".into(),
            ],
            ..Default::default()
        };
        let trellis = Trellis::start_with(config.path(), opts).await?;
        let delay = Behavior::Delay(PAYMENT_DELAY);
        let payment = Instance::start(&trellis, "payment", "v1", delay).await?;
        let ledger = Instance::start(&trellis, "ledger", "v1", Behavior::Always(500)).await?;
        let client = MeshClient::start(&trellis).await?;
        client.wait_endpoints("||payment.", 1).await?;
        client.wait_endpoints("||ledger.", 1).await?;
        let mesh = Self {
            client,
            ledger,
            payment,
            trellis,
            config,
        };
        mesh.wait_graph(|g| (g["proxies_scraped"].as_u64()? >= 3).then_some(()))
            .await?;
        Ok(mesh)
    }

    /// `/debug/graph` as JSON.
    pub async fn graph(&self) -> anyhow::Result<Value> {
        let (status, body) = self.trellis.admin_get("/debug/graph").await?;
        anyhow::ensure!(status == 200, "/debug/graph: HTTP {status}: {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// Polls `/debug/graph` until `pick` finds something (15 s at most:
    /// Envoy merges its histograms every 5 s).
    pub async fn wait_graph<T>(&self, pick: impl Fn(&Value) -> Option<T>) -> anyhow::Result<T> {
        let found = wait_until(
            Duration::from_secs(15),
            Duration::from_millis(100),
            || async { pick(&self.graph().await.ok()?) },
        )
        .await;
        match found {
            Ok((t, _)) => Ok(t),
            Err(e) => anyhow::bail!("{e}; last /debug/graph: {:?}", self.graph().await),
        }
    }

    /// Waits for the edge from the client to `destination` that counts
    /// `requests` requests and has a p99.
    pub async fn wait_edge(&self, destination: &str, requests: u64) -> anyhow::Result<Value> {
        self.wait_graph(|g| {
            let edge = edge(g, CLIENT, destination)?;
            let timed = !edge["p99_ms"].is_null();
            (edge["requests"].as_u64()? >= requests && timed).then(|| edge.clone())
        })
        .await
    }
}

/// The edge `source → destination` of a `/debug/graph` document.
pub fn edge<'a>(graph: &'a Value, source: &str, destination: &str) -> Option<&'a Value> {
    (graph["edges"].as_array()?.iter())
        .find(|e| e["source"] == source && e["destination"] == destination)
}
