//! Two call machines in memory on a virtual clock: a [`ClientCall`] talks to a [`ServerCall`] with
//! no sockets and no async runtime (feature `testing`).
//!
//! [`Pair`] moves each side's transmits to the other (re-chunking body data when asked), runs a
//! scripted server application ([`Script`]: echo, or fixed replies, with headers, trailers and an
//! outcome), and jumps the clock to the next wakeup when nothing else can happen, so deadlines are
//! tested in no time. What each side saw is kept in [`Observed`], and the whole exchange, wire and
//! application steps, in [`Observed::trace`] when [`Pair::record`] is on. The core's own tests, the
//! fuzz targets and the benchmarks use it; so can property tests of an application's protocol edge
//! cases.
//!
//! ```
//! use std::time::Duration;
//! use connect_proto::testing::{client_config, server_config, Pair, UNARY};
//! use connect_proto::{CallOptions, Codec, Protocol};
//!
//! let config = client_config(Protocol::Grpc, Codec::Proto, Some("gzip"));
//! let mut pair = Pair::new(&config, server_config(), UNARY, CallOptions::default());
//! pair.request_chunks = vec![1]; // a byte at a time
//! pair.client.send_message(bytes::Bytes::from_static(b"\x0a\x02hi")).unwrap();
//! pair.run(Duration::from_secs(1));
//! assert_eq!(pair.observed.finished().0, &Ok(()));
//! assert_eq!(pair.observed.messages(), vec![bytes::Bytes::from_static(b"\x0a\x02hi")]);
//! ```
//!
//! For measuring the machines rather than exchanges, [`capture_request`], [`serve_echo`] and
//! [`deliver_response`] run one side at a time.
//!
//! The machines under test, for property tests and fuzzing: [`ServerRun`] and [`ClientRun`] feed
//! one machine one operation at a time ([`ServerOp`], [`ClientOp`]) and check every output against
//! the rules drivers rely on (one head, first; nothing after the end or the final event; limits;
//! deadlines); [`PairScript`] describes one whole exchange of the pair and [`call_pair`] checks that
//! it delivers what each application sent. Scripts read from any bytes and write back to the bytes
//! they came from ([`ServerScript::from_bytes`], [`ServerScript::to_bytes`]), which is how the fuzz
//! targets get them and how real exchanges become seeds. [`properties`] holds the parsers'
//! properties. `tests/model.rs` drives the machines from a proptest state-machine model, and the
//! fuzz targets (`connect_proto::fuzzing`) from arbitrary bytes, through this same code.

mod client_run;
mod format;
mod pair_script;
pub mod properties;
mod server_run;

pub use client_run::{client_call, ClientOp, ClientRun, ClientScript};
pub use pair_script::{call_pair, PairScript};
pub use server_run::{server_call, ServerOp, ServerRun, ServerScript};

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use crate::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit, Code, Codec, ErrorDetail,
    Instant, MethodInfo, Protocol, Reset, ServerCall, ServerConfig, ServerEvent, ServerTransmit,
    Status, StreamType,
};

/// A unary method (without side effects, so Connect may call it with GET).
pub const UNARY: MethodInfo = MethodInfo {
    path: "/test.v1.Echo/Unary",
    stream_type: StreamType::Unary,
    no_side_effects: true,
};
/// A client-streaming method.
pub const CLIENT_STREAM: MethodInfo = MethodInfo {
    path: "/test.v1.Echo/ClientStream",
    stream_type: StreamType::ClientStreaming,
    no_side_effects: false,
};
/// A server-streaming method.
pub const SERVER_STREAM: MethodInfo = MethodInfo {
    path: "/test.v1.Echo/ServerStream",
    stream_type: StreamType::ServerStreaming,
    no_side_effects: false,
};
/// A bidi-streaming method.
pub const BIDI_STREAM: MethodInfo = MethodInfo {
    path: "/test.v1.Echo/BidiStream",
    stream_type: StreamType::BidiStreaming,
    no_side_effects: false,
};
/// The four methods the pair's server serves.
pub const METHODS: [MethodInfo; 4] = [UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI_STREAM];

/// The method served at `path`, if any.
pub fn lookup(path: &str) -> Option<MethodInfo> {
    METHODS.into_iter().find(|m| m.path == path)
}

