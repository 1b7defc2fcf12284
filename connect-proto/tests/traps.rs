//! One test per item of PROTOCOL-TRAPS.md that concerns the call state machines, each fed raw wire
//! input from a peer that may misbehave. The test names carry the item number.

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use common::raw::*;
use common::*;
use connect_proto::{
    CallOptions, ClientCall, ClientTransmit, Code, Codec, Instant, Protocol, ServerCall,
    ServerEvent, ServerTransmit, Status,
};
use http::{HeaderMap, StatusCode};

// ---------- Connect ----------

#[test]
fn trap01_connect_unary_error_is_json_with_unpadded_details() {
    let parts = request("POST", UNARY.path, &[("content-type", "application/proto")]);
    let run = serve(parts, &[Bytes::from_static(b"x")], Some(Err(rich_error())));
    assert_eq!(run.head.status, StatusCode::BAD_REQUEST);
    assert_eq!(run.head.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&run.body).unwrap();
    assert_eq!(json["code"], "failed_precondition");
    assert_eq!(json["details"][0]["type"], "google.rpc.RetryInfo");
    let value = json["details"][0]["value"].as_str().unwrap();
    assert!(
        !value.ends_with('='),
        "details are unpadded base64: {value}"
    );
}

#[test]
fn trap01_client_rejects_empty_error_object_and_uses_http_status() {
    for body in [&b"{}"[..], b"{\"code\":null}", b"not json"] {
        let mut call = client_with(Protocol::Connect, UNARY);
        call.recv_head(response(503, &[("content-type", "application/json")]));
        call.recv_data(Bytes::copy_from_slice(body));
        call.recv_end(None);
        let (_, result, _) = outcome(&mut call);
        assert_eq!(
            result.unwrap_err().code(),
            Code::UNAVAILABLE,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    // Without a usable code, the message of the body is still the error's (conformance
    // `error/null-code`, `error/unrecognized-code`).
    for body in [
        &br#"{"code":null,"message":"oops"}"#[..],
        br#"{"code":"foobar","message":"oops"}"#,
    ] {
        let mut call = client_with(Protocol::Connect, UNARY);
        call.recv_head(response(429, &[("content-type", "application/json")]));
        call.recv_data(Bytes::copy_from_slice(body));
        call.recv_end(None);
        let (_, result, _) = outcome(&mut call);
        assert_eq!(result.unwrap_err(), Status::new(Code::UNAVAILABLE, "oops"));
    }
}

#[test]
fn trap03_http_status_without_error_body() {
    for (http, code) in [
        (400, Code::INTERNAL),
        (401, Code::UNAUTHENTICATED),
        (404, Code::UNIMPLEMENTED),
        (502, Code::UNAVAILABLE),
        (418, Code::UNKNOWN),
    ] {
        for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
            let mut call = client_with(protocol, UNARY);
            call.recv_head(response(http, &[("content-type", "text/html")]));
            call.recv_data(Bytes::from_static(b"<html>oops</html>"));
            call.recv_end(None);
            let (_, result, _) = outcome(&mut call);
            assert_eq!(result.unwrap_err().code(), code, "{protocol:?} {http}");
        }
    }
}

#[test]
fn trap04_connect_stream_must_end_with_end_stream() {
    let mut call = client_with(Protocol::Connect, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[("content-type", "application/connect+proto")],
    ));
    call.recv_data(envelope(0, b"m1"));
    call.recv_end(None);
    let (messages, result, _) = outcome(&mut call);
    assert_eq!(messages, vec![Bytes::from_static(b"m1")]);
    assert_eq!(result.unwrap_err().code(), Code::INTERNAL);
}

#[test]
fn trap04_connect_end_stream_not_last_is_an_error() {
    let mut call = client_with(Protocol::Connect, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[("content-type", "application/connect+proto")],
    ));
    call.recv_data(envelope(2, b"{}"));
    call.recv_data(envelope(0, b"late"));
    call.recv_end(None);
    let (messages, result, _) = outcome(&mut call);
    assert!(messages.is_empty());
    assert_eq!(result.unwrap_err().code(), Code::INTERNAL);
}

