//! Where each field of a loaded config is written: the position index of
//! every document, kept after a load for tools that report on a
//! [`MeshConfig`](super::MeshConfig) (`trellis lint`) and must point at the
//! field they blame, as `validate` does.
//!
//! The index is the loader's own record of each document (its positions,
//! and the few string values NACK provenance quotes), shared, not a second
//! parse: a reload indexes a changed file as it parses it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::convert::DocInfo;
use super::model::Origin;
use super::LoadError;

/// Field positions of every document of a config directory, by file and
/// the line the document starts on (an [`Origin`]'s `file` and `line`).
/// Each file's part is shared with the load cache, so a copy is cheap and a
/// reload re-indexes only the files whose text changed.
#[derive(Debug, Default, Clone)]
pub struct SourceIndex {
    files: HashMap<PathBuf, Arc<FileDocs>>,
}

/// One file's documents, by the line each starts on.
pub(crate) type FileDocs = HashMap<usize, Arc<DocInfo>>;

/// One file's documents (as the loader read them) by their first line.
pub(crate) fn file_docs(docs: Vec<Arc<DocInfo>>) -> FileDocs {
    docs.into_iter().map(|d| (d.positions.doc.0, d)).collect()
}

impl SourceIndex {
    /// Reads and indexes `files` (a loaded config's `files`).
    pub fn read(files: &[PathBuf]) -> Result<SourceIndex, LoadError> {
        let mut index = SourceIndex::default();
        for file in files {
            let text = std::fs::read_to_string(file).map_err(|source| LoadError::Io {
                path: file.clone(),
                source,
            })?;
            index.add(file, &text);
        }
        Ok(index)
    }

    /// Indexes the documents of one file's text.
    pub fn add(&mut self, file: &Path, text: &str) {
        let (docs, _) = super::yaml::parse(text);
        let docs = (docs.into_iter())
            .filter(|doc| !doc.value.is_null())
            .map(|doc| Arc::new(super::load::doc_info(file, &doc.value, doc.positions)))
            .collect();
        self.files
            .insert(file.to_path_buf(), Arc::new(file_docs(docs)));
    }

    /// The index of the files a load read, each with its documents.
    pub(crate) fn from_files<'a>(
        files: impl Iterator<Item = (&'a PathBuf, &'a Arc<FileDocs>)>,
    ) -> SourceIndex {
        let files = files.map(|(f, d)| (f.clone(), Arc::clone(d))).collect();
        SourceIndex { files }
    }

    fn doc(&self, origin: &Origin) -> Option<&DocInfo> {
        let file = self.files.get(&origin.file)?;
        file.get(&origin.line).map(Arc::as_ref)
    }

    /// The 1-based line and column of the field at `path`
    /// (`spec.http[0].retries.attempts`) of the resource `origin`, else of
    /// its nearest written ancestor, else the document's start.
    pub fn locate(&self, origin: &Origin, path: &str) -> (usize, usize) {
        match self.doc(origin) {
            Some(doc) => doc.positions.lookup(path),
            None => (origin.line.max(1), 1),
        }
    }

    /// The string values written under `under` (a field path, `spec`) of
    /// the resource `origin`, with their paths, in document order. Only
    /// the fields [`quoted`] names for the resource's kind are kept.
    pub fn strings(&self, origin: &Origin, under: &str) -> Vec<(String, String)> {
        let below = |p: &str| {
            p.strip_prefix(under)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        };
        (self.doc(origin).into_iter().flat_map(|d| d.strings.iter()))
            .filter(|(p, _)| under.is_empty() || below(p))
            .cloned()
            .collect()
    }
}

