//! One [`ServerCall`] driven by a script of inputs and application commands, every output checked
//! against the rules drivers rely on: the `server_call` fuzz target, and the system under test of
//! the state-machine model in `tests/model.rs`.

use std::time::Duration;

use bytes::Bytes;
use http::Method;

use super::format::{encode_envelope, header_map, outcome, Reader, Writer};
use super::METHODS;
use crate::compression::CompressionRegistry;
use crate::{
    Instant, Protocol, Reset, ServerCall, ServerConfig, ServerEvent, ServerTransmit, Status,
};

/// A request head and a sequence of inputs and application commands for one [`ServerCall`].
#[derive(Clone, Debug, PartialEq)]
pub struct ServerScript {
    /// Index into the methods; 4 and up: a path no handler serves.
    pub method: u8,
    /// 0 POST, 1 GET, 2 PUT.
    pub http_method: u8,
    /// Query string (Connect GET).
    pub query: Vec<u8>,
    /// Request headers.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Receive limit.
    pub max_recv: u16,
    /// Send limit.
    pub max_send: u16,
    /// Bit 0: require `Connect-Protocol-Version`; bit 1: the server supports no compression; bit 2:
    /// the request came over HTTP/1.1 (else HTTP/2).
    pub options: u8,
    /// The operations, in order.
    pub ops: Vec<ServerOp>,
}

/// One input or application command of a [`ServerScript`].
#[derive(Clone, Debug, PartialEq)]
pub enum ServerOp {
    /// A raw body chunk.
    Data(Vec<u8>),
    /// An envelope with these flags, its payload compressed with the algorithm at this index of
    /// gzip, zstd (others: none).
    Envelope(u8, u8, Vec<u8>),
    /// End of the request body.
    End,
    /// Stream reset.
    Reset,
    /// The clock advances by this many milliseconds, then `handle_timeout`.
    Advance(u16),
    /// `send_headers`.
    SendHeaders(Vec<(Vec<u8>, Vec<u8>)>),
    /// `send_message`, or for odd lengths `message_writer` (then dropped unsent when the first byte
    /// is 0xff, and sent twice through one writer's `send_and_continue` when it is 0xfe).
    SendMessage(Vec<u8>),
    /// `finish`: code (0 is Ok), message, details (type, value), trailers.
    Finish(
        u32,
        Vec<u8>,
        Vec<(Vec<u8>, Vec<u8>)>,
        Vec<(Vec<u8>, Vec<u8>)>,
    ),
    /// `cancel`.
    Cancel,
}

impl ServerScript {
    /// The script these bytes read as (any bytes read as one).
    pub fn from_bytes(data: &[u8]) -> Self {
        Self::read(&mut Reader::new(data))
    }

    fn read(u: &mut Reader<'_>) -> Self {
        ServerScript {
            method: u.u8(),
            http_method: u.u8(),
            query: u.bytes(),
            headers: u.headers(),
            max_recv: u.u16(),
            max_send: u.u16(),
            options: u.u8(),
            ops: u.ops(|u| match u.u8() % 9 {
                0 => ServerOp::Data(u.bytes()),
                1 => ServerOp::Envelope(u.u8(), u.u8(), u.bytes()),
                2 => ServerOp::End,
                3 => ServerOp::Reset,
                4 => ServerOp::Advance(u.u16()),
                5 => ServerOp::SendHeaders(u.headers()),
                6 => ServerOp::SendMessage(u.bytes()),
                7 => ServerOp::Finish(u.u32(), u.bytes(), u.headers(), u.headers()),
                _ => ServerOp::Cancel,
            }),
        }
    }

    /// The script in its byte format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.method);
        w.u8(self.http_method);
        w.bytes(&self.query);
        w.headers(&self.headers);
        w.u16(self.max_recv);
        w.u16(self.max_send);
        w.u8(self.options);
        for op in &self.ops {
            match op {
                ServerOp::Data(d) => {
                    w.u8(0);
                    w.bytes(d);
                }
                ServerOp::Envelope(f, c, d) => {
                    w.u8(1);
                    w.u8(*f);
                    w.u8(*c);
                    w.bytes(d);
                }
                ServerOp::End => w.u8(2),
                ServerOp::Reset => w.u8(3),
                ServerOp::Advance(ms) => {
                    w.u8(4);
                    w.u16(*ms);
                }
                ServerOp::SendHeaders(hs) => {
                    w.u8(5);
                    w.headers(hs);
                }
                ServerOp::SendMessage(d) => {
                    w.u8(6);
                    w.bytes(d);
                }
                ServerOp::Finish(code, message, details, trailers) => {
                    w.u8(7);
                    w.u32(*code);
                    w.bytes(message);
                    w.headers(details);
                    w.headers(trailers);
                }
                ServerOp::Cancel => w.u8(8),
            }
        }
        w.0
    }
}

