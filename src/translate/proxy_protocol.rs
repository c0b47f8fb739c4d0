//! `DestinationRule` `proxyProtocol`: every upstream connection of the
//! cluster starts with a PROXY protocol header naming the original client,
//! sent by Envoy's `envoy.transport_sockets.upstream_proxy_protocol`
//! socket wrapped around the cluster's own transport socket (TLS or plain),
//! as istiod does.

use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::core::v3::{
    proxy_protocol_config::Version, transport_socket::ConfigType, ProxyProtocolConfig,
    TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::proxy_protocol::v3::ProxyProtocolUpstreamTransport;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::util::pack_any;
use prost::{Message, Name};

use crate::config::model::ProxyProtocolVersion;

/// The wrapper socket's extension name.
pub const PROXY_PROTOCOL_SOCKET: &str = "envoy.transport_sockets.upstream_proxy_protocol";

/// Wraps the cluster's transport socket and every transport socket match
/// (auto mTLS keeps choosing TLS or plaintext per endpoint, each behind
/// the header); a cluster without one gets the header over plaintext.
pub fn wrap(c: &mut XdsCluster, version: ProxyProtocolVersion) {
    for m in &mut c.transport_socket_matches {
        m.transport_socket = Some(wrapped(m.transport_socket.take(), version));
    }
    if c.transport_socket.is_some() || c.transport_socket_matches.is_empty() {
        c.transport_socket = Some(wrapped(c.transport_socket.take(), version));
    }
}

fn wrapped(inner: Option<TransportSocket>, version: ProxyProtocolVersion) -> TransportSocket {
    let inner = inner.unwrap_or_else(|| TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(RawBuffer::default()))),
    });
    let version = match version {
        ProxyProtocolVersion::V1 => Version::V1,
        ProxyProtocolVersion::V2 => Version::V2,
    };
    let config = ProxyProtocolUpstreamTransport {
        config: Some(ProxyProtocolConfig {
            version: version as i32,
            ..Default::default()
        }),
        transport_socket: Some(inner),
        ..Default::default()
    };
    TransportSocket {
        name: PROXY_PROTOCOL_SOCKET.to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(config))),
    }
}

/// The socket inside a PROXY protocol wrapper, or `ts` itself.
pub fn inner(ts: &TransportSocket) -> Option<TransportSocket> {
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        return None;
    };
    if any.type_url != ProxyProtocolUpstreamTransport::type_url() {
        return None;
    }
    ProxyProtocolUpstreamTransport::decode(any.value.as_slice())
        .ok()
        .and_then(|p| p.transport_socket)
}

/// The version a wrapped socket sends, if `ts` is a wrapper.
pub fn version_of(ts: &TransportSocket) -> Option<ProxyProtocolVersion> {
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        return None;
    };
    if any.type_url != ProxyProtocolUpstreamTransport::type_url() {
        return None;
    }
    let p = ProxyProtocolUpstreamTransport::decode(any.value.as_slice()).ok()?;
    match p.config.map(|c| c.version()) {
        Some(Version::V2) => Some(ProxyProtocolVersion::V2),
        _ => Some(ProxyProtocolVersion::V1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tls;

    #[test]
    fn wraps_plain_and_auto_mtls_clusters() {
        let mut plain = XdsCluster::default();
        wrap(&mut plain, ProxyProtocolVersion::V2);
        let ts = plain.transport_socket.as_ref().unwrap();
        assert_eq!(ts.name, PROXY_PROTOCOL_SOCKET);
        assert_eq!(version_of(ts), Some(ProxyProtocolVersion::V2));
        assert_eq!(
            inner(ts).unwrap().name,
            "envoy.transport_sockets.raw_buffer"
        );

        let mut auto = XdsCluster {
            transport_socket_matches: tls::auto_mtls_matches(tls::istio_mutual(&[], "td", "s")),
            ..Default::default()
        };
        wrap(&mut auto, ProxyProtocolVersion::V1);
        assert!(auto.transport_socket.is_none());
        for m in &auto.transport_socket_matches {
            let ts = m.transport_socket.as_ref().unwrap();
            assert_eq!(version_of(ts), Some(ProxyProtocolVersion::V1));
        }
        let mtls = auto.transport_socket_matches[0]
            .transport_socket
            .as_ref()
            .unwrap();
        assert!(tls::uses_mesh_secrets(mtls));
    }
}
