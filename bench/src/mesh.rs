//! The generated mesh: one file per service (`svc-I.yaml`) holding a
//! `ServiceEntry` with E static endpoints, a `VirtualService` splitting
//! traffic between subsets v1 and v2, and the `DestinationRule` naming them.
//! One file per service so that a change rewrites exactly one file.
//!
//! [`Layout`] spreads the services over namespaces (`metadata.namespace`
//! on each resource, so the short host `svc-I` is the service
//! `svc-I.ns-J.svc.cluster.local`) and can add a `Mesh` resource.

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
// Kept for callers of the one-namespace API (the envoy bench).
#[allow(dead_code)]
pub fn service_yaml(i: usize, endpoints: usize, weight_v1: u32, generation: u32) -> String {
    service_yaml_in(i, None, endpoints, weight_v1, generation)
}

/// [`service_yaml`] with `metadata.namespace: NS` on every resource when
/// `namespace` is given (none: the loader's `default`).
pub fn service_yaml_in(
    i: usize,
    namespace: Option<&str>,
    endpoints: usize,
    weight_v1: u32,
    generation: u32,
) -> String {
    let name = service_name(i);
    let meta = match namespace {
        Some(ns) => format!("  name: {name}\n  namespace: {ns}\n"),
        None => format!("  name: {name}\n"),
    };
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
{meta}spec:
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
{meta}spec:
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
{meta}spec:
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
        Layout::new(*self, 1, false).write_all(dir)
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
        Layout::new(*self, 1, false).rewrite(dir, i, weight_v1, generation)
    }
}

/// A [`Mesh`] spread over namespaces, optionally with a `Mesh` resource.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The services and their knobs.
    pub mesh: Mesh,
    /// Namespaces, 1 ..= services: service `i` is in namespace
    /// `i * namespaces / services` (contiguous blocks).
    pub namespaces: usize,
    /// Write a `trellis.dev` `Mesh` with `defaultSidecarScope: ALL_SERVICES`.
    pub all_services: bool,
}

/// The `Mesh` resource of `--all-services`: every sidecar without a
/// `Sidecar` reaches every service (Istio's default) instead of its own
/// namespace plus the root namespace.
pub const MESH_ALL_SERVICES: &str = "apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata:
  name: mesh
spec:
  defaultSidecarScope: ALL_SERVICES
";

/// Istio's root namespace, where a `Sidecar` applies to every namespace.
pub const ROOT_NAMESPACE: &str = "istio-system";

impl Layout {
    /// `mesh` over `namespaces` namespaces (clamped to 1 ..= services).
    pub fn new(mesh: Mesh, namespaces: usize, all_services: bool) -> Layout {
        Layout {
            mesh,
            namespaces: namespaces.clamp(1, mesh.services.max(1)),
            all_services,
        }
    }

    /// The namespace of service `i`: `default` with one namespace (the
    /// files then carry no `metadata.namespace`), else `ns-J`.
    pub fn namespace(&self, i: usize) -> String {
        self.declared_namespace(i)
            .unwrap_or_else(|| "default".to_string())
    }

    fn declared_namespace(&self, i: usize) -> Option<String> {
        let j = i * self.namespaces / self.mesh.services.max(1);
        (self.namespaces > 1).then(|| format!("ns-{j}"))
    }

    fn yaml(&self, i: usize, weight_v1: u32, generation: u32) -> String {
        let ns = self.declared_namespace(i);
        service_yaml_in(i, ns.as_deref(), self.mesh.endpoints, weight_v1, generation)
    }

    /// The `Sidecar` of `--scope K`: every sidecar reaches the first K
    /// services. With one namespace it is namespace-wide in `default`
    /// (`./svc-I`); with several it lives in the root namespace, which
    /// makes it the default of every namespace, naming `ns-J/svc-I`.
    pub fn sidecar_yaml(&self) -> Option<String> {
        let k = self.mesh.scope?;
        let root = self.namespaces > 1;
        let hosts: String = (0..k.min(self.mesh.services))
            .map(|i| match root {
                false => format!("    - ./{}\n", service_name(i)),
                true => format!("    - {}/{}\n", self.namespace(i), service_name(i)),
            })
            .collect();
        let meta = match root {
            false => String::new(),
            true => format!("\n  namespace: {ROOT_NAMESPACE}"),
        };
        Some(format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: scope{meta}\nspec:\n  egress:\n  - hosts:\n{hosts}"
        ))
    }

    /// Writes every service's file into `dir`, the `Sidecar` of
    /// `--scope` and the `Mesh` of `--all-services`.
    pub fn write_all(&self, dir: &Path) -> anyhow::Result<()> {
        for i in 0..self.mesh.services {
            std::fs::write(file(dir, i), self.yaml(i, 50, 0)).context("writing the mesh config")?;
        }
        if let Some(yaml) = self.sidecar_yaml() {
            std::fs::write(dir.join("sidecar.yaml"), yaml).context("writing the Sidecar")?;
        }
        if self.all_services {
            std::fs::write(dir.join("mesh.yaml"), MESH_ALL_SERVICES).context("writing the Mesh")?;
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
        std::fs::write(&tmp, self.yaml(i, weight_v1, generation))?;
        std::fs::rename(&tmp, file(dir, i)).context("replacing a service file")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
