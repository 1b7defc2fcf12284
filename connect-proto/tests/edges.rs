//! Branches of the call machines that the trap tests do not reach: limits, truncation, resets,
//! gRPC-Web trailer frames, Connect GET errors, response-side checks.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::raw::*;
use common::*;
use connect_proto::{
    CallOptions, ClientCall, ClientConfig, ClientTransmit, Code, Codec, Instant, Protocol,
    ServerCall, ServerConfig, ServerEvent, ServerTransmit, Status,
};
use http::{HeaderMap, StatusCode};

fn gzip_bomb(megabytes: usize) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..megabytes {
        e.write_all(&zeros).unwrap();
    }
    e.finish().unwrap()
}

#[test]
fn compress_min_bytes_leaves_small_messages_raw() {
    let mut config = client_config(Protocol::Grpc, Codec::Proto, Some("gzip"));
    config.compress_min_bytes = 100;
    let base: http::Uri = "http://h".parse().unwrap();
    let mut call = ClientCall::new(
        &config,
        CLIENT_STREAM,
        &base,
        CallOptions::default(),
        Instant::now(),
    );
    call.send_message(Bytes::from(vec![b'a'; 10])).unwrap();
    call.send_message(Bytes::from(vec![b'a'; 1000])).unwrap();
    // Small envelopes may share a chunk: walk the prefixes of the whole body.
    let envelope_flags = |body: &[u8]| {
        let mut flags = Vec::new();
        let mut rest = body;
        while rest.len() >= 5 {
            flags.push(rest[0]);
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            rest = &rest[5 + len..];
        }
        assert!(rest.is_empty());
        flags
    };
    let body: Vec<u8> = std::iter::from_fn(|| call.poll_transmit())
        .filter_map(|t| match t {
            ClientTransmit::Data(d) => Some(d.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(envelope_flags(&body), [0, 1]);

    // Server side: the same threshold for responses.
    let server = ServerConfig {
        compress_min_bytes: 100,
        ..ServerConfig::default()
    };
    let parts = request(
        "POST",
        SERVER_STREAM.path,
        &[
            ("content-type", "application/grpc"),
            ("grpc-accept-encoding", "gzip"),
        ],
    );
    let mut call = ServerCall::new(&server, Some(SERVER_STREAM), &parts, Instant::now());
    call.send_message(Bytes::from(vec![b'a'; 10])).unwrap();
    call.send_message(Bytes::from(vec![b'a'; 1000])).unwrap();
    let mut body = Vec::new();
    while let Some(t) = call.poll_transmit() {
        match t {
            ServerTransmit::Head(h) => assert_eq!(h.headers()["grpc-encoding"], "gzip"),
            ServerTransmit::Data(d) => body.extend_from_slice(&d),
            _ => {}
        }
    }
    assert_eq!(envelope_flags(&body), [0, 1]);
}

#[test]
fn send_limits_fail_the_call_with_resource_exhausted() {
    let server = ServerConfig {
        max_send_message_size: 8,
        ..ServerConfig::default()
    };
    let parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    let mut call = ServerCall::new(&server, Some(UNARY), &parts, Instant::now());
    call.send_message(Bytes::from_static(b"way too large"))
        .unwrap();
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Finished(Err(s))) if s.code() == Code::RESOURCE_EXHAUSTED)
    );
    assert!(call.is_finished());

    let mut config = client_config(Protocol::Connect, Codec::Proto, None);
    config.max_send_message_size = 8;
    let base: http::Uri = "http://h".parse().unwrap();
    let mut call = ClientCall::new(
        &config,
        UNARY,
        &base,
        CallOptions::default(),
        Instant::now(),
    );
    call.send_message(Bytes::from_static(b"way too large"))
        .unwrap();
    assert!(call.poll_transmit().is_none(), "nothing goes on the wire");
    assert_eq!(
        outcome(&mut call).1.unwrap_err().code(),
        Code::RESOURCE_EXHAUSTED
    );
}

