//! One [`ClientCall`] driven by a script of application commands and response inputs, every
//! output checked against the rules drivers rely on: the `client_call` fuzz target, and the system
//! under test of the state-machine model in `tests/model.rs`.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use super::format::{
    encode_envelope, header_map, pick, Reader, Writer, CODECS, COMPRESSIONS, PROTOCOLS,
};
use super::METHODS;
use crate::compression::CompressionRegistry;
use crate::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit, Instant, MethodInfo, Reset,
    Status,
};

/// Client settings and a sequence of commands and response inputs for one [`ClientCall`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClientScript {
    /// Index into Connect, gRPC, gRPC-Web.
    pub protocol: u8,
    /// Index into proto, JSON.
    pub codec: u8,
    /// Index into the methods.
    pub method: u8,
    /// Index into none, gzip, zstd, an unknown name.
    pub send_compression: u8,
    /// Bit 0: Connect GET; bit 1: accept no compression; bit 2: a timeout.
    pub options: u8,
    /// The timeout in milliseconds (with `options` bit 2).
    pub timeout_ms: u16,
    /// Receive limit.
    pub max_recv: u16,
    /// The operations, in order.
    pub ops: Vec<ClientOp>,
}

/// One application command or response input of a [`ClientScript`].
#[derive(Clone, Debug, PartialEq)]
pub enum ClientOp {
    /// `send_message`, or for odd lengths `message_writer` (then dropped unsent when the first byte
    /// is 0xff).
    SendMessage(Vec<u8>),
    /// `close_send`.
    CloseSend,
    /// `cancel`.
    Cancel,
    /// The response head: HTTP status and headers.
    RecvHead(u16, Vec<(Vec<u8>, Vec<u8>)>),
    /// A raw body chunk.
    Data(Vec<u8>),
    /// An envelope (flags, compression index into gzip, zstd, payload).
    Envelope(u8, u8, Vec<u8>),
    /// HTTP trailers.
    Trailers(Vec<(Vec<u8>, Vec<u8>)>),
    /// End of the response body without trailers.
    End,
    /// Reset with an HTTP/2 code (`u32::MAX`: the connection failed).
    Reset(u32),
    /// The clock advances by this many milliseconds, then `handle_timeout`.
    Advance(u16),
}

impl ClientScript {
    /// The script these bytes read as (any bytes read as one).
    pub fn from_bytes(data: &[u8]) -> Self {
        Self::read(&mut Reader::new(data))
    }

    fn read(u: &mut Reader<'_>) -> Self {
        ClientScript {
            protocol: u.u8(),
            codec: u.u8(),
            method: u.u8(),
            send_compression: u.u8(),
            options: u.u8(),
            timeout_ms: u.u16(),
            max_recv: u.u16(),
            ops: u.ops(|u| match u.u8() % 10 {
                0 => ClientOp::SendMessage(u.bytes()),
                1 => ClientOp::CloseSend,
                2 => ClientOp::Cancel,
                3 => ClientOp::RecvHead(u.u16(), u.headers()),
                4 => ClientOp::Data(u.bytes()),
                5 => ClientOp::Envelope(u.u8(), u.u8(), u.bytes()),
                6 => ClientOp::Trailers(u.headers()),
                7 => ClientOp::End,
                8 => ClientOp::Reset(u.u32()),
                _ => ClientOp::Advance(u.u16()),
            }),
        }
    }

    /// The script in its byte format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.protocol);
        w.u8(self.codec);
        w.u8(self.method);
        w.u8(self.send_compression);
        w.u8(self.options);
        w.u16(self.timeout_ms);
        w.u16(self.max_recv);
        for op in &self.ops {
            match op {
                ClientOp::SendMessage(d) => {
                    w.u8(0);
                    w.bytes(d);
                }
                ClientOp::CloseSend => w.u8(1),
                ClientOp::Cancel => w.u8(2),
                ClientOp::RecvHead(status, hs) => {
                    w.u8(3);
                    w.u16(*status);
                    w.headers(hs);
                }
                ClientOp::Data(d) => {
                    w.u8(4);
                    w.bytes(d);
                }
                ClientOp::Envelope(f, c, d) => {
                    w.u8(5);
                    w.u8(*f);
                    w.u8(*c);
                    w.bytes(d);
                }
                ClientOp::Trailers(hs) => {
                    w.u8(6);
                    w.headers(hs);
                }
                ClientOp::End => w.u8(7),
                ClientOp::Reset(code) => {
                    w.u8(8);
                    w.u32(*code);
                }
                ClientOp::Advance(ms) => {
                    w.u8(9);
                    w.u16(*ms);
                }
            }
        }
        w.0
    }
}

