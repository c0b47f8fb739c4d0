//! Istio's MERGE (`pkg/proto/merge`): proto merge of a patch into a
//! generated resource, on reflected messages. Set scalars replace, lists
//! append, map entries replace, messages merge field by field, except
//! `google.protobuf.Duration`, which replaces whole (Istio's one custom
//! rule, so `5s` over `1.5s` is `5s`, not `5.5s`). An `Any` merges as a
//! message too (its bytes replace); filters' `typed_config`s merge by
//! content instead ([`merge_any`]), as Istio's filter MERGE does.
//! MERGE_AND_REPLACE_LIST is the same with lists replaced ([`merge_lists`]).

use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};

/// Merges `src` into `dst` (MERGE); with `replace`, Istio's
/// MERGE_AND_REPLACE_LIST (`merge.MergeWithReplaceList`): a list the patch
/// sets, at any depth, replaces the generated one.
pub(super) fn merge_lists<M: Message + Name + Default>(
    dst: &mut M,
    src: &M,
    replace: bool,
) -> Result<(), String> {
    let desc = descriptor(&M::full_name())?;
    let mut d = decode(&desc, &dst.encode_to_vec())?;
    let s = decode(&desc, &src.encode_to_vec())?;
    merge_message(&mut d, &s, replace);
    *dst = M::decode(d.encode_to_vec().as_slice()).map_err(|e| e.to_string())?;
    Ok(())
}

/// Merges the message packed in `src` into the one packed in `dst`; they
/// must be of one type (a filter's config cannot change type by MERGE).
pub(super) fn merge_any(dst: &Any, src: &Any) -> Result<Any, String> {
    if dst.type_url != src.type_url {
        return Err(format!(
            "cannot merge a {} into a {}",
            src.type_url, dst.type_url
        ));
    }
    let name = dst.type_url.rsplit('/').next().unwrap_or_default();
    let desc = descriptor(name)?;
    let mut d = decode(&desc, &dst.value)?;
    merge_message(&mut d, &decode(&desc, &src.value)?, false);
    Ok(Any {
        type_url: dst.type_url.clone(),
        value: d.encode_to_vec(),
    })
}

fn descriptor(name: &str) -> Result<MessageDescriptor, String> {
    let pool = crate::envoy_json::pool().map_err(|e| e.to_string())?;
    pool.get_message_by_name(name)
        .ok_or_else(|| format!("unknown protobuf type {name}"))
}

fn decode(desc: &MessageDescriptor, bytes: &[u8]) -> Result<DynamicMessage, String> {
    DynamicMessage::decode(desc.clone(), bytes).map_err(|e| e.to_string())
}

fn merge_message(dst: &mut DynamicMessage, src: &DynamicMessage, replace: bool) {
    for (field, value) in src.fields() {
        match (dst.get_field_mut(&field), value) {
            (Value::List(d), Value::List(s)) if replace => *d = s.clone(),
            (Value::List(d), Value::List(s)) => d.extend(s.iter().cloned()),
            (Value::Map(d), Value::Map(s)) => {
                d.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            (Value::Message(d), Value::Message(s)) if !replaces_whole(&field.kind()) => {
                merge_message(d, s, replace);
            }
            (slot, v) => *slot = v.clone(),
        }
    }
}

fn replaces_whole(kind: &Kind) -> bool {
    matches!(kind, Kind::Message(m) if m.full_name() == "google.protobuf.Duration")
}