/// The fields of a kind whose string values a proxy's rejection may quote:
/// what `translate::provenance` asks [`SourceIndex::strings`] for (policies'
/// `spec`, a VirtualService's `tcp` and `tls` rules, a Gateway's servers, an
/// `EnvoyFilter`'s patches). Other kinds (ServiceEntries, DestinationRules,
/// ...) are blamed by field position only, so none of their values is kept.
pub(crate) fn quoted(kind: &str) -> &'static [&'static str] {
    match kind {
        "PeerAuthentication"
        | "AuthorizationPolicy"
        | "RequestAuthentication"
        | "Telemetry"
        | "RateLimit"
        | "Sidecar" => &["spec"],
        "VirtualService" | "HTTPRoute" | "GRPCRoute" => &["spec.tcp", "spec.tls"],
        "Gateway" => &["spec.servers"],
        "EnvoyFilter" => &["spec.configPatches"],
        _ => &[],
    }
}

/// The string values under the [`quoted`] fields of a document of `kind`,
/// with their paths.
pub(crate) fn quoted_strings(kind: &str, value: &yaml_serde::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in quoted(kind) {
        let at = path.split('.').try_fold(value, |v, key| v.get(key));
        if let Some(at) = at {
            string_leaves(at, path.to_string(), &mut out);
        }
    }
    out
}

/// Collects the string scalars of `value` (at `path`) into `out`.
fn string_leaves(value: &yaml_serde::Value, path: String, out: &mut Vec<(String, String)>) {
    use yaml_serde::Value;
    match value {
        Value::String(s) => out.push((path, s.clone())),
        Value::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                string_leaves(v, format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map {
                let Some(key) = k.as_str() else { continue };
                let p = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                string_leaves(v, p, out);
            }
        }
        Value::Tagged(t) => string_leaves(&t.value, path, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(kind: &str, line: usize) -> Origin {
        Origin {
            kind: kind.into(),
            namespace: "default".into(),
            name: "b".into(),
            file: "f.yaml".into(),
            line,
        }
    }

    #[test]
    fn locates_fields_of_the_second_document() {
        let text =
            "kind: A\nmetadata:\n  name: a\n---\nkind: Sidecar\nspec:\n  http:\n  - timeout: 1s\n";
        let mut index = SourceIndex::default();
        index.add(Path::new("f.yaml"), text);
        let origin = origin("Sidecar", 4);
        assert_eq!(index.locate(&origin, "spec.http[0].timeout"), (8, 5));
        assert_eq!(index.locate(&origin, "spec.http[0].retries"), (8, 5));
        let strings = index.strings(&origin, "spec");
        assert_eq!(
            strings,
            [("spec.http[0].timeout".to_string(), "1s".to_string())]
        );
        assert!(index.strings(&origin, "spe").is_empty());
        let unknown = Origin { line: 99, ..origin };
        assert_eq!(index.locate(&unknown, "spec"), (99, 1));
    }

    #[test]
    fn keeps_only_the_strings_provenance_quotes() {
        let text = "kind: ServiceEntry\nspec:\n  hosts: [a]\n---\nkind: VirtualService\nspec:\n  hosts: [b]\n  tcp:\n  - route: [{destination: {host: b}}]\n---\nkind: EnvoyFilter\nspec:\n  workloadSelector: {labels: {app: x}}\n  configPatches:\n  - patch: {value: {name: f}}\n";
        let mut index = SourceIndex::default();
        index.add(Path::new("f.yaml"), text);
        let se = origin("ServiceEntry", 1);
        assert_eq!(index.locate(&se, "spec.hosts"), (3, 3));
        assert!(index.strings(&se, "spec").is_empty());
        let vs = origin("VirtualService", 4);
        let tcp = [(
            "spec.tcp[0].route[0].destination.host".to_string(),
            "b".to_string(),
        )];
        assert_eq!(index.strings(&vs, "spec.tcp"), tcp);
        assert!(index.strings(&vs, "spec.hosts").is_empty());
        let ef = origin("EnvoyFilter", 10);
        let patch = [(
            "spec.configPatches[0].patch.value.name".to_string(),
            "f".to_string(),
        )];
        assert_eq!(
            index.strings(&ef, "spec.configPatches[0].patch.value"),
            patch
        );
        assert!(index.strings(&ef, "spec.workloadSelector").is_empty());
    }
}
