//! Property: a state machine fed the same bytes in any chunking emits the same events.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use connect_proto::{CallOptions, Codec, Protocol};
use proptest::prelude::*;

fn run(
    protocol: Protocol,
    method: connect_proto::MethodInfo,
    compression: Option<&'static str>,
    fail: bool,
    chunking: Vec<usize>,
    payloads: &[Vec<u8>],
) -> (String, String) {
    let mut pair = Pair::new(
        &client_config(protocol, Codec::Proto, compression),
        server_config(),
        method,
        CallOptions::default(),
    );
    pair.request_chunks = chunking.clone();
    pair.response_chunks = chunking;
    pair.script.headers = metadata(&[("x-h", "1")]);
    pair.script.trailers = metadata(&[("x-t", "2")]);
    if fail {
        pair.script.outcome = Err(rich_error());
    }
    let sends = if method.stream_type.client_streams() {
        payloads.len()
    } else {
        1
    };
    for p in payloads.iter().take(sends) {
        pair.client.send_message(Bytes::copy_from_slice(p)).unwrap();
    }
    pair.client.close_send().unwrap();
    pair.run(Duration::from_secs(1));
    (
        format!("{:?}", pair.observed.client_events),
        format!("{:?}", pair.observed.server_events),
    )
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Connect),
        Just(Protocol::Grpc),
        Just(Protocol::GrpcWeb)
    ]
}

fn method() -> impl Strategy<Value = connect_proto::MethodInfo> {
    prop::sample::select(METHODS.to_vec())
}

fn compression() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), Just(Some("gzip")), Just(Some("zstd"))]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn same_events_in_any_chunking(
        protocol in protocol(),
        method in method(),
        compression in compression(),
        fail in any::<bool>(),
        chunking in prop::collection::vec(1usize..40, 1..8),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..4),
    ) {
        let whole = run(protocol, method, compression, fail, Vec::new(), &payloads);
        let chunked = run(protocol, method, compression, fail, chunking, &payloads);
        prop_assert_eq!(&whole, &chunked);
        // And the exchange itself worked.
        let finished_ok = whole.0.contains("Finished { result: Ok(())");
        prop_assert_eq!(finished_ok, !fail, "{}", whole.0);
    }
}

#[test]
fn byte_at_a_time_delivery() {
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for method in METHODS {
            let payloads = vec![b"hello".to_vec(), vec![0; 2000], Vec::new()];
            let whole = run(protocol, method, Some("gzip"), true, Vec::new(), &payloads);
            let bytewise = run(protocol, method, Some("gzip"), true, vec![1], &payloads);
            assert_eq!(whole, bytewise, "{protocol:?} {:?}", method.stream_type);
            assert!(
                whole
                    .0
                    .contains(&format!("{:?}", Err::<(), _>(rich_error()))),
                "{}",
                whole.0
            );
        }
    }
}
