//! Deterministic protobuf encoding of Envoy messages.
//!
//! prost encodes a `map` field from a Rust `HashMap` in the map's iteration
//! order, which changes with every map's random seed. `envoy-types`
//! generates every protobuf `map` as a `HashMap`: a `Struct`'s fields (the
//! JSON access-log format), `Metadata.filter_metadata` and
//! `typed_filter_metadata`, `typed_per_filter_config`,
//! `typed_extension_protocol_options`, RBAC policies, and any other. So the
//! same config could encode to other bytes on every rebuild, get another
//! version and be pushed again, and Envoy drains a listener on every update.
//!
//! The one rule: **every resource Trellis sends is encoded by [`encode`]**.
//! It encodes with prost, then rewrites the bytes so that the entries of
//! every map field, at every depth (inside nested `Any`s too, by their type
//! URL), are in order of their key's encoded bytes: for `string` keys,
//! byte-wise name order, as in a `BTreeMap`. Everything else keeps prost's
//! layout, so the result decodes to the same message. The protobuf spec
//! leaves map order to the encoder ("Maps", language guide: "wire format
//! ordering and map iteration ordering of map values are undefined"), so
//! any fixed order is valid; Envoy reads maps into its own containers.
//!
//! Where the maps are comes from the descriptor set `envoy-types` ships
//! (see [`crate::envoy_json::pool`]), compiled once into plans (`plan.rs`):
//! only the sub-messages that can hold a map or an `Any` are visited, the
//! rest is left as prost wrote it.

mod plan;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::sync::OnceLock;

use prost::encoding::{decode_key, decode_varint, WireType};

use plan::{Action, Plans};

/// Why a message could not be put in canonical form.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// The embedded descriptor set did not load (a build problem).
    #[error("envoy descriptor set is unusable: {0}")]
    Descriptors(String),
    /// A message or an `Any`'s payload type is not in the descriptor set.
    #[error("unknown protobuf type {0}")]
    UnknownType(String),
    /// The bytes are not valid protobuf wire format.
    #[error("malformed protobuf in {type_name}: {reason}")]
    Malformed {
        /// The message being read.
        type_name: String,
        /// What was wrong.
        reason: String,
    },
}

/// `msg` encoded with every map's entries in key order (see the module
/// documentation): the same message always gives the same bytes.
pub fn encode<M: prost::Message + prost::Name>(msg: &M) -> Result<Vec<u8>, CanonicalError> {
    let mut bytes = msg.encode_to_vec();
    canonicalize(&M::full_name(), &mut bytes)?;
    Ok(bytes)
}

/// Puts the encoded message `bytes` of type `type_name` (full protobuf
/// name) in canonical form, in place: reordering map entries never changes
/// a length.
pub fn canonicalize(type_name: &str, bytes: &mut [u8]) -> Result<(), CanonicalError> {
    let plans = plans()?;
    match plans.lookup(type_name)? {
        Some(index) => Walker { plans }.message(index, bytes),
        None => Ok(()),
    }
}

/// The plans of the embedded descriptor set, compiled once from a pool
/// that is dropped afterwards: the plans are all the encoder keeps.
fn plans() -> Result<&'static Plans, CanonicalError> {
    static PLANS: OnceLock<Result<Plans, String>> = OnceLock::new();
    PLANS
        .get_or_init(|| crate::envoy_json::decode_pool().map(|pool| Plans::compile(&pool)))
        .as_ref()
        .map_err(|e| CanonicalError::Descriptors(e.clone()))
}

/// One field as read: where it is, and for a map entry, its field number
/// and where its key is.
struct Field {
    range: Range<usize>,
    map: Option<(u32, Range<usize>)>,
}

struct Walker<'a> {
    plans: &'a Plans,
}

