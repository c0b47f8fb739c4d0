//! The path under test: two Trellis sidecars as a new user runs them.
//! `trellis serve` on a temporary config directory holding only a mesh-wide
//! STRICT `PeerAuthentication` (plus a variant's extra files), and
//! `trellis bootstrap` sidecars with workload tokens for a `client` and a
//! `server` service; everything else (access log, stats port, filters) as
//! it ships.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use trellis_integration_tests::{free_port, ConfigDir, Sidecar, Trellis};

/// How long the client sidecar may take to see the server's endpoint.
const EDS_TIMEOUT: Duration = Duration::from_secs(30);

/// The Host the client's app sends: the server service's name.
pub const SERVER_HOST: &str = "server";

const STRICT: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  \
                      name: default\n  namespace: istio-system\nspec:\n  mtls:\n    mode: STRICT\n";

/// A control plane and two sidecars; all killed and reaped when dropped
/// (sidecars first: fields drop in order).
pub struct TrellisPair {
    /// The client's sidecar (the load enters its outbound listener).
    pub client: Sidecar,
    /// The server's sidecar (its inbound listener forwards to the app).
    pub server: Sidecar,
    _trellis: Trellis,
    _config: ConfigDir,
}

impl TrellisPair {
    /// Starts `trellis serve` (waiting for `/readyz`), the server's sidecar
    /// in front of `app_port` and the client's (each waiting for `/ready`),
    /// then waits until the client holds the server's endpoint.
    pub async fn start(app_port: u16, extra: &[PathBuf]) -> anyhow::Result<TrellisPair> {
        let config = ConfigDir::with(&[("peer-authentication.yaml", STRICT)])?;
        for file in extra {
            config.copy_from(file)?;
        }
        let trellis = Trellis::start(config.path()).await?;
        let labels = [("version", "v1")];
        let server = Sidecar::start(&trellis, "server", &labels, app_port).await?;
        // The client's own app is never called: a port nothing listens on.
        let client = Sidecar::start(&trellis, "client", &labels, free_port()).await?;
        client
            .wait_healthy_endpoints("||server.default.svc.cluster.local", 1, EDS_TIMEOUT)
            .await
            .context("the client sidecar never saw the server")?;
        Ok(TrellisPair {
            client,
            server,
            _trellis: trellis,
            _config: config,
        })
    }

    /// What the measured config holds, from each sidecar's
    /// `/config_dump`: the HTTP filters and access loggers of its
    /// listeners, so a report says what was measured.
    pub async fn describe(&self) -> anyhow::Result<Value> {
        let mut out = json!({});
        for (role, sidecar) in [("client", &self.client), ("server", &self.server)] {
            let dump: Value = serde_json::from_str(
                &sidecar
                    .admin("/config_dump?resource=dynamic_listeners")
                    .await?,
            )?;
            let (mut filters, mut logs) = (Vec::new(), Vec::new());
            names_under(&dump, "http_filters", &mut filters);
            names_under(&dump, "access_log", &mut logs);
            filters.dedup();
            out[role] = json!({"http_filters": filters, "access_logs": logs.len()});
        }
        Ok(out)
    }
}

/// The `name` of every element of every array called `key` in `v`.
fn names_under(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == key {
                    let items = child.as_array().into_iter().flatten();
                    out.extend(items.filter_map(|i| i["name"].as_str().map(str::to_string)));
                }
                names_under(child, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| names_under(i, key, out)),
        _ => {}
    }
}