/// Checks what a [`ServerCall`] emits against the rules every driver relies on.
#[derive(Debug, Default)]
struct ServerWatch {
    client_streams: bool,
    head: bool,
    ended: bool,
    reset: bool,
    /// The final event's outcome, once emitted.
    outcome: Option<Result<(), Status>>,
    input_closed: bool,
    messages: Vec<Bytes>,
}

impl ServerWatch {
    fn drain(&mut self, call: &mut ServerCall, max_recv: usize) {
        while let Some(t) = call.poll_transmit() {
            assert!(!self.reset, "transmit after reset: {t:?}");
            assert!(!self.ended, "transmit after the response ended: {t:?}");
            match t {
                ServerTransmit::Head(_) => {
                    assert!(!self.head, "second response head");
                    self.head = true;
                }
                ServerTransmit::Data(_) => assert!(self.head, "data before the head"),
                ServerTransmit::Trailers(_) => {
                    assert!(self.head, "trailers before the head");
                    assert_eq!(call.protocol(), Some(Protocol::Grpc), "HTTP trailers");
                    self.ended = true;
                }
                ServerTransmit::End => {
                    assert!(self.head, "end before the head");
                    self.ended = true;
                }
                ServerTransmit::Reset => self.reset = true,
            }
            if self.ended || self.reset {
                assert!(
                    call.is_finished(),
                    "response ended but the call is not finished"
                );
            }
        }
        while let Some(e) = call.poll_event() {
            assert!(
                self.outcome.is_none(),
                "event after the final status: {e:?}"
            );
            match e {
                ServerEvent::Message(m) => {
                    assert!(!self.input_closed, "message after InputClosed");
                    assert!(m.len() <= max_recv, "message over the receive limit");
                    self.messages.push(m);
                    assert!(
                        self.client_streams || self.messages.len() <= 1,
                        "second unary message"
                    );
                }
                ServerEvent::InputClosed => {
                    assert!(!self.input_closed, "InputClosed twice");
                    self.input_closed = true;
                }
                ServerEvent::Finished(outcome) => {
                    if let Err(status) = &outcome {
                        assert!(!status.code().is_ok(), "failed with ok");
                    }
                    assert!(call.is_finished());
                    self.outcome = Some(outcome);
                }
            }
        }
    }
}

/// A [`ServerCall`] under test: [`ServerRun::apply`] feeds it one operation and checks everything it
/// emits. Every method panics when a property fails.
#[derive(Debug)]
pub struct ServerRun {
    call: ServerCall,
    now: Instant,
    max_recv: usize,
    watch: ServerWatch,
}

impl ServerRun {
    /// A call started from the script's request head and settings (its operations are not run).
    pub fn new(script: &ServerScript) -> Self {
        let now = Instant::now();
        let method = METHODS.get(usize::from(script.method)).copied();
        let path = method.map_or("/test.v1.Echo/Missing", |m| m.path);
        let mut uri = format!("http://fuzz{path}");
        if !script.query.is_empty() {
            uri.push('?');
            uri.push_str(&String::from_utf8_lossy(&script.query));
        }
        let mut request = http::Request::new(());
        *request.uri_mut() = uri.parse().unwrap_or_else(|_| path.parse().expect("path"));
        *request.method_mut() = match script.http_method % 3 {
            0 => Method::POST,
            1 => Method::GET,
            _ => Method::PUT,
        };
        *request.version_mut() = if script.options & 4 != 0 {
            http::Version::HTTP_11
        } else {
            http::Version::HTTP_2
        };
        *request.headers_mut() = header_map(&script.headers);
        let (parts, ()) = request.into_parts();
        let max_recv = usize::from(script.max_recv);
        let config = ServerConfig {
            compression: if script.options & 2 != 0 {
                CompressionRegistry::empty()
            } else {
                CompressionRegistry::default()
            },
            compress_min_bytes: 16,
            max_recv_message_size: max_recv,
            max_send_message_size: usize::from(script.max_send),
            require_connect_protocol_version: script.options & 1 != 0,
        };
        let mut run = ServerRun {
            call: ServerCall::new(&config, method, &parts, now),
            now,
            max_recv,
            watch: ServerWatch {
                client_streams: method.is_some_and(|m| m.stream_type.client_streams()),
                ..ServerWatch::default()
            },
        };
        run.drain();
        run
    }

