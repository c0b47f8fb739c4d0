//! A small client of etcd's v3 gRPC API: the calls Trellis makes (KV
//! Range, Put and Txn; Lease Grant and KeepAlive; Watch), on tonic's
//! generic gRPC client with prost's codec and the hand-written messages of
//! [`super::proto`].
//!
//! The client keeps one lazily connected channel per etcd member and sends
//! every request to one of them, the current one; a request that fails or
//! is abandoned (its caller's timeout) moves it to the next member, as
//! etcd's own client does. HTTP/2 pings find a dead or frozen member in
//! seconds. (A balancing channel was no good here: it counts a member that
//! refuses connections as ready, so half the requests kept going to a
//! killed member.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::client::Grpc;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::Streaming;
use tonic_prost::ProstCodec;

use super::proto::{
    prefix_end, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestUnion,
    TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest, WatchResponse,
};

/// The largest message taken from etcd (its own default request limit is
/// 1.5 MB; responses to a range or a catching-up watch can be far larger).
const MAX_MESSAGE: usize = 256 << 20;

/// Why an etcd call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An endpoint is not a valid URI, or its TLS settings were refused.
    #[error("endpoint {endpoint}: {source}")]
    Endpoint {
        /// The endpoint URL.
        endpoint: String,
        /// The cause.
        source: tonic::transport::Error,
    },
    /// No member could take the request (connection refused, timed out).
    #[error("connection: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// etcd (or the gRPC layer) answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// A stream ended without the answer asked for.
    #[error("{0} stream ended")]
    StreamEnded(&'static str),
    /// `--store etcd://` named no member.
    #[error("no etcd endpoint")]
    NoEndpoints,
    /// A request got no answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// etcd answered a lease grant with an error.
    #[error("lease not granted: {0}")]
    LeaseRefused(String),
}

/// How the channel reaches etcd.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `HOST:PORT` of each member.
    pub endpoints: Vec<String>,
    /// TLS to every member; plain HTTP/2 without.
    pub tls: Option<ClientTlsConfig>,
    /// The longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// How often an HTTP/2 ping is sent, even on an idle connection.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub ping_timeout: Duration,
}

/// A client of every member of one etcd cluster; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    members: Arc<Members>,
}

/// One channel per member, and which one requests go to.
#[derive(Debug)]
struct Members {
    channels: Vec<Channel>,
    current: AtomicUsize,
}

