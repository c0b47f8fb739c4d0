//! A proxy's xDS status as a replica publishes it for the others: compact
//! (short type names, NACK messages cut) because a replica with 10,000
//! proxies writes one of these per proxy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The longest NACK message kept, in characters: enough to tell the error,
/// short enough that a flood of NACKs stays small in etcd.
pub const NACK_MESSAGE_CHARS: usize = 240;

/// One proxy served by one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// The proxy's node id.
    pub node: String,
    /// The replica holding its stream (its xDS address).
    pub replica: String,
    /// True while a stream of the proxy is open on that replica.
    pub connected: bool,
    /// When its latest stream opened (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<u64>,
    /// When its latest stream closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<u64>,
    /// Its service, namespace and labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its workload labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Per xDS type, by short name (`cds`, `eds`, `lds`, `rds`, `sds`).
    #[serde(default)]
    pub types: BTreeMap<String, TypeRecord>,
    /// The root-rotation tag ([`crate::store::RotationRecord::tag`]) its
    /// last SDS ACK was built for: what the replica driving a rotation
    /// waits for on every replica's proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<String>,
    /// When the replica last saw a change of this proxy's state (seconds
    /// since the Unix epoch).
    pub seen: u64,
}

/// One type's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeRecord {
    /// Version of the last response sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// Its nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Version of the last response ACKed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<String>,
    /// The last response NACKed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nack: Option<NackRecord>,
}

/// A rejected response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackRecord {
    /// Its version.
    pub version: String,
    /// Its nonce.
    pub nonce: String,
    /// Envoy's message, cut to [`NACK_MESSAGE_CHARS`].
    pub message: String,
    /// When it arrived (seconds since the Unix epoch).
    pub at: u64,
    /// The config object blamed for it, as `/debug/proxies` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<serde_json::Value>,
}

/// `message` cut to [`NACK_MESSAGE_CHARS`] characters, marked when cut.
pub fn cut_message(message: &str) -> String {
    if message.chars().count() <= NACK_MESSAGE_CHARS {
        return message.to_string();
    }
    let mut cut: String = message.chars().take(NACK_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_and_records_stay_compact() {
        assert_eq!(cut_message("bad"), "bad");
        let long = "x".repeat(1000);
        assert_eq!(cut_message(&long).chars().count(), NACK_MESSAGE_CHARS + 1);
        let record = StatusRecord {
            node: "a".into(),
            replica: "r".into(),
            connected: true,
            seen: 1,
            ..Default::default()
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"node":"a","replica":"r","connected":true,"types":{},"seen":1}"#
        );
        assert_eq!(serde_json::from_str::<StatusRecord>(&json).unwrap(), record);
    }
}