#[test]
fn trap04_connect_compressed_end_stream() {
    let mut call = client_with(Protocol::Connect, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[
            ("content-type", "application/connect+proto"),
            ("connect-content-encoding", "gzip"),
        ],
    ));
    let end = br#"{"error":{"code":"aborted","message":"no"},"metadata":{"x-t":["1"]}}"#;
    call.recv_data(envelope(3, &gzip(end)));
    call.recv_end(None);
    let (_, result, trailers) = outcome(&mut call);
    assert_eq!(result.unwrap_err(), Status::new(Code::ABORTED, "no"));
    assert_eq!(trailers["x-t"], "1");
}

#[test]
fn trap04_streaming_errors_are_http_200() {
    let parts = request(
        "POST",
        SERVER_STREAM.path,
        &[("content-type", "application/connect+proto")],
    );
    let run = serve(
        parts,
        &[envelope(0, b"x")],
        Some(Err(Status::new(Code::NOT_FOUND, "nope"))),
    );
    assert_eq!(run.head.status, StatusCode::OK);
    assert_eq!(run.body[0], 2, "EndStream flag");
}

#[test]
fn trap05_connect_unary_trailer_prefix_stripped() {
    let mut call = client_with(Protocol::Connect, UNARY);
    call.recv_head(response(
        200,
        &[
            ("content-type", "application/proto"),
            ("trailer-x-t", "v"),
            ("x-h", "h"),
        ],
    ));
    call.recv_data(Bytes::from_static(b"resp"));
    call.recv_end(None);
    let (messages, result, trailers) = outcome(&mut call);
    assert_eq!(messages, vec![Bytes::from_static(b"resp")]);
    assert_eq!(result, Ok(()));
    assert_eq!(trailers["x-t"], "v");
    assert!(trailers.get("x-h").is_none());
}

#[test]
fn trap06_connect_content_type_mismatch_gets_415() {
    for (path, ct) in [
        (SERVER_STREAM.path, "application/proto"),
        (UNARY.path, "application/connect+proto"),
        (UNARY.path, "application/foo"),
        (SERVER_STREAM.path, "application/connect+foo"),
        (UNARY.path, "text/plain"),
    ] {
        let run = serve(request("POST", path, &[("content-type", ct)]), &[], None);
        assert_eq!(
            run.head.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{path} {ct}"
        );
        assert!(aborted(&run).is_some());
    }
}

#[test]
fn trap07_connect_protocol_version() {
    let mut config = client_config(Protocol::Connect, Codec::Proto, None);
    config.use_get = false;
    let mut pair = Pair::new(&config, server_config(), UNARY, CallOptions::default());
    pair.client.send_message(Bytes::from_static(b"x")).unwrap();
    pair.step();
    assert_eq!(
        pair.observed.request_head.as_ref().unwrap().headers["connect-protocol-version"],
        "1"
    );

    let mut strict = server_config();
    strict.require_connect_protocol_version = true;
    let parts = request("POST", UNARY.path, &[("content-type", "application/proto")]);
    let mut call = ServerCall::new(&strict, Some(UNARY), &parts, Instant::now());
    let Some(ServerTransmit::Head(head)) = call.poll_transmit() else {
        panic!()
    };
    assert_eq!(head.status(), StatusCode::BAD_REQUEST);
    let wrong = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/proto"),
            ("connect-protocol-version", "2"),
        ],
    );
    let run = serve(wrong, &[], None);
    assert_eq!(aborted(&run).unwrap().code(), Code::INVALID_ARGUMENT);
}

