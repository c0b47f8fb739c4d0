//! YAML text → `yaml_serde::Value` documents plus a position index.
//!
//! One pass over `saphyr-parser`'s event stream builds each document's
//! value and records, for every mapping key and sequence item, the line and
//! column where it starts, keyed by its dotted path
//! (`spec.http[0].route[1].weight`, the same form `serde_path_to_error`
//! prints). Errors found later — by serde or by validation — look their
//! path up here, so every diagnostic points at the field it blames.

mod scalar;

use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScanError, Span};
use yaml_serde::{Mapping, Value};

use super::limits::{MAX_ALIAS_NODES, MAX_DEPTH, MAX_DOCUMENTS};

/// 1-based line and column.
pub(crate) type Pos = (usize, usize);

/// Field path → where the field (its key, or its item) starts. Every
/// path of a document is written end to end in one string and the list of
/// them sorted once, when the document ends: a parse records a path for
/// every key and item of every document, and a hash map of one `String`
/// per path cost a fifth of a reload's instructions.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    /// The document's paths, end to end (UTF-8: each is made of keys'
    /// text and ASCII).
    text: Vec<u8>,
    /// Each recorded path (its range in `text`) and its position, in path
    /// order, one entry per path.
    fields: Vec<(Range<usize>, Pos)>,
    /// Where the document starts; used when nothing closer is known.
    pub(crate) doc: Pos,
}

