//! Canonical encoding: map entries in key order at every depth, the same
//! bytes from maps of any seed, and the same message when decoded.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
use envoy_types::pb::envoy::config::core::v3::{
    substitution_format_string, Metadata, SubstitutionFormatString,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    file_access_log, FileAccessLog,
};
use envoy_types::pb::google::protobuf::{value, Any, Struct, Value};
use envoy_types::util::pack_any;
use prost::Message;

use super::*;

fn string(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.into())),
    }
}

/// Keys `k00`..`k29`, inserted in `order` into a map of its own seed.
fn fields(order: impl Iterator<Item = usize>) -> HashMap<String, Value> {
    order
        .map(|i| (format!("k{i:02}"), string(&format!("v{i}"))))
        .collect()
}

fn json_struct(reverse: bool) -> Struct {
    let fields = if reverse {
        fields((0..30).rev())
    } else {
        fields(0..30)
    };
    Struct { fields }
}

/// A `Struct` encodes as each entry in key order: the same bytes as the
/// one-entry `Struct`s of its keys, in name order, one after the other.
#[test]
fn struct_entries_are_in_key_order() {
    let s = json_struct(false);
    let mut keys: Vec<&String> = s.fields.keys().collect();
    keys.sort();
    let expected: Vec<u8> = (keys.iter())
        .flat_map(|k| {
            let one = HashMap::from([((*k).clone(), s.fields[*k].clone())]);
            Struct { fields: one }.encode_to_vec()
        })
        .collect();
    assert_eq!(encode(&s).unwrap(), expected);
}

/// An access log as Trellis builds it: a `Struct` inside `FileAccessLog`
/// inside an `Any`.
fn access_log_of(format: Struct) -> AccessLog {
    let file = FileAccessLog {
        path: "/dev/stdout".into(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
            SubstitutionFormatString {
                format: Some(substitution_format_string::Format::JsonFormat(format)),
                ..Default::default()
            },
        )),
    };
    AccessLog {
        name: "envoy.access_loggers.file".into(),
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(file))),
        ..Default::default()
    }
}

/// Maps built with other seeds and insertion orders, behind an `Any`,
/// encode to the same bytes; prost alone does not (else this test would
/// prove nothing).
#[test]
fn maps_inside_any_encode_the_same_from_any_seed() {
    let logs: Vec<AccessLog> = (0..8)
        .map(|i| access_log_of(json_struct(i % 2 == 1)))
        .collect();
    let prost: Vec<Vec<u8>> = logs.iter().map(Message::encode_to_vec).collect();
    assert!(prost.iter().any(|b| *b != prost[0]), "prost was stable");
    let canonical: Vec<Vec<u8>> = logs.iter().map(|l| encode(l).unwrap()).collect();
    assert!(canonical.iter().all(|b| *b == canonical[0]));
    // The same message: the payload decodes to the same access log.
    let decoded = AccessLog::decode(canonical[0].as_slice()).unwrap();
    assert!(file_log(&decoded) == file_log(&logs[0]));
}

fn file_log(log: &AccessLog) -> FileAccessLog {
    let Some(access_log::ConfigType::TypedConfig(any)) = &log.config_type else {
        panic!("no typed config");
    };
    FileAccessLog::decode(any.value.as_slice()).unwrap()
}

/// Metadata: a map of `Struct`s, each with its own map, in an endpoint.
fn assignment(metadata: Metadata) -> ClusterLoadAssignment {
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint::default())),
        metadata: Some(metadata),
        ..Default::default()
    };
    ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![endpoint],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn nested_maps_encode_the_same_from_any_seed() {
    let metadata = |reverse: bool| Metadata {
        filter_metadata: (0..10)
            .map(|i| (format!("ns{i}"), json_struct(reverse ^ (i % 2 == 0))))
            .collect(),
        typed_filter_metadata: (0..10)
            .map(|i| (format!("t{i}"), pack_any(json_struct(reverse))))
            .collect(),
    };
    let all: Vec<Vec<u8>> = (0..8)
        .map(|i| encode(&assignment(metadata(i % 2 == 0))).unwrap())
        .collect();
    assert!(all.iter().all(|b| *b == all[0]));
    // The same message: equal maps, and `Any`s with equal payloads.
    let decoded = ClusterLoadAssignment::decode(all[0].as_slice()).unwrap();
    let (got, want) = (endpoint_metadata(&decoded), metadata(false));
    assert!(got.filter_metadata == want.filter_metadata);
    let payload = |any: &Any| Struct::decode(any.value.as_slice()).unwrap();
    assert_eq!(got.typed_filter_metadata.len(), 10);
    for (name, any) in &want.typed_filter_metadata {
        assert!(payload(&got.typed_filter_metadata[name]) == payload(any));
    }
}

fn endpoint_metadata(c: &ClusterLoadAssignment) -> Metadata {
    c.endpoints[0].lb_endpoints[0].metadata.clone().unwrap()
}

/// Without a map of two entries or more, prost's bytes are kept as they are.
#[test]
fn messages_without_maps_keep_prost_bytes() {
    let one = Struct {
        fields: fields(0..1),
    };
    let log = access_log_of(one);
    assert_eq!(encode(&log).unwrap(), log.encode_to_vec());
    let plain = assignment(Metadata::default());
    assert_eq!(encode(&plain).unwrap(), plain.encode_to_vec());
}

/// An `Any` whose type the descriptors lack cannot be made canonical: an
/// error, not bytes that may differ next time.
#[test]
fn unknown_any_type_is_an_error() {
    let mut log = access_log_of(Struct::default());
    log.config_type = Some(access_log::ConfigType::TypedConfig(Any {
        type_url: "type.googleapis.com/example.Nope".into(),
        value: vec![1, 2, 3],
    }));
    let err = encode(&log).unwrap_err();
    assert!(matches!(err, CanonicalError::UnknownType(t) if t == "example.Nope"));
}

/// Truncated bytes are reported, not read past.
#[test]
fn malformed_bytes_are_an_error() {
    let mut bytes = encode(&access_log_of(json_struct(false))).unwrap();
    bytes.truncate(bytes.len() - 3);
    let err = canonicalize("envoy.config.accesslog.v3.AccessLog", &mut bytes).unwrap_err();
    assert!(matches!(err, CanonicalError::Malformed { .. }), "{err}");
}