impl Members {
    /// Moves on from member `index` unless another failure already did.
    fn failed(&self, index: usize) {
        let next = (index + 1) % self.channels.len();
        let _ = (self.current).compare_exchange(index, next, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// One request's use of a member: unless it is marked answered, dropping
/// it (on an error, or when the caller gave up waiting) moves the client to
/// the next member.
struct Attempt {
    members: Arc<Members>,
    index: usize,
    answered: bool,
}

impl Attempt {
    fn new(members: &Arc<Members>, index: usize) -> Attempt {
        Attempt {
            members: members.clone(),
            index,
            answered: false,
        }
    }

    /// Passes `result` through, marking the attempt answered on success.
    fn check<T>(mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        self.answered = result.is_ok();
        result
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.answered {
            self.members.failed(self.index);
        }
    }
}

const RANGE: &str = "/etcdserverpb.KV/Range";
const PUT: &str = "/etcdserverpb.KV/Put";
const TXN: &str = "/etcdserverpb.KV/Txn";
const LEASE_GRANT: &str = "/etcdserverpb.Lease/LeaseGrant";
const LEASE_KEEP_ALIVE: &str = "/etcdserverpb.Lease/LeaseKeepAlive";
const WATCH: &str = "/etcdserverpb.Watch/Watch";

impl Client {
    /// Builds a channel per member; each connects at its first request
    /// (so a member down at start is not an error). Needs a Tokio runtime.
    pub fn connect(opts: &ConnectOptions) -> Result<Client, ClientError> {
        let channels = (opts.endpoints.iter())
            .map(|e| Ok(endpoint(e, opts)?.connect_lazy()))
            .collect::<Result<Vec<_>, ClientError>>()?;
        if channels.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let current = AtomicUsize::new(0);
        let members = Arc::new(Members { channels, current });
        Ok(Client { members })
    }

    /// The current member's gRPC client, and the attempt that uses it.
    fn pick(&self) -> (Grpc<Channel>, Attempt) {
        let index = self.members.current.load(Ordering::SeqCst);
        let channel = self.members.channels[index].clone();
        // A watch that catches up gets many revisions' events in one
        // message, past gRPC's default 4 MB limit at thousands of sidecars.
        let grpc = Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE);
        (grpc, Attempt::new(&self.members, index))
    }

    /// Reads one key, or every key starting with it when `prefix`.
    pub async fn range(&self, key: &str, prefix: bool) -> Result<RangeResponse, ClientError> {
        let range_end = if prefix {
            prefix_end(key.as_bytes())
        } else {
            Vec::new()
        };
        let key = key.as_bytes().to_vec();
        let request = RangeRequest {
            key,
            range_end,
            limit: 0,
            revision: 0,
        };
        self.unary(RANGE, request).await
    }

    /// Reads every key under `prefix` in pages of `page` keys, all at the
    /// revision of the first page: one response for 10,000 sidecars and
    /// their statuses (over 10 MB) exceeds gRPC's 4 MB message limit, and
    /// would take one request's whole time budget under load. `page_timeout`
    /// bounds each request.
    pub async fn range_paged(
        &self,
        prefix: &str,
        page: i64,
        page_timeout: Duration,
    ) -> Result<RangeResponse, ClientError> {
        let range_end = prefix_end(prefix.as_bytes());
        let mut request = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end,
            limit: page,
            revision: 0,
        };
        let mut all = RangeResponse::default();
        loop {
            let call = self.unary::<_, RangeResponse>(RANGE, request.clone());
            let response = (tokio::time::timeout(page_timeout, call).await)
                .map_err(|_| ClientError::Timeout(page_timeout))??;
            if all.header.is_none() {
                all.header = response.header.clone();
                request.revision = response.header.as_ref().map_or(0, |h| h.revision);
            }
            let more = response.more;
            all.kvs.extend(response.kvs);
            match all.kvs.last() {
                // The next page starts just after the last key read.
                Some(last) if more => request.key = [last.key.as_slice(), &[0]].concat(),
                _ => return Ok(all),
            }
        }
    }

    /// Writes a key, on `lease` unless it is 0.
    pub async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<(), ClientError> {
        let key = key.as_bytes().to_vec();
        let _: PutResponse = self.unary(PUT, PutRequest { key, value, lease }).await?;
        Ok(())
    }

    /// Runs a transaction.
    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, ClientError> {
        self.unary(TXN, txn).await
    }

    /// Grants a lease of `ttl` seconds; returns its id.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, ClientError> {
        let request = LeaseGrantRequest { ttl, id: 0 };
        let granted: LeaseGrantResponse = self.unary(LEASE_GRANT, request).await?;
        if !granted.error.is_empty() {
            return Err(ClientError::LeaseRefused(granted.error));
        }
        Ok(granted.id)
    }

    /// Opens a keepalive stream for lease `id` and renews it once; returns
    /// the stream and the lease's time to live (0: the lease is gone).
    pub async fn lease_keep_alive(&self, id: i64) -> Result<(LeaseKeeper, i64), ClientError> {
        // etcd answers (response headers included) only once it has a
        // request, so the first renewal goes out with the call.
        let first = LeaseKeepAliveRequest { id };
        let (requests, responses, index) = self.streaming(LEASE_KEEP_ALIVE, first).await?;
        let mut keeper = LeaseKeeper {
            id,
            requests,
            responses,
            members: self.members.clone(),
            index,
        };
        let ttl = keeper.next_ttl().await?;
        Ok((keeper, ttl))
    }

