//! The hand-written ADS service: framing, trailers, routing and refusals,
//! driven through `tower::Service` without a network.

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tower::ServiceExt;

use super::body::{frame, trailers, ResponseBody};
use super::{AdsService, DELTA_PATH, SOTW_PATH};
use crate::xds::test_support::base;
use crate::xds::{
    AdsServer, ProxyStatusTable, Refusal, SnapshotCache, StreamCut, StreamHooks, XdsMetrics,
    CLUSTER_TYPE,
};

/// Accepts every node but `refused`, and every stream but those whose
/// `authorization` metadata is `Bearer bad`.
struct Hooks;

impl StreamHooks for Hooks {
    fn stream_requested(&self, metadata: &MetadataMap) -> Result<(), Refusal> {
        match metadata.get("authorization") {
            Some(v) if v == "Bearer bad" => Err(Status::unauthenticated("bad token").into()),
            _ => Ok(()),
        }
    }
    fn stream_opened(&self, node: &Node, _: &MetadataMap) -> Result<StreamCut, Refusal> {
        match node.id.as_str() {
            "refused" => Err(Status::permission_denied("node refused: not allowed").into()),
            // Cut right after its first responses were queued.
            "cut" => Ok(StreamCut::when(async {
                tokio::task::yield_now().await;
                Refusal {
                    status: Status::unauthenticated("token revoked"),
                    reason: "revoked",
                }
            })),
            _ => Ok(StreamCut::never()),
        }
    }
    fn stream_closed(&self, _: &str) {}
}

fn server(cache: &SnapshotCache) -> AdsServer {
    let metrics = XdsMetrics::register(&mut Registry::default());
    AdsServer::new(
        cache.clone(),
        Arc::new(Hooks),
        ProxyStatusTable::new(),
        metrics,
    )
}

fn service(cache: &SnapshotCache) -> AdsService {
    server(cache).into_service()
}

fn response(version: &str) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.to_string(),
        type_url: CLUSTER_TYPE.to_string(),
        nonce: "1".to_string(),
        ..Default::default()
    }
}

/// A gRPC request on `path` whose body holds `messages`, then ends.
fn request(path: &str, messages: &[DiscoveryRequest]) -> http::Request<Body> {
    let mut body = Vec::new();
    for m in messages {
        body.extend_from_slice(&frame(m).unwrap());
    }
    http::Request::post(path)
        .header("content-type", "application/grpc")
        .body(Body::new(Full::new(Bytes::from(body))))
        .unwrap()
}

fn cds_request(node: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: node.to_string(),
            ..Default::default()
        }),
        type_url: CLUSTER_TYPE.to_string(),
        ..Default::default()
    }
}

fn header<'a>(map: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    map.get(name).map(|v| v.to_str().unwrap())
}

/// A trailers-only response: the status in the headers, an empty body.
fn assert_trailers_only(resp: &http::Response<Body>, code: Code) {
    assert_eq!(
        header(resp.headers(), "content-type"),
        Some("application/grpc")
    );
    let status = Status::from_header_map(resp.headers()).unwrap();
    assert_eq!(status.code(), code, "{status:?}");
    assert!(resp.body().is_end_stream());
}

/// The next frame of `body`, which must be data.
async fn next_data<B>(body: &mut B) -> Bytes
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    body.frame().await.unwrap().unwrap().into_data().unwrap()
}

/// The next frame of `body`, which must be the trailers.
async fn next_trailers<B>(body: &mut B) -> http::HeaderMap
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    body.frame()
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap()
}

/// `req` through a service reading `cache`.
async fn call(cache: &SnapshotCache, req: http::Request<Body>) -> http::Response<Body> {
    service(cache).oneshot(req).await.unwrap()
}

#[test]
fn frame_is_length_prefixed_and_exactly_sized() {
    let msg = response("v1");
    let bytes = frame(&msg).unwrap();
    assert_eq!(bytes.len(), 5 + msg.encoded_len());
    assert_eq!(bytes[0], 0, "uncompressed");
    let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
    assert_eq!(len, msg.encoded_len());
    assert_eq!(DiscoveryResponse::decode(&bytes[5..]).unwrap(), msg);
}

