//! Where each field of a loaded config is written: the position index of
//! every document, kept after a load for tools that report on a
//! [`MeshConfig`](super::MeshConfig) (`trellis lint`) and must point at the
//! field they blame, as `validate` does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::model::Origin;
use super::yaml::{self, Positions};
use super::LoadError;

/// Field positions of every document of a config directory, by file and
/// the line the document starts on (an [`Origin`]'s `file` and `line`).
/// Each file's part is shared, so a copy is cheap and a reload re-indexes
/// only the files whose text changed.
#[derive(Debug, Default, Clone)]
pub struct SourceIndex {
    files: HashMap<PathBuf, Arc<FileDocs>>,
}

/// One file's documents, by the line each starts on.
type FileDocs = HashMap<usize, Doc>;

/// One document's field positions and its string values.
#[derive(Debug)]
struct Doc {
    positions: Positions,
    /// Every string scalar with its field path, in document order: what a
    /// proxy's rejection may quote (see `translate::provenance`).
    strings: Vec<(String, String)>,
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
        let (docs, _) = yaml::parse(text);
        let by_line = docs
            .into_iter()
            .map(|doc| {
                let mut strings = Vec::new();
                string_leaves(&doc.value, String::new(), &mut strings);
                let positions = doc.positions;
                (positions.doc.0, Doc { positions, strings })
            })
            .collect();
        self.files.insert(file.to_path_buf(), Arc::new(by_line));
    }

    /// Forgets every file but `keep` (the files a reload still read).
    pub(crate) fn retain(&mut self, keep: &std::collections::HashSet<&PathBuf>) {
        self.files.retain(|f, _| keep.contains(f));
    }

    /// The 1-based line and column of the field at `path`
    /// (`spec.http[0].retries.attempts`) of the resource `origin`, else of
    /// its nearest written ancestor, else the document's start.
    pub fn locate(&self, origin: &Origin, path: &str) -> (usize, usize) {
        let doc = self
            .files
            .get(&origin.file)
            .and_then(|f| f.get(&origin.line));
        match doc {
            Some(doc) => doc.positions.lookup(path),
            None => (origin.line.max(1), 1),
        }
    }

    /// The string values written under `under` (a field path, `spec`) of
    /// the resource `origin`, with their paths, in document order.
    pub fn strings(&self, origin: &Origin, under: &str) -> Vec<(String, String)> {
        let doc = self
            .files
            .get(&origin.file)
            .and_then(|f| f.get(&origin.line));
        let below = |p: &str| {
            p.strip_prefix(under)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        };
        (doc.into_iter().flat_map(|d| d.strings.iter()))
            .filter(|(p, _)| under.is_empty() || below(p))
            .cloned()
            .collect()
    }
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

    #[test]
    fn locates_fields_of_the_second_document() {
        let text = "kind: A\nmetadata:\n  name: a\n---\nkind: B\nspec:\n  http:\n  - timeout: 1s\n";
        let mut index = SourceIndex::default();
        index.add(Path::new("f.yaml"), text);
        let origin = Origin {
            kind: "B".into(),
            namespace: "default".into(),
            name: "b".into(),
            file: "f.yaml".into(),
            line: 4,
        };
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
}
