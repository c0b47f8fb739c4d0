//! `trellis validate --envoy`: Envoy itself judges what `serve` would send.
//!
//! Every rendered proxy's resources go into a static bootstrap
//! ([`bootstrap`]) that `envoy --mode validate` checks, once per distinct
//! snapshot. A rejection is then narrowed to a type (Envoy does not name
//! it: the bootstrap is checked again without routes, then without
//! listeners) and blamed on the config object responsible with
//! [`Provenance::blame_for`], as a live NACK is.

mod bootstrap;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bootstrap::Part;

use crate::config::model::MeshConfig;
use crate::registry::Proxy;
use crate::render::RenderedProxy;
use crate::translate::provenance::{Blame, PatchIndex, Provenance};
use crate::translate::WorkloadCerts;
use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};

/// Why the pre-flight could not run (as opposed to Envoy rejecting).
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// No `envoy` executable on `PATH`: nothing can be checked.
    #[error(
        "envoy not found on PATH: `validate --envoy` needs Envoy's binary to check the config"
    )]
    EnvoyMissing,
    /// A resource could not be shown as JSON (a bug).
    #[error("rendering {resource}: {message}")]
    Render {
        /// Resource name.
        resource: String,
        /// What went wrong.
        message: String,
    },
    /// Writing a bootstrap or running Envoy failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// One rejection by Envoy.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The proxies whose resources Envoy rejected this way.
    pub proxies: Vec<String>,
    /// The type of the rejected resource, as far as the checks tell.
    pub type_url: String,
    /// Envoy's message.
    pub message: String,
    /// The config object responsible, when known.
    pub blame: Option<Blame>,
}

impl Rejection {
    /// One line in `validate`'s format: `FILE:LINE:COL: error: KIND/NAME:
    /// ...`, else the type and Envoy's message.
    pub fn report(&self) -> String {
        let proxies = self.proxies.join(", ");
        match &self.blame {
            Some(b) => b.report(&proxies, &self.message),
            None => format!(
                "error: Envoy rejected a {} resource (rejected by proxy {proxies}: {})",
                crate::xds::short_type_name(&self.type_url),
                self.message.trim()
            ),
        }
    }
}

/// The `envoy` executable on `PATH`.
pub fn find_envoy() -> Result<PathBuf, PreflightError> {
    let path = std::env::var_os("PATH").ok_or(PreflightError::EnvoyMissing)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("envoy"))
        .find(|p| is_executable(p))
        .ok_or(PreflightError::EnvoyMissing)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a rejection is blamed on (the config's provenance and the
/// `EnvoyFilter` patches of the render), and the placeholder certificate
/// of the render.
pub struct Sources<'a> {
    /// Stands in for certificate files (see [`crate::render::Renderer::placeholder_certs`]).
    pub placeholder: &'a WorkloadCerts,
    /// The rendered config's provenance.
    pub provenance: &'a Provenance,
    /// The rendered config.
    pub mesh: &'a MeshConfig,
    /// What its `EnvoyFilter` patches changed ([`crate::render::Renderer::patches`]).
    pub patches: PatchIndex,
}

impl Sources<'_> {
    /// The config object (and field) the provenance blames for `proxy`'s
    /// rejection `message`, an `EnvoyFilter` patch first.
    fn blame(&self, proxy: &Proxy, type_url: &str, message: &str) -> Option<Blame> {
        let who = (self.patches).rejecter(self.mesh, proxy);
        self.provenance.blame_for(type_url, message, &who)
    }
}