#[test]
fn trap08_get_on_a_method_with_side_effects_is_405() {
    let run = serve(request("GET", SERVER_STREAM.path, &[]), &[], None);
    assert_eq!(run.head.status, StatusCode::METHOD_NOT_ALLOWED);
    let run = serve(
        request(
            "DELETE",
            UNARY.path,
            &[("content-type", "application/proto")],
        ),
        &[],
        None,
    );
    assert_eq!(run.head.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn trap09_connect_compression_headers_per_stream_type() {
    let mut c = client_config(Protocol::Connect, Codec::Proto, Some("gzip"));
    c.compress_min_bytes = 0;
    let base: http::Uri = "http://h".parse().unwrap();
    let mut unary = ClientCall::new(&c, UNARY, &base, CallOptions::default(), Instant::now());
    unary
        .send_message(Bytes::from_static(b"hello hello hello"))
        .unwrap();
    let Some(ClientTransmit::Head(head)) = unary.poll_transmit() else {
        panic!()
    };
    assert_eq!(head.headers()["content-encoding"], "gzip");
    assert!(head.headers()["accept-encoding"]
        .to_str()
        .unwrap()
        .contains("gzip"));
    let mut stream = ClientCall::new(
        &c,
        BIDI_STREAM,
        &base,
        CallOptions::default(),
        Instant::now(),
    );
    let Some(ClientTransmit::Head(head)) = stream.poll_transmit() else {
        panic!()
    };
    assert_eq!(head.headers()["connect-content-encoding"], "gzip");
    assert!(head.headers().contains_key("connect-accept-encoding"));
    assert!(!head.headers().contains_key("content-encoding"));
}

#[test]
fn trap09_empty_connect_unary_request_still_carries_its_encoding() {
    // With no minimum size, an empty request is compressed too and says so: a peer that was told
    // to expect gzip checks the header (the conformance reference server does).
    let c = client_config(Protocol::Connect, Codec::Proto, Some("gzip"));
    let base: http::Uri = "http://h".parse().unwrap();
    let mut unary = ClientCall::new(&c, UNARY, &base, CallOptions::default(), Instant::now());
    unary.send_message(Bytes::new()).unwrap();
    let Some(ClientTransmit::Head(head)) = unary.poll_transmit() else {
        panic!()
    };
    assert_eq!(head.headers()["content-encoding"], "gzip");
    let Some(ClientTransmit::Data(body)) = unary.poll_transmit() else {
        panic!("an empty gzip member is still a body")
    };
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).unwrap();
    assert!(out.is_empty());
    // The server reads it back as the empty message.
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/proto"),
            ("content-encoding", "gzip"),
        ],
    );
    let run = serve(parts, &[body], Some(Ok(())));
    assert_eq!(run.events[0], ServerEvent::Message(Bytes::new()));
}

// ---------- gRPC ----------

#[test]
fn trap10_and_26_unsupported_request_encoding_answered_from_headers_alone() {
    for protocol_ct in ["application/grpc", "application/grpc-web+proto"] {
        let parts = request(
            "POST",
            BIDI_STREAM.path,
            &[("content-type", protocol_ct), ("grpc-encoding", "lz4")],
        );
        let mut call = ServerCall::new(&server_config(), Some(BIDI_STREAM), &parts, Instant::now());
        // No body fed at all: the answer is already queued.
        let Some(ServerTransmit::Head(head)) = call.poll_transmit() else {
            panic!("no immediate answer")
        };
        assert_eq!(head.headers()["grpc-status"], "12");
        let message = head.headers()["grpc-message"].to_str().unwrap().to_owned();
        assert!(
            message.contains("gzip") && message.contains("zstd"),
            "{message}"
        );
        assert!(matches!(call.poll_transmit(), Some(ServerTransmit::End)));
        assert!(
            matches!(call.poll_event(), Some(ServerEvent::Finished(Err(s))) if s.code() == Code::UNIMPLEMENTED)
        );
    }
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/proto"),
            ("content-encoding", "lz4"),
        ],
    );
    let run = serve(parts, &[], None);
    assert_eq!(run.head.status.as_u16(), 501);
}

#[test]
fn trap10_response_uses_request_encoding_without_accept_header() {
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/grpc"),
            ("grpc-encoding", "gzip"),
        ],
    );
    let run = serve(parts, &[envelope(1, &gzip(b"x"))], Some(Ok(())));
    assert_eq!(run.head.headers["grpc-encoding"], "gzip");
    assert_eq!(run.body[0], 1, "response message compressed");
}

