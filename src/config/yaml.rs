//! YAML text → `yaml_serde::Value` documents plus a position index.
//!
//! One pass over `saphyr-parser`'s event stream builds each document's
//! value and records, for every mapping key and sequence item, the line and
//! column where it starts, keyed by its dotted path
//! (`spec.http[0].route[1].weight`, the same form `serde_path_to_error`
//! prints). Errors found later — by serde or by validation — look their
//! path up here, so every diagnostic points at the field it blames.

mod scalar;

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScanError, Span};
use yaml_serde::{Mapping, Value};

use super::limits::{MAX_ALIAS_NODES, MAX_DEPTH, MAX_DOCUMENTS};

/// 1-based line and column.
pub(crate) type Pos = (usize, usize);

/// Field path → where the field (its key, or its item) starts.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    map: HashMap<String, Pos>,
    /// Where the document starts; used when nothing closer is known.
    pub(crate) doc: Pos,
}

impl Positions {
    /// Position of `path`, else of its nearest recorded ancestor.
    pub(crate) fn lookup(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.map.get(p) {
                return *pos;
            }
            if p.is_empty() {
                return self.doc;
            }
            p = parent_path(p);
        }
    }
}

/// `a.b[1]` → `a.b`; `a.b` → `a`; `a` → ``.
pub(crate) fn parent_path(path: &str) -> &str {
    if path.ends_with(']') {
        if let Some(i) = path.rfind('[') {
            return &path[..i];
        }
    }
    match path.rfind('.') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// One YAML document of a file.
#[derive(Debug)]
pub(crate) struct YamlDoc {
    /// The document's value (`Null` for an empty document).
    pub(crate) value: Value,
    /// Where each field is.
    pub(crate) positions: Positions,
    /// Keys written twice in one mapping (path, position of the repeat):
    /// YAML forbids them and silently keeping one would hide a mistake.
    pub(crate) duplicate_keys: Vec<(String, Pos)>,
}

/// Why a file's YAML could not be read to its end: a syntax error, or one
/// of the [`limits`](super::limits) exceeded.
#[derive(Debug)]
pub(crate) struct ParseError {
    /// Where the parser stopped.
    pub(crate) pos: Pos,
    /// What is wrong, in words.
    pub(crate) message: String,
}

impl From<ScanError> for ParseError {
    fn from(e: ScanError) -> Self {
        ParseError {
            pos: (e.marker().line(), e.marker().col() + 1),
            message: format!("YAML syntax error: {}", e.info()),
        }
    }
}

/// Parses every document of `text`. Documents before an error are
/// returned along with the error; the parse stops at the first error, so a
/// file over a limit costs no more than the limit.
pub(crate) fn parse(text: &str) -> (Vec<YamlDoc>, Option<ParseError>) {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let step = match event {
            Ok((ev, span)) => builder.event(ev, span),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = step {
            return (builder.docs, Some(e));
        }
    }
    (builder.docs, None)
}

fn pos_of(span: &Span) -> Pos {
    (span.start.line(), span.start.col() + 1)
}

/// A collection being built.
enum Frame {
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
    },
    Map {
        map: Mapping,
        path: String,
        /// The pending key and its field path.
        key: Option<(Value, String)>,
        anchor: usize,
    },
}

/// A limit exceeded at `span`.
fn over_limit(span: &Span, message: String) -> ParseError {
    ParseError {
        pos: pos_of(span),
        message,
    }
}

#[derive(Default)]
struct Builder {
    docs: Vec<YamlDoc>,
    stack: Vec<Frame>,
    root: Option<Value>,
    positions: Positions,
    duplicate_keys: Vec<(String, Pos)>,
    /// Each anchor's value and its node count (what one alias expands to).
    anchors: HashMap<usize, (Value, usize)>,
    /// Nodes of each open collection so far (parallel to `stack`).
    nodes: Vec<usize>,
    /// Nodes that aliases of this file expanded to, against
    /// [`MAX_ALIAS_NODES`].
    expanded: usize,
    /// Documents started in this file.
    documents: usize,
}