/// What the scripted server application answers.
#[derive(Clone, Debug)]
pub enum Replies {
    /// The requests back: each bidi request once as it arrives, each server-stream request
    /// `copies` times, a unary request once and the client stream's requests joined into one, at
    /// the end of the request.
    Echo {
        /// Copies of a server-streaming request.
        copies: usize,
    },
    /// These messages, once the request ended.
    Fixed(Vec<Bytes>),
}

/// What the scripted server application does.
#[derive(Clone, Debug)]
pub struct Script {
    /// Response headers, sent before the first message.
    pub headers: HeaderMap,
    /// Trailers, sent with the outcome.
    pub trailers: HeaderMap,
    /// The outcome, once the request ended (a failed unary call sends no message).
    pub outcome: Result<(), Status>,
    /// The response messages.
    pub replies: Replies,
    /// Never finish (deadlines, cancellation).
    pub hang: bool,
    /// Write response messages in place ([`ServerCall::message_writer`]) instead of with
    /// [`ServerCall::send_message`].
    pub in_place: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            headers: HeaderMap::new(),
            trailers: HeaderMap::new(),
            outcome: Ok(()),
            replies: Replies::Echo { copies: 3 },
            hang: false,
            in_place: false,
        }
    }
}

/// One step of an exchange, in the order it happened.
#[derive(Clone, Debug)]
pub enum Wire {
    /// The request head crossed.
    RequestHead(http::request::Parts),
    /// A request body chunk crossed (after re-chunking).
    RequestData(Bytes),
    /// The request body ended.
    RequestEnd,
    /// The client reset the request.
    RequestReset,
    /// The response head crossed.
    ResponseHead(http::response::Parts),
    /// A response body chunk crossed (after re-chunking).
    ResponseData(Bytes),
    /// The response trailers crossed, ending it.
    ResponseTrailers(HeaderMap),
    /// The response ended without trailers.
    ResponseEnd,
    /// The server reset the response.
    ResponseReset,
    /// The server application sent headers.
    AppHeaders(HeaderMap),
    /// The server application sent a message.
    AppMessage(Bytes),
    /// The server application finished the call.
    AppFinish(Result<(), Status>, HeaderMap),
}

/// What each side saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// The client's events, in order.
    pub client_events: Vec<ClientEvent>,
    /// The server's events, in order.
    pub server_events: Vec<ServerEvent>,
    /// The request head the server got.
    pub request_head: Option<http::request::Parts>,
    /// The response head the client got.
    pub response_head: Option<http::response::Parts>,
    /// The client reset the request.
    pub client_reset: bool,
    /// The server reset the response.
    pub server_reset: bool,
    /// Whether the server application finished the call (rather than the call itself).
    pub app_finished: bool,
    /// The whole exchange, when [`Pair::record`] is on.
    pub trace: Vec<Wire>,
}

impl Observed {
    /// The response messages the client got.
    pub fn messages(&self) -> Vec<Bytes> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// The request messages the server got.
    pub fn requests(&self) -> Vec<Bytes> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// The response headers the client got.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.client_events.iter().find_map(|e| match e {
            ClientEvent::Headers(h) => Some(h),
            _ => None,
        })
    }

    /// The client's outcome and trailers.
    ///
    /// # Panics
    ///
    /// If the client's last event is not `Finished`.
    pub fn finished(&self) -> (&Result<(), Status>, &HeaderMap) {
        match self.client_events.last() {
            Some(ClientEvent::Finished { result, trailers }) => (result, trailers),
            other => panic!(
                "client did not finish last: {other:?} in {:?}",
                self.client_events
            ),
        }
    }

    /// The server's outcome, once it finished.
    pub fn server_outcome(&self) -> Option<&Result<(), Status>> {
        self.server_events.iter().find_map(|e| match e {
            ServerEvent::Finished(outcome) => Some(outcome),
            _ => None,
        })
    }

    /// The status the server call ended with on its own (deadline, protocol error, reset,
    /// rejection), not through the application.
    pub fn server_aborted(&self) -> Option<&Status> {
        match self.server_outcome() {
            Some(Err(status)) if !self.app_finished => Some(status),
            _ => None,
        }
    }
}