/// Checks what a [`ClientCall`] emits against the rules every driver relies on.
#[derive(Debug, Default)]
struct ClientWatch {
    head: bool,
    ended: bool,
    aborted: bool,
    headers: bool,
    messages: Vec<Bytes>,
    outcome: Option<Result<(), Status>>,
}

impl ClientWatch {
    /// Drains the outputs; returns whether anything was transmitted.
    fn drain(&mut self, call: &mut ClientCall, method: MethodInfo, max_recv: usize) -> bool {
        let mut transmitted = false;
        while let Some(t) = call.poll_transmit() {
            transmitted = true;
            assert!(!self.aborted, "transmit after abort: {t:?}");
            match t {
                ClientTransmit::Head(_) => {
                    assert!(!self.head, "second request head");
                    self.head = true;
                }
                ClientTransmit::Data(_) => {
                    assert!(self.head && !self.ended, "data outside the request body");
                }
                ClientTransmit::End => {
                    assert!(self.head && !self.ended, "end outside the request body");
                    self.ended = true;
                }
                ClientTransmit::Reset => {
                    assert!(self.head, "reset before the head");
                    self.aborted = true;
                }
            }
        }
        while let Some(e) = call.poll_event() {
            assert!(self.outcome.is_none(), "event after Finished: {e:?}");
            match e {
                ClientEvent::Headers(_) => {
                    assert!(
                        !self.headers && self.messages.is_empty(),
                        "headers out of place"
                    );
                    self.headers = true;
                }
                ClientEvent::Message(m) => {
                    assert!(m.len() <= max_recv, "message over the receive limit");
                    self.messages.push(m);
                    assert!(method.stream_type.server_streams() || self.messages.len() == 1);
                }
                ClientEvent::Finished { result, .. } => {
                    assert!(call.is_finished());
                    if result.is_ok() && !method.stream_type.server_streams() {
                        assert_eq!(
                            self.messages.len(),
                            1,
                            "a unary success without its message"
                        );
                    }
                    self.outcome = Some(result);
                }
            }
        }
        assert_eq!(
            call.is_finished(),
            self.outcome.is_some(),
            "is_finished disagrees"
        );
        if self.outcome.is_some() {
            assert!(
                call.poll_timeout().is_none(),
                "a finished call wants a timer"
            );
        }
        transmitted
    }
}

/// A [`ClientCall`] under test: [`ClientRun::apply`] feeds it one operation and checks everything
/// it emits. Every method panics when a property fails.
#[derive(Debug)]
pub struct ClientRun {
    call: ClientCall,
    method: MethodInfo,
    now: Instant,
    max_recv: usize,
    watch: ClientWatch,
}

impl ClientRun {
    /// A call made with the script's settings (its operations are not run).
    pub fn new(script: &ClientScript) -> Self {
        let now = Instant::now();
        let method = pick(&mut Reader::new(&[script.method]), &METHODS);
        let mut config = ClientConfig::new(
            pick(&mut Reader::new(&[script.protocol]), &PROTOCOLS),
            pick(&mut Reader::new(&[script.codec]), &CODECS),
        );
        config.send_compression = pick(&mut Reader::new(&[script.send_compression]), &COMPRESSIONS)
            .and_then(|name| CompressionRegistry::default().get(name).map(|c| c.name()));
        config.use_get = script.options & 1 != 0;
        if script.options & 2 != 0 {
            config.compression = CompressionRegistry::empty();
        }
        config.compress_min_bytes = 16;
        config.max_recv_message_size = usize::from(script.max_recv);
        config.timeout =
            (script.options & 4 != 0).then(|| Duration::from_millis(u64::from(script.timeout_ms)));
        let base: http::Uri = "http://fuzz".parse().expect("uri");
        let mut run = ClientRun {
            call: ClientCall::new(&config, method, &base, CallOptions::default(), now),
            method,
            now,
            max_recv: config.max_recv_message_size,
            watch: ClientWatch::default(),
        };
        run.drain();
        run
    }