    /// The call.
    pub fn call(&self) -> &ServerCall {
        &self.call
    }

    /// The request messages the call delivered so far.
    pub fn messages(&self) -> &[Bytes] {
        &self.watch.messages
    }

    /// Whether the call said its request ended (`InputClosed`).
    pub fn input_closed(&self) -> bool {
        self.watch.input_closed
    }

    /// The call's final event, once emitted.
    pub fn outcome(&self) -> Option<&Result<(), Status>> {
        self.watch.outcome.as_ref()
    }

    /// Whether the response ended on the wire (trailers, end or reset).
    pub fn response_ended(&self) -> bool {
        self.watch.ended || self.watch.reset
    }

    fn drain(&mut self) {
        self.watch.drain(&mut self.call, self.max_recv);
    }

    /// Feeds one operation, then drains and checks the outputs.
    pub fn apply(&mut self, op: &ServerOp) {
        let call = &mut self.call;
        match op {
            ServerOp::Data(d) => call.recv_data(Bytes::copy_from_slice(d)),
            ServerOp::Envelope(f, c, d) => call.recv_data(encode_envelope(
                *f,
                [Some("gzip"), Some("zstd")]
                    .get(usize::from(*c))
                    .copied()
                    .flatten(),
                d,
            )),
            ServerOp::End => call.recv_end(None),
            ServerOp::Reset => {
                call.recv_reset(Reset::H2(0x8));
                self.watch.reset = true;
                self.drain();
                assert!(self.call.is_finished());
                assert!(self.watch.outcome.is_some(), "reset without a final status");
            }
            ServerOp::Cancel => {
                let was_finished = call.is_finished();
                call.cancel();
                self.drain();
                assert!(self.call.is_finished() && self.watch.outcome.is_some());
                assert!(was_finished || self.watch.reset, "cancel without a reset");
            }
            ServerOp::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                let deadline = call.poll_timeout();
                call.handle_timeout(self.now);
                self.drain();
                if deadline.is_some_and(|d| d <= self.now) {
                    assert!(
                        self.call.is_finished(),
                        "deadline passed but the call goes on"
                    );
                }
                // A second, spurious timeout changes nothing.
                self.call.handle_timeout(self.now);
                assert!(self.call.poll_transmit().is_none() && self.call.poll_event().is_none());
            }
            ServerOp::SendHeaders(hs) => {
                let _ = call.send_headers(header_map(hs));
            }
            ServerOp::SendMessage(d) => {
                // Odd lengths are written in place; those starting with 0xff are then dropped unsent,
                // those starting with 0xfe sent twice through one writer.
                if d.len() % 2 == 1 {
                    let mut writer = call.message_writer();
                    writer.buffer().extend_from_slice(d);
                    match d[0] {
                        0xff => {}
                        0xfe => {
                            if writer.send_and_continue() == Ok(true) {
                                writer.buffer().extend_from_slice(d);
                            }
                            let _ = writer.send();
                        }
                        _ => {
                            let _ = writer.send();
                        }
                    }
                } else {
                    let _ = call.send_message(Bytes::copy_from_slice(d));
                }
            }
            ServerOp::Finish(code, message, details, trailers) => {
                let was_finished = call.is_finished();
                let _ = call.finish(outcome(*code, message, details), header_map(trailers));
                assert!(self.call.is_finished(), "finish left the call open");
                self.drain();
                if !was_finished {
                    assert!(
                        self.watch.ended || self.watch.reset,
                        "finished without ending the response"
                    );
                    assert!(
                        self.watch.outcome.is_some(),
                        "finished without a final event"
                    );
                }
            }
        }
        self.drain();
        if self.call.is_finished() {
            assert!(
                self.call.poll_timeout().is_none(),
                "a finished call wants a timer"
            );
        }
    }

    /// The connection goes away: every call reaches its final event.
    pub fn end(mut self) {
        self.call.recv_reset(Reset::ConnectionLost);
        self.watch.reset = true;
        self.drain();
        assert!(self.watch.outcome.is_some());
    }
}

/// Drives one [`ServerCall`] through a script, checking after every step.
pub fn server_call(script: ServerScript) {
    let mut run = ServerRun::new(&script);
    for op in &script.ops {
        run.apply(op);
    }
    run.end();
}
