//! `trellis diff`: what a config change does to each proxy's Envoy
//! resources.
//!
//! Both configs are rendered with one [`Renderer`](crate::render::Renderer),
//! as `serve` rebuilds: unchanged resources keep their `Arc`, unchanged
//! sets and snapshots too. So the comparison follows the change: a proxy
//! whose snapshot is the same `Arc` is unaffected, a type whose set is the
//! same `Arc` is skipped, a pair of sets is compared once however many
//! proxies share it, and each changed resource is rendered as YAML and
//! summarized once. Proxies with the same changes form one group.

mod output;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::render::RenderedProxy;
use crate::xds::{
    Snapshot, TypeResources, Versioned, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
    SECRET_TYPE,
};

pub use output::Format;

/// Why a diff could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A rendered resource could not be shown as JSON (a bug).
    #[error("rendering {kind} {name}: {message}")]
    Render {
        /// Resource kind.
        kind: &'static str,
        /// Resource name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// How a resource changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the new config.
    Added,
    /// Only in the old config.
    Removed,
    /// In both, different.
    Modified,
}

/// One resource's change, as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceChange {
    /// `listener`, `route`, `cluster`, `endpoints` or `secret`.
    pub kind: &'static str,
    /// The resource's name.
    pub name: String,
    /// Added, removed or modified.
    pub change: Change,
    /// Plain summaries, e.g. `route payment:80: weights 90/10 → 50/50`.
    pub summary: Vec<String>,
    /// Unified diff of the resource as YAML (key material redacted).
    pub diff: String,
}

/// Proxies whose resources change identically.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Their node ids, sorted.
    pub proxies: Vec<String>,
    /// The changes, by kind (in the order Envoy applies them) and name.
    #[serde(serialize_with = "shared_list")]
    pub changes: Vec<Arc<ResourceChange>>,
}

/// What changes for every proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Proxies compared (in either config).
    pub proxies: usize,
    /// Proxies whose resources do not change.
    pub unaffected: usize,
    /// Proxies only the new config has.
    pub added_proxies: Vec<String>,
    /// Proxies only the old config has.
    pub removed_proxies: Vec<String>,
    /// Affected proxies grouped by identical changes, largest group first.
    pub groups: Vec<Group>,
}

/// Serializes shared changes as plain ones (serde's `rc` feature is off).
fn shared_list<S: serde::Serializer>(
    list: &[Arc<ResourceChange>],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(|c| &**c))
}

impl Report {
    /// True when no proxy's resources change.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Kinds in the order Envoy applies them (clusters and endpoints first).
fn kinds() -> [(&'static str, &'static str); 5] {
    [
        ("cluster", CLUSTER_TYPE.as_str()),
        ("endpoints", ENDPOINT_TYPE.as_str()),
        ("listener", LISTENER_TYPE.as_str()),
        ("route", ROUTE_TYPE.as_str()),
        ("secret", SECRET_TYPE.as_str()),
    ]
}

/// One resource's two sides, by identity (pointer of each `Arc`).
type Side = Option<Arc<Versioned>>;

/// Changed resources found so far, each once, with an index by identity.
#[derive(Default)]
struct Found {
    items: Vec<Item>,
    index: HashMap<(usize, String, usize, usize), usize>,
    /// Changes between two sets, by the sets' addresses.
    sets: HashMap<(usize, usize), Arc<Vec<usize>>>,
}

/// Compares every proxy's snapshot in `old` with its snapshot in `new`.
pub fn diff(
    old: &BTreeMap<String, RenderedProxy>,
    new: &BTreeMap<String, RenderedProxy>,
) -> Result<Report, DiffError> {
    let empty = Arc::new(Snapshot::builder().build());
    let mut found = Found::default();
    let mut report = Report::default();
    let mut groups: HashMap<Vec<usize>, Vec<String>> = HashMap::new();
    let ids: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for id in ids {
        report.proxies += 1;
        let (o, n) = (old.get(id), new.get(id));
        match (o, n) {
            (None, Some(_)) => report.added_proxies.push(id.clone()),
            (Some(_), None) => report.removed_proxies.push(id.clone()),
            _ => {}
        }
        let o = o.map_or(&empty, |p| &p.snapshot);
        let n = n.map_or(&empty, |p| &p.snapshot);
        let changes = if Arc::ptr_eq(o, n) {
            Vec::new()
        } else {
            found.proxy(o, n)
        };
        match changes.is_empty() {
            true => report.unaffected += 1,
            false => groups.entry(changes).or_default().push(id.clone()),
        }
    }
    report.groups = found.render(groups)?;
    Ok(report)
}

impl Found {
    /// The indexes of a proxy's changed resources, in kind order.
    fn proxy(&mut self, old: &Snapshot, new: &Snapshot) -> Vec<usize> {
        let mut out = Vec::new();
        for (kind, url) in kinds() {
            let (a, b) = (old.shared(url), new.shared(url));
            if Arc::ptr_eq(a, b) {
                continue;
            }
            let key = (Arc::as_ptr(a) as usize, Arc::as_ptr(b) as usize);
            let changes = match self.sets.get(&key) {
                Some(c) => Arc::clone(c),
                None => {
                    let c = Arc::new(self.compare(kind, a, b));
                    self.sets.insert(key, Arc::clone(&c));
                    c
                }
            };
            out.extend(changes.iter().copied());
        }
        out
    }