/// Checks every distinct snapshot of `rendered` with `envoy`, writing the
/// bootstraps under `workdir`; the rejections, one per distinct message.
pub fn check(
    envoy: &Path,
    rendered: &BTreeMap<String, RenderedProxy>,
    sources: &Sources<'_>,
    workdir: &Path,
) -> Result<Vec<Rejection>, PreflightError> {
    // Proxies with the very same sets share one check.
    let mut distinct: BTreeMap<Vec<usize>, Vec<&RenderedProxy>> = BTreeMap::new();
    for p in rendered.values() {
        distinct.entry(sets_key(p)).or_default().push(p);
    }
    let mut found: HashMap<(String, String), Rejection> = HashMap::new();
    let mut order = Vec::new();
    for (i, group) in distinct.values().enumerate() {
        let Some((type_url, message)) =
            check_one(envoy, group[0], sources.placeholder, (workdir, i))?
        else {
            continue;
        };
        let ids = group.iter().map(|p| p.proxy.id.clone());
        let key = (type_url.clone(), message.clone());
        match found.get_mut(&key) {
            Some(r) => r.proxies.extend(ids),
            None => {
                let blame = sources.blame(&group[0].proxy, &type_url, &message);
                order.push(key.clone());
                found.insert(
                    key,
                    Rejection {
                        proxies: ids.collect(),
                        type_url,
                        message,
                        blame,
                    },
                );
            }
        }
    }
    Ok(order.into_iter().filter_map(|k| found.remove(&k)).collect())
}

/// The addresses of a snapshot's sets, in a fixed type order.
fn sets_key(p: &RenderedProxy) -> Vec<usize> {
    [
        &CLUSTER_TYPE,
        &ENDPOINT_TYPE,
        &LISTENER_TYPE,
        &ROUTE_TYPE,
        &SECRET_TYPE,
    ]
    .iter()
    .map(|url| Arc::as_ptr(p.snapshot.shared(url)) as usize)
    .collect()
}

/// `None` when Envoy accepts the proxy's resources; else the type found
/// responsible and Envoy's message.
fn check_one(
    envoy: &Path,
    p: &RenderedProxy,
    placeholder: &WorkloadCerts,
    file: (&Path, usize),
) -> Result<Option<(String, String)>, PreflightError> {
    let run = |part| {
        let doc = bootstrap::bootstrap(&p.proxy, &p.snapshot, part, placeholder)?;
        let path = file.0.join(format!("bootstrap-{}-{part:?}.json", file.1));
        run(envoy, &doc, &path)
    };
    let Some(message) = run(Part::All)? else {
        return Ok(None);
    };
    let type_url = if run(Part::Clusters)?.is_some() {
        CLUSTER_TYPE.to_string()
    } else if run(Part::Listeners)?.is_some() {
        LISTENER_TYPE.to_string()
    } else {
        ROUTE_TYPE.to_string()
    };
    Ok(Some((type_url, message)))
}

/// Writes `doc` to `file` and runs `envoy --mode validate` on it: `None`
/// when accepted, else Envoy's message.
fn run(
    envoy: &Path,
    doc: &serde_json::Value,
    file: &Path,
) -> Result<Option<String>, PreflightError> {
    let io = |what: String| move |source| PreflightError::Io { what, source };
    std::fs::write(file, doc.to_string()).map_err(io(format!("writing {}", file.display())))?;
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "critical", "-c"])
        .arg(file)
        .output()
        .map_err(io(format!("running {}", envoy.display())))?;
    if out.status.success() {
        return Ok(None);
    }
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    Ok(Some(envoy_message(&text)))
}

/// Envoy's reason from its output: what follows `error initializing
/// configuration 'FILE': `, with the lines that continue it (a protobuf
/// debug string that prints the offending value, `seconds: N`), else its
/// last line.
fn envoy_message(output: &str) -> String {
    const MARK: &str = "error initializing configuration '";
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.split_once(MARK).map(|(_, r)| r) else {
            continue;
        };
        if let Some((_, msg)) = rest.split_once("': ") {
            // A log line starts with `[`; anything else continues this one.
            let more = lines.take_while(|l| !l.starts_with('['));
            let all: Vec<&str> = std::iter::once(msg).chain(more).collect();
            return all.join("\n").trim().to_string();
        }
    }
    let last = output.lines().rev().find(|l| !l.trim().is_empty());
    last.unwrap_or("envoy failed without a message")
        .trim()
        .to_string()
}
