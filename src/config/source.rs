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
type FileDocs = HashMap<usize, Positions>;

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
            .map(|doc| (doc.positions.doc.0, doc.positions))
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
            Some(positions) => positions.lookup(path),
            None => (origin.line.max(1), 1),
        }
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
        let unknown = Origin { line: 99, ..origin };
        assert_eq!(index.locate(&unknown, "spec"), (99, 1));
    }
}
