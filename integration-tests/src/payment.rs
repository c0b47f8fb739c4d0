//! The one-service setup of the routing-policy scenarios (faults, retries,
//! timeouts): one `payment` v1 instance behind Trellis with a single HTTP
//! route whose policy varies, and a client sidecar.

use crate::backend::Behavior;
use crate::fixture::{subset_cluster, Instance, MeshClient};
use crate::mesh::ConfigDir;
use crate::trellis::Trellis;

/// A VirtualService for `payment` with one HTTP route to `payment`; `policy`
/// holds further fields of that route (e.g. `fault:`, `retries:`,
/// `timeout:`), indented by four spaces, each line ending in a newline.
pub fn payment_routes(policy: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - route:
    - destination:
        host: payment
{policy}"#
    )
}

/// Trellis serving `routes.yaml` = `routes`, one `payment` v1 instance with
/// `behavior`, and a client whose sidecar sees that instance. Returned in
/// the order the scenarios keep them alive: config dir, control plane,
/// instance, client.
pub async fn start_payment(
    routes: &str,
    behavior: Behavior,
) -> anyhow::Result<(ConfigDir, Trellis, Instance, MeshClient)> {
    let config = ConfigDir::with(&[("routes.yaml", routes)])?;
    let (trellis, server, client) = payment_mesh(&config, behavior).await?;
    Ok((config, trellis, server, client))
}

/// Trellis serving `config`, one `payment` v1 instance with `behavior`, and
/// a client whose sidecar sees that instance.
pub async fn payment_mesh(
    config: &ConfigDir,
    behavior: Behavior,
) -> anyhow::Result<(Trellis, Instance, MeshClient)> {
    let trellis = Trellis::start(config.path()).await?;
    let server = Instance::start(&trellis, "payment", "v1", behavior).await?;
    let client = MeshClient::start(&trellis).await?;
    client
        .wait_endpoints(&subset_cluster("", "payment"), 1)
        .await?;
    Ok((trellis, server, client))
}
