//! Envoy protobuf resources as proto3 JSON, for golden files, debug views
//! and bootstrap files.
//!
//! `envoy-types` ships generated Rust types but no JSON mapping; it does
//! ship the complete descriptor set it was generated from, which `build.rs`
//! copies into `OUT_DIR`. `prost-reflect` reads that set and serialises any
//! message in it, expanding nested `Any`s whose type is in the set.

use std::sync::OnceLock;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// The descriptor set of every Envoy API type `envoy-types` knows.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_types.bin"));

/// Why a message could not be rendered as JSON.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyJsonError {
    /// The embedded descriptor set did not parse (a build problem).
    #[error("envoy descriptor set is unreadable: {0}")]
    Descriptors(String),
    /// The type is not in the descriptor set.
    #[error("unknown protobuf type {0}")]
    UnknownType(String),
    /// The bytes did not decode as the named type.
    #[error("cannot decode {type_name}: {source}")]
    Decode {
        /// Full protobuf type name.
        type_name: String,
        /// The decoder's complaint.
        source: prost::DecodeError,
    },
    /// Serialisation failed (for example a nested `Any` of an unknown type).
    #[error("cannot render {type_name} as JSON: {message}")]
    Serialize {
        /// Full protobuf type name.
        type_name: String,
        /// The serialiser's complaint.
        message: String,
    },
}

/// The shared descriptor pool, decoded once (it is about 3 MB) and kept
/// for the life of the process.
pub fn pool() -> Result<&'static DescriptorPool, EnvoyJsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(decode_pool)
        .as_ref()
        .map_err(|e| EnvoyJsonError::Descriptors(e.clone()))
}

/// A descriptor pool of its own, for a caller that needs it only once
/// (the canonical encoder compiles its plans from it): the decoded pool
/// holds many megabytes of heap that [`pool`] would keep for good, in
/// every `trellis serve` even if nothing renders JSON.
pub fn decode_pool() -> Result<DescriptorPool, String> {
    DescriptorPool::decode(DESCRIPTOR_SET).map_err(|e| e.to_string())
}

/// Renders a packed resource as proto3 JSON with proto field names
/// (`connect_timeout`, as in Envoy's docs and `/config_dump`), including
/// its `@type`.
pub fn to_json(any: &Any) -> Result<serde_json::Value, EnvoyJsonError> {
    encoded_to_json("google.protobuf.Any", &any.encode_to_vec())
}

/// Renders a typed message (for example a `Bootstrap`) as proto3 JSON with
/// proto field names.
pub fn message_to_json<M: Message + prost::Name>(
    msg: &M,
) -> Result<serde_json::Value, EnvoyJsonError> {
    encoded_to_json(&M::full_name(), &msg.encode_to_vec())
}

fn encoded_to_json(type_name: &str, bytes: &[u8]) -> Result<serde_json::Value, EnvoyJsonError> {
    let desc = pool()?
        .get_message_by_name(type_name)
        .ok_or_else(|| EnvoyJsonError::UnknownType(type_name.to_string()))?;
    let msg = DynamicMessage::decode(desc, bytes).map_err(|source| EnvoyJsonError::Decode {
        type_name: type_name.to_string(),
        source,
    })?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    msg.serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| EnvoyJsonError::Serialize {
            type_name: type_name.to_string(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_filter, HttpConnectionManager, HttpFilter,
    };
    use envoy_types::pb::google::protobuf::Duration;
    use envoy_types::util::pack_any;

    #[test]
    fn cluster_renders_with_proto_field_names_and_type() {
        let cluster = Cluster {
            name: "outbound|80||a.default.svc.cluster.local".into(),
            connect_timeout: Some(Duration {
                seconds: 10,
                nanos: 0,
            }),
            ..Default::default()
        };
        let json = to_json(&pack_any(cluster)).unwrap();
        assert_eq!(
            json["@type"],
            "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        );
        assert_eq!(json["connect_timeout"], "10s");
        assert_eq!(json["name"], "outbound|80||a.default.svc.cluster.local");
    }

    #[test]
    fn nested_any_is_expanded() {
        let hcm = HttpConnectionManager {
            stat_prefix: "x".into(),
            http_filters: vec![HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                    Router::default(),
                ))),
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = message_to_json(&hcm).unwrap();
        assert_eq!(
            json["http_filters"][0]["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        );
    }

    #[test]
    fn unknown_type_is_an_error() {
        let any = Any {
            type_url: "type.googleapis.com/no.such.Type".into(),
            value: vec![],
        };
        assert!(to_json(&any).is_err());
    }
}