#[test]
fn trailers_carry_code_and_percent_encoded_message() {
    let ok = trailers(&Status::ok(""));
    assert_eq!(header(&ok, "grpc-status"), Some("0"));
    assert_eq!(ok.get("grpc-message"), None);
    let err = trailers(&Status::invalid_argument("bad nonce 100%"));
    assert_eq!(header(&err, "grpc-status"), Some("3"));
    assert_eq!(header(&err, "grpc-message"), Some("bad%20nonce%20100%25"));
}

#[tokio::test]
async fn body_yields_one_frame_per_response_then_ok_trailers() {
    let (tx, rx) = mpsc::channel(4);
    tx.send(Box::new(Ok(response("v1")))).await.unwrap();
    tx.send(Box::new(Ok(response("v2")))).await.unwrap();
    drop(tx);
    let mut body = ResponseBody::new(rx, None);
    for version in ["v1", "v2"] {
        let data = next_data(&mut body).await;
        assert_eq!(data, frame(&response(version)).unwrap());
    }
    let end = next_trailers(&mut body).await;
    assert_eq!(header(&end, "grpc-status"), Some("0"));
    assert!(body.is_end_stream());
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn body_ends_with_the_error_trailers_and_closes_the_queue() {
    let (tx, rx) = mpsc::channel(4);
    tx.send(Box::new(Err(Status::invalid_argument("unknown nonce"))))
        .await
        .unwrap();
    let mut body = ResponseBody::<DiscoveryResponse>::new(rx, None);
    let end = next_trailers(&mut body).await;
    let status = Status::from_header_map(&end).unwrap();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "unknown nonce");
    assert!(body.frame().await.is_none());
    assert!(tx.is_closed(), "the stream task learns the stream ended");
}

#[tokio::test]
async fn unknown_method_is_unimplemented() {
    let path = "/envoy.service.discovery.v3.AggregatedDiscoveryService/Nope";
    let resp = call(&SnapshotCache::new(), request(path, &[])).await;
    assert_trailers_only(&resp, Code::Unimplemented);
}

#[tokio::test]
async fn compressed_requests_are_refused() {
    let mut req = request(SOTW_PATH, &[cds_request("a")]);
    req.headers_mut()
        .insert("grpc-encoding", "gzip".parse().unwrap());
    let resp = call(&SnapshotCache::new(), req).await;
    assert_trailers_only(&resp, Code::Unimplemented);
    assert_eq!(
        header(resp.headers(), "grpc-accept-encoding"),
        Some("identity")
    );
}

#[tokio::test]
async fn refusal_is_trailers_only_with_the_hooks_status() {
    let resp = call(
        &SnapshotCache::new(),
        request(SOTW_PATH, &[cds_request("refused")]),
    )
    .await;
    assert_trailers_only(&resp, Code::PermissionDenied);
    let status = Status::from_header_map(resp.headers()).unwrap();
    assert_eq!(status.message(), "node refused: not allowed");
    let resp = call(&SnapshotCache::new(), request(DELTA_PATH, &[])).await;
    assert_trailers_only(&resp, Code::InvalidArgument);
}

#[tokio::test]
async fn accepted_stream_streams_responses_then_ends_ok() {
    let cache = SnapshotCache::new();
    cache.set("a", base());
    let resp = call(&cache, request(SOTW_PATH, &[cds_request("a")])).await;
    assert_eq!(
        header(resp.headers(), "content-type"),
        Some("application/grpc")
    );
    assert_eq!(resp.headers().get("grpc-status"), None, "not trailers-only");
    let mut body = resp.into_body();
    let data = next_data(&mut body).await;
    let cds = DiscoveryResponse::decode(&data[5..]).unwrap();
    assert_eq!(cds.type_url, *CLUSTER_TYPE);
    assert_eq!(cds.resources.len(), 2);
    // The request body ended, so the stream task ends, and the body with it.
    let end = next_trailers(&mut body).await;
    assert_eq!(header(&end, "grpc-status"), Some("0"));
}

