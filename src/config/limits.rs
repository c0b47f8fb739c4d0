//! What one config file or directory may make the loader consume. Every
//! limit is checked before the work it bounds, and exceeding one is a
//! positioned error like any other (`docs/operations.md`, "Limits").
//!
//! The defaults are far above what a mesh config needs (the peer benchmark
//! writes 1,001 documents, about 280 KB, into one file) and far below what
//! would hurt the control plane: a file over them is refused, the last good
//! config keeps serving.

/// Bytes of one config file (8 MiB).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Bytes of all config files of a directory together (64 MiB).
pub const MAX_DIR_BYTES: u64 = 64 * 1024 * 1024;

/// Config files in a directory.
pub const MAX_FILES: usize = 10_000;

/// YAML documents in one file.
pub const MAX_DOCUMENTS: usize = 20_000;

/// Nesting of mappings and sequences in one document. Istio resources
/// nest about ten deep.
pub const MAX_DEPTH: usize = 64;

/// Nodes (scalars, mappings, sequences) that the aliases of one file may
/// expand to, all aliases together. An alias copies its anchor's value, so
/// without a budget nine levels of nine aliases each (the "billion laughs")
/// turn 2 KB into hundreds of millions of nodes.
pub const MAX_ALIAS_NODES: usize = 10_000;