/// A client call and the server call it creates, in memory on a virtual clock.
#[derive(Debug)]
pub struct Pair {
    /// When the pair was made.
    pub start: Instant,
    /// The virtual clock.
    pub now: Instant,
    /// The client side; feed it commands between [`Pair::step`]s.
    pub client: ClientCall,
    /// The server side, once the request head crossed.
    pub server: Option<ServerCall>,
    /// The server's settings.
    pub server_config: ServerConfig,
    /// The server application.
    pub script: Script,
    /// Request body chunk sizes, cycling (empty: chunks cross as sent).
    pub request_chunks: Vec<usize>,
    /// Response body chunk sizes, cycling (empty: chunks cross as sent).
    pub response_chunks: Vec<usize>,
    /// Keep [`Observed::trace`].
    pub record: bool,
    /// What each side saw.
    pub observed: Observed,
    /// Requests the application got so far.
    received: Vec<Bytes>,
    headers_sent: bool,
}

/// Splits `data` into pieces of `sizes` bytes, cycling through them (0 counts as 1).
pub fn rechunk(data: Bytes, sizes: &[usize]) -> Vec<Bytes> {
    if sizes.is_empty() || data.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        out.push(rest.split_to(n.max(1).min(rest.len())));
    }
    out
}

impl Pair {
    /// A client call of `method` on a server with `server_config`, at [`Instant::now`].
    pub fn new(
        client_config: &ClientConfig,
        server_config: ServerConfig,
        method: MethodInfo,
        options: CallOptions,
    ) -> Pair {
        let start = Instant::now();
        let base = http::Uri::from_static("http://127.0.0.1:8080");
        let client = ClientCall::new(client_config, method, &base, options, start);
        Pair {
            start,
            now: start,
            client,
            server: None,
            server_config,
            script: Script::default(),
            request_chunks: Vec::new(),
            response_chunks: Vec::new(),
            record: false,
            observed: Observed::default(),
            received: Vec::new(),
            headers_sent: false,
        }
    }

    fn trace(&mut self, wire: impl FnOnce() -> Wire) {
        if self.record {
            self.observed.trace.push(wire());
        }
    }