#[test]
fn trap11_compressed_flag_with_identity_is_an_error_both_ways() {
    let parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    let run = serve(parts, &[envelope(1, b"whatever")], Some(Ok(())));
    assert_eq!(grpc_status(&run).as_deref(), Some("13"));

    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_head(response(200, &[("content-type", "application/grpc")]));
    call.recv_data(envelope(1, b"whatever"));
    call.recv_end(Some(HeaderMap::new()));
    let (_, result, _) = outcome(&mut call);
    assert_eq!(result.unwrap_err().code(), Code::INTERNAL);
}

#[test]
fn trap11_zero_length_compressed_message_is_empty() {
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/grpc"),
            ("grpc-encoding", "gzip"),
        ],
    );
    let run = serve(parts, &[envelope(1, b"")], Some(Ok(())));
    assert_eq!(run.events[0], ServerEvent::Message(Bytes::new()));
    assert_eq!(grpc_status(&run).as_deref(), Some("0"));
}

#[test]
fn trap12_timeouts_become_deadlines_and_bad_ones_are_rejected() {
    let now = Instant::now();
    let parts = request(
        "POST",
        UNARY.path,
        &[("content-type", "application/grpc"), ("grpc-timeout", "3S")],
    );
    let call = ServerCall::new(&server_config(), Some(UNARY), &parts, now);
    assert_eq!(call.deadline(), Some(now + Duration::from_secs(3)));
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/proto"),
            ("connect-timeout-ms", "1500"),
        ],
    );
    let call = ServerCall::new(&server_config(), Some(UNARY), &parts, now);
    assert_eq!(call.deadline(), Some(now + Duration::from_millis(1500)));
    let parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    assert_eq!(
        ServerCall::new(&server_config(), Some(UNARY), &parts, now).deadline(),
        None
    );
    for (ct, name, value) in [
        ("application/grpc", "grpc-timeout", "123456789S"),
        ("application/grpc", "grpc-timeout", "5X"),
        ("application/proto", "connect-timeout-ms", "12345678901"),
        ("application/proto", "connect-timeout-ms", "-5"),
    ] {
        let run = serve(
            request("POST", UNARY.path, &[("content-type", ct), (name, value)]),
            &[],
            None,
        );
        assert_eq!(
            aborted(&run).map(Status::code),
            Some(Code::INVALID_ARGUMENT),
            "{name}: {value}"
        );
    }
}

#[test]
fn trap12_client_deadline_is_deadline_exceeded_not_canceled() {
    let config = client_config(Protocol::Grpc, Codec::Proto, None);
    let base: http::Uri = "http://h".parse().unwrap();
    let now = Instant::now();
    let options = CallOptions {
        timeout: Some(Duration::from_millis(50)),
        ..CallOptions::default()
    };
    let mut call = ClientCall::new(&config, UNARY, &base, options, now);
    let Some(ClientTransmit::Head(head)) = call.poll_transmit() else {
        panic!()
    };
    let sent = head.headers()["grpc-timeout"].as_bytes();
    assert_eq!(
        connect_proto::parse_grpc_timeout(sent),
        Ok(Duration::from_millis(50))
    );
    call.handle_timeout(now + Duration::from_millis(49));
    assert!(call.poll_event().is_none(), "spurious timeout is a no-op");
    call.handle_timeout(now + Duration::from_millis(50));
    let (_, result, _) = outcome(&mut call);
    assert_eq!(result.unwrap_err().code(), Code::DEADLINE_EXCEEDED);
    assert!(matches!(call.poll_transmit(), Some(ClientTransmit::Reset)));
}

#[test]
fn trap13_server_sends_trailers_only_when_no_message() {
    let parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    let run = serve(
        parts,
        &[envelope(0, b"x")],
        Some(Err(Status::new(Code::NOT_FOUND, "gone"))),
    );
    assert_eq!(run.head.headers["grpc-status"], "5");
    assert_eq!(run.head.headers["grpc-message"], "gone");
    assert!(run.trailers.is_none() && run.body.is_empty());
}

