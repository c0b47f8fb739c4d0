//! The two-version mesh most routing scenarios start from: `payment` v1 and
//! v2 behind Trellis, plus a client sidecar, in one call instead of a copy of
//! the setup per test file.

use crate::backend::Behavior;
use crate::fixture::{subset_cluster, Instance, MeshClient};
use crate::mesh::{subsets_rule, weighted_routes, ConfigDir};
use crate::trellis::Trellis;

/// A VirtualService for `payment`: `end-user: jason` goes to v2, everyone
/// else to v1.
pub const HEADER_ROUTES: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: payment
        subset: v2
  - route:
    - destination:
        host: payment
        subset: v1
"#;

/// A VirtualService for `payment` that Trellis accepts and Envoy NACKs:
/// Envoy's RE2 limits a regex's compiled program size (100 by default) and
/// this one is about 660 (see tests/nack.rs). Routes to subset v2.
pub const NACKED_ROUTES: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payment
spec:
  hosts:
  - payment
  http:
  - match:
    - uri:
        regex: "/(alpha|beta|gamma|delta){1,30}"
    route:
    - destination:
        host: payment
        subset: v2
"#;

/// Trellis serving a config dir with subsets v1/v2 of `payment`, one
/// instance of each and a client sidecar. Fields are declared so they drop
/// client first and config dir last, as the hand-written setups did.
#[derive(Debug)]
pub struct CanaryMesh {
    /// The client sidecar.
    pub client: MeshClient,
    /// `payment` v2.
    pub v2: Instance,
    /// `payment` v1.
    pub v1: Instance,
    /// The control plane.
    pub trellis: Trellis,
    /// Its config dir (`rule.yaml`, `routes.yaml`).
    pub config: ConfigDir,
}

impl CanaryMesh {
    /// Starts the mesh with `routes` as `routes.yaml`, then waits until the
    /// client holds an endpoint of each subset in `ready` (e.g. `["v1"]`).
    pub async fn start(routes: &str, ready: &[&str]) -> anyhow::Result<Self> {
        let rule = subsets_rule("payment", &["v1", "v2"]);
        let config = ConfigDir::with(&[("rule.yaml", &rule), ("routes.yaml", routes)])?;
        let trellis = Trellis::start(config.path()).await?;
        let v1 = Instance::start(&trellis, "payment", "v1", Behavior::Ok).await?;
        let v2 = Instance::start(&trellis, "payment", "v2", Behavior::Ok).await?;
        let client = MeshClient::start(&trellis).await?;
        for subset in ready {
            client
                .wait_endpoints(&subset_cluster(subset, "payment"), 1)
                .await?;
        }
        Ok(Self {
            client,
            v2,
            v1,
            trellis,
            config,
        })
    }

    /// [`CanaryMesh::start`] with a `v1`/`v2` weighted split.
    pub async fn weighted(v1: u32, v2: u32, ready: &[&str]) -> anyhow::Result<Self> {
        let routes = weighted_routes("payment", &[("v1", v1), ("v2", v2)]);
        Self::start(&routes, ready).await
    }
}