    /// Moves everything that can move now; returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let mut progressed = false;
        while let Some(transmit) = self.client.poll_transmit() {
            progressed = true;
            self.deliver_request(transmit);
        }
        while let Some(event) = self.server.as_mut().and_then(ServerCall::poll_event) {
            progressed = true;
            self.run_app(&event);
            self.observed.server_events.push(event);
        }
        while let Some(transmit) = self.server.as_mut().and_then(ServerCall::poll_transmit) {
            progressed = true;
            self.deliver_response(transmit);
        }
        while let Some(event) = self.client.poll_event() {
            progressed = true;
            self.observed.client_events.push(event);
        }
        progressed
    }

    fn deliver_request(&mut self, transmit: ClientTransmit) {
        match transmit {
            ClientTransmit::Head(request) => {
                let (parts, ()) = request.into_parts();
                self.trace(|| Wire::RequestHead(parts.clone()));
                let method = lookup(parts.uri.path());
                self.server = Some(ServerCall::new(
                    &self.server_config,
                    method,
                    &parts,
                    self.now,
                ));
                self.observed.request_head = Some(parts);
            }
            ClientTransmit::Data(data) => {
                for chunk in rechunk(data, &self.request_chunks) {
                    self.trace(|| Wire::RequestData(chunk.clone()));
                    if let Some(server) = self.server.as_mut() {
                        server.recv_data(chunk);
                    }
                }
            }
            ClientTransmit::End => {
                self.trace(|| Wire::RequestEnd);
                if let Some(server) = self.server.as_mut() {
                    server.recv_end(None);
                }
            }
            ClientTransmit::Reset => {
                self.trace(|| Wire::RequestReset);
                self.observed.client_reset = true;
                if let Some(server) = self.server.as_mut() {
                    server.recv_reset(Reset::H2(0x8));
                }
            }
        }
    }

    fn deliver_response(&mut self, transmit: ServerTransmit) {
        match transmit {
            ServerTransmit::Head(response) => {
                let (parts, ()) = response.into_parts();
                self.trace(|| Wire::ResponseHead(parts.clone()));
                self.observed.response_head = Some(parts.clone());
                self.client.recv_head(http::Response::from_parts(parts, ()));
            }
            ServerTransmit::Data(data) => {
                for chunk in rechunk(data, &self.response_chunks) {
                    self.trace(|| Wire::ResponseData(chunk.clone()));
                    self.client.recv_data(chunk);
                }
            }
            ServerTransmit::Trailers(trailers) => {
                self.trace(|| Wire::ResponseTrailers(trailers.clone()));
                self.client.recv_end(Some(trailers));
            }
            ServerTransmit::End => {
                self.trace(|| Wire::ResponseEnd);
                self.client.recv_end(None);
            }
            ServerTransmit::Reset => {
                self.trace(|| Wire::ResponseReset);
                self.observed.server_reset = true;
                self.client.recv_reset(Reset::H2(0x8));
            }
        }
    }

    /// The scripted application's answer to one server event.
    fn run_app(&mut self, event: &ServerEvent) {
        if self.observed.app_finished || self.server.as_ref().is_none_or(ServerCall::is_finished) {
            return;
        }
        let stream_type = self
            .observed
            .request_head
            .as_ref()
            .and_then(|h| lookup(h.uri.path()))
            .map_or(StreamType::Unary, |m| m.stream_type);
        match event {
            ServerEvent::Message(message) => {
                self.received.push(message.clone());
                self.send_headers_once();
                if let Replies::Echo { copies } = self.script.replies {
                    let copies = match stream_type {
                        StreamType::BidiStreaming => 1,
                        StreamType::ServerStreaming => copies,
                        _ => 0,
                    };
                    for _ in 0..copies {
                        self.respond(message.clone());
                    }
                }
            }
            ServerEvent::InputClosed => {
                if self.script.hang {
                    return;
                }
                if self.script.outcome.is_ok() || stream_type.server_streams() {
                    let replies = match &self.script.replies {
                        Replies::Fixed(replies) => replies.clone(),
                        Replies::Echo { .. } => match stream_type {
                            StreamType::Unary => {
                                self.received.first().cloned().into_iter().collect()
                            }
                            StreamType::ClientStreaming => vec![self.received.concat().into()],
                            _ => Vec::new(),
                        },
                    };
                    let replies = match stream_type {
                        // A unary success has exactly one message; a failure none.
                        _ if !stream_type.server_streams() && self.script.outcome.is_err() => {
                            Vec::new()
                        }
                        _ if !stream_type.server_streams() => {
                            vec![replies.into_iter().next().unwrap_or_default()]
                        }
                        _ => replies,
                    };
                    for reply in replies {
                        self.respond(reply);
                    }
                }
                self.send_headers_once();
                let (outcome, trailers) =
                    (self.script.outcome.clone(), self.script.trailers.clone());
                self.trace(|| Wire::AppFinish(outcome.clone(), trailers.clone()));
                self.observed.app_finished = true;
                if let Some(server) = self.server.as_mut() {
                    server
                        .finish(outcome, trailers)
                        .expect("a well-behaved application");
                }
            }
            ServerEvent::Finished(_) => {}
        }
    }

    fn send_headers_once(&mut self) {
        if self.headers_sent || self.script.headers.is_empty() {
            return;
        }
        self.headers_sent = true;
        let headers = self.script.headers.clone();
        self.trace(|| Wire::AppHeaders(headers.clone()));
        if let Some(server) = self.server.as_mut() {
            server
                .send_headers(headers)
                .expect("a well-behaved application");
        }
    }

    /// Sends one response message, written in place or as a payload.
    fn respond(&mut self, payload: Bytes) {
        self.send_headers_once();
        self.trace(|| Wire::AppMessage(payload.clone()));
        let in_place = self.script.in_place;
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let sent = if in_place {
            let mut writer = server.message_writer();
            writer.buffer().extend_from_slice(&payload);
            writer.send()
        } else {
            server.send_message(payload)
        };
        sent.expect("a well-behaved application");
    }

    /// Runs until quiet, jumping the clock to the next timer when stuck, until the client finishes or
    /// `limit` of virtual time has passed.
    pub fn run(&mut self, limit: Duration) {
        loop {
            while self.step() {}
            if self.client.is_finished() {
                while self.step() {}
                return;
            }
            let next = [
                self.client.poll_timeout(),
                self.server.as_ref().and_then(ServerCall::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= self.start + limit => {
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                    if let Some(server) = self.server.as_mut() {
                        server.handle_timeout(self.now);
                    }
                }
                _ => return,
            }
        }
    }
}

