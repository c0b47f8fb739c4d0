//! The ADS listener's accepted connections: TCP_NODELAY and TCP keepalive
//! on every socket, and at most [`PeerLimit`] connections per client
//! address.
//!
//! tonic ignores its builder's `tcp_nodelay` and `tcp_keepalive` when given
//! an incoming stream, so the options are set here, on each accepted socket
//! (plain, or before TLS wraps it). Without TCP_NODELAY small responses and
//! ACKs wait for delayed ACKs: about 40 ms per push.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

use crate::xds::{PeerLimit, PeerPermit};

/// An accepted connection and its place in its peer's limit.
pub(super) struct PeerConn {
    stream: TcpStream,
    _permit: PeerPermit,
}

/// Accepted connections of `listener`, with the socket options set; a
/// connection over its peer's limit is closed at once.
pub(super) fn incoming(
    listener: TcpListener,
    per_peer: PeerLimit,
    keepalive: Duration,
) -> impl Stream<Item = io::Result<PeerConn>> {
    let accepted = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(keepalive));
    accepted.filter_map(move |conn| match conn {
        Ok(stream) => admit(stream, &per_peer).map(Ok),
        Err(e) => Some(Err(e)),
    })
}

fn admit(stream: TcpStream, per_peer: &PeerLimit) -> Option<PeerConn> {
    let peer = stream.peer_addr().ok()?;
    match per_peer.acquire(peer.ip()) {
        Some(permit) => Some(PeerConn {
            stream,
            _permit: permit,
        }),
        None => {
            tracing::warn!(
                peer = %peer.ip(),
                limit = per_peer.limit(),
                "xDS connection refused: the peer is at its connection limit (--xds-max-connections-per-peer)"
            );
            None
        }
    }
}

impl Connected for PeerConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for PeerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn listen() -> (TcpListener, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    #[tokio::test]
    async fn accepted_sockets_have_nodelay_and_keepalive() {
        let (listener, addr) = listen().await;
        let mut conns = Box::pin(incoming(
            listener,
            PeerLimit::new(8),
            Duration::from_secs(30),
        ));
        let _client = TcpStream::connect(addr).await.unwrap();
        let conn = conns.next().await.unwrap().unwrap();
        assert!(
            conn.stream.nodelay().unwrap(),
            "TCP_NODELAY on the accepted socket"
        );
        let sock = socket2::SockRef::from(&conn.stream);
        assert!(
            sock.keepalive().unwrap(),
            "SO_KEEPALIVE on the accepted socket"
        );
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_peer_over_its_connection_limit_is_closed_and_later_admitted() {
        let (listener, addr) = listen().await;
        let limit = PeerLimit::new(2);
        let mut conns = Box::pin(incoming(listener, limit.clone(), Duration::from_secs(30)));
        let mut clients = Vec::new();
        let mut accepted = Vec::new();
        for _ in 0..2 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            accepted.push(conns.next().await.unwrap().unwrap());
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        // The refused connection is not handed to the server...
        let next = tokio::time::timeout(Duration::from_millis(200), conns.next()).await;
        assert!(next.is_err(), "a third connection was admitted");
        // ...and the client sees it closed.
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        assert_eq!(limit.open(addr.ip()), 2);
        // A closed connection frees its place.
        accepted.pop();
        let _fourth = TcpStream::connect(addr).await.unwrap();
        let admitted = tokio::time::timeout(Duration::from_secs(5), conns.next()).await;
        assert!(matches!(admitted, Ok(Some(Ok(_)))));
    }
}
