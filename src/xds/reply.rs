//! How a client answered the last response of a type: the ACK/NACK rule
//! shared by the state-of-the-world and the delta stream.

use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::StreamEvent;

/// How the client answered the last response of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Not answered yet.
    Pending,
    /// Accepted.
    Acked,
    /// Rejected.
    Nacked,
}

/// Records the client's answer to the last response of a type, sent as
/// `version` with `nonce`; the caller has checked that the request's
/// `response_nonce` is that nonce (any other nonce is stale, xDS spec
/// "Resource updates"). Returns the event to report, or `None` when that
/// response was answered before.
///
/// xDS spec, "ACK/NACK and resource type instance version": `error_detail`
/// set means the response was rejected; the client stays on its previous
/// version and the rejected content is not resent until it changes. Envoy
/// also repeats a NACKed nonce later without `error_detail`: that is not an
/// ACK, hence only a pending response is classified. In the incremental
/// protocol ("Incremental xDS") a request with `response_nonce` answers
/// that response the same way.
pub(crate) fn classify_reply(
    reply: &mut Reply,
    type_url: &str,
    version: &str,
    nonce: &str,
    error_detail: Option<&RpcStatus>,
) -> Option<StreamEvent> {
    if *reply != Reply::Pending {
        return None;
    }
    let (type_url, version, nonce) = (type_url.to_string(), version.to_string(), nonce.to_string());
    Some(match error_detail {
        Some(detail) => {
            *reply = Reply::Nacked;
            StreamEvent::Nacked {
                type_url,
                version,
                nonce,
                message: detail.message.clone(),
            }
        }
        None => {
            *reply = Reply::Acked;
            StreamEvent::Acked {
                type_url,
                version,
                nonce,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nack() -> RpcStatus {
        RpcStatus {
            code: 3,
            message: "bad".into(),
            ..Default::default()
        }
    }

    #[test]
    fn pending_reply_is_acked_once() {
        let mut reply = Reply::Pending;
        let event = classify_reply(&mut reply, "t", "v1", "1", None);
        assert!(matches!(event, Some(StreamEvent::Acked { .. })));
        assert_eq!(reply, Reply::Acked);
        assert_eq!(classify_reply(&mut reply, "t", "v1", "1", None), None);
    }

    #[test]
    fn nack_then_repeat_without_error_is_not_an_ack() {
        let mut reply = Reply::Pending;
        let event = classify_reply(&mut reply, "t", "v1", "1", Some(&nack()));
        assert!(matches!(event, Some(StreamEvent::Nacked { message, .. }) if message == "bad"));
        assert_eq!(classify_reply(&mut reply, "t", "v1", "1", None), None);
        assert_eq!(reply, Reply::Nacked);
    }
}