#[test]
fn trap13_trailers_win_over_status_in_headers() {
    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_head(response(
        200,
        &[("content-type", "application/grpc"), ("grpc-status", "8")],
    ));
    let mut t = HeaderMap::new();
    t.insert("grpc-status", "9".parse().unwrap());
    call.recv_end(Some(t));
    let (_, result, _) = outcome(&mut call);
    assert_eq!(result.unwrap_err().code(), Code::FAILED_PRECONDITION);
}

#[test]
fn trap13_body_after_status_in_headers_needs_real_trailers() {
    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_head(response(
        200,
        &[("content-type", "application/grpc"), ("grpc-status", "9")],
    ));
    call.recv_data(envelope(0, b"m"));
    call.recv_end(None);
    let (_, result, _) = outcome(&mut call);
    assert_eq!(result.unwrap_err().code(), Code::INTERNAL);
}

#[test]
fn trap13_trailers_only_response_is_understood() {
    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_head(response(
        200,
        &[
            ("content-type", "application/grpc"),
            ("grpc-status", "7"),
            ("grpc-message", "no%20way"),
            ("x-md", "v"),
        ],
    ));
    call.recv_end(None);
    let (_, result, trailers) = outcome(&mut call);
    assert_eq!(
        result.unwrap_err(),
        Status::new(Code::PERMISSION_DENIED, "no way")
    );
    assert_eq!(trailers["x-md"], "v");
}

#[test]
fn trap14_missing_grpc_status_is_never_success() {
    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_head(response(200, &[("content-type", "application/grpc")]));
    call.recv_data(envelope(0, b"m"));
    call.recv_end(None);
    let (_, result, _) = outcome(&mut call);
    assert_eq!(result.unwrap_err().code(), Code::INTERNAL);

    let mut call = client_with(Protocol::Grpc, UNARY);
    call.recv_head(response(200, &[("content-type", "application/grpc")]));
    call.recv_data(envelope(0, b"m"));
    let mut t = HeaderMap::new();
    t.insert("grpc-message", "error".parse().unwrap());
    call.recv_end(Some(t));
    let (_, result, _) = outcome(&mut call);
    assert_eq!(result.unwrap_err().code(), Code::UNKNOWN);
}

#[test]
fn trap15_grpc_message_percent_encoded_on_the_wire() {
    let parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    let run = serve(
        parts,
        &[envelope(0, b"x")],
        Some(Err(Status::new(Code::INTERNAL, "50% off: ünïcode\n"))),
    );
    let raw = run.head.headers["grpc-message"].to_str().unwrap();
    assert_eq!(raw, "50%25 off: %C3%BCn%C3%AFcode%0A");
}

#[test]
fn trap16_status_details_bin_round_trip() {
    let mut pair = Pair::new(
        &client_config(Protocol::Grpc, Codec::Proto, None),
        server_config(),
        UNARY,
        CallOptions::default(),
    );
    pair.script.outcome = Err(rich_error());
    pair.client.send_message(Bytes::from_static(b"x")).unwrap();
    pair.run(Duration::from_secs(1));
    let head = pair.observed.response_head.as_ref().unwrap();
    assert!(head.headers.contains_key("grpc-status-details-bin"));
    assert_eq!(
        pair.observed.finished().0.as_ref().unwrap_err(),
        &rich_error()
    );
}

