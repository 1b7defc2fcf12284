//! Every protocol × stream type × codec × compression through the in-memory pair: success with headers,
//! messages and trailers; errors with details; deadlines; cancellation.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use connect_proto::{
    CallOptions, ClientEvent, Code, Codec, MethodInfo, Protocol, ServerEvent, StreamType,
};

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];
const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];
const COMPRESSIONS: [Option<&str>; 6] = [
    None,
    Some("gzip"),
    Some("zstd"),
    Some("br"),
    Some("deflate"),
    Some("snappy"),
];

fn payload(codec: Codec, n: usize) -> Bytes {
    let text = "lorem ipsum dolor sit amet ".repeat(40);
    match codec {
        Codec::Proto => {
            let mut v = vec![0x0a, 0x80, 0x08];
            v.extend_from_slice(format!("{n:04}").as_bytes());
            v.extend_from_slice(&text.as_bytes()[..1020]);
            Bytes::from(v)
        }
        Codec::Json => Bytes::from(format!("{{\"n\":{n},\"text\":\"{text}\"}}")),
    }
}

fn requests(method: MethodInfo, codec: Codec) -> Vec<Bytes> {
    if method.stream_type.client_streams() {
        (0..3).map(|n| payload(codec, n)).collect()
    } else {
        vec![payload(codec, 7)]
    }
}

fn send_all(pair: &mut Pair, reqs: &[Bytes]) {
    for r in reqs {
        pair.client.send_message(r.clone()).unwrap();
        pair.step();
    }
    pair.client.close_send().unwrap();
}

fn expected_responses(method: MethodInfo, reqs: &[Bytes], copies: usize) -> Vec<Bytes> {
    match method.stream_type {
        StreamType::Unary => reqs.to_vec(),
        StreamType::ClientStreaming => vec![Bytes::from(
            reqs.iter().flat_map(|b| b.to_vec()).collect::<Vec<u8>>(),
        )],
        StreamType::ServerStreaming => std::iter::repeat_n(reqs[0].clone(), copies).collect(),
        StreamType::BidiStreaming => reqs.to_vec(),
    }
}

/// Sends the method's requests, runs the pair for a second and checks that the client received the
/// `copies` responses the script answers with.
fn exchange_and_check_messages(
    pair: &mut Pair,
    method: MethodInfo,
    codec: Codec,
    copies: usize,
    label: &str,
) {
    let reqs = requests(method, codec);
    send_all(pair, &reqs);
    pair.run(Duration::from_secs(1));
    assert_eq!(
        pair.observed.messages(),
        expected_responses(method, &reqs, copies),
        "{label}"
    );
}

/// One combination's pair, with the label its assertions print.
fn combination(
    protocol: Protocol,
    method: MethodInfo,
    codec: Codec,
    compression: Option<&'static str>,
    options: CallOptions,
) -> (String, Pair) {
    let label = format!(
        "{protocol:?} {:?} {codec} {compression:?}",
        method.stream_type
    );
    let pair = Pair::new(
        &client_config(protocol, codec, compression),
        server_config(),
        method,
        options,
    );
    (label, pair)
}