impl Builder {
    fn event(&mut self, ev: Event<'_>, span: Span) -> Result<(), ParseError> {
        match ev {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > MAX_DOCUMENTS {
                    let msg = format!("a file holds at most {MAX_DOCUMENTS} documents");
                    return Err(over_limit(&span, msg));
                }
                self.positions = Positions {
                    doc: pos_of(&span),
                    ..Positions::default()
                };
                self.root = None;
            }
            Event::DocumentEnd => self.end_document(),
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar::resolve(&text, style, tag.as_deref());
                if let Some(Frame::Map {
                    key: key @ None,
                    path,
                    ..
                }) = self.stack.last_mut()
                {
                    // A key: the field starts where its key starts.
                    let field = join(path, &key_text(&value));
                    match self.positions.map.entry(field.clone()) {
                        Entry::Occupied(_) => {
                            self.duplicate_keys.push((field.clone(), pos_of(&span)))
                        }
                        Entry::Vacant(e) => {
                            e.insert(pos_of(&span));
                        }
                    }
                    *key = Some((value, field));
                } else {
                    self.node_path(&span, false);
                    self.finish(value, 1, anchor);
                }
            }
            Event::Alias(id) => self.alias(id, &span)?,
            Event::SequenceStart(anchor, _) => {
                self.open(&span)?;
                let path = self.node_path(&span, true);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                self.open(&span)?;
                let path = self.node_path(&span, true);
                self.stack.push(Frame::Map {
                    map: Mapping::new(),
                    path,
                    key: None,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => self.end_collection(),
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// A collection starts: refused beyond [`MAX_DEPTH`] (values are
    /// dropped and deserialized recursively, so depth costs stack).
    fn open(&mut self, span: &Span) -> Result<(), ParseError> {
        if self.stack.len() >= MAX_DEPTH {
            let msg = format!("nesting exceeds {MAX_DEPTH} levels");
            return Err(over_limit(span, msg));
        }
        self.nodes.push(0);
        Ok(())
    }

    /// An alias is a copy of its anchor's value: the copies of one file
    /// may add up to [`MAX_ALIAS_NODES`] nodes, so a few hundred bytes of
    /// nested aliases cannot expand to gigabytes. Checked before copying.
    fn alias(&mut self, id: usize, span: &Span) -> Result<(), ParseError> {
        let (value, nodes) = match self.anchors.get(&id) {
            Some((value, nodes)) => (value, *nodes),
            None => (&Value::Null, 1),
        };
        self.expanded = self.expanded.saturating_add(nodes);
        if self.expanded > MAX_ALIAS_NODES {
            let msg = format!("alias expansion exceeds {MAX_ALIAS_NODES} nodes");
            return Err(over_limit(span, msg));
        }
        let value = value.clone();
        self.node_path(span, false);
        self.finish(value, nodes, 0);
        Ok(())
    }

    /// Records the position of a value node starting at `span` when it is
    /// the document root or a sequence item (map values are recorded at
    /// their key); returns its path when `want` (collections need it for
    /// their children), else an empty string.
    fn node_path(&mut self, span: &Span, want: bool) -> String {
        let path = match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { items, path, .. }) => item_path(path, items.len()),
            Some(Frame::Map {
                key: Some((_, field)),
                ..
            }) => return if want { field.clone() } else { String::new() },
            // A collection used as a key: nothing can refer to it.
            Some(Frame::Map { path, .. }) => return format!("{path}.?"),
        };
        if want {
            self.positions.map.insert(path.clone(), pos_of(span));
            path
        } else {
            self.positions.map.insert(path, pos_of(span));
            String::new()
        }
    }

    /// Attaches a finished value of `nodes` nodes to its parent (or makes
    /// it the root).
    fn finish(&mut self, value: Value, nodes: usize, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), nodes));
        }
        if let Some(parent) = self.nodes.last_mut() {
            *parent = parent.saturating_add(nodes);
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, path, .. }) => match key.take() {
                Some((k, _)) => {
                    map.insert(k, value);
                }
                None => *key = Some((value, format!("{path}.?"))),
            },
        }
    }

    fn end_collection(&mut self) {
        let nodes = self.nodes.pop().unwrap_or(0).saturating_add(1);
        match self.stack.pop() {
            Some(Frame::Seq { items, anchor, .. }) => {
                self.finish(Value::Sequence(items), nodes, anchor)
            }
            Some(Frame::Map { map, anchor, .. }) => self.finish(Value::Mapping(map), nodes, anchor),
            None => {}
        }
    }

    fn end_document(&mut self) {
        self.stack.clear();
        self.nodes.clear();
        let value = self.root.take().unwrap_or(Value::Null);
        let positions = std::mem::take(&mut self.positions);
        let duplicate_keys = std::mem::take(&mut self.duplicate_keys);
        self.docs.push(YamlDoc {
            value,
            positions,
            duplicate_keys,
        });
    }
}

/// `parent.key`, or `key` at the root. Built at its exact size: a path is
/// made for every key and item of every document, and `format!` grew each
/// one (a fifth of a load's instructions went to formatting paths).
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        return key.to_string();
    }
    let mut path = String::with_capacity(parent.len() + 1 + key.len());
    path.push_str(parent);
    path.push('.');
    path.push_str(key);
    path
}

/// `parent[index]`, built at its exact size (see [`join`]).
fn item_path(parent: &str, index: usize) -> String {
    let digits = index.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut path = String::with_capacity(parent.len() + digits + 2);
    path.push_str(parent);
    path.push('[');
    push_decimal(&mut path, index);
    path.push(']');
    path
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: usize) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// A key as it appears in a path.
fn key_text(key: &Value) -> std::borrow::Cow<'_, str> {
    match key {
        Value::String(s) => s.as_str().into(),
        Value::Number(n) => n.to_string().into(),
        Value::Bool(b) => b.to_string().into(),
        Value::Null => "null".into(),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_serde_path_to_error_prints_them() {
        assert_eq!(join("", "spec"), "spec");
        assert_eq!(join("spec.http[3]", "route"), "spec.http[3].route");
        assert_eq!(item_path("spec.hosts", 0), "spec.hosts[0]");
        assert_eq!(item_path("a", 9), "a[9]");
        assert_eq!(item_path("a", 10), "a[10]");
        assert_eq!(item_path("", 1234), "[1234]");
    }
}