/// A message written in place obeys the rules of `send_message`: the send limit, the one message of a
/// unary call, nothing once the call is over; a writer dropped unsent leaves nothing on the wire.
#[test]
fn messages_written_in_place_follow_the_send_rules() {
    let server = ServerConfig {
        max_send_message_size: 8,
        ..ServerConfig::default()
    };
    let grpc = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    let body = |call: &mut ServerCall| {
        let mut body = BytesMut::new();
        while let Some(t) = call.poll_transmit() {
            if let ServerTransmit::Data(d) = t {
                body.extend_from_slice(&d);
            }
        }
        body
    };

    // Dropped unsent: nothing; then one message, and a second is a usage error.
    let mut call = ServerCall::new(&server, Some(UNARY), &grpc, Instant::now());
    let mut writer = call.message_writer();
    writer.buffer().extend_from_slice(b"dropped");
    assert_eq!(writer.len(), 7);
    drop(writer);
    assert!(
        call.poll_transmit().is_none(),
        "a dropped writer sent something"
    );
    let mut writer = call.message_writer();
    writer.buffer().extend_from_slice(b"ok");
    writer.send().unwrap();
    let mut writer = call.message_writer();
    writer.buffer().extend_from_slice(b"again");
    assert!(writer.send().is_err());
    assert_eq!(&body(&mut call)[..], b"\0\0\0\0\x02ok");

    // Over the limit: resource_exhausted, nothing of the message on the wire.
    let mut call = ServerCall::new(&server, Some(SERVER_STREAM), &grpc, Instant::now());
    let mut writer = call.message_writer();
    writer.buffer().extend_from_slice(b"way too large");
    writer.send().unwrap();
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Finished(Err(s))) if s.code() == Code::RESOURCE_EXHAUSTED)
    );
    assert!(!body(&mut call).windows(5).any(|w| w == b"large"));

    // Once the call is over, a written message is dropped.
    let mut writer = call.message_writer();
    writer.buffer().extend_from_slice(b"late");
    writer.send().unwrap();
    assert!(call.poll_transmit().is_none());

    // Taken out, the message is not sent.
    let connect = request("POST", UNARY.path, &[("content-type", "application/proto")]);
    let mut call = ServerCall::new(&server, Some(UNARY), &connect, Instant::now());
    let mut writer = call.message_writer();
    writer.buffer().extend_from_slice(b"taken");
    assert_eq!(&writer.take()[..], b"taken");
    assert!(call.poll_transmit().is_none());
}

#[test]
fn client_refuses_decompression_bombs_and_oversized_messages() {
    let bomb = gzip_bomb(16);
    for protocol in [Protocol::Grpc, Protocol::GrpcWeb, Protocol::Connect] {
        let mut call = client_with(protocol, SERVER_STREAM);
        let (ct, enc) = match protocol {
            Protocol::Grpc => ("application/grpc", "grpc-encoding"),
            Protocol::GrpcWeb => ("application/grpc-web+proto", "grpc-encoding"),
            Protocol::Connect => ("application/connect+proto", "connect-content-encoding"),
        };
        call.recv_head(response(200, &[("content-type", ct), (enc, "gzip")]));
        call.recv_data(envelope(1, &bomb));
        assert_eq!(
            outcome(&mut call).1.unwrap_err().code(),
            Code::RESOURCE_EXHAUSTED,
            "{protocol:?}"
        );
    }
    let mut call = client_with(Protocol::Connect, UNARY);
    call.recv_head(response(
        200,
        &[
            ("content-type", "application/proto"),
            ("content-encoding", "gzip"),
        ],
    ));
    call.recv_data(Bytes::from(bomb));
    call.recv_end(None);
    assert_eq!(
        outcome(&mut call).1.unwrap_err().code(),
        Code::RESOURCE_EXHAUSTED
    );

    let mut config = ClientConfig::new(Protocol::Grpc, Codec::Proto);
    config.max_recv_message_size = 4;
    let base: http::Uri = "http://h".parse().unwrap();
    let mut call = ClientCall::new(
        &config,
        UNARY,
        &base,
        CallOptions::default(),
        Instant::now(),
    );
    call.send_message(Bytes::from_static(b"x")).unwrap();
    call.recv_head(response(200, &[("content-type", "application/grpc")]));
    call.recv_data(envelope(0, b"12345"));
    assert_eq!(
        outcome(&mut call).1.unwrap_err().code(),
        Code::RESOURCE_EXHAUSTED
    );
}