    /// The changed resources between two sets of one kind.
    fn compare(&mut self, kind: &'static str, a: &TypeResources, b: &TypeResources) -> Vec<usize> {
        let (a, b) = (a.items(), b.items());
        let mut out = Vec::new();
        let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for name in names {
            let (x, y) = (a.get(name), b.get(name));
            if let (Some(x), Some(y)) = (x, y) {
                if Arc::ptr_eq(x, y) || x == y {
                    continue;
                }
            }
            out.push(self.intern(kind, name, x.cloned(), y.cloned()));
        }
        out
    }

    fn intern(&mut self, kind: &'static str, name: &str, old: Side, new: Side) -> usize {
        let addr = |s: &Side| s.as_ref().map_or(0, |a| Arc::as_ptr(a) as usize);
        let key = (
            kinds().iter().position(|(k, _)| *k == kind).unwrap_or(0),
            name.to_string(),
            addr(&old),
            addr(&new),
        );
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        self.items.push((kind, name.to_string(), old, new));
        self.index.insert(key, self.items.len() - 1);
        self.items.len() - 1
    }

    /// Each found change rendered once, and the groups that share them.
    fn render(self, groups: HashMap<Vec<usize>, Vec<String>>) -> Result<Vec<Group>, DiffError> {
        let shown = self.render_all()?;
        let mut out: Vec<Group> = groups
            .into_iter()
            .map(|(changes, proxies)| Group {
                proxies,
                changes: changes.iter().map(|i| Arc::clone(&shown[*i])).collect(),
            })
            .collect();
        out.sort_by(|a, b| {
            (b.proxies.len().cmp(&a.proxies.len())).then_with(|| a.proxies.cmp(&b.proxies))
        });
        Ok(out)
    }

    /// Every found change turned into YAML and summarised, on all cores:
    /// each is independent, and a change that touches every cluster makes
    /// thousands of them.
    fn render_all(&self) -> Result<Vec<Arc<ResourceChange>>, DiffError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = self.items.len().div_ceil(threads).max(1);
        let parts = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .items
                .chunks(chunk)
                .map(|items| scope.spawn(move || render_chunk(items)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Vec<_>>()
        });
        let mut all = Vec::with_capacity(self.items.len());
        for part in parts {
            all.extend(part?);
        }
        Ok(all)
    }
}

/// One found change: kind, resource name, old and new sides.
type Item = (&'static str, String, Side, Side);

fn render_chunk(items: &[Item]) -> Result<Vec<Arc<ResourceChange>>, DiffError> {
    items
        .iter()
        .map(|(kind, name, old, new)| summary::resource_change(kind, name, old, new).map(Arc::new))
        .collect()
}