#[test]
fn trap18_grpc_sends_plain_content_type_and_rejects_foreign_ones() {
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
    assert_eq!(head.headers()["content-type"], "application/grpc");
    let run = serve(
        request(
            "POST",
            UNARY.path,
            &[("content-type", "application/grpc+foo")],
        ),
        &[],
        None,
    );
    assert_eq!(run.head.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[test]
fn trap19_send_te_trailers_and_map_reset_codes() {
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
    assert_eq!(head.headers()["te"], "trailers");
    for (reason, code) in [
        (0x7, Code::UNAVAILABLE),
        (0x8, Code::CANCELED),
        (0xb, Code::RESOURCE_EXHAUSTED),
        (0x2, Code::INTERNAL),
    ] {
        let mut call = client_with(Protocol::Grpc, BIDI_STREAM);
        call.recv_reset(connect_proto::Reset::H2(reason));
        assert_eq!(outcome(&mut call).1.unwrap_err().code(), code);
    }
}

#[test]
fn trap20_trailer_flag_only_on_grpc_web() {
    let mut call = client_with(Protocol::Grpc, SERVER_STREAM);
    call.recv_head(response(200, &[("content-type", "application/grpc")]));
    call.recv_data(envelope(0x80, b"grpc-status: 0\r\n"));
    let (_, result, _) = outcome(&mut call);
    assert_eq!(result.unwrap_err().code(), Code::INTERNAL);

    let mut call = client_with(Protocol::GrpcWeb, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[("content-type", "application/grpc-web+proto")],
    ));
    call.recv_data(envelope(0, b"m"));
    call.recv_data(envelope(
        0x80,
        b"Grpc-Status: 0\r\nX-Dup: a\r\nx-dup: b\r\n",
    ));
    call.recv_end(None);
    let (messages, result, trailers) = outcome(&mut call);
    assert_eq!(messages.len(), 1);
    assert_eq!(result, Ok(()));
    assert_eq!(trailers.get_all("x-dup").iter().count(), 2);

    let parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    let run = serve(parts, &[envelope(0x80, b"")], Some(Ok(())));
    assert_eq!(grpc_status(&run).as_deref(), Some("13"));
}

#[test]
fn trap21_grpc_web_trailers_only_with_empty_trailer_frame() {
    let mut call = client_with(Protocol::GrpcWeb, UNARY);
    call.recv_head(response(
        200,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("grpc-status", "5"),
            ("grpc-message", "nf"),
        ],
    ));
    call.recv_data(envelope(0x80, b""));
    call.recv_end(None);
    let (_, result, _) = outcome(&mut call);
    assert_eq!(result.unwrap_err(), Status::new(Code::NOT_FOUND, "nf"));
}

#[test]
fn trap22_grpc_web_text_is_rejected_clearly() {
    let run = serve(
        request(
            "POST",
            UNARY.path,
            &[("content-type", "application/grpc-web-text")],
        ),
        &[],
        None,
    );
    assert_eq!(run.head.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(aborted(&run).unwrap().message().contains("grpc-web-text"));
}

#[test]
fn trap24_client_checks_response_content_type() {
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let mut call = client_with(protocol, SERVER_STREAM);
        call.recv_head(response(200, &[("content-type", "text/html")]));
        assert_eq!(
            outcome(&mut call).1.unwrap_err().code(),
            Code::UNKNOWN,
            "{protocol:?}"
        );
    }
    for (protocol, ct) in [
        (Protocol::Connect, "application/connect+json"),
        (Protocol::Grpc, "application/grpc+json"),
        (Protocol::GrpcWeb, "application/grpc-web+json"),
    ] {
        let mut call = client_with(protocol, SERVER_STREAM);
        call.recv_head(response(200, &[("content-type", ct)]));
        assert_eq!(
            outcome(&mut call).1.unwrap_err().code(),
            Code::INTERNAL,
            "{protocol:?}"
        );
    }
    let mut call = client_with(Protocol::Grpc, SERVER_STREAM);
    call.recv_head(response(
        200,
        &[
            ("content-type", "application/grpc"),
            ("grpc-encoding", "lz4"),
        ],
    ));
    assert_eq!(outcome(&mut call).1.unwrap_err().code(), Code::INTERNAL);
}

// ---------- cardinality and limits ----------

