//! The response body of an ADS stream: one HTTP/2 data frame per message,
//! then the gRPC status as trailers (`PROTOCOL-HTTP2.md`, "Responses").

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http_body::Frame;
use prost::Message;
use tonic::Status;

use crate::xds::server::{PeerPermit, Responses};

/// Compressed-Flag (1 byte) and Message-Length (4 bytes, big-endian) before
/// each message (`PROTOCOL-HTTP2.md`, "Length-Prefixed-Message").
const PREFIX: usize = 5;

/// Yields each response of a stream's queue as its own buffer, so a stream
/// holds no encoding memory between responses; the queue (and with it the
/// stream task's backpressure) is unchanged. Ends with the status trailers:
/// OK once the stream task is done, or the error it sent.
/// The stream's place in its peer's stream limit is held as long as the
/// body: until HTTP/2 is done with the stream.
pub(super) struct ResponseBody<R> {
    responses: Responses<R>,
    ended: bool,
    _permit: Option<PeerPermit>,
}

impl<R> ResponseBody<R> {
    pub(super) fn new(responses: Responses<R>, permit: Option<PeerPermit>) -> Self {
        ResponseBody {
            responses,
            ended: false,
            _permit: permit,
        }
    }
}

impl<R: Message> http_body::Body for ResponseBody<R> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let status = match ready!(this.responses.poll_recv(cx)).map(|item| *item) {
            Some(Ok(response)) => match frame(&response) {
                Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(status) => {
                    tracing::warn!(%status, "ADS response not sent; ending the stream");
                    status
                }
            },
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        this.ended = true;
        // The stream task sees the end at once (its `tx.closed()`), even
        // when it is the body that ended the stream.
        this.responses.close();
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// A length-prefixed message, uncompressed, in one allocation of exactly
/// its size: it is freed as soon as HTTP/2 has written it.
pub(super) fn frame<R: Message>(message: &R) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    let prefix = u32::try_from(len).map_err(|_| {
        Status::resource_exhausted(format!(
            "a response of {len} bytes exceeds gRPC's message length limit (4 GB)"
        ))
    })?;
    let mut buf = Vec::with_capacity(PREFIX + len);
    buf.push(0);
    buf.extend_from_slice(&prefix.to_be_bytes());
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(format!("Error encoding: {e}")))?;
    Ok(Bytes::from(buf))
}

/// `grpc-status`, `grpc-message` (percent-encoded) and any metadata of
/// `status`, as tonic's own servers write them.
pub(super) fn trailers(status: &Status) -> HeaderMap {
    let mut map = HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        // Only metadata or details that are no valid header values fail;
        // the code alone still ends the stream correctly.
        map.clear();
        map.insert(Status::GRPC_STATUS, HeaderValue::from(status.code() as i32));
    }
    map
}
