//! Validation diagnostics: what `trellis validate` prints and the admin API shows.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One validation error, located at the field it blames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file the error is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Resource kind (`VirtualService`), or `-` when the document has none.
    pub kind: String,
    /// `metadata.name`, or `-` when unknown.
    pub name: String,
    /// Dotted field path (`spec.http[0].route[1].weight`), or `-`.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl Diagnostic {
    /// The diagnostic as a warning: `FILE:LINE:COL: warning: ...`.
    pub fn warning(&self) -> String {
        self.to_string().replacen(": error: ", ": warning: ", 1)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}/{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.kind,
            self.name,
            self.field,
            self.message
        )
    }
}

/// Every error found in one load, sorted by file, line and column.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts by file, line, column (then message, for a stable order).
    pub(crate) fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.file, a.line, a.col, &a.message).cmp(&(&b.file, b.line, b.col, &b.message))
        });
        self.0.dedup();
    }

    /// True when there is no error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