#[tokio::test]
async fn a_cut_stream_ends_with_the_cut_status_while_the_client_still_sends() {
    let cache = SnapshotCache::new();
    cache.set("cut", base());
    // A request body that stays open: only the cut can end this stream.
    let (frames, rx) = mpsc::channel::<Result<http_body::Frame<Bytes>, Status>>(1);
    let first = frame(&cds_request("cut")).unwrap();
    frames
        .send(Ok(http_body::Frame::data(first)))
        .await
        .unwrap();
    let body = Body::new(http_body_util::StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let req = http::Request::post(SOTW_PATH)
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap();
    let mut body = call(&cache, req).await.into_body();
    let data = next_data(&mut body).await;
    assert_eq!(
        DiscoveryResponse::decode(&data[5..]).unwrap().type_url,
        *CLUSTER_TYPE
    );
    let end = next_trailers(&mut body).await;
    let status = Status::from_header_map(&end).unwrap();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "token revoked");
    drop(frames);
}

/// A length-prefixed message whose bytes are no protobuf (a field with
/// wire type 7, which does not exist).
fn garbage(path: &str) -> http::Request<Body> {
    let body = Bytes::from_static(&[0, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
    http::Request::post(path)
        .header("content-type", "application/grpc")
        .body(Body::new(Full::new(body)))
        .unwrap()
}

#[tokio::test]
async fn an_unauthenticated_stream_is_refused_before_its_body_is_decoded() {
    let mut req = garbage(SOTW_PATH);
    req.headers_mut()
        .insert("authorization", "Bearer bad".parse().unwrap());
    let resp = call(&SnapshotCache::new(), req).await;
    // Decoding first would have answered INVALID_ARGUMENT.
    assert_trailers_only(&resp, Code::Unauthenticated);
}

#[tokio::test]
async fn an_undecodable_request_is_invalid_argument() {
    for path in [SOTW_PATH, DELTA_PATH] {
        let resp = call(&SnapshotCache::new(), garbage(path)).await;
        assert_trailers_only(&resp, Code::InvalidArgument);
    }
    // After an accepted first request, too: the stream ends with it.
    let cache = SnapshotCache::new();
    cache.set("a", base());
    let mut body = frame(&cds_request("a")).unwrap().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
    let req = http::Request::post(SOTW_PATH)
        .header("content-type", "application/grpc")
        .body(Body::new(Full::new(Bytes::from(body))))
        .unwrap();
    let mut resp = call(&cache, req).await.into_body();
    next_data(&mut resp).await;
    let end = next_trailers(&mut resp).await;
    let status = Status::from_header_map(&end).unwrap();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

/// A CDS request for node `a` from `peer`, as tonic's server marks it.
fn from_peer(peer: [u8; 4]) -> http::Request<Body> {
    let mut req = request(SOTW_PATH, &[cds_request("a")]);
    req.extensions_mut()
        .insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some((peer, 40000).into()),
        });
    req
}

#[tokio::test]
async fn a_peer_over_its_stream_limit_is_refused_until_a_stream_ends() {
    let cache = SnapshotCache::new();
    cache.set("a", base());
    let limit = crate::xds::PeerLimit::new(2);
    let svc = server(&cache)
        .with_streams_per_peer(limit.clone())
        .into_service();
    let call = |req| svc.clone().oneshot(req);
    // A stream holds its place while its response body lives.
    let first = call(from_peer([10, 0, 0, 1])).await.unwrap();
    let _second = call(from_peer([10, 0, 0, 1])).await.unwrap();
    assert_eq!(first.headers().get("grpc-status"), None, "accepted");
    let third = call(from_peer([10, 0, 0, 1])).await.unwrap();
    assert_trailers_only(&third, Code::ResourceExhausted);
    let other = call(from_peer([10, 0, 0, 2])).await.unwrap();
    assert_eq!(other.headers().get("grpc-status"), None, "another peer");
    drop(first);
    assert_eq!(limit.open([10, 0, 0, 1].into()), 1);
    let again = call(from_peer([10, 0, 0, 1])).await.unwrap();
    assert_eq!(
        again.headers().get("grpc-status"),
        None,
        "a place was freed"
    );
}