#[test]
fn bodies_ending_inside_an_envelope() {
    let parts = request(
        "POST",
        CLIENT_STREAM.path,
        &[("content-type", "application/grpc")],
    );
    let mut truncated = envelope(0, b"hello").to_vec();
    truncated.truncate(7);
    let run = serve(parts, &[Bytes::from(truncated.clone())], Some(Ok(())));
    assert_eq!(
        aborted(&run).map(Status::code),
        Some(Code::INVALID_ARGUMENT)
    );

    let mut call = client_with(Protocol::Grpc, SERVER_STREAM);
    call.recv_head(response(200, &[("content-type", "application/grpc")]));
    call.recv_data(Bytes::from(truncated));
    call.recv_end(Some(HeaderMap::from_iter([(
        http::HeaderName::from_static("grpc-status"),
        "0".parse().unwrap(),
    )])));
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::INTERNAL);
}

#[test]
fn lost_connection_and_reset_codes() {
    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_reset(connect_proto::Reset::ConnectionLost);
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::UNAVAILABLE);
    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_reset(connect_proto::Reset::H2(0xc));
    assert_eq!(
        outcome(&mut call).1.unwrap_err().code(),
        Code::PERMISSION_DENIED
    );
}

#[test]
fn grpc_web_trailer_frame_variants() {
    // Compressed trailers frame (0x81).
    let mut call = client_with(Protocol::GrpcWeb, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("grpc-encoding", "gzip"),
        ],
    ));
    call.recv_data(envelope(
        0x81,
        &gzip(b"grpc-status: 3\r\ngrpc-message: bad\r\nx-t: 1\r\n"),
    ));
    call.recv_end(None);
    let (_, result, trailers) = outcome(&mut call);
    assert_eq!(
        result.unwrap_err(),
        Status::new(Code::INVALID_ARGUMENT, "bad")
    );
    assert_eq!(trailers["x-t"], "1");
    // Data after the trailers frame.
    let mut call = client_with(Protocol::GrpcWeb, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[("content-type", "application/grpc-web+proto")],
    ));
    call.recv_data(envelope(0x80, b"grpc-status: 0\r\n"));
    call.recv_data(envelope(0, b"late"));
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::INTERNAL);
    // A trailers frame without a status.
    let mut call = client_with(Protocol::GrpcWeb, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[("content-type", "application/grpc-web+proto")],
    ));
    call.recv_data(envelope(0x80, b"x-t: 1\r\n"));
    call.recv_end(None);
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::UNKNOWN);
    // Neither trailers nor a status at all.
    let mut call = client_with(Protocol::GrpcWeb, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[("content-type", "application/grpc-web+proto")],
    ));
    call.recv_data(envelope(0, b"m"));
    call.recv_end(None);
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::INTERNAL);
    // Text responses are refused with a clear message.
    let mut call = client_with(Protocol::GrpcWeb, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[("content-type", "application/grpc-web-text+proto")],
    ));
    let err = outcome(&mut call).1.unwrap_err();
    assert_eq!(err.code(), Code::INTERNAL);
    assert!(err.message().contains("grpc-web-text"));
    // Unknown method on the server.
    let run = serve(
        request(
            "POST",
            "/no.Such/M",
            &[("content-type", "application/grpc-web+proto")],
        ),
        &[],
        None,
    );
    assert_eq!(grpc_status(&run).as_deref(), Some("12"));
    assert_eq!(run.head.status, StatusCode::OK);
}

#[test]
fn grpc_response_head_advertises_encodings_and_trailers_only_needs_no_content_type() {
    let run = serve(
        request("POST", UNARY.path, &[("content-type", "application/grpc")]),
        &[envelope(0, b"x")],
        Some(Ok(())),
    );
    let accept = run.head.headers["grpc-accept-encoding"].to_str().unwrap();
    assert!(
        accept.contains("gzip") && accept.contains("zstd"),
        "{accept}"
    );

    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_head(response(200, &[("grpc-status", "5")]));
    call.recv_end(None);
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::NOT_FOUND);
}

#[test]
fn connect_response_side_checks() {
    // Unary success with another codec's content type.
    let mut call = client_with(Protocol::Connect, UNARY);
    call.recv_head(response(200, &[("content-type", "application/json")]));
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::INTERNAL);
    // A compressed unary error body.
    let mut call = client_with(Protocol::Connect, UNARY);
    call.recv_head(response(
        404,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
    ));
    call.recv_data(Bytes::from(gzip(
        br#"{"code":"not_found","message":"gone"}"#,
    )));
    call.recv_end(None);
    assert_eq!(
        outcome(&mut call).1.unwrap_err(),
        Status::new(Code::NOT_FOUND, "gone")
    );
    // A non-200 streaming response.
    let mut call = client_with(Protocol::Connect, SERVER_STREAM);
    call.recv_head(response(
        503,
        &[("content-type", "application/connect+proto")],
    ));
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::UNAVAILABLE);
    // 431 is `unknown` in every protocol (the conformance suite; grpc-java alone says `internal`).
    let mut call = client_with(Protocol::Connect, UNARY);
    call.recv_head(response(431, &[]));
    call.recv_end(None);
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::UNKNOWN);
    for protocol in [Protocol::Grpc, Protocol::GrpcWeb] {
        let mut call = client_with(protocol, UNARY);
        call.recv_head(response(431, &[]));
        assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::UNKNOWN);
    }
}

