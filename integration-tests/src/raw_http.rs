//! Raw TCP test servers: a counted listener and a minimal HTTP/1.1 answer
//! that echoes the `Host` it was sent (what a forward proxy or a tunnel
//! delivered, byte for byte, without an HTTP library in between).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server on `ip` that counts connections and runs `serve` on each.
pub async fn server<F, Fut>(ip: &str, serve: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(s));
        }
    });
    (port, seen)
}

/// Reads up to the end of an HTTP head (`\r\n\r\n`).
pub async fn read_head(s: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

/// Answers one HTTP/1.1 request with `body` and the `Host` it was sent.
pub async fn answer(mut s: impl AsyncRead + AsyncWrite + Unpin, body: &'static str) {
    let Some(head) = read_head(&mut s).await else {
        return;
    };
    let host = (head.lines())
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("host: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    let text = format!("{body} host={host}");
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = s.write_all(reply.as_bytes()).await;
    let _ = s.shutdown().await;
}
