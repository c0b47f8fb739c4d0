//! The messages of etcd's v3 gRPC API that Trellis sends and reads, written
//! by hand so that no build needs `protoc`. Field numbers and types are
//! those of etcd's `api/etcdserverpb/rpc.proto` and `api/mvccpb/kv.proto`
//! (package `etcdserverpb`, `mvccpb`); only the fields Trellis uses are
//! here: prost skips the others when decoding, and proto3 leaves unset
//! fields out when encoding, so a subset reads and writes the same bytes.
//! An enum's first variant must be its 0 value: prost takes it for the
//! default, which it leaves out when encoding.

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    /// The store revision when the request was applied.
    #[prost(int64, tag = "3")]
    pub revision: i64,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The value.
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    /// The lease the key hangs on (0: none).
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// `mvccpb.Event.EventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EventType {
    /// A key was written.
    Put = 0,
    /// A key was deleted (or its lease ran out).
    Delete = 1,
}

/// `mvccpb.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Put or delete.
    #[prost(enumeration = "EventType", tag = "1")]
    pub r#type: i32,
    /// The key after the event (for a delete: the key, revision only).
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

/// `etcdserverpb.RangeRequest`: a get of one key or of a range.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    /// The first key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The end of the range, exclusive; empty for `key` alone.
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    /// At most this many keys; 0 for no limit.
    #[prost(int64, tag = "3")]
    pub limit: i64,
    /// Read at this revision; 0 for the newest.
    #[prost(int64, tag = "4")]
    pub revision: i64,
}

/// `etcdserverpb.RangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    /// The revision read.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// The keys found.
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
    /// Whether keys beyond `limit` remain in the range.
    #[prost(bool, tag = "3")]
    pub more: bool,
}

/// `etcdserverpb.PutRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// The lease to attach the key to (0: none).
    #[prost(int64, tag = "3")]
    pub lease: i64,
}

/// `etcdserverpb.PutResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    /// The revision written.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `etcdserverpb.DeleteRangeRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRangeRequest {
    /// The first key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The end of the range, exclusive; empty for `key` alone.
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
}

/// `etcdserverpb.Compare.CompareResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareResult {
    /// The target equals the given value.
    Equal = 0,
}

/// `etcdserverpb.Compare.CompareTarget`.
///
/// Every value is listed: prost takes the first variant for proto3's
/// default (left out when encoding), which must be the one numbered 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareTarget {
    /// The key's version (number of writes since creation).
    Version = 0,
    /// The key's creation revision.
    Create = 1,
    /// The key's last modification revision.
    Mod = 2,
    /// The key's value.
    Value = 3,
    /// The key's lease.
    Lease = 4,
}

/// `etcdserverpb.Compare.target_union`: what the target is compared with.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TargetUnion {
    /// For [`CompareTarget::Create`].
    #[prost(int64, tag = "5")]
    CreateRevision(i64),
    /// For [`CompareTarget::Value`].
    #[prost(bytes = "vec", tag = "7")]
    Value(Vec<u8>),
}

/// `etcdserverpb.Compare`: one condition of a transaction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Compare {
    /// How target and value compare.
    #[prost(enumeration = "CompareResult", tag = "1")]
    pub result: i32,
    /// Which property of the key is compared.
    #[prost(enumeration = "CompareTarget", tag = "2")]
    pub target: i32,
    /// The key.
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    /// The value compared with.
    #[prost(oneof = "TargetUnion", tags = "5, 7")]
    pub target_union: Option<TargetUnion>,
}

/// `etcdserverpb.RequestOp.request`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Request {
    /// A put.
    #[prost(message, tag = "2")]
    RequestPut(PutRequest),
    /// A delete.
    #[prost(message, tag = "3")]
    RequestDeleteRange(DeleteRangeRequest),
}

/// `etcdserverpb.RequestOp`: one operation of a transaction branch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestOp {
    /// The operation.
    #[prost(oneof = "Request", tags = "2, 3")]
    pub request: Option<Request>,
}

/// `etcdserverpb.TxnRequest`: `if compare then success else failure`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnRequest {
    /// The conditions, all of which must hold.
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    /// Done when every condition holds.
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    /// Done otherwise.
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

/// `etcdserverpb.TxnResponse` (the branch's results are not read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnResponse {
    /// The revision after the transaction.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// True when the `success` branch ran.
    #[prost(bool, tag = "2")]
    pub succeeded: bool,
}

/// `etcdserverpb.WatchCreateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchCreateRequest {
    /// The first key watched.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The end of the range watched, exclusive; empty for `key` alone.
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    /// The first revision reported (0: from now on).
    #[prost(int64, tag = "3")]
    pub start_revision: i64,
}

/// `etcdserverpb.WatchRequest.request_union`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RequestUnion {
    /// Starts a watch.
    #[prost(message, tag = "1")]
    CreateRequest(WatchCreateRequest),
}

/// `etcdserverpb.WatchRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchRequest {
    /// What to do on the watch stream.
    #[prost(oneof = "RequestUnion", tags = "1")]
    pub request_union: Option<RequestUnion>,
}

/// `etcdserverpb.WatchResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchResponse {
    /// The revision of the last event in this response.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// True when etcd ended the watch (e.g. its start revision was
    /// compacted away).
    #[prost(bool, tag = "4")]
    pub canceled: bool,
    /// Why etcd ended the watch.
    #[prost(string, tag = "6")]
    pub cancel_reason: String,
    /// The changes, in revision order.
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
}

/// `etcdserverpb.LeaseGrantRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseGrantRequest {
    /// The time to live, in seconds.
    #[prost(int64, tag = "1")]
    pub ttl: i64,
    /// The lease id wanted (0: etcd picks one).
    #[prost(int64, tag = "2")]
    pub id: i64,
}

/// `etcdserverpb.LeaseGrantResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseGrantResponse {
    /// The lease granted.
    #[prost(int64, tag = "2")]
    pub id: i64,
    /// Its time to live, in seconds.
    #[prost(int64, tag = "3")]
    pub ttl: i64,
    /// Why no lease was granted.
    #[prost(string, tag = "4")]
    pub error: String,
}

/// `etcdserverpb.LeaseKeepAliveRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseKeepAliveRequest {
    /// The lease to renew.
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// `etcdserverpb.LeaseKeepAliveResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseKeepAliveResponse {
    /// The lease renewed.
    #[prost(int64, tag = "2")]
    pub id: i64,
    /// Its new time to live, in seconds; 0 when the lease is gone.
    #[prost(int64, tag = "3")]
    pub ttl: i64,
}

/// The end of the range of every key starting with `prefix` (etcd's
/// `clientv3.GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// incremented and what follows dropped; `\0` (every key) for a prefix of
/// only 0xff bytes.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests;
