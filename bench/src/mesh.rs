//! The generated mesh: one file per service (`svc-I.yaml`) holding a
//! `ServiceEntry` with E static endpoints, a `VirtualService` splitting
//! traffic between subsets v1 and v2, and the `DestinationRule` naming them.
//! One file per service so that a change rewrites exactly one file.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The mesh's shape and the knobs the changes turn.
#[derive(Debug, Clone, Copy)]
pub struct Mesh {
    /// Number of services.
    pub services: usize,
    /// Static endpoints per service.
    pub endpoints: usize,
    /// With `Some(k)`, a namespace-wide `Sidecar` scopes every sidecar to
    /// the first k services.
    pub scope: Option<usize>,
}

/// The name of service `i`.
pub fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

fn file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{}.yaml", service_name(i)))
}

/// The YAML of service `i`: `weight_v1` is the v1 share of the split and
/// `generation` shifts the first endpoint's address (an endpoint change).
pub fn service_yaml(i: usize, endpoints: usize, weight_v1: u32, generation: u32) -> String {
    let name = service_name(i);
    let mut eps = String::new();
    for e in 0..endpoints {
        // 10.x.y.z per service and endpoint; never dialled, only served.
        let host = (e as u32 + 1) + if e == 0 { generation * 16 } else { 0 };
        let version = if e % 2 == 0 { "v1" } else { "v2" };
        eps.push_str(&format!(
            "  - address: 10.{}.{}.{}\n    ports:\n      http: 8080\n    labels:\n      version: {version}\n",
            (i >> 8) & 255,
            i & 255,
            host % 250 + 1,
        ));
    }
    let weight_v2 = 100 - weight_v1;
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
spec:
  hosts:
  - {name}
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
{eps}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
spec:
  host: {name}
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
spec:
  hosts:
  - {name}
  http:
  - route:
    - destination:
        host: {name}
        subset: v1
      weight: {weight_v1}
    - destination:
        host: {name}
        subset: v2
      weight: {weight_v2}
"#
    )
}

impl Mesh {
    /// Writes every service's file into `dir`.
    pub fn write_all(&self, dir: &Path) -> anyhow::Result<()> {
        for i in 0..self.services {
            let yaml = service_yaml(i, self.endpoints, 50, 0);
            std::fs::write(file(dir, i), yaml).context("writing the mesh config")?;
        }
        if let Some(k) = self.scope {
            let hosts: String = (0..k.min(self.services))
                .map(|i| format!("    - ./{}\n", service_name(i)))
                .collect();
            let yaml = format!(
                "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: scope\nspec:\n  egress:\n  - hosts:\n{hosts}"
            );
            std::fs::write(dir.join("sidecar.yaml"), yaml).context("writing the Sidecar")?;
        }
        Ok(())
    }

    /// Rewrites service `i`'s file atomically (write, then rename) so the
    /// control plane's watcher never sees half a file.
    pub fn rewrite(
        &self,
        dir: &Path,
        i: usize,
        weight_v1: u32,
        generation: u32,
    ) -> anyhow::Result<()> {
        let tmp = dir.join(format!(".{}.tmp", service_name(i)));
        std::fs::write(&tmp, service_yaml(i, self.endpoints, weight_v1, generation))?;
        std::fs::rename(&tmp, file(dir, i)).context("replacing a service file")?;
        Ok(())
    }
}
