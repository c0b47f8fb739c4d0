//! The ADS gRPC service on tonic's HTTP/2 server, written by hand instead of
//! the generated `AggregatedDiscoveryServiceServer` to bound memory per stream.
//!
//! The generated server encodes responses through `tonic::codec::EncodeBody`,
//! which keeps one buffer per stream as large as the largest response the
//! stream ever sent (the initial CDS: tens of KB per proxy, for the life of
//! the stream). Here each response is its own exactly-sized frame, freed once
//! HTTP/2 has written it ([`ResponseBody`]), and requests, which are small,
//! are decoded with a small initial buffer. Framing and trailers follow gRPC's
//! "gRPC over HTTP2" (`PROTOCOL-HTTP2.md`).

use std::convert::Infallible;
use std::future::{self, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use tonic::body::Body;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, Streaming};
use tonic::metadata::{MetadataMap, MetadataValue, GRPC_CONTENT_TYPE};
use tonic::server::NamedService;
use tonic::Status;
use tonic_prost::ProstDecoder;

use super::protocol::Protocol;
use super::AdsServer;
use crate::xds::{DeltaStreamState, StreamState};
use body::ResponseBody;

mod body;
#[cfg(test)]
mod tests;

/// The gRPC service name (`envoy/service/discovery/v3/ads.proto`).
const SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
/// State-of-the-world ADS.
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
/// Incremental xDS (xDS spec, "Incremental xDS"): the same hooks, status
/// and metrics as state of the world, a `DeltaStreamState` per stream.
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Initial size of a stream's request buffer. ADS requests are small (a few
/// hundred bytes; the first, with the node, about a KB); the buffer grows
/// for a larger one. tonic's default is 8 KB per stream.
const REQUEST_BUFFER: usize = 1024;
/// tonic uses this only when encoding, which this service does itself.
const UNUSED_YIELD_THRESHOLD: usize = 32 * 1024;

/// `grpc-encoding` and `grpc-accept-encoding` (`PROTOCOL-HTTP2.md`).
const ENCODING: &str = "grpc-encoding";
const ACCEPT_ENCODING: &str = "grpc-accept-encoding";

/// The ADS gRPC service of an [`AdsServer`]: state of the world and delta.
#[derive(Clone)]
pub struct AdsService {
    server: AdsServer,
}

impl AdsService {
    pub(super) fn new(server: AdsServer) -> Self {
        AdsService { server }
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = SERVICE;
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl tower_service::Service<http::Request<Body>> for AdsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> ResponseFuture {
        let server = self.server.clone();
        match req.uri().path() {
            SOTW_PATH => Box::pin(async move { Ok(stream::<StreamState>(server, req).await) }),
            DELTA_PATH => {
                Box::pin(async move { Ok(stream::<DeltaStreamState>(server, req).await) })
            }
            _ => Box::pin(future::ready(Ok(unimplemented()))),
        }
    }
}

/// Serves one ADS stream: a response whose body carries the stream task's
/// responses, or a trailers-only response when the stream is refused.
/// What needs only the headers (the peer's stream limit, the token) is
/// checked before a byte of the body is read.
async fn stream<P: Protocol>(server: AdsServer, req: http::Request<Body>) -> http::Response<Body> {
    if let Err(status) = check_encoding(req.headers()) {
        return status.into_http();
    }
    let (parts, body) = req.into_parts();
    let metadata = MetadataMap::from_headers(parts.headers);
    let permit = match server.admit(peer_ip(&parts.extensions), &metadata) {
        Ok(permit) => permit,
        Err(status) => return status.into_http(),
    };
    let decoder = RequestDecoder(ProstDecoder::<P::Request>::new(BufferSettings::new(
        REQUEST_BUFFER,
        UNUSED_YIELD_THRESHOLD,
    )));
    // No compression and tonic's default limit (4 MB), as the generated
    // server with its defaults.
    let inbound = Streaming::new_request(decoder, body, None, None);
    match server.serve::<P>(metadata, inbound).await {
        Ok(responses) => {
            let body = ResponseBody::new(responses, permit);
            let mut response = http::Response::new(Body::new(body));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, GRPC_CONTENT_TYPE);
            response
        }
        Err(status) => status.into_http(),
    }
}

/// The client's address, which tonic puts into the request's extensions
/// (plain TCP, or TCP under TLS).
fn peer_ip(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let tcp = extensions.get::<TcpConnectInfo>().or_else(|| {
        extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .map(TlsConnectInfo::get_ref)
    });
    Some(tcp?.remote_addr()?.ip())
}

/// tonic's prost decoder, except that a message that does not decode is
/// the client's fault: INVALID_ARGUMENT ("the client specified an invalid
/// argument", gRPC's `statuscodes.md`), where tonic answers INTERNAL.
struct RequestDecoder<T>(ProstDecoder<T>);

impl<T: prost::Message + Default> Decoder for RequestDecoder<T> {
    type Item = T;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<T>, Status> {
        self.0
            .decode(buf)
            .map_err(|e| Status::invalid_argument(e.message().to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// Compressed requests are refused: Envoy sends none by default, and no
/// compression is enabled. As tonic's generated server does (and gRPC's
/// compression doc asks): UNIMPLEMENTED, listing what is accepted.
fn check_encoding(headers: &HeaderMap) -> Result<(), Status> {
    let Some(value) = headers.get(ENCODING) else {
        return Ok(());
    };
    if value.as_bytes() == b"identity" {
        return Ok(());
    }
    let name = String::from_utf8_lossy(value.as_bytes());
    let mut status = Status::unimplemented(format!(
        "Content is compressed with `{name}` which isn't supported"
    ));
    status
        .metadata_mut()
        .insert(ACCEPT_ENCODING, MetadataValue::from_static("identity"));
    Err(status)
}

/// An unknown method: trailers-only UNIMPLEMENTED (`PROTOCOL-HTTP2.md`), as
/// tonic's generated servers answer.
fn unimplemented() -> http::Response<Body> {
    let mut response = http::Response::new(Body::default());
    let headers = response.headers_mut();
    headers.insert(
        Status::GRPC_STATUS,
        HeaderValue::from(tonic::Code::Unimplemented as i32),
    );
    headers.insert(CONTENT_TYPE, GRPC_CONTENT_TYPE);
    response
}
