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

/// A YAML syntax error.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    /// Where the parser stopped.
    pub(crate) pos: Pos,
    /// The parser's message.
    pub(crate) message: String,
}

impl From<ScanError> for SyntaxError {
    fn from(e: ScanError) -> Self {
        SyntaxError {
            pos: (e.marker().line(), e.marker().col() + 1),
            message: e.info().to_string(),
        }
    }
}

/// Parses every document of `text`. Documents before a syntax error are
/// returned along with the error.
pub(crate) fn parse(text: &str) -> (Vec<YamlDoc>, Option<SyntaxError>) {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        match event {
            Ok((ev, span)) => builder.event(ev, span),
            Err(e) => return (builder.docs, Some(e.into())),
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

#[derive(Default)]
struct Builder {
    docs: Vec<YamlDoc>,
    stack: Vec<Frame>,
    root: Option<Value>,
    positions: Positions,
    duplicate_keys: Vec<(String, Pos)>,
    anchors: HashMap<usize, Value>,
}

impl Builder {
    fn event(&mut self, ev: Event<'_>, span: Span) {
        match ev {
            Event::DocumentStart(_) => {
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
                    self.finish(value, anchor);
                }
            }
            Event::Alias(id) => {
                self.node_path(&span, false);
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                self.finish(value, 0);
            }
            Event::SequenceStart(anchor, _) => {
                let path = self.node_path(&span, true);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
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
    }

    /// Records the position of a value node starting at `span` when it is
    /// the document root or a sequence item (map values are recorded at
    /// their key); returns its path when `want` (collections need it for
    /// their children), else an empty string.
    fn node_path(&mut self, span: &Span, want: bool) -> String {
        let path = match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { items, path, .. }) => format!("{path}[{}]", items.len()),
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

    /// Attaches a finished value to its parent (or makes it the root).
    fn finish(&mut self, value: Value, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
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
        match self.stack.pop() {
            Some(Frame::Seq { items, anchor, .. }) => self.finish(Value::Sequence(items), anchor),
            Some(Frame::Map { map, anchor, .. }) => self.finish(Value::Mapping(map), anchor),
            None => {}
        }
    }

    fn end_document(&mut self) {
        self.stack.clear();
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

/// `parent.key`, or `key` at the root.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
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