    /// The call.
    pub fn call(&self) -> &ClientCall {
        &self.call
    }

    /// The response messages the call delivered so far.
    pub fn messages(&self) -> &[Bytes] {
        &self.watch.messages
    }

    /// The call's outcome, once `Finished` was emitted.
    pub fn outcome(&self) -> Option<&Result<(), Status>> {
        self.watch.outcome.as_ref()
    }

    /// Whether the request was aborted on the wire.
    pub fn aborted(&self) -> bool {
        self.watch.aborted
    }

    /// Whether the request head went out.
    pub fn head_sent(&self) -> bool {
        self.watch.head
    }

    /// Whether the request body ended on the wire.
    pub fn request_ended(&self) -> bool {
        self.watch.ended
    }

    fn drain(&mut self) -> bool {
        self.watch.drain(&mut self.call, self.method, self.max_recv)
    }

    /// Feeds one operation, then drains and checks the outputs.
    pub fn apply(&mut self, op: &ClientOp) {
        let finished_before = self.watch.outcome.is_some();
        let mut transmitted = false;
        let call = &mut self.call;
        match op {
            ClientOp::SendMessage(d) => {
                // Odd lengths are written in place; those starting with 0xff are then dropped unsent.
                if d.len() % 2 == 1 {
                    let mut writer = call.message_writer();
                    writer.buffer().extend_from_slice(d);
                    if d[0] != 0xff {
                        let _ = writer.send();
                    }
                } else {
                    let _ = call.send_message(Bytes::copy_from_slice(d));
                }
            }
            ClientOp::CloseSend => {
                let _ = call.close_send();
            }
            ClientOp::Cancel => call.cancel(),
            ClientOp::RecvHead(status, hs) => {
                let mut response = http::Response::new(());
                *response.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
                *response.headers_mut() = header_map(hs);
                call.recv_head(response);
            }
            ClientOp::Data(d) => call.recv_data(Bytes::copy_from_slice(d)),
            ClientOp::Envelope(f, c, d) => call.recv_data(encode_envelope(
                *f,
                ["gzip", "zstd"].get(usize::from(*c)).copied(),
                d,
            )),
            ClientOp::Trailers(hs) => call.recv_end(Some(header_map(hs))),
            ClientOp::End => call.recv_end(None),
            ClientOp::Reset(code) => call.recv_reset(if *code == u32::MAX {
                Reset::ConnectionLost
            } else if code & 0x8000_0000 != 0 {
                Reset::H3(u64::from(code & 0x7fff_ffff))
            } else {
                Reset::H2(*code)
            }),
            ClientOp::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                let deadline = call.poll_timeout();
                call.handle_timeout(self.now);
                transmitted |= self.drain();
                if deadline.is_some_and(|d| d <= self.now) {
                    assert!(
                        matches!(self.watch.outcome, Some(Err(_))),
                        "deadline passed but the call goes on"
                    );
                }
                self.call.handle_timeout(self.now);
            }
        }
        transmitted |= self.drain();
        // Nothing at all happens after the final status, not even an abort.
        assert!(!(finished_before && transmitted), "transmit after Finished");
        if matches!(
            op,
            ClientOp::Reset(_) | ClientOp::End | ClientOp::Trailers(_)
        ) {
            assert!(
                self.watch.outcome.is_some(),
                "the response ended but the call did not finish"
            );
        }
    }

    /// The response ends: the call reaches its final event.
    pub fn end(mut self) {
        self.call.recv_end(None);
        self.drain();
        assert!(
            self.watch.outcome.is_some(),
            "the response ended but the call did not finish"
        );
    }
}

/// Drives one [`ClientCall`] through a script, checking after every step.
pub fn client_call(script: ClientScript) {
    let mut run = ClientRun::new(&script);
    for op in &script.ops {
        run.apply(op);
    }
    run.end();
}