impl Positions {
    /// Position of `path`, else of its nearest recorded ancestor.
    pub(crate) fn lookup(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.get(p) {
                return pos;
            }
            if p.is_empty() {
                return self.doc;
            }
            p = parent_path(p);
        }
    }

    fn get(&self, path: &str) -> Option<Pos> {
        let path = path.as_bytes();
        let found = (self.fields).binary_search_by(|(range, _)| self.text[range.clone()].cmp(path));
        found.ok().map(|i| self.fields[i].1)
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

/// A collection being built. Paths are ranges of the document's
/// [`Positions::text`].
enum Frame {
    Seq {
        items: Vec<Value>,
        path: Range<usize>,
        anchor: usize,
    },
    Map {
        map: Mapping,
        path: Range<usize>,
        /// The pending key and its field path.
        key: Option<(Value, Range<usize>)>,
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

/// A field path met in a document, in document order.
struct Recorded {
    path: Range<usize>,
    pos: Pos,
    /// A mapping key (a second one of the same path is a duplicate key),
    /// else a sequence item or the root (the last one holds).
    key: bool,
}

#[derive(Default)]
struct Builder {
    docs: Vec<YamlDoc>,
    stack: Vec<Frame>,
    root: Option<Value>,
    /// The open document's paths; its fields are sorted when it ends.
    positions: Positions,
    /// The open document's paths and positions, in document order.
    recorded: Vec<Recorded>,
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
                self.recorded.clear();
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
                    let field = join(&mut self.positions.text, path, &key_text(&value));
                    self.recorded.push(Recorded {
                        path: field.clone(),
                        pos: pos_of(&span),
                        key: true,
                    });
                    *key = Some((value, field));
                } else {
                    self.node_path(&span);
                    self.finish(value, 1, anchor);
                }
            }
            Event::Alias(id) => self.alias(id, &span)?,
            Event::SequenceStart(anchor, _) => {
                self.open(&span)?;
                let path = self.node_path(&span);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                self.open(&span)?;
                let path = self.node_path(&span);
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
        self.node_path(span);
        self.finish(value, nodes, 0);
        Ok(())
    }

    /// The path of a value node starting at `span` (collections need it
    /// for their children); records its position when it is the document
    /// root or a sequence item (map values are recorded at their key).
    fn node_path(&mut self, span: &Span) -> Range<usize> {
        let text = &mut self.positions.text;
        let path = match self.stack.last() {
            None => 0..0,
            Some(Frame::Seq { items, path, .. }) => item_path(text, path, items.len()),
            Some(Frame::Map {
                key: Some((_, field)),
                ..
            }) => return field.clone(),
            // A collection used as a key: nothing can refer to it.
            Some(Frame::Map { path, .. }) => return join(text, path, "?"),
        };
        self.recorded.push(Recorded {
            path: path.clone(),
            pos: pos_of(span),
            key: false,
        });
        path
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
                None => *key = Some((value, join(&mut self.positions.text, path, "?"))),
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
        let mut positions = std::mem::take(&mut self.positions);
        let duplicate_keys = positions.settle(&mut self.recorded);
        self.docs.push(YamlDoc {
            value,
            positions,
            duplicate_keys,
        });
    }
}

impl Positions {
    /// Sorts `recorded` (emptied) into `fields`, as if each were put in a
    /// map in document order: a key keeps the first position of its path
    /// (a later key of the same path is a duplicate, returned with where it
    /// is, in document order), an item or the root the last.
    fn settle(&mut self, recorded: &mut Vec<Recorded>) -> Vec<(String, Pos)> {
        let text = &self.text;
        // Stable: the records of one path stay in document order.
        recorded.sort_by(|a, b| text[a.path.clone()].cmp(&text[b.path.clone()]));
        let mut fields: Vec<(Range<usize>, Pos)> = Vec::with_capacity(recorded.len());
        let mut duplicates = Vec::new();
        for r in recorded.drain(..) {
            match fields.last_mut() {
                Some((path, pos)) if text[path.clone()] == text[r.path.clone()] => {
                    if r.key {
                        duplicates
                            .push((String::from_utf8_lossy(&text[r.path]).into_owned(), r.pos));
                    } else {
                        *pos = r.pos;
                    }
                }
                _ => fields.push((r.path, r.pos)),
            }
        }
        // Keys are met in the order of the text.
        duplicates.sort_by_key(|(_, pos)| *pos);
        self.fields = fields;
        self.text.shrink_to_fit();
        duplicates
    }
}

/// Appends `parent.key` (or `key` at the root) to `text`; returns its range.
fn join(text: &mut Vec<u8>, parent: &Range<usize>, key: &str) -> Range<usize> {
    let start = text.len();
    if !parent.is_empty() {
        text.extend_from_within(parent.clone());
        text.push(b'.');
    }
    text.extend_from_slice(key.as_bytes());
    start..text.len()
}

/// Appends `parent[index]` to `text`; returns its range.
fn item_path(text: &mut Vec<u8>, parent: &Range<usize>, index: usize) -> Range<usize> {
    let start = text.len();
    text.extend_from_within(parent.clone());
    text.push(b'[');
    push_decimal(text, index);
    text.push(b']');
    start..text.len()
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(b'0' + (n % 10) as u8);
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

    /// `f` on a fresh text with `parent` in it; the path it appends.
    fn appended(parent: &str, f: impl Fn(&mut Vec<u8>, &Range<usize>) -> Range<usize>) -> String {
        let mut text = parent.as_bytes().to_vec();
        let range = f(&mut text, &(0..parent.len()));
        String::from_utf8_lossy(&text[range]).into_owned()
    }

    #[test]
    fn paths_read_as_serde_path_to_error_prints_them() {
        let key = |parent, key| appended(parent, |t, p| join(t, p, key));
        let item = |parent, i| appended(parent, |t, p| item_path(t, p, i));
        assert_eq!(key("", "spec"), "spec");
        assert_eq!(key("spec.http[3]", "route"), "spec.http[3].route");
        assert_eq!(item("spec.hosts", 0), "spec.hosts[0]");
        assert_eq!(item("a", 9), "a[9]");
        assert_eq!(item("a", 10), "a[10]");
        assert_eq!(item("", 1234), "[1234]");
    }

    /// Lookups find each recorded field, fall back to the nearest
    /// recorded ancestor, and repeated keys are reported in order.
    #[test]
    fn positions_of_fields_ancestors_and_duplicate_keys() {
        let text = "a: 1\nb:\n  c: [x, {d: 2}]\n  e: 3\n  c: 4\nf: 5\na: 6\n";
        let (docs, error) = parse(text);
        assert!(error.is_none());
        let doc = &docs[0];
        let at = |p: &str| doc.positions.lookup(p);
        assert_eq!(at("a"), (1, 1));
        assert_eq!(at("b.c"), (3, 3));
        assert_eq!(at("b.c[0]"), (3, 7));
        assert_eq!(at("b.c[1].d"), (3, 11));
        assert_eq!(at("b.c[1].d.missing"), (3, 11));
        assert_eq!(at("b.e"), (4, 3));
        assert_eq!(at("f"), (6, 1));
        assert_eq!(at("zz"), doc.positions.doc);
        let dups: Vec<(&str, Pos)> = (doc.duplicate_keys.iter())
            .map(|(p, pos)| (p.as_str(), *pos))
            .collect();
        assert_eq!(dups, [("b.c", (5, 3)), ("a", (7, 1))]);
    }
}
