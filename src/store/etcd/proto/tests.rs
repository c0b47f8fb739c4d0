//! Encodings checked against bytes worked out by hand from `rpc.proto` and
//! `kv.proto` (tag byte = field number << 3 | wire type; 0 varint, 2
//! length-delimited), so a wrong field number or type fails here, not
//! against etcd.

use prost::Message;

use super::*;

fn encoded(message: &impl Message) -> Vec<u8> {
    message.encode_to_vec()
}

#[test]
fn put_request_bytes() {
    let put = PutRequest {
        key: b"a".to_vec(),
        value: b"b".to_vec(),
        lease: 300,
    };
    // key=1 (0x0a), value=2 (0x12), lease=3 varint (0x18; 300 = ac 02).
    let bytes = [0x0a, 1, b'a', 0x12, 1, b'b', 0x18, 0xac, 0x02];
    assert_eq!(encoded(&put), bytes);
    assert_eq!(PutRequest::decode(&bytes[..]).unwrap(), put);
}

#[test]
fn range_request_bytes() {
    let mut range = RangeRequest {
        key: b"/p/".to_vec(),
        range_end: prefix_end(b"/p/"),
        limit: 0,
        revision: 0,
    };
    let bytes = [0x0a, 3, b'/', b'p', b'/', 0x12, 3, b'/', b'p', b'0'];
    assert_eq!(encoded(&range), bytes);
    // A page: limit (field 3) and revision (field 4), varints.
    (range.limit, range.revision) = (1000, 7);
    let paged = [&bytes[..], &[0x18, 0xe8, 0x07, 0x20, 7]].concat();
    assert_eq!(encoded(&range), paged);
}

#[test]
fn txn_compare_value_then_delete_bytes() {
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: b"k".to_vec(),
            target_union: Some(TargetUnion::Value(b"v".to_vec())),
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: b"k".to_vec(),
                range_end: Vec::new(),
            })),
        }],
        failure: Vec::new(),
    };
    // Compare: result EQUAL (0) left out, target=2 VALUE (3), key=3,
    // value=7 (0x3a). RequestOp: request_delete_range=3 (0x1a).
    let compare = [0x10, 3, 0x1a, 1, b'k', 0x3a, 1, b'v'];
    let op = [0x1a, 3, 0x0a, 1, b'k'];
    let mut bytes = vec![0x0a, compare.len() as u8];
    bytes.extend(compare);
    bytes.extend([0x12, op.len() as u8]);
    bytes.extend(op);
    assert_eq!(encoded(&txn), bytes);
    assert_eq!(TxnRequest::decode(&bytes[..]).unwrap(), txn);
}

#[test]
fn txn_put_if_absent_keeps_the_zero_create_revision() {
    let compare = Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: b"k".to_vec(),
        target_union: Some(TargetUnion::CreateRevision(0)),
    };
    // A oneof member is written even when 0: create_revision=5 (0x28).
    assert_eq!(encoded(&compare), [0x10, 1, 0x1a, 1, b'k', 0x28, 0]);
    let op = RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 0,
        })),
    };
    // request_put=2 (0x12).
    assert_eq!(encoded(&op), [0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'v']);
}

#[test]
fn watch_create_request_bytes() {
    let watch = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"/p/".to_vec(),
            range_end: b"/p0".to_vec(),
            start_revision: 7,
        })),
    };
    let create = [
        0x0a, 3, b'/', b'p', b'/', 0x12, 3, b'/', b'p', b'0', 0x18, 7,
    ];
    let mut bytes = vec![0x0a, create.len() as u8];
    bytes.extend(create);
    assert_eq!(encoded(&watch), bytes);
}

#[test]
fn lease_requests_bytes() {
    assert_eq!(encoded(&LeaseGrantRequest { ttl: 10, id: 0 }), [0x08, 10]);
    assert_eq!(encoded(&LeaseKeepAliveRequest { id: 5 }), [0x08, 5]);
}

#[test]
fn watch_response_decodes_events_and_skips_unknown_fields() {
    // header{revision=9}, watch_id=2 (1), created=3 (true), then
    // events=11 (0x5a): {type=1 DELETE, kv=2 {key "k", mod_revision=3 4}}.
    let bytes = [
        0x0a, 2, 0x18, 9, 0x10, 1, 0x18, 1, 0x5a, 9, 0x08, 1, 0x12, 5, 0x0a, 1, b'k', 0x18, 4,
    ];
    let response = WatchResponse::decode(&bytes[..]).unwrap();
    assert_eq!(response.header.unwrap().revision, 9);
    assert!(!response.canceled);
    let event = &response.events[0];
    assert_eq!(EventType::try_from(event.r#type), Ok(EventType::Delete));
    assert_eq!(event.kv.as_ref().unwrap().key, b"k");

    // canceled=4, cancel_reason=6 (0x32).
    let cancelled = WatchResponse::decode(&[0x20, 1, 0x32, 2, b'n', b'o'][..]).unwrap();
    assert!(cancelled.canceled);
    assert_eq!(cancelled.cancel_reason, "no");
}

#[test]
fn range_response_decodes_value_and_lease() {
    // header{revision=5}, kvs=2 {key=1 "a", value=5 (0x2a) "v",
    // lease=6 (0x30) 0x1234 = b4 24}, count=4 (1).
    let bytes = [
        0x0a, 2, 0x18, 5, 0x12, 9, 0x0a, 1, b'a', 0x2a, 1, b'v', 0x30, 0xb4, 0x24, 0x20, 1,
    ];
    let response = RangeResponse::decode(&bytes[..]).unwrap();
    assert_eq!(response.header.unwrap().revision, 5);
    let kv = &response.kvs[0];
    assert_eq!(
        (&kv.key[..], &kv.value[..], kv.lease),
        (&b"a"[..], &b"v"[..], 0x1234)
    );
}

#[test]
fn lease_responses_decode() {
    // header, ID=2, TTL=3.
    let keep = LeaseKeepAliveResponse::decode(&[0x0a, 2, 0x18, 5, 0x10, 7, 0x18, 10][..]).unwrap();
    assert_eq!((keep.id, keep.ttl), (7, 10));
    // ID=2, TTL=3, error=4 (0x22).
    let grant = LeaseGrantResponse::decode(&[0x10, 7, 0x18, 10, 0x22, 1, b'x'][..]).unwrap();
    assert_eq!((grant.id, grant.ttl, grant.error.as_str()), (7, 10, "x"));
    // succeeded=2.
    let txn = TxnResponse::decode(&[0x0a, 2, 0x18, 5, 0x10, 1][..]).unwrap();
    assert!(txn.succeeded);
}

#[test]
fn prefix_ends() {
    assert_eq!(prefix_end(b"/t/v1/"), b"/t/v10");
    assert_eq!(prefix_end(b"a\xff"), b"b");
    assert_eq!(prefix_end(b"\xff"), [0]);
}