impl Walker<'_> {
    /// Canonicalises one message of plan `index`, in place.
    fn message(&self, index: usize, buf: &mut [u8]) -> Result<(), CanonicalError> {
        let plan = self.plans.plan(index);
        if plan.is_any {
            return self.any(index, buf);
        }
        // Recorded from the first map entry on (most messages have none:
        // no allocation); what precedes it is one unchanged range.
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            let start = pos;
            let (number, body) = self.next_field(index, buf, &mut pos)?;
            let mut map = None;
            if let Some(body) = body {
                match plan.action(number) {
                    Some(Action::Message(target)) => self.message(target, &mut buf[body])?,
                    Some(Action::Map(entry)) => {
                        if let Some(entry) = entry {
                            self.message(entry, &mut buf[body.clone()])?;
                        }
                        map = Some((number, self.map_key(index, buf, body)?));
                        if fields.is_empty() && start > 0 {
                            fields.push(Field {
                                range: 0..start,
                                map: None,
                            });
                        }
                    }
                    None => {}
                }
            }
            if map.is_some() || !fields.is_empty() {
                fields.push(Field {
                    range: start..pos,
                    map,
                });
            }
        }
        sort_map_entries(buf, &fields);
        Ok(())
    }

    /// Reads the field at `pos` and moves past it: its number and, when
    /// length-delimited, the range of its payload.
    fn next_field(
        &self,
        index: usize,
        buf: &[u8],
        pos: &mut usize,
    ) -> Result<(u32, Option<Range<usize>>), CanonicalError> {
        let malformed = |reason: &str| self.malformed(index, reason);
        let mut rest = &buf[*pos..];
        let (number, wire) = decode_key(&mut rest).map_err(|e| malformed(&e.to_string()))?;
        let skip = match wire {
            WireType::Varint => {
                decode_varint(&mut rest).map_err(|e| malformed(&e.to_string()))?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => {
                let len = decode_varint(&mut rest).map_err(|e| malformed(&e.to_string()))?;
                usize::try_from(len).map_err(|_| malformed("length overflows"))?
            }
            WireType::StartGroup | WireType::EndGroup => return Err(malformed("group")),
        };
        let start = buf.len() - rest.len();
        let end = start
            .checked_add(skip)
            .filter(|&end| end <= buf.len())
            .ok_or_else(|| malformed("field runs past the end"))?;
        *pos = end;
        let body = (wire == WireType::LengthDelimited).then_some(start..end);
        Ok((number, body))
    }

    /// The range (in `buf`) of the key of the map entry at `entry`: the
    /// payload of its field 1, or empty when the key is the default value
    /// (which prost leaves out).
    fn map_key(
        &self,
        index: usize,
        buf: &[u8],
        entry: Range<usize>,
    ) -> Result<Range<usize>, CanonicalError> {
        let body = &buf[entry.clone()];
        let mut pos = 0;
        while pos < body.len() {
            let field_start = pos;
            let (number, payload) = self.next_field(index, body, &mut pos)?;
            if number == 1 {
                let key = payload.unwrap_or_else(|| key_value_start(body, field_start)..pos);
                return Ok(entry.start + key.start..entry.start + key.end);
            }
        }
        Ok(entry.start..entry.start)
    }

    /// Canonicalises an `Any`'s payload by its type URL.
    fn any(&self, index: usize, buf: &mut [u8]) -> Result<(), CanonicalError> {
        let (mut type_url, mut value) = (None, None);
        let mut pos = 0;
        while pos < buf.len() {
            match self.next_field(index, buf, &mut pos)? {
                (1, Some(body)) => type_url = Some(body),
                (2, Some(body)) => value = Some(body),
                _ => {}
            }
        }
        let (Some(url), Some(value)) = (type_url, value) else {
            return Ok(());
        };
        let url = std::str::from_utf8(&buf[url]).map_err(|_| self.malformed(index, "type URL"))?;
        let name = url.rsplit('/').next().unwrap_or(url);
        match self.plans.lookup(name)? {
            Some(target) => self.message(target, &mut buf[value]),
            None => Ok(()),
        }
    }

    fn malformed(&self, index: usize, reason: &str) -> CanonicalError {
        CanonicalError::Malformed {
            type_name: self.plans.plan(index).name.clone(),
            reason: reason.to_string(),
        }
    }
}

/// Where the value of the non-length-delimited field at `field_start`
/// begins: just after its key.
fn key_value_start(body: &[u8], field_start: usize) -> usize {
    let mut rest = &body[field_start..];
    // Already read once by `next_field`, so it decodes.
    let _ = decode_key(&mut rest);
    body.len() - rest.len()
}

/// Rewrites `buf` so that the entries of each map field are together, at
/// the place of its first entry, in key order. Entries with equal keys keep
/// their order (the last one wins when decoding). Lengths do not change.
fn sort_map_entries(buf: &mut [u8], fields: &[Field]) {
    if !needs_sorting(buf, fields) {
        return;
    }
    let mut out = Vec::with_capacity(buf.len());
    let mut done: Vec<u32> = Vec::new();
    for field in fields {
        match &field.map {
            None => out.extend_from_slice(&buf[field.range.clone()]),
            Some((number, _)) if done.contains(number) => {}
            Some((number, _)) => {
                let mut entries: Vec<&Field> = (fields.iter())
                    .filter(|f| f.map.as_ref().is_some_and(|(n, _)| n == number))
                    .collect();
                entries.sort_by(|a, b| key(buf, a).cmp(key(buf, b)));
                for entry in entries {
                    out.extend_from_slice(&buf[entry.range.clone()]);
                }
                done.push(*number);
            }
        }
    }
    buf.copy_from_slice(&out);
}

/// True unless every map's entries already stand together in key order
/// (always so for a map of one entry).
fn needs_sorting(buf: &[u8], fields: &[Field]) -> bool {
    let mut seen: Vec<u32> = Vec::new();
    let mut last: Option<&Field> = None;
    for field in fields {
        if let Some((number, _)) = &field.map {
            let previous = last.and_then(|l| l.map.as_ref().map(|(n, _)| (n, l)));
            match previous {
                Some((n, l)) if n == number => {
                    if key(buf, l) > key(buf, field) {
                        return true;
                    }
                }
                _ if seen.contains(number) => return true,
                _ => seen.push(*number),
            }
        }
        last = Some(field);
    }
    false
}

fn key<'b>(buf: &'b [u8], field: &Field) -> &'b [u8] {
    field.map.as_ref().map_or(&[], |(_, k)| &buf[k.clone()])
}
