//! Two peers in memory on a virtual clock: a `ClientCall` talks to a `ServerCall` with no sockets.
//!
//! The server side runs a scripted application (echo with headers, trailers and a configurable
//! outcome); the pair moves transmits across, optionally re-chunking body data, and jumps the clock to
//! the next wakeup when nothing else can happen.

#![allow(dead_code, unreachable_pub)]

pub mod raw;

use std::time::Duration;

use bytes::Bytes;
use connect_proto::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit, Code, Codec, ErrorDetail,
    Instant, MethodInfo, Protocol, ServerCall, ServerConfig, ServerEvent, ServerTransmit, Status,
    StreamType,
};
use http::{HeaderMap, HeaderValue};

pub const UNARY: MethodInfo = MethodInfo {
    path: "/test.v1.Echo/Unary",
    stream_type: StreamType::Unary,
    no_side_effects: true,
};
pub const CLIENT_STREAM: MethodInfo = MethodInfo {
    path: "/test.v1.Echo/ClientStream",
    stream_type: StreamType::ClientStreaming,
    no_side_effects: false,
};
pub const SERVER_STREAM: MethodInfo = MethodInfo {
    path: "/test.v1.Echo/ServerStream",
    stream_type: StreamType::ServerStreaming,
    no_side_effects: false,
};
pub const BIDI_STREAM: MethodInfo = MethodInfo {
    path: "/test.v1.Echo/BidiStream",
    stream_type: StreamType::BidiStreaming,
    no_side_effects: false,
};
pub const METHODS: [MethodInfo; 4] = [UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI_STREAM];

pub fn lookup(path: &str) -> Option<MethodInfo> {
    METHODS.into_iter().find(|m| m.path == path)
}

/// What the scripted server application does.
#[derive(Clone, Debug)]
pub struct Script {
    /// Response headers sent before the first message.
    pub headers: HeaderMap,
    /// Trailers sent with the outcome.
    pub trailers: HeaderMap,
    /// The outcome the handler returns once the request stream closed.
    pub outcome: Result<(), Status>,
    /// Server-streaming: how many copies of the request are sent back.
    pub copies: usize,
    /// Never finish (for deadline and cancellation tests).
    pub hang: bool,
    /// Write response messages in place (`ServerCall::message_writer`) instead of `send_message`.
    pub in_place: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            headers: HeaderMap::new(),
            trailers: HeaderMap::new(),
            outcome: Ok(()),
            copies: 3,
            hang: false,
            in_place: false,
        }
    }
}

/// Everything one side observed.
#[derive(Debug, Default)]
pub struct Observed {
    pub client_events: Vec<ClientEvent>,
    pub server_events: Vec<ServerEvent>,
    pub response_status: Option<http::StatusCode>,
    pub request_head: Option<http::request::Parts>,
    pub response_head: Option<http::response::Parts>,
    pub client_aborted: bool,
}

impl Observed {
    pub fn messages(&self) -> Vec<Bytes> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn headers(&self) -> Option<&HeaderMap> {
        self.client_events.iter().find_map(|e| match e {
            ClientEvent::Headers(h) => Some(h),
            _ => None,
        })
    }

    pub fn finished(&self) -> (&Result<(), Status>, &HeaderMap) {
        match self.client_events.last() {
            Some(ClientEvent::Finished { result, trailers }) => (result, trailers),
            other => panic!(
                "client did not finish last: {other:?} in {:?}",
                self.client_events
            ),
        }
    }

    pub fn server_aborted(&self) -> Option<&Status> {
        self.server_events.iter().find_map(|e| match e {
            ServerEvent::Aborted(s) => Some(s),
            _ => None,
        })
    }
}

pub struct Pair {
    pub start: Instant,
    pub now: Instant,
    pub client: ClientCall,
    pub server: Option<ServerCall>,
    pub server_config: ServerConfig,
    pub script: Script,
    /// Re-chunk body data into pieces of these sizes, cycling (empty: pass through).
    pub chunking: Vec<usize>,
    pub observed: Observed,
    /// Requests received so far by the scripted app (for unary-response and echo).
    received: Vec<Bytes>,
    server_finished: bool,
    headers_sent: bool,
    /// Response transmits held back until the server is asked (None: deliver at once).
    pub client_transport_trailers: bool,
}

impl Pair {
    pub fn new(
        client_config: &ClientConfig,
        server_config: ServerConfig,
        method: MethodInfo,
        options: CallOptions,
    ) -> Pair {
        let start = Instant::now();
        let base: http::Uri = "http://127.0.0.1:8080".parse().unwrap();
        let client = ClientCall::new(client_config, method, &base, options, start);
        Pair {
            start,
            now: start,
            client,
            server: None,
            server_config,
            script: Script::default(),
            chunking: Vec::new(),
            observed: Observed::default(),
            received: Vec::new(),
            server_finished: false,
            headers_sent: false,
            client_transport_trailers: true,
        }
    }