#[test]
fn unary_cardinality_violations_are_unimplemented() {
    let two = [envelope(0, b"a"), envelope(0, b"b")];
    let run = serve(
        request("POST", UNARY.path, &[("content-type", "application/grpc")]),
        &two,
        Some(Ok(())),
    );
    assert_eq!(grpc_status(&run).as_deref(), Some("12"));
    let run = serve(
        request(
            "POST",
            SERVER_STREAM.path,
            &[("content-type", "application/connect+proto")],
        ),
        &[],
        Some(Ok(())),
    );
    assert_eq!(aborted(&run).map(Status::code), Some(Code::UNIMPLEMENTED));

    let mut call = client_with(Protocol::Grpc, CLIENT_STREAM);
    call.recv_head(response(200, &[("content-type", "application/grpc")]));
    call.recv_end(Some(HeaderMap::from_iter([(
        http::HeaderName::from_static("grpc-status"),
        "0".parse().unwrap(),
    )])));
    assert_eq!(
        outcome(&mut call).1.unwrap_err().code(),
        Code::UNIMPLEMENTED
    );
    let mut call = client_with(Protocol::Connect, CLIENT_STREAM);
    call.recv_head(response(
        200,
        &[("content-type", "application/connect+proto")],
    ));
    call.recv_data(envelope(0, b"a"));
    call.recv_data(envelope(0, b"b"));
    assert_eq!(
        outcome(&mut call).1.unwrap_err().code(),
        Code::UNIMPLEMENTED
    );
}

#[test]
fn trap27_one_message_requests_are_complete_only_at_the_end_of_the_body() {
    // A handler that answers each message as soon as it arrives, and two request messages that
    // arrive in separate chunks: the message must not reach it before the body ended, and the
    // second one fails the call whatever was answered (or could have been) in between.
    let cases = [
        (UNARY, "application/grpc"),
        (UNARY, "application/grpc-web+proto"),
        (SERVER_STREAM, "application/grpc"),
        (SERVER_STREAM, "application/grpc-web+proto"),
        (SERVER_STREAM, "application/connect+proto"),
    ];
    for (method, content_type) in cases {
        let parts = request("POST", method.path, &[("content-type", content_type)]);
        let config = server_config();
        let mut call = ServerCall::new(&config, Some(method), &parts, Instant::now());
        let mut answered = false;
        let mut answer = |call: &mut ServerCall| -> Vec<ServerEvent> {
            let mut events = Vec::new();
            while let Some(event) = call.poll_event() {
                if matches!(event, ServerEvent::Message(_)) && !answered {
                    answered = true;
                    call.send_message(Bytes::from_static(b"ok")).unwrap();
                    call.finish(Ok(()), HeaderMap::new()).unwrap();
                }
                events.push(event);
            }
            events
        };
        call.recv_data(envelope(0, b"first"));
        assert_eq!(
            answer(&mut call),
            vec![],
            "{content_type}: nothing before the end"
        );
        call.recv_data(envelope(0, b"second"));
        let events = answer(&mut call);
        call.recv_end(None);
        assert!(answer(&mut call).is_empty());
        match events.as_slice() {
            [ServerEvent::Finished(Err(status))] => {
                assert_eq!(status.code(), Code::UNIMPLEMENTED, "{content_type}");
                assert!(status.message().contains("second"), "{status:?}");
            }
            other => panic!("{content_type} {}: {other:?}", method.path),
        }
        let mut wire = Vec::new();
        while let Some(t) = call.poll_transmit() {
            wire.push(t);
        }
        let status_sent = wire.iter().any(|t| match t {
            ServerTransmit::Head(h) => h.headers().get("grpc-status").is_some_and(|v| v == "12"),
            ServerTransmit::Trailers(t) => t.get("grpc-status").is_some_and(|v| v == "12"),
            ServerTransmit::Data(d) => d.windows(13).any(|w| w == b"unimplemented"),
            ServerTransmit::End | ServerTransmit::Reset => false,
        });
        assert!(status_sent, "{content_type}: {wire:?}");
    }
    // One message and the end: the handler gets it, then the end of input.
    let parts = request("POST", UNARY.path, &[("content-type", "application/grpc")]);
    let config = server_config();
    let mut call = ServerCall::new(&config, Some(UNARY), &parts, Instant::now());
    call.recv_data(envelope(0, b"only"));
    assert_eq!(call.poll_event(), None);
    call.recv_end(None);
    assert_eq!(
        call.poll_event(),
        Some(ServerEvent::Message(Bytes::from_static(b"only")))
    );
    assert_eq!(call.poll_event(), Some(ServerEvent::InputClosed));
}