    /// Watches every key starting with `prefix`, from `start_revision`.
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<WatchStream, ClientError> {
        let create = WatchCreateRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            start_revision,
        };
        let request = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        };
        let (requests, responses, index) = self.streaming(WATCH, request).await?;
        Ok(WatchStream {
            _requests: requests,
            responses,
            members: self.members.clone(),
            index,
        })
    }

    async fn unary<Req, Resp>(&self, path: &'static str, request: Req) -> Result<Resp, ClientError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let (mut grpc, attempt) = self.pick();
        let result = async {
            grpc.ready().await?;
            let codec = ProstCodec::<Req, Resp>::default();
            let path = PathAndQuery::from_static(path);
            let response = grpc
                .unary(tonic::Request::new(request), path, codec)
                .await?;
            Ok(response.into_inner())
        };
        attempt.check(result.await)
    }

    /// Opens a bidirectional stream with `first` as its first request;
    /// returns the member's index with it.
    async fn streaming<Req, Resp>(
        &self,
        path: &'static str,
        first: Req,
    ) -> Result<(mpsc::Sender<Req>, Streaming<Resp>, usize), ClientError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let (requests, rx) = mpsc::channel(8);
        // Cannot fail: the receiver is still here.
        let _ = requests.try_send(first);
        let (mut grpc, attempt) = self.pick();
        let index = attempt.index;
        let result = async {
            grpc.ready().await?;
            let codec = ProstCodec::<Req, Resp>::default();
            let path = PathAndQuery::from_static(path);
            let request = tonic::Request::new(ReceiverStream::new(rx));
            Ok(grpc.streaming(request, path, codec).await?.into_inner())
        };
        let responses = attempt.check(result.await)?;
        Ok((requests, responses, index))
    }
}

/// One member's endpoint, with the channel's timeouts and TLS.
fn endpoint(hostport: &str, opts: &ConnectOptions) -> Result<Endpoint, ClientError> {
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{hostport}");
    let bad = |source| ClientError::Endpoint {
        endpoint: url.clone(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(bad)?
        .connect_timeout(opts.connect_timeout)
        .http2_keep_alive_interval(opts.ping_interval)
        .keep_alive_timeout(opts.ping_timeout)
        .keep_alive_while_idle(true);
    if let Some(tls) = &opts.tls {
        endpoint = endpoint.tls_config(tls.clone()).map_err(bad)?;
    }
    Ok(endpoint)
}

/// The keepalive stream of one lease.
#[derive(Debug)]
pub struct LeaseKeeper {
    id: i64,
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    responses: Streaming<LeaseKeepAliveResponse>,
    members: Arc<Members>,
    index: usize,
}

impl LeaseKeeper {
    /// Renews the lease; returns its time to live (0: the lease is gone).
    pub async fn renew(&mut self) -> Result<i64, ClientError> {
        let request = LeaseKeepAliveRequest { id: self.id };
        (self.requests.send(request).await)
            .map_err(|_| ClientError::StreamEnded("lease keepalive"))?;
        self.next_ttl().await
    }

    async fn next_ttl(&mut self) -> Result<i64, ClientError> {
        let attempt = Attempt::new(&self.members, self.index);
        let result = match self.responses.message().await {
            Ok(Some(response)) => Ok(response.ttl),
            Ok(None) => Err(ClientError::StreamEnded("lease keepalive")),
            Err(status) => Err(status.into()),
        };
        attempt.check(result)
    }
}

/// A watch: the responses etcd sends on it.
#[derive(Debug)]
pub struct WatchStream {
    /// Held so the request side stays open: etcd may take a closed request
    /// side for a client gone.
    _requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
    members: Arc<Members>,
    index: usize,
}

impl WatchStream {
    /// The next response; `None` when etcd ended the stream.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, ClientError> {
        let result = self.responses.message().await;
        if !matches!(result, Ok(Some(_))) {
            self.members.failed(self.index);
        }
        Ok(result?)
    }
}

#[cfg(test)]
mod tests;
