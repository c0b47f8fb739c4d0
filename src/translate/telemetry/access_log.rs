//! File access logs: JSON lines with Trellis' standard fields, or the
//! provider's own `text` / `labels` format.

use envoy_types::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
use envoy_types::pb::envoy::config::core::v3::{
    data_source, substitution_format_string, DataSource, SubstitutionFormatString,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    file_access_log, FileAccessLog,
};
use envoy_types::pb::google::protobuf::{value, Struct, Value};
use envoy_types::util::pack_any;

use super::Direction;
use crate::config::model::{LogFormat, ProviderKind};

const FILE_LOGGER: &str = "envoy.access_loggers.file";

/// The default JSON fields and their Envoy command operators (fields
/// whose value depends on the direction are added by `default_fields`).
pub const DEFAULT_LOG_FIELDS: &[(&str, &str)] = &[
    ("start_time", "%START_TIME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("trace_id", "%TRACE_ID%"),
    ("route_name", "%ROUTE_NAME%"),
];

/// The default JSON fields of a TCP connection: the HTTP fields without a
/// request (method, path, status, headers) make no sense there; the
/// connection's SNI and why it ended do.
pub const TCP_LOG_FIELDS: &[(&str, &str)] = &[
    ("start_time", "%START_TIME%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    ("duration", "%DURATION%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
];

/// Whether the log is for an HTTP connection manager or a `tcp_proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layer {
    /// Requests (`DEFAULT_LOG_FIELDS`).
    Http,
    /// Connections (`TCP_LOG_FIELDS`).
    Tcp,
}

/// The standard fields of one direction. Identities: on inbound the
/// caller's certificate SAN and our own; on outbound our own SPIFFE ID
/// (the app's plaintext call carries none) and the upstream's SAN.
fn default_fields(layer: Layer, dir: Direction, identity: &str) -> Vec<(String, String)> {
    let base = match layer {
        Layer::Http => DEFAULT_LOG_FIELDS,
        Layer::Tcp => TCP_LOG_FIELDS,
    };
    let mut fields: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (direction, source, destination) = match dir {
        Direction::Inbound => (
            "inbound",
            "%DOWNSTREAM_PEER_URI_SAN%",
            "%DOWNSTREAM_LOCAL_URI_SAN%",
        ),
        Direction::Outbound => ("outbound", identity, "%UPSTREAM_PEER_URI_SAN%"),
    };
    fields.push(("direction".into(), direction.into()));
    fields.push(("source_identity".into(), source.into()));
    fields.push(("destination_identity".into(), destination.into()));
    fields
}

fn json(fields: impl IntoIterator<Item = (String, String)>) -> Struct {
    Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| {
                let v = Value {
                    kind: Some(value::Kind::StringValue(v)),
                };
                (k, v)
            })
            .collect(),
    }
}

/// The access log of a file provider; `None` for other providers.
pub(super) fn access_log(
    kind: &ProviderKind,
    (layer, dir): (Layer, Direction),
    identity: &str,
) -> Option<AccessLog> {
    let ProviderKind::FileAccessLog { path, format } = kind else {
        return None;
    };
    let format = match format {
        LogFormat::Default => substitution_format_string::Format::JsonFormat(json(default_fields(
            layer, dir, identity,
        ))),
        LogFormat::Labels(labels) => {
            substitution_format_string::Format::JsonFormat(json(labels.clone()))
        }
        LogFormat::Text(text) => {
            let mut text = text.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            substitution_format_string::Format::TextFormatSource(DataSource {
                specifier: Some(data_source::Specifier::InlineString(text)),
                ..Default::default()
            })
        }
    };
    let file = FileAccessLog {
        path: path.clone(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
            SubstitutionFormatString {
                format: Some(format),
                ..Default::default()
            },
        )),
    };
    Some(AccessLog {
        name: FILE_LOGGER.to_string(),
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(file))),
        ..Default::default()
    })
}
