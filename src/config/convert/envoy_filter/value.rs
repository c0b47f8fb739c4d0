//! `patch.value` → the Envoy proto its `applyTo` names, through the
//! descriptor set `envoy_json` reads: fields are type-checked, unknown
//! fields and `@type`s are errors at the field.
//!
//! A `udpa.type.v1.TypedStruct` or `xds.type.v3.TypedStruct` (an `Any`
//! written as `type_url` + a free-form `value`, as Istio's docs do) is
//! read as the message its `type_url` names, so its fields are checked
//! like any other and Envoy receives the typed message.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, ListenerFilter};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use prost::Message;
use prost_reflect::DynamicMessage;
use serde_json::Value as Json;

use super::super::{join, Cx};
use crate::config::model::{ApplyTo, PatchValue};

const TYPED_STRUCTS: [&str; 2] = [
    "type.googleapis.com/udpa.type.v1.TypedStruct",
    "type.googleapis.com/xds.type.v3.TypedStruct",
];

/// Reads `value` (at `path`) as the proto of `apply_to`.
pub(super) fn read(
    cx: &mut Cx<'_>,
    path: &str,
    apply_to: ApplyTo,
    value: &yaml_serde::Value,
) -> Option<PatchValue> {
    let json = match serde_json::to_value(value) {
        Ok(j) => j,
        Err(e) => {
            cx.err(path, format!("value is not JSON-like: {e}"));
            return None;
        }
    };
    let json = match unwrap_typed_structs(json) {
        Ok(j) => j,
        Err((at, msg)) => {
            cx.err(&under(path, &at), msg);
            return None;
        }
    };
    let bytes = match to_proto(type_name(apply_to), &json) {
        Ok(b) => b,
        Err((at, msg)) => {
            cx.err(&under(path, &at), msg);
            return None;
        }
    };
    match decode(apply_to, &bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            cx.err(path, format!("value does not decode: {e}"));
            None
        }
    }
}

/// The full protobuf name of what `apply_to` patches.
pub(crate) fn type_name(apply_to: ApplyTo) -> &'static str {
    match apply_to {
        ApplyTo::Listener => "envoy.config.listener.v3.Listener",
        ApplyTo::ListenerFilter => "envoy.config.listener.v3.ListenerFilter",
        ApplyTo::FilterChain => "envoy.config.listener.v3.FilterChain",
        ApplyTo::NetworkFilter => "envoy.config.listener.v3.Filter",
        ApplyTo::HttpFilter => {
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter"
        }
        ApplyTo::RouteConfiguration => "envoy.config.route.v3.RouteConfiguration",
        ApplyTo::VirtualHost => "envoy.config.route.v3.VirtualHost",
        ApplyTo::HttpRoute => "envoy.config.route.v3.Route",
        ApplyTo::Cluster => "envoy.config.cluster.v3.Cluster",
    }
}

/// Every TypedStruct in `json` replaced by the `Any` it stands for
/// (`@type` = its `type_url`, its `value`'s fields beside it). Errors
/// carry the path of the TypedStruct.
fn unwrap_typed_structs(json: Json) -> Result<Json, (String, String)> {
    match json {
        Json::Object(mut map) => {
            let typed = (map.get("@type").and_then(Json::as_str))
                .is_some_and(|t| TYPED_STRUCTS.contains(&t));
            if typed {
                map = typed_struct(map)?;
            }
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                let v = unwrap_typed_structs(v).map_err(|(p, m)| (under(&k, &p), m))?;
                out.insert(k, v);
            }
            Ok(Json::Object(out))
        }
        Json::Array(items) => (items.into_iter().enumerate())
            .map(|(i, v)| unwrap_typed_structs(v).map_err(|(p, m)| (index(i, &p), m)))
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Array),
        other => Ok(other),
    }
}

/// `rest` (a path inside `path`'s value) appended to `path`.
fn under(path: &str, rest: &str) -> String {
    match rest {
        "" => path.to_string(),
        r if r.starts_with('[') => format!("{path}{r}"),
        r => join(path, r),
    }
}

fn index(i: usize, rest: &str) -> String {
    match rest {
        "" => format!("[{i}]"),
        r if r.starts_with('[') => format!("[{i}]{r}"),
        r => format!("[{i}].{r}"),
    }
}

type JsonMap = serde_json::Map<String, Json>;

fn typed_struct(mut map: JsonMap) -> Result<JsonMap, (String, String)> {
    map.remove("@type");
    let url = map.remove("type_url").or_else(|| map.remove("typeUrl"));
    let Some(Json::String(url)) = url else {
        return Err((String::new(), "a TypedStruct needs a `type_url`".into()));
    };
    let mut inner = match map.remove("value") {
        Some(Json::Object(v)) => v,
        None | Some(Json::Null) => JsonMap::new(),
        Some(_) => return Err(("value".into(), "a TypedStruct's value is a mapping".into())),
    };
    if let Some(extra) = map.keys().next() {
        let msg = format!("unknown field `{extra}` of a TypedStruct (type_url, value)");
        return Err((extra.clone(), msg));
    }
    if inner.contains_key("@type") {
        return Err((
            "value".into(),
            "a TypedStruct's value has no `@type`".into(),
        ));
    }
    inner.insert("@type".into(), Json::String(url));
    Ok(inner)
}

/// `json` as the message `type_name`, encoded; errors name the field.
pub(crate) fn to_proto(type_name: &str, json: &Json) -> Result<Vec<u8>, (String, String)> {
    let pool = crate::envoy_json::pool().map_err(|e| (String::new(), e.to_string()))?;
    let Some(desc) = pool.get_message_by_name(type_name) else {
        return Err((String::new(), format!("unknown protobuf type {type_name}")));
    };
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(json, &mut track);
    match DynamicMessage::deserialize(desc, de) {
        Ok(msg) => Ok(msg.encode_to_vec()),
        Err(e) => {
            let msg = e.to_string();
            let mut at = track.path().to_string();
            if at == "." || at == "?" {
                at = String::new();
            }
            // An unknown field is blamed on itself, not on its parent.
            let unknown = msg.strip_prefix("unrecognized field name '");
            if let Some(field) = unknown.and_then(|m| m.split('\'').next()) {
                at = join(&at, field);
            }
            Err((at, format!("not a valid {type_name}: {msg}")))
        }
    }
}

fn decode(apply_to: ApplyTo, bytes: &[u8]) -> Result<PatchValue, prost::DecodeError> {
    Ok(match apply_to {
        ApplyTo::Listener => PatchValue::Listener(Box::new(Listener::decode(bytes)?)),
        ApplyTo::FilterChain => PatchValue::FilterChain(Box::new(FilterChain::decode(bytes)?)),
        ApplyTo::ListenerFilter => PatchValue::ListenerFilter(ListenerFilter::decode(bytes)?),
        ApplyTo::NetworkFilter => PatchValue::NetworkFilter(Filter::decode(bytes)?),
        ApplyTo::HttpFilter => PatchValue::HttpFilter(HttpFilter::decode(bytes)?),
        ApplyTo::RouteConfiguration => {
            PatchValue::RouteConfiguration(Box::new(RouteConfiguration::decode(bytes)?))
        }
        ApplyTo::VirtualHost => PatchValue::VirtualHost(Box::new(VirtualHost::decode(bytes)?)),
        ApplyTo::HttpRoute => PatchValue::Route(Box::new(Route::decode(bytes)?)),
        ApplyTo::Cluster => PatchValue::Cluster(Box::new(Cluster::decode(bytes)?)),
    })
}
