//! Ending an accepted stream from outside the xDS module: the hooks that
//! accept a stream hand back a [`StreamCut`], a future the stream task polls
//! beside requests and snapshots. When it resolves, the stream ends with the
//! refusal's status (as trailers) and the refusal is counted like one at open.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Refusal;

/// Resolves when the control plane wants an accepted stream closed, with the
/// status Envoy gets and the reason counted in
/// `trellis_xds_streams_refused_total`. xds does not know why (a revoked
/// token, for instance): that is the hooks' business.
pub struct StreamCut(Option<Pin<Box<dyn Future<Output = Refusal> + Send>>>);

impl StreamCut {
    /// A stream that is never cut from outside.
    pub fn never() -> Self {
        StreamCut(None)
    }

    /// A stream cut when `cause` resolves.
    pub fn when(cause: impl Future<Output = Refusal> + Send + 'static) -> Self {
        StreamCut(Some(Box::pin(cause)))
    }
}

impl std::fmt::Debug for StreamCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StreamCut(pending)"
        } else {
            "StreamCut(never)"
        })
    }
}

impl Future for StreamCut {
    type Output = Refusal;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Refusal> {
        match &mut self.get_mut().0 {
            Some(cause) => cause.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}