#[test]
fn connect_streaming_rejection_at_the_head_is_200_with_end_stream() {
    let parts = request(
        "POST",
        BIDI_STREAM.path,
        &[
            ("content-type", "application/connect+proto"),
            ("connect-content-encoding", "lz4"),
        ],
    );
    let run = serve(parts, &[], None);
    assert_eq!(run.head.status, StatusCode::OK);
    assert_eq!(run.body[0], 2);
    let end: serde_json::Value = serde_json::from_slice(&run.body[5..]).unwrap();
    assert_eq!(end["error"]["code"], "unimplemented");
}

#[test]
fn connect_request_side_checks() {
    // 405 names what is allowed.
    let run = serve(
        request("PUT", UNARY.path, &[("content-type", "application/proto")]),
        &[],
        None,
    );
    assert_eq!(run.head.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(run.head.headers["allow"].to_str().unwrap().contains("POST"));
    // A client must not send EndStream.
    let parts = request(
        "POST",
        CLIENT_STREAM.path,
        &[("content-type", "application/connect+proto")],
    );
    let run = serve(parts, &[envelope(2, b"{}")], Some(Ok(())));
    assert_eq!(aborted(&run).map(Status::code), Some(Code::INTERNAL));
    // Strict protocol version on streaming requests too.
    let strict = ServerConfig {
        require_connect_protocol_version: true,
        ..server_config()
    };
    let parts = request(
        "POST",
        CLIENT_STREAM.path,
        &[("content-type", "application/connect+proto")],
    );
    let mut call = ServerCall::new(&strict, Some(CLIENT_STREAM), &parts, Instant::now());
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Finished(Err(s))) if s.code() == Code::INVALID_ARGUMENT)
    );
}

#[test]
fn connect_get_error_branches() {
    let cases: [(&str, &str, u16); 5] = [
        (
            "/test.v1.Echo/Unary?connect=v1&encoding=yaml&message=x",
            "unknown codec",
            415,
        ),
        (
            "/test.v1.Echo/Unary?connect=v1&encoding=proto&message=eA&base64=1&compression=lz4",
            "unsupported compression",
            501,
        ),
        (
            "/test.v1.Echo/Unary?connect=v1&encoding=proto",
            "missing message",
            400,
        ),
        (
            "/no.Such/Method?connect=v1&encoding=proto&message=x",
            "unknown path",
            404,
        ),
        (
            "/test.v1.Echo/Unary?connect=v1&encoding=proto&message=ZZZZ&base64=1&compression=gzip",
            "corrupt gzip: the client's fault (PROTOCOL-TRAPS 29)",
            400,
        ),
    ];
    for (uri, what, status) in cases {
        let run = serve(request("GET", uri, &[]), &[], None);
        assert_eq!(run.head.status.as_u16(), status, "{what}");
        assert!(aborted(&run).is_some(), "{what}");
    }
    let limited = ServerConfig {
        max_recv_message_size: 2,
        ..server_config()
    };
    let parts = request(
        "GET",
        "/test.v1.Echo/Unary?connect=v1&encoding=proto&message=toolong",
        &[],
    );
    let mut call = ServerCall::new(&limited, Some(UNARY), &parts, Instant::now());
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Finished(Err(s))) if s.code() == Code::RESOURCE_EXHAUSTED)
    );
}

#[test]
fn connect_get_answers_in_the_request_compression_without_accept_list() {
    let message = base64_url(&gzip(b"payload"));
    let uri = format!(
        "/test.v1.Echo/Unary?connect=v1&encoding=proto&base64=1&compression=gzip&message={message}"
    );
    let run = serve(request("GET", &uri, &[]), &[], Some(Ok(())));
    assert_eq!(
        run.events[0],
        ServerEvent::Message(Bytes::from_static(b"payload"))
    );
    assert_eq!(run.head.headers["content-encoding"], "gzip");
}

