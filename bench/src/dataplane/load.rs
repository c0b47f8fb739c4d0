//! The open-loop load generator. Requests are due on a fixed timeline
//! (request I at start + I / rate), whatever the answers do: a dispatcher
//! thread releases each due time into a queue when it comes, and N
//! keep-alive HTTP/1.1 connections take from the queue as they are free.
//! Latency is measured from the due time, not from the moment a connection
//! got to send, so a stall shows as the queueing delay the requests behind
//! it suffered (no coordinated omission, as in wrk2).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::Mutex;

use super::stats;

/// Between connecting and the first due time, so request 0 is not late.
const LEAD: Duration = Duration::from_millis(20);
/// Longest one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after the last due time the answers may still arrive (a
/// shared machine can stall a point for seconds).
const DRAIN: Duration = Duration::from_secs(30);

/// Where requests go: `GET /` to `addr` with `Host: host`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The listener the client connects to.
    pub addr: SocketAddr,
    /// The `Host` header (the service name through a sidecar).
    pub host: String,
}

/// One point: a rate held for a duration over a number of connections.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Requests per second.
    pub rate: f64,
    /// How long the timeline runs.
    pub duration: Duration,
    /// Keep-alive connections sharing the queue.
    pub connections: usize,
}

/// What a point measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every answered request in µs, ascending.
    pub latencies_us: Vec<u64>,
    /// Requests that failed (error, timeout or status other than 200).
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

/// Per connection: what it measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

type Queue = Arc<Mutex<UnboundedReceiver<Instant>>>;

/// Runs one point against `target` and returns its latencies and errors.
pub async fn run(target: &Target, plan: &Plan) -> anyhow::Result<Outcome> {
    let mut senders = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        senders.push(connect(target.addr).await?);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let queue: Queue = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = senders
        .into_iter()
        .map(|s| tokio::spawn(worker(s, queue.clone(), target.clone())))
        .collect();
    let aborts: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
    let (start, rate) = (Instant::now() + LEAD, plan.rate);
    let n = stats::count(rate, plan.duration);
    let dispatcher = tokio::task::spawn_blocking(move || dispatch(&tx, start, rate, n));
    let all = async {
        dispatcher.await?;
        let mut tallies = Vec::new();
        for w in workers {
            tallies.push(w.await?);
        }
        Ok::<_, anyhow::Error>(tallies)
    };
    match tokio::time::timeout(LEAD + plan.duration + DRAIN, all).await {
        Ok(tallies) => {
            // A point lasts its duration even with no request (rate 0
            // measures the idle sidecars over the same window).
            tokio::time::sleep_until((start + plan.duration).into()).await;
            Ok(merge(tallies?))
        }
        Err(_) => {
            // Dropping the workers drops the queue, which ends the dispatcher.
            aborts.iter().for_each(|a| a.abort());
            bail!("the point did not finish within {DRAIN:?} after its last due time")
        }
    }
}

/// Sends one request at a time until one is answered with 200, for at
/// most `within` (a path is ready when it serves, not when it listens).
pub async fn wait_answering(target: &Target, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut conn = None;
        match tokio::time::timeout(REQUEST_TIMEOUT, send(&mut conn, target)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{} never answered 200 within {within:?}: {last}",
        target.addr
    )
}

/// Releases request I's due time into `tx` at that time; a late wake-up
/// sends the due times it overslept at once, each still stamped with when
/// it was due.
fn dispatch(tx: &UnboundedSender<Instant>, start: Instant, rate: f64, n: u64) {
    for i in 0..n {
        let due = start + stats::offset(rate, i);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if tx.send(due).is_err() {
            return;
        }
    }
}

fn merge(tallies: Vec<Tally>) -> Outcome {
    let mut out = Outcome::default();
    for t in tallies {
        out.latencies_us.extend(t.latencies_us);
        out.errors += t.errors;
        out.first_error = out.first_error.or(t.first_error);
    }
    out.latencies_us.sort_unstable();
    out
}

/// One connection: takes due times from the queue and sends one request
/// each; a failed connection is replaced before the next request (its
/// time counts toward that request's latency, as for a real client).
async fn worker(first: SendRequest<Empty<Bytes>>, queue: Queue, target: Target) -> Tally {
    let mut tally = Tally::default();
    let mut conn = Some(first);
    loop {
        let next = queue.lock().await.recv().await;
        let Some(due) = next else { break };
        let result = tokio::time::timeout(REQUEST_TIMEOUT, send(&mut conn, &target)).await;
        match result.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out"))) {
            Ok(()) => tally.latencies_us.push(due.elapsed().as_micros() as u64),
            Err(e) => {
                conn = None;
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    tally
}

/// One `GET /` on `conn` (connecting first if it is gone); Ok when the
/// answer was 200 and its body was read.
async fn send(conn: &mut Option<SendRequest<Empty<Bytes>>>, target: &Target) -> anyhow::Result<()> {
    let sender = match conn {
        Some(s) => s,
        None => conn.insert(connect(target.addr).await?),
    };
    sender.ready().await?;
    let req = hyper::Request::get("/")
        .header(hyper::header::HOST, &target.host)
        .body(Empty::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    if status != hyper::StatusCode::OK {
        bail!("HTTP {status}");
    }
    Ok(())
}

/// A keep-alive HTTP/1.1 connection with TCP_NODELAY (as Envoy's own
/// connections have), its I/O driven by a task of its own.
async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_dispatch_keeps_the_timeline() {
        // A timeline that began a second ago: every request is overdue, so
        // all go out at once, yet each carries its own due time, so its
        // latency counts from when it should have left.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now() - Duration::from_secs(1);
        dispatch(&tx, start, 1000.0, 100);
        let dues: Vec<Instant> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(dues.len(), 100);
        for (i, due) in dues.iter().enumerate() {
            assert_eq!(*due, start + Duration::from_millis(i as u64));
        }
    }

    #[test]
    fn merge_sorts_and_sums() {
        let a = Tally {
            latencies_us: vec![30, 10],
            errors: 1,
            first_error: Some("HTTP 503".into()),
        };
        let b = Tally {
            latencies_us: vec![20],
            errors: 2,
            first_error: Some("timed out".into()),
        };
        let out = merge(vec![a, b]);
        assert_eq!(out.latencies_us, vec![10, 20, 30]);
        assert_eq!(out.errors, 3);
        assert_eq!(out.first_error.as_deref(), Some("HTTP 503"));
    }
}