    fn rechunk(&self, data: Bytes) -> Vec<Bytes> {
        if self.chunking.is_empty() || data.is_empty() {
            return vec![data];
        }
        let mut out = Vec::new();
        let mut rest = data;
        let mut i = 0;
        while !rest.is_empty() {
            let n = self.chunking[i % self.chunking.len()]
                .max(1)
                .min(rest.len());
            out.push(rest.split_to(n));
            i += 1;
        }
        out
    }

    /// Moves everything that can move; returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let mut progressed = false;
        while let Some(t) = self.client.poll_transmit() {
            progressed = true;
            match t {
                ClientTransmit::Head(req) => {
                    let (parts, ()) = req.into_parts();
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
                    for chunk in self.rechunk(data) {
                        if let Some(s) = self.server.as_mut() {
                            s.recv_data(chunk);
                        }
                    }
                }
                ClientTransmit::End => {
                    if let Some(s) = self.server.as_mut() {
                        s.recv_end(None);
                    }
                }
                ClientTransmit::Abort => {
                    self.observed.client_aborted = true;
                    if let Some(s) = self.server.as_mut() {
                        s.recv_reset();
                    }
                }
            }
        }
        if let Some(server) = self.server.as_mut() {
            let mut events = Vec::new();
            while let Some(e) = server.poll_event() {
                events.push(e);
            }
            for e in events {
                progressed = true;
                self.run_app(&e);
                self.observed.server_events.push(e);
            }
        }
        let mut transmits = Vec::new();
        if let Some(server) = self.server.as_mut() {
            while let Some(t) = server.poll_transmit() {
                transmits.push(t);
            }
        }
        for t in transmits {
            progressed = true;
            match t {
                ServerTransmit::Head(resp) => {
                    let (parts, ()) = resp.into_parts();
                    self.observed.response_status = Some(parts.status);
                    self.observed.response_head = Some(parts.clone());
                    self.client.recv_head(http::Response::from_parts(parts, ()));
                }
                ServerTransmit::Data(data) => {
                    for chunk in self.rechunk(data) {
                        self.client.recv_data(chunk);
                    }
                }
                ServerTransmit::Trailers(t) => self.client.recv_trailers(t),
                ServerTransmit::End => self.client.recv_end(),
            }
        }
        while let Some(e) = self.client.poll_event() {
            progressed = true;
            self.observed.client_events.push(e);
        }
        progressed
    }

    fn run_app(&mut self, event: &ServerEvent) {
        let server = self.server.as_mut().unwrap();
        let in_place = self.script.in_place;
        if self.server_finished {
            return;
        }
        let stream_type = lookup(self.observed.request_head.as_ref().unwrap().uri.path())
            .unwrap()
            .stream_type;
        match event {
            ServerEvent::Message(m) => {
                if !self.headers_sent && !self.script.headers.is_empty() {
                    self.headers_sent = true;
                    server.send_headers(self.script.headers.clone()).unwrap();
                }
                self.received.push(m.clone());
                match stream_type {
                    StreamType::BidiStreaming => respond(server, in_place, m),
                    StreamType::ServerStreaming => {
                        for _ in 0..self.script.copies {
                            respond(server, in_place, m);
                        }
                    }
                    _ => {}
                }
            }
            ServerEvent::InputClosed => {
                if self.script.hang {
                    return;
                }
                if !self.headers_sent && !self.script.headers.is_empty() {
                    self.headers_sent = true;
                    server.send_headers(self.script.headers.clone()).unwrap();
                }
                if self.script.outcome.is_ok() {
                    match stream_type {
                        StreamType::Unary => respond(server, in_place, &self.received[0]),
                        StreamType::ClientStreaming => {
                            let all: Vec<u8> = self
                                .received
                                .iter()
                                .flat_map(|b| b.iter().copied())
                                .collect();
                            respond(server, in_place, &all);
                        }
                        _ => {}
                    }
                }
                self.server_finished = true;
                server
                    .finish(self.script.outcome.clone(), self.script.trailers.clone())
                    .unwrap();
            }
            ServerEvent::Aborted(_) => self.server_finished = true,
        }
    }

    /// Runs until quiet, jumping the clock to the next timer when stuck, until the client finishes or
    /// `limit` of virtual time passes.
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
                    if let Some(s) = self.server.as_mut() {
                        s.handle_timeout(self.now);
                    }
                }
                _ => return,
            }
        }
    }
}

pub fn client_config(
    protocol: Protocol,
    codec: Codec,
    compression: Option<&'static str>,
) -> ClientConfig {
    let mut c = ClientConfig::new(protocol, codec);
    c.send_compression = compression;
    c.compress_min_bytes = 0;
    c
}

pub fn server_config() -> ServerConfig {
    ServerConfig {
        compress_min_bytes: 0,
        ..ServerConfig::default()
    }
}

pub fn metadata(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(*k, HeaderValue::from_str(v).unwrap());
    }
    m
}

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

/// Sends one response message, written in place or as a payload.
fn respond(server: &mut ServerCall, in_place: bool, payload: &[u8]) {
    if in_place {
        let mut writer = server.message_writer();
        writer.buffer().extend_from_slice(payload);
        writer.send().unwrap();
    } else {
        server
            .send_message(Bytes::copy_from_slice(payload))
            .unwrap();
    }
}