/// A client configuration that compresses every message with `compression`.
pub fn client_config(
    protocol: Protocol,
    codec: Codec,
    compression: Option<&'static str>,
) -> ClientConfig {
    let mut config = ClientConfig::new(protocol, codec);
    config.send_compression = compression;
    config.compress_min_bytes = 0;
    config
}

/// A server configuration that compresses every response the client accepts compressed.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        compress_min_bytes: 0,
        ..ServerConfig::default()
    }
}

/// Metadata from name-value pairs (repeated names append).
///
/// # Panics
///
/// On a value that is not a valid header value.
pub fn metadata(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).expect("a header value"));
    }
    map
}

/// An error with a non-ASCII message and two details (one with bytes that are not UTF-8).
pub fn rich_error() -> Status {
    Status::new(Code::FAILED_PRECONDITION, "bad state: naïve 100% ✓")
        .with_detail(ErrorDetail::new(
            "google.rpc.RetryInfo",
            Bytes::from_static(b"\x0a\x02\x08\x05"),
        ))
        .with_detail(ErrorDetail::new(
            "test.v1.Extra",
            Bytes::from_static(b"\x00\xff"),
        ))
}

/// A request as a client machine emits it.
#[derive(Debug)]
pub struct CapturedRequest {
    /// The head.
    pub parts: http::request::Parts,
    /// The body chunks.
    pub body: Vec<Bytes>,
}

/// Runs a client machine for `payloads` (closing its side) and captures what it sends.
///
/// # Panics
///
/// When the client refuses the messages or resets the call.
pub fn capture_request(
    config: &ClientConfig,
    method: MethodInfo,
    payloads: impl IntoIterator<Item = Bytes>,
) -> (ClientCall, CapturedRequest) {
    let base = http::Uri::from_static("http://127.0.0.1:8080");
    let mut client = ClientCall::new(
        config,
        method,
        &base,
        CallOptions::default(),
        Instant::now(),
    );
    for payload in payloads {
        client.send_message(payload).expect("send");
    }
    client.close_send().expect("close");
    let mut head = None;
    let mut body = Vec::new();
    while let Some(transmit) = client.poll_transmit() {
        match transmit {
            ClientTransmit::Head(h) => head = Some(h),
            ClientTransmit::Data(d) => body.push(d),
            ClientTransmit::End => {}
            ClientTransmit::Reset => panic!("the client reset the call"),
        }
    }
    let (parts, ()) = head.expect("a request head").into_parts();
    (client, CapturedRequest { parts, body })
}

/// Runs a server machine over a captured request, echoing each request message `copies` times,
/// and returns what it sends.
///
/// # Panics
///
/// When the server refuses the application's commands.
pub fn serve_echo(
    config: &ServerConfig,
    method: MethodInfo,
    request: &CapturedRequest,
    copies: usize,
) -> Vec<ServerTransmit> {
    let mut server = ServerCall::new(config, Some(method), &request.parts, Instant::now());
    for chunk in &request.body {
        server.recv_data(chunk.clone());
    }
    server.recv_end(None);
    let mut out = Vec::new();
    while let Some(event) = server.poll_event() {
        match event {
            ServerEvent::Message(message) => {
                for _ in 0..copies {
                    server.send_message(message.clone()).expect("send");
                    out.extend(std::iter::from_fn(|| server.poll_transmit()));
                }
            }
            ServerEvent::InputClosed => server.finish(Ok(()), HeaderMap::new()).expect("finish"),
            ServerEvent::Finished(_) => {}
        }
    }
    out.extend(std::iter::from_fn(|| server.poll_transmit()));
    out
}

/// Feeds a server's output to a client machine; returns how many messages it received.
///
/// # Panics
///
/// When the call does not succeed.
pub fn deliver_response(client: &mut ClientCall, response: Vec<ServerTransmit>) -> usize {
    let mut messages = 0;
    for transmit in response {
        match transmit {
            ServerTransmit::Head(head) => client.recv_head(head),
            ServerTransmit::Data(data) => client.recv_data(data),
            ServerTransmit::Trailers(trailers) => client.recv_end(Some(trailers)),
            ServerTransmit::End => client.recv_end(None),
            ServerTransmit::Reset => client.recv_reset(Reset::H2(0x8)),
        }
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Message(_) => messages += 1,
                ClientEvent::Finished { result, .. } => result.expect("the call succeeded"),
                ClientEvent::Headers(_) => {}
            }
        }
    }
    messages
}
