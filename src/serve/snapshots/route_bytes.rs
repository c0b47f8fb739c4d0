//! The canonical bytes of a route configuration view, written from each
//! virtual host's bytes, kept from one build to the next while the
//! virtual host is the same `Arc` (`translate` keeps the `Arc` of a
//! virtual host whose inputs did not change): a change of one virtual host
//! encodes that one, not the mesh's. The bytes are those of the whole
//! message ([`RouteView::to_config`] through [`crate::canonical::encode`]):
//! canonical form sorts map entries within each message, so a virtual
//! host's canonical bytes do not depend on the configuration around it.

use foldhash::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::{Message, Name};

use crate::canonical::{canonicalize, CanonicalError};
use crate::translate::scope::RouteView;

/// Each virtual host's canonical bytes by its `Arc`'s address, from this
/// build and the last.
#[derive(Default)]
pub(super) struct VhostBytes {
    previous: HashMap<usize, Kept>,
    current: HashMap<usize, Kept>,
}

/// A virtual host's bytes, with the `Arc` that keeps its address from
/// being reused for another one while they are kept.
struct Kept {
    _vhost: Arc<VirtualHost>,
    bytes: Vec<u8>,
}

impl VhostBytes {
    /// `view` encoded as its [`RouteView::to_config`] would be by
    /// [`crate::canonical::encode`].
    pub(super) fn route_view_bytes(
        &mut self,
        view: &RouteView<'_>,
    ) -> Result<Vec<u8>, CanonicalError> {
        // prost writes fields in field-number order: `name` (1), then each
        // of `virtual_hosts` (2), then the rest, which the shell holds.
        let rest = crate::canonical::encode(&RouteConfiguration {
            name: String::new(),
            virtual_hosts: Vec::new(),
            ..view.shell.clone()
        })?;
        let mut buf = Vec::new();
        if !view.shell.name.is_empty() {
            prost::encoding::string::encode(1, &view.shell.name, &mut buf);
        }
        for vh in &view.virtual_hosts {
            let body = self.bytes(vh)?;
            encode_key(2, WireType::LengthDelimited, &mut buf);
            encode_varint(body.len() as u64, &mut buf);
            buf.extend_from_slice(body);
        }
        buf.extend_from_slice(&rest);
        Ok(buf)
    }

    /// `vh`'s canonical bytes, encoded unless this or the last build did.
    fn bytes(&mut self, vh: &Arc<VirtualHost>) -> Result<&[u8], CanonicalError> {
        let key = Arc::as_ptr(vh) as usize;
        if !self.current.contains_key(&key) {
            let kept = match self.previous.remove(&key) {
                Some(kept) => kept,
                None => {
                    let mut bytes = vh.encode_to_vec();
                    canonicalize(&VirtualHost::full_name(), &mut bytes)?;
                    Kept {
                        _vhost: Arc::clone(vh),
                        bytes,
                    }
                }
            };
            self.current.insert(key, kept);
        }
        Ok(&self.current[&key].bytes)
    }

    /// Starts a build with room for as many virtual hosts as the last one
    /// used (see `Interner::start`).
    pub(super) fn start(&mut self) {
        self.current.reserve(self.previous.len());
    }

    /// Ends a build: what it did not use is forgotten.
    pub(super) fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
    use envoy_types::pb::google::protobuf::{Any, BoolValue};

    use super::*;

    /// A virtual host with a two-entry map, in reverse key order in the
    /// `HashMap` half the time: canonical form sorts it.
    fn vhost(name: &str) -> Arc<VirtualHost> {
        let any = |v: &str| Any {
            type_url: "type.googleapis.com/google.protobuf.StringValue".into(),
            value: v.as_bytes().to_vec(),
        };
        let filters: HashMap<String, Any> = [("b".into(), any("1")), ("a".into(), any("2"))].into();
        Arc::new(VirtualHost {
            name: name.into(),
            domains: vec![format!("{name}:80"), name.into()],
            typed_per_filter_config: filters,
            ..Default::default()
        })
    }

    /// A shell with fields after `virtual_hosts` in number order, a shared
    /// and an own virtual host, encoded twice (the second time from kept
    /// bytes): the bytes are the whole message's each time.
    #[test]
    fn a_view_encodes_as_the_whole_configuration() {
        let shell = RouteConfiguration {
            name: "outbound".into(),
            validate_clusters: Some(BoolValue { value: false }),
            internal_only_headers: vec!["x-internal".into()],
            request_headers_to_add: vec![HeaderValueOption {
                header: Some(HeaderValue {
                    key: "x-a".into(),
                    value: "1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let view = RouteView {
            shell: &shell,
            virtual_hosts: vec![vhost("a"), vhost("b")],
        };
        let whole = crate::canonical::encode(&view.to_config()).unwrap();
        let mut cache = VhostBytes::default();
        assert_eq!(cache.route_view_bytes(&view).unwrap(), whole);
        cache.finish();
        assert_eq!(cache.route_view_bytes(&view).unwrap(), whole);
        assert_eq!(cache.current.len(), 2, "both taken from the last build");
        let unnamed = RouteConfiguration::default();
        let empty = RouteView {
            shell: &unnamed,
            virtual_hosts: Vec::new(),
        };
        assert_eq!(cache.route_view_bytes(&empty).unwrap(), Vec::<u8>::new());
    }
}
