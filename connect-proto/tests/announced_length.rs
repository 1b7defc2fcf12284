//! A request whose `Content-Length` can only exceed the message limit is refused from its head
//! (PROTOCOL-TRAPS 30), before any body arrives; lengths that may fit, and streams of many messages,
//! are left to the body.

mod common;

use common::*;
use connect_proto::{
    Code, Instant, MethodInfo, ServerCall, ServerConfig, ServerEvent, ServerTransmit,
};

const LIMIT: usize = 1000;

/// The call's outcome decided from the head alone: `Some(code)` when it finished at once.
fn decided_at_head(method: MethodInfo, content_type: &str, length: &str) -> Option<Code> {
    let config = ServerConfig {
        max_recv_message_size: LIMIT,
        ..ServerConfig::default()
    };
    let parts = common::raw::request(
        "POST",
        method.path,
        &[("content-type", content_type), ("content-length", length)],
    );
    let mut call = ServerCall::new(&config, Some(method), &parts, Instant::now());
    let finished = std::iter::from_fn(|| call.poll_event()).find_map(|e| match e {
        ServerEvent::Finished(result) => Some(result.err().map_or(Code::OK, |s| s.code())),
        _ => None,
    });
    if finished.is_some() {
        assert!(
            matches!(call.poll_transmit(), Some(ServerTransmit::Head(_))),
            "the refusal is answered at once"
        );
    }
    finished
}

#[test]
fn a_connect_unary_body_longer_than_the_message_limit_is_refused_at_the_head() {
    let refused = decided_at_head(UNARY, "application/proto", "5000000000");
    assert_eq!(refused, Some(Code::RESOURCE_EXHAUSTED));
    // The limit itself, and a little framing slack, still go to the body.
    assert_eq!(decided_at_head(UNARY, "application/proto", "1000"), None);
    assert_eq!(
        decided_at_head(UNARY, "application/proto", "nonsense"),
        None
    );
}

#[test]
fn one_message_in_an_envelope_may_have_its_prefix_and_no_more() {
    for content_type in ["application/grpc", "application/grpc-web+proto"] {
        for method in [UNARY, SERVER_STREAM] {
            assert_eq!(decided_at_head(method, content_type, "1005"), None);
            assert_eq!(
                decided_at_head(method, content_type, "100000"),
                Some(Code::RESOURCE_EXHAUSTED),
                "{content_type} {}",
                method.path
            );
        }
    }
    assert_eq!(
        decided_at_head(SERVER_STREAM, "application/connect+proto", "100000"),
        Some(Code::RESOURCE_EXHAUSTED)
    );
}

#[test]
fn streams_of_many_messages_are_not_bounded_by_one_message() {
    for method in [CLIENT_STREAM, BIDI_STREAM] {
        assert_eq!(decided_at_head(method, "application/grpc", "100000"), None);
        assert_eq!(
            decided_at_head(method, "application/connect+proto", "100000"),
            None
        );
    }
}