fn for_each_combination(mut f: impl FnMut(Protocol, MethodInfo, Codec, Option<&'static str>)) {
    for protocol in PROTOCOLS {
        for method in METHODS {
            for codec in CODECS {
                for compression in COMPRESSIONS {
                    f(protocol, method, codec, compression);
                }
            }
        }
    }
}

#[test]
fn matrix_success_with_headers_messages_trailers() {
    let mut count = 0;
    for_each_combination(|protocol, method, codec, compression| {
        for in_place in [false, true] {
            let (label, mut pair) =
                combination(protocol, method, codec, compression, CallOptions::default());
            let label = format!("{label} in place: {in_place}");
            pair.script.in_place = in_place;
            pair.script.headers =
                metadata(&[("x-header", "h1"), ("x-multi", "a"), ("x-multi", "b")]);
            pair.script.trailers = metadata(&[("x-trailer", "t1")]);
            exchange_and_check_messages(&mut pair, method, codec, 3, &label);
            let obs = &pair.observed;
            let (result, trailers) = obs.finished();
            assert_eq!(result, &Ok(()), "{label}");
            assert_eq!(
                trailers.get("x-trailer").map(|v| v.to_str().unwrap()),
                Some("t1"),
                "{label}"
            );
            let headers = obs
                .headers()
                .unwrap_or_else(|| panic!("{label}: no headers event"));
            assert_eq!(headers.get("x-header").unwrap(), "h1", "{label}");
            let multi: Vec<_> = headers
                .get_all("x-multi")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(multi, ["a", "b"], "{label}");
            assert!(
                obs.server_aborted().is_none(),
                "{label}: {:?}",
                obs.server_events
            );
            if let Some(c) = compression {
                let head = obs.request_head.as_ref().unwrap();
                let names: Vec<_> = head
                    .headers
                    .iter()
                    .map(|(_, v)| v.to_str().unwrap_or(""))
                    .collect();
                assert!(
                    names.contains(&c),
                    "{label}: request does not declare {c}: {:?}",
                    head.headers
                );
            }
            count += 1;
        }
    });
    // 3 protocols × 4 stream types × 2 codecs × 6 compressions × (payload, in place).
    assert_eq!(count, 288);
}

/// Response messages written in place, with no response headers before them (the head goes out with
/// the first message) and many of them (they gather across chunks), arrive as sent.
#[test]
fn matrix_messages_written_in_place() {
    for_each_combination(|protocol, method, codec, compression| {
        let (label, mut pair) =
            combination(protocol, method, codec, compression, CallOptions::default());
        pair.script.in_place = true;
        pair.script.replies = Replies::Echo { copies: 40 };
        exchange_and_check_messages(&mut pair, method, codec, 40, &label);
        assert_eq!(pair.observed.finished().0, &Ok(()), "{label}");
    });
}

#[test]
fn matrix_error_with_details_and_trailers() {
    for_each_combination(|protocol, method, codec, compression| {
        let (label, mut pair) =
            combination(protocol, method, codec, compression, CallOptions::default());
        pair.script.headers = metadata(&[("x-header", "h1")]);
        pair.script.trailers = metadata(&[("x-trailer", "t1"), ("x-bin-bin", "AAEC")]);
        pair.script.outcome = Err(rich_error());
        let reqs = requests(method, codec);
        send_all(&mut pair, &reqs);
        pair.run(Duration::from_secs(1));
        let obs = &pair.observed;
        let (result, trailers) = obs.finished();
        let err = result.as_ref().expect_err(&label);
        assert_eq!(err, &rich_error(), "{label}");
        assert_eq!(
            trailers.get("x-trailer").map(|v| v.to_str().unwrap()),
            Some("t1"),
            "{label}"
        );
        assert!(
            trailers.get("grpc-status").is_none(),
            "{label}: status leaked into trailers"
        );
        let header = obs
            .headers()
            .and_then(|h| h.get("x-header"))
            .or_else(|| trailers.get("x-header"));
        assert_eq!(header.map(|v| v.to_str().unwrap()), Some("h1"), "{label}");
        if protocol == Protocol::Connect && method.stream_type == StreamType::Unary {
            assert_eq!(
                obs.response_head.as_ref().unwrap().status.as_u16(),
                400,
                "{label}: failed_precondition is HTTP 400"
            );
        } else {
            assert_eq!(
                obs.response_head.as_ref().unwrap().status.as_u16(),
                200,
                "{label}"
            );
        }
    });
}

#[test]
fn matrix_deadline_expires_on_both_sides() {
    for_each_combination(|protocol, method, codec, compression| {
        let options = CallOptions {
            timeout: Some(Duration::from_millis(250)),
            ..CallOptions::default()
        };
        let (label, mut pair) = combination(protocol, method, codec, compression, options);
        pair.script.hang = true;
        let reqs = requests(method, codec);
        send_all(&mut pair, &reqs);
        pair.run(Duration::from_secs(10));
        let (result, _) = pair.observed.finished();
        assert_eq!(
            result.as_ref().unwrap_err().code(),
            Code::DEADLINE_EXCEEDED,
            "{label}"
        );
        assert_eq!(pair.now - pair.start, Duration::from_millis(250), "{label}");
        let aborted = pair
            .observed
            .server_aborted()
            .unwrap_or_else(|| panic!("{label}: server not aborted"));
        assert_eq!(aborted.code(), Code::DEADLINE_EXCEEDED, "{label}");
    });
}

#[test]
fn matrix_cancellation_reaches_the_server() {
    for_each_combination(|protocol, method, codec, compression| {
        let (label, mut pair) =
            combination(protocol, method, codec, compression, CallOptions::default());
        pair.script.hang = true;
        let reqs = requests(method, codec);
        send_all(&mut pair, &reqs);
        while pair.step() {}
        pair.client.cancel();
        pair.run(Duration::from_secs(1));
        let (result, _) = pair.observed.finished();
        assert_eq!(
            result.as_ref().unwrap_err().code(),
            Code::CANCELED,
            "{label}"
        );
        assert!(
            pair.observed.client_reset,
            "{label}: request not aborted on the wire"
        );
        let aborted = pair
            .observed
            .server_aborted()
            .unwrap_or_else(|| panic!("{label}: server not aborted"));
        assert_eq!(aborted.code(), Code::CANCELED, "{label}");
        // Nothing after the final event.
        let finished_at = pair
            .observed
            .client_events
            .iter()
            .position(|e| matches!(e, ClientEvent::Finished { .. }));
        assert_eq!(
            finished_at,
            Some(pair.observed.client_events.len() - 1),
            "{label}"
        );
    });
}

#[test]
fn trap08_connect_get_for_no_side_effect_methods() {
    for codec in CODECS {
        for compression in COMPRESSIONS {
            let mut config = client_config(Protocol::Connect, codec, compression);
            config.use_get = true;
            let mut pair = Pair::new(&config, server_config(), UNARY, CallOptions::default());
            pair.script.trailers = metadata(&[("x-trailer", "t1")]);
            let req = payload(codec, 1);
            pair.client.send_message(req.clone()).unwrap();
            pair.run(Duration::from_secs(1));
            let head = pair.observed.request_head.as_ref().unwrap();
            assert_eq!(head.method, http::Method::GET);
            let query = head.uri.query().unwrap();
            assert!(
                query.contains("connect=v1") && query.contains(&format!("encoding={codec}")),
                "{query}"
            );
            assert_eq!(pair.observed.messages(), vec![req]);
            assert_eq!(pair.observed.finished().0, &Ok(()));
        }
    }
}

#[test]
fn server_stream_with_zero_messages_and_grpc_trailers_only() {
    for protocol in PROTOCOLS {
        let mut pair = Pair::new(
            &client_config(protocol, Codec::Proto, None),
            server_config(),
            SERVER_STREAM,
            CallOptions::default(),
        );
        pair.script.replies = Replies::Echo { copies: 0 };
        pair.script.trailers = metadata(&[("x-trailer", "t1")]);
        pair.client.send_message(payload(Codec::Proto, 1)).unwrap();
        pair.run(Duration::from_secs(1));
        assert_eq!(pair.observed.messages(), Vec::<Bytes>::new());
        let (result, trailers) = pair.observed.finished();
        assert_eq!(result, &Ok(()), "{protocol:?}");
        assert_eq!(trailers.get("x-trailer").unwrap(), "t1", "{protocol:?}");
        assert!(matches!(
            &pair.observed.server_events[pair.observed.server_events.len() - 2..],
            [ServerEvent::InputClosed, ServerEvent::Finished(Ok(()))]
        ));
    }
}

#[test]
fn trap25_bidi_works_half_duplex() {
    // Over HTTP/1.1 a client sends the whole request before reading: nothing in the machines may wait
    // for interleaving.
    for protocol in PROTOCOLS {
        let mut pair = Pair::new(
            &client_config(protocol, Codec::Proto, None),
            server_config(),
            BIDI_STREAM,
            CallOptions::default(),
        );
        let reqs = requests(BIDI_STREAM, Codec::Proto);
        for r in &reqs {
            pair.client.send_message(r.clone()).unwrap();
        }
        pair.client.close_send().unwrap();
        pair.run(Duration::from_secs(1));
        assert_eq!(pair.observed.messages(), reqs, "{protocol:?}");
        assert_eq!(pair.observed.finished().0, &Ok(()), "{protocol:?}");
    }
}