fn base64_url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[test]
fn expired_and_unrepresentable_timeouts() {
    let now = Instant::now();
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/proto"),
            ("connect-timeout-ms", "0"),
        ],
    );
    let mut call = ServerCall::new(&server_config(), Some(UNARY), &parts, now);
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Finished(Err(s))) if s.code() == Code::DEADLINE_EXCEEDED)
    );
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/grpc"),
            ("grpc-timeout", "99999999H"),
        ],
    );
    let call = ServerCall::new(&server_config(), Some(UNARY), &parts, now);
    assert!(!call.is_finished());
    // A spurious timeout on the server is a no-op.
    let parts = request(
        "POST",
        UNARY.path,
        &[("content-type", "application/grpc"), ("grpc-timeout", "1S")],
    );
    let mut call = ServerCall::new(&server_config(), Some(UNARY), &parts, now);
    call.handle_timeout(now + Duration::from_millis(999));
    assert!(call.poll_event().is_none() && call.poll_transmit().is_none());
    call.handle_timeout(now + Duration::from_secs(1));
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Finished(Err(s))) if s.code() == Code::DEADLINE_EXCEEDED)
    );
}

#[test]
fn finishing_a_unary_call_without_a_message_is_a_usage_error() {
    let parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    let mut call = ServerCall::new(&server_config(), Some(UNARY), &parts, Instant::now());
    assert!(call.finish(Ok(()), HeaderMap::new()).is_err());
    assert!(
        matches!(call.poll_event(), Some(ServerEvent::Finished(Err(s))) if s.code() == Code::INTERNAL)
    );
    // Sending after finish is ignored, not a panic.
    assert!(call.send_message(Bytes::new()).is_ok());
}

#[test]
fn trap25_grpc_over_http1_is_refused_in_the_head() {
    let mut parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    parts.version = http::Version::HTTP_11;
    let run = serve(parts, &[envelope(0, b"x")], Some(Ok(())));
    assert_eq!(run.head.status, StatusCode::OK);
    assert_eq!(run.head.headers["grpc-status"], "12");
    assert!(run.head.headers["grpc-message"]
        .to_str()
        .unwrap()
        .contains("HTTP/2"));
    // The client asks for HTTP/2 for gRPC.
    let config = client_config(Protocol::Grpc, Codec::Proto, None);
    let base: http::Uri = "http://h".parse().unwrap();
    let mut call = ClientCall::new(
        &config,
        UNARY,
        &base,
        CallOptions::default(),
        Instant::now(),
    );
    let Some(ClientTransmit::Head(head)) = call.poll_transmit() else {
        panic!()
    };
    assert_eq!(head.version(), http::Version::HTTP_2);
}

/// Requests carry a structured user agent (H2 §User Agents), and gRPC-Web also `x-user-agent`
/// (WEB §User Agent); one the application set is kept.
#[test]
fn requests_carry_a_user_agent_unless_the_application_set_one() {
    let base: http::Uri = "http://127.0.0.1:1".parse().unwrap();
    let request_head = |protocol: Protocol, options: CallOptions| {
        let config = client_config(protocol, Codec::Proto, None);
        let mut call = ClientCall::new(&config, UNARY, &base, options, Instant::now());
        call.send_message(Bytes::from_static(b"req")).unwrap();
        match call.poll_transmit() {
            Some(ClientTransmit::Head(head)) => head,
            other => panic!("{other:?}"),
        }
    };
    for (protocol, prefix) in [
        (Protocol::Connect, "connect-rust-connect-proto/"),
        (Protocol::Grpc, "grpc-rust-connect-proto/"),
        (Protocol::GrpcWeb, "grpc-web-rust-connect-proto/"),
    ] {
        let head = request_head(protocol, CallOptions::default());
        let agent = head.headers()["user-agent"].to_str().unwrap();
        assert!(agent.starts_with(prefix), "{agent}");
        assert_eq!(
            head.headers().get("x-user-agent").is_some(),
            protocol == Protocol::GrpcWeb
        );
        let mut options = CallOptions::default();
        options
            .headers
            .insert("user-agent", http::HeaderValue::from_static("mine/1"));
        let head = request_head(protocol, options);
        assert_eq!(head.headers()["user-agent"], "mine/1");
    }
}