#[test]
fn unknown_method_is_unimplemented_in_each_protocol() {
    let run = serve(
        request(
            "POST",
            "/no.Such/Method",
            &[("content-type", "application/proto")],
        ),
        &[],
        None,
    );
    assert_eq!(run.head.status, StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_slice(&run.body).unwrap();
    assert_eq!(json["code"], "unimplemented");
    let run = serve(
        request(
            "POST",
            "/no.Such/Method",
            &[("content-type", "application/grpc")],
        ),
        &[],
        None,
    );
    assert_eq!(grpc_status(&run).as_deref(), Some("12"));
}

#[test]
fn oversized_messages_are_resource_exhausted_before_buffering() {
    // A prefix announcing 4 GiB: refused after five bytes.
    let parts = request(
        "POST",
        CLIENT_STREAM.path,
        &[("content-type", "application/grpc")],
    );
    let run = serve(
        parts,
        &[Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff])],
        Some(Ok(())),
    );
    assert_eq!(grpc_status(&run).as_deref(), Some("8"));
    // A gzip bomb: 64 MiB of zeros in a few KiB, limit 4 MiB.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap()
    };
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/grpc"),
            ("grpc-encoding", "gzip"),
        ],
    );
    let run = serve(parts, &[envelope(1, &bomb)], Some(Ok(())));
    assert_eq!(grpc_status(&run).as_deref(), Some("8"));
    let parts = request(
        "POST",
        UNARY.path,
        &[
            ("content-type", "application/proto"),
            ("content-encoding", "gzip"),
        ],
    );
    let run = serve(parts, &[Bytes::from(bomb)], Some(Ok(())));
    assert_eq!(run.head.status.as_u16(), 429);
}

#[test]
fn events_stop_after_the_final_status() {
    let mut call = client_with(Protocol::Grpc, SERVER_STREAM);
    call.recv_head(response(200, &[("content-type", "application/grpc")]));
    call.recv_reset(connect_proto::Reset::H2(8));
    let _ = outcome(&mut call);
    call.recv_data(envelope(0, b"late"));
    call.recv_end(Some(HeaderMap::new()));
    call.handle_timeout(Instant::now() + Duration::from_secs(100));
    call.cancel();
    assert!(call.poll_event().is_none());
}

#[test]
fn message_limit_applies_to_the_uncompressed_size() {
    let limit = 4096;
    let config = connect_proto::ServerConfig {
        max_recv_message_size: limit,
        ..server_config()
    };
    let run_with = |flags: u8, payload: &[u8], encoding: &str| {
        let parts = request(
            "POST",
            UNARY.path,
            &[
                ("content-type", "application/grpc"),
                ("grpc-encoding", encoding),
            ],
        );
        let mut call = ServerCall::new(&config, Some(UNARY), &parts, Instant::now());
        call.recv_data(envelope(flags, payload));
        call.recv_end(None);
        let mut events = Vec::new();
        while let Some(e) = call.poll_event() {
            events.push(e);
        }
        events
    };
    // Incompressible bytes: gzip makes them larger than the limit on the wire, yet they fit uncompressed.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..limit)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let squeezed = gzip(&noise);
    assert!(squeezed.len() > limit);
    assert_eq!(
        run_with(1, &squeezed, "gzip")[0],
        ServerEvent::Message(Bytes::from(noise.clone()))
    );
    assert!(matches!(
        &run_with(0, &noise, "identity")[0],
        ServerEvent::Message(_)
    ));
    let mut over = noise.clone();
    over.push(0);
    assert!(
        matches!(&run_with(0, &over, "identity")[0], ServerEvent::Finished(Err(s)) if s.code() == Code::RESOURCE_EXHAUSTED)
    );
    assert!(
        matches!(&run_with(1, &gzip(&over), "gzip")[0], ServerEvent::Finished(Err(s)) if s.code() == Code::RESOURCE_EXHAUSTED)
    );
}
