//! A minimal Redis client: RESP2 over one TCP connection, enough to load
//! and run the GCRA script. Written here rather than taken from the
//! `redis` crate, whose dependency tree would cost more to build than
//! these hundred lines; calls on one connection are serialised, and a
//! broken connection is dropped and made again on the next call.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::gcra::{self, Decision};
use super::RateLimitError;
use crate::config::model::Limit;

/// How long one connect or command may take before it counts as failed
/// (the sidecars then fail open).
pub const TIMEOUT: Duration = Duration::from_millis(200);

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, or a bulk string.
    Text(String),
    /// `:N`.
    Int(i64),
    /// `*N` elements.
    Array(Vec<Reply>),
    /// `$-1` or `*-1`.
    Nil,
    /// `-ERR ...`.
    Error(String),
}

struct Conn {
    stream: BufReader<TcpStream>,
    script_sha: String,
}

/// One Redis server at `HOST:PORT`.
pub struct Redis {
    addr: String,
    conn: Mutex<Option<Conn>>,
}

impl Redis {
    /// A client for `redis://HOST:PORT` (or `HOST:PORT`); connects lazily.
    pub fn new(url: &str) -> Result<Self, RateLimitError> {
        let addr = url
            .strip_prefix("redis://")
            .unwrap_or(url)
            .trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') || addr.contains('@') || !addr.contains(':') {
            let msg = format!("{url:?}: expected redis://HOST:PORT (no database, no password)");
            return Err(RateLimitError::Redis(msg));
        }
        Ok(Redis {
            addr: addr.to_string(),
            conn: Mutex::new(None),
        })
    }

    /// Runs the GCRA check of `key` for `hits` requests.
    pub async fn check(
        &self,
        key: &str,
        limit: &Limit,
        hits: u32,
    ) -> Result<Decision, RateLimitError> {
        let mut guard = self.conn.lock().await;
        let result =
            tokio::time::timeout(TIMEOUT, run_check(&self.addr, &mut guard, key, limit, hits))
                .await;
        let result = result.unwrap_or_else(|_| Err(RateLimitError::Redis("timed out".into())));
        if result.is_err() {
            *guard = None; // a half-read reply would poison the next call
        }
        result
    }
}

async fn run_check(
    addr: &str,
    slot: &mut Option<Conn>,
    key: &str,
    limit: &Limit,
    hits: u32,
) -> Result<Decision, RateLimitError> {
    if slot.is_none() {
        *slot = Some(connect(addr).await?);
    }
    let Some(conn) = slot.as_mut() else {
        return Err(RateLimitError::Redis("not connected".into()));
    };
    let [interval, capacity, hits] = gcra::args(limit, hits);
    let cmd = [
        "EVALSHA",
        &conn.script_sha,
        "1",
        key,
        &interval,
        &capacity,
        &hits,
    ];
    match command(&mut conn.stream, &cmd).await? {
        Reply::Array(v) => decision(&v),
        Reply::Error(e) => Err(RateLimitError::Redis(e)),
        other => Err(RateLimitError::Redis(format!("unexpected reply {other:?}"))),
    }
}

fn decision(v: &[Reply]) -> Result<Decision, RateLimitError> {
    match v {
        [Reply::Int(a), Reply::Int(r), Reply::Int(w)] => Ok(Decision {
            allowed: *a == 1,
            remaining: u32::try_from(*r).unwrap_or(0),
            retry_after_us: u64::try_from(*w).unwrap_or(0),
        }),
        other => Err(RateLimitError::Redis(format!("unexpected reply {other:?}"))),
    }
}

async fn connect(addr: &str) -> Result<Conn, RateLimitError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| RateLimitError::Redis(format!("connecting to {addr}: {e}")))?;
    stream.set_nodelay(true).ok();
    let mut stream = BufReader::new(stream);
    match command(&mut stream, &["SCRIPT", "LOAD", gcra::SCRIPT]).await? {
        Reply::Text(sha) => Ok(Conn {
            stream,
            script_sha: sha,
        }),
        other => Err(RateLimitError::Redis(format!("SCRIPT LOAD: {other:?}"))),
    }
}

/// Sends one command and reads its reply.
pub async fn command(
    stream: &mut BufReader<TcpStream>,
    args: &[&str],
) -> Result<Reply, RateLimitError> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    stream.get_mut().write_all(&out).await.map_err(io)?;
    read_reply(stream).await
}

fn io(e: std::io::Error) -> RateLimitError {
    RateLimitError::Redis(e.to_string())
}

/// Reads one reply; arrays hold scalars or arrays of scalars (all the
/// script returns).
async fn read_reply(stream: &mut BufReader<TcpStream>) -> Result<Reply, RateLimitError> {
    let head = read_scalar(stream).await?;
    let Some(n) = head.1 else { return Ok(head.0) };
    let mut items = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let (item, nested) = read_scalar(stream).await?;
        if nested.is_some() {
            return Err(RateLimitError::Redis(
                "nested arrays are not expected".into(),
            ));
        }
        items.push(item);
    }
    Ok(Reply::Array(items))
}

/// One scalar, or the length of an array that follows.
async fn read_scalar(
    stream: &mut BufReader<TcpStream>,
) -> Result<(Reply, Option<usize>), RateLimitError> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.map_err(io)? == 0 {
        return Err(RateLimitError::Redis("connection closed".into()));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| RateLimitError::Redis(format!("bad reply {line:?}")))
    };
    Ok(match kind {
        "+" => (Reply::Text(rest.to_string()), None),
        "-" => (Reply::Error(rest.to_string()), None),
        ":" => (Reply::Int(number()?), None),
        "$" => match usize::try_from(number()?) {
            Ok(len) => {
                let mut buf = vec![0; len + 2];
                stream.read_exact(&mut buf).await.map_err(io)?;
                buf.truncate(len);
                (
                    Reply::Text(String::from_utf8_lossy(&buf).into_owned()),
                    None,
                )
            }
            Err(_) => (Reply::Nil, None),
        },
        "*" => match usize::try_from(number()?) {
            Ok(n) => (Reply::Nil, Some(n)),
            Err(_) => (Reply::Nil, None),
        },
        _ => return Err(RateLimitError::Redis(format!("bad reply {line:?}"))),
    })
}
