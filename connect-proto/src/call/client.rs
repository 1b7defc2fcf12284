//! The client side of one call.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::{
    check_raw_size, compress, decompress, header_str, message_flag, named_compression,
    plain_size_bound, send_payload, wire_limit, writer_for, BodyCollector, Incoming, MessageWriter,
    Outbox, Outgoing, Refusal, Reset, SendSide, WriterCall,
};
use crate::compression::{CompressionRegistry, Compressor};
use crate::envelope::{flags, Envelope, EnvelopeDecoder};
use crate::metadata;
use crate::protocol::{
    connect, grpc, grpc_web, headers as h, Codec, ContentType, MethodInfo, Protocol, StreamType,
};
use crate::status::{Code, Status, UsageError};
use crate::time::Instant;
use crate::timeout;

/// Client settings: defaults for every call of one client (keep it in an `Arc`).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The protocol spoken.
    pub protocol: Protocol,
    /// The message codec.
    pub codec: Codec,
    /// Algorithms the client can decompress (advertised in the accept header) and compress with.
    pub compression: CompressionRegistry,
    /// The algorithm requests are compressed with (`None`: identity).
    pub send_compression: Option<&'static str>,
    /// Request messages smaller than this are sent uncompressed.
    pub compress_min_bytes: usize,
    /// The largest response message accepted; larger is `resource_exhausted`.
    pub max_recv_message_size: usize,
    /// The largest request message the application may send.
    pub max_send_message_size: usize,
    /// Connect only: call methods marked `NO_SIDE_EFFECTS` with HTTP GET.
    pub use_get: bool,
    /// Default timeout of every call.
    pub timeout: Option<Duration>,
}

impl ClientConfig {
    /// Defaults for a protocol and codec: gzip and zstd accepted, identity requests, 4 MiB receive limit.
    pub fn new(protocol: Protocol, codec: Codec) -> Self {
        ClientConfig {
            protocol,
            codec,
            compression: CompressionRegistry::default(),
            send_compression: None,
            compress_min_bytes: 1024,
            max_recv_message_size: 4 * 1024 * 1024,
            max_send_message_size: usize::MAX,
            use_get: false,
            timeout: None,
        }
    }
}

/// Per-call settings that override the client's defaults.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// The call's timeout (sent to the server and enforced locally).
    pub timeout: Option<Duration>,
    /// Request headers (custom metadata).
    pub headers: HeaderMap,
    /// Request compression: `Some(None)` forces identity, `Some(Some(name))` picks an algorithm.
    pub send_compression: Option<Option<&'static str>>,
    /// Receive limit for this call.
    pub max_recv_message_size: Option<usize>,
}

/// What the client call asks the adapter to put on the wire, in order.
#[derive(Debug)]
pub enum ClientTransmit {
    /// The request head (method, URI, headers); always first, exactly once.
    Head(http::Request<()>),
    /// A chunk of the request body.
    Data(Bytes),
    /// The request body is complete.
    End,
    /// Abort the HTTP request (HTTP/2 RST_STREAM CANCEL, HTTP/3 RESET_STREAM, `AbortController`, or a
    /// closed HTTP/1.1 connection): the call was cancelled or failed locally. Nothing follows.
    Reset,
}

/// What the client call tells the application.
#[derive(Debug, PartialEq)]
pub enum ClientEvent {
    /// The response headers (custom metadata), before any message.
    Headers(HeaderMap),
    /// A response message payload (decompressed, not yet deserialized).
    Message(Bytes),
    /// The call is over: its outcome and trailers. Always the last event.
    Finished {
        /// `Ok` or the error.
        result: Result<(), Status>,
        /// Trailers (custom metadata).
        trailers: HeaderMap,
    },
}

/// Where a client call is in its life. The request (sent) and the response (received) move on
/// independently until the outcome is known:
///
/// ```text
///   Open { send: Idle,   recv: AwaitingHead }   (Connect unary: the head waits for the message)
///          │ head queued
///          ▼
///   Open { send: Open,   … } ── close_send / one-message request sent ──► send: Closed
///   Open { …, recv: AwaitingHead } ── recv_head ──► recv: Body ── end-of-stream message ──► recv: Ended
///          │ recv_end / recv_reset / deadline / cancel / protocol error
///          ▼
///   Closed   (Finished emitted; only queued transmits remain)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open { send: Send, recv: Recv },
    Closed,
}

/// The request side of an open call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Send {
    /// No request head queued yet (a Connect unary request's head depends on its message).
    Idle,
    /// The head is queued; request messages may follow.
    Open,
    /// The request body is complete.
    Closed,
}

/// The response side of an open call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recv {
    /// No response head yet.
    AwaitingHead,
    /// Reading the body; `data` once any body byte arrived.
    Body { data: bool },
    /// The in-body end of the stream arrived (Connect EndStream, gRPC-Web trailers frame): only the
    /// end of the HTTP body may follow.
    Ended,
}

/// The client side of one RPC as a pure state machine.
///
/// # Driving it
///
/// * **Commands** from the application: [`send_message`](Self::send_message) (or
///   [`message_writer`](Self::message_writer) to serialize in place), [`close_send`](Self::close_send),
///   [`cancel`](Self::cancel).
/// * **Inputs** from the HTTP stack: [`recv_head`](Self::recv_head), [`recv_data`](Self::recv_data),
///   [`recv_end`](Self::recv_end) (with the HTTP trailers, if any), [`recv_reset`](Self::recv_reset),
///   and [`handle_timeout`](Self::handle_timeout) once the instant from [`poll_timeout`](Self::poll_timeout)
///   has passed.
/// * **Outputs**: [`poll_transmit`](Self::poll_transmit) (request head, body chunks, end, abort),
///   [`poll_event`](Self::poll_event) (response headers, messages, the final outcome),
///   [`poll_timeout`](Self::poll_timeout).
///
/// After every input or command, drain `poll_transmit` and `poll_event` until both return `None`, then
/// re-arm the timer. [`ClientEvent::Finished`] is always the last event; after it the call ignores input.
/// The request head is queued by [`new`](Self::new), except for Connect unary calls, whose head depends
/// on the message (GET query, `Content-Encoding`) and is queued by `send_message`.
/// [`ServerCall`](crate::ServerCall) is driven the same way.
///
/// ```no_run
/// use connect_proto::{CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit, Codec, Instant,
///     MethodInfo, Protocol, StreamType};
/// # fn send(_: ClientTransmit) {}
/// # fn next_response_part() -> Option<bytes::Bytes> { None }
/// let config = ClientConfig::new(Protocol::Grpc, Codec::Proto);
/// let method = MethodInfo { path: "/pkg.Svc/Say", stream_type: StreamType::Unary, no_side_effects: false };
/// let base: http::Uri = "http://127.0.0.1:8080".parse().unwrap();
/// let mut call = ClientCall::new(&config, method, &base, CallOptions::default(), Instant::now());
/// call.send_message(bytes::Bytes::from_static(b"\x0a\x02hi")).unwrap();
/// call.recv_head(http::Response::new(()));
/// loop {
///     while let Some(t) = call.poll_transmit() {
///         send(t);
///     }
///     while let Some(event) = call.poll_event() {
///         if let ClientEvent::Finished { result, .. } = event {
///             println!("{result:?}");
///             return;
///         }
///     }
///     match next_response_part() {
///         Some(chunk) => call.recv_data(chunk),
///         None => call.recv_end(None),
///     }
///     call.handle_timeout(Instant::now());
/// }
/// ```
#[derive(Debug)]
pub struct ClientCall {
    protocol: Protocol,
    codec: Codec,
    method: MethodInfo,
    base: http::Uri,
    user_headers: HeaderMap,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    registry: CompressionRegistry,
    send_compression: Option<Arc<dyn Compressor>>,
    compress_min: usize,
    max_recv: usize,
    max_send: usize,
    use_get: bool,
    state: State,
    messages_sent: u32,
    http_status: StatusCode,
    recv_compression: Option<Arc<dyn Compressor>>,
    decoder: EnvelopeDecoder,
    body: BodyCollector,
    messages_received: u32,
    /// gRPC trailers-only candidate: the status and metadata found in the head.
    head_status: Option<(Result<(), Status>, HeaderMap)>,
    /// Connect unary trailers (from `trailer-` headers).
    unary_trailers: HeaderMap,
    /// The end of the response stream seen in the body: Connect EndStream or the gRPC-Web trailers frame.
    body_end: Option<(Result<(), Status>, HeaderMap)>,
    out: Outbox<ClientTransmit>,
    events: VecDeque<ClientEvent>,
}

impl ClientCall {
    /// Starts a call of `method` on the server at `base` (scheme, authority and any path prefix).
    /// An unknown `send_compression` name falls back to identity.
    pub fn new(
        config: &ClientConfig,
        method: MethodInfo,
        base: &http::Uri,
        options: CallOptions,
        now: Instant,
    ) -> Self {
        let timeout = options.timeout.or(config.timeout);
        let send_name = options.send_compression.unwrap_or(config.send_compression);
        let send_compression = send_name.and_then(|n| config.compression.get(n).cloned());
        let max_recv = options
            .max_recv_message_size
            .unwrap_or(config.max_recv_message_size);
        let mut call = ClientCall {
            protocol: config.protocol,
            codec: config.codec,
            method,
            base: base.clone(),
            user_headers: options.headers,
            timeout,
            deadline: timeout.and_then(|t| now.checked_add(t)),
            registry: config.compression.clone(),
            send_compression,
            compress_min: config.compress_min_bytes,
            max_recv,
            max_send: config.max_send_message_size,
            use_get: config.use_get,
            state: State::Open {
                send: Send::Idle,
                recv: Recv::AwaitingHead,
            },
            messages_sent: 0,
            http_status: StatusCode::OK,
            recv_compression: None,
            decoder: EnvelopeDecoder::new(wire_limit(max_recv)),
            body: BodyCollector::default(),
            messages_received: 0,
            head_status: None,
            unary_trailers: HeaderMap::new(),
            body_end: None,
            out: Outbox::new(ClientTransmit::Data, method.stream_type.client_streams()),
            events: VecDeque::new(),
        };
        if !call.connect_unary() {
            call.queue_head(None, false);
        }
        call
    }

    fn connect_unary(&self) -> bool {
        self.protocol == Protocol::Connect && self.method.stream_type == StreamType::Unary
    }

    fn send_state(&self) -> Option<Send> {
        match self.state {
            State::Open { send, .. } => Some(send),
            State::Closed => None,
        }
    }

    fn recv_state(&self) -> Option<Recv> {
        match self.state {
            State::Open { recv, .. } => Some(recv),
            State::Closed => None,
        }
    }

    fn set_send(&mut self, to: Send) {
        if let State::Open { recv, .. } = self.state {
            self.state = State::Open { send: to, recv };
        }
    }

    fn set_recv(&mut self, to: Recv) {
        if let State::Open { send, .. } = self.state {
            self.state = State::Open { send, recv: to };
        }
    }

    fn queue_head(&mut self, query: Option<String>, unary_compressed: bool) {
        let mut uri = String::new();
        if let (Some(scheme), Some(authority)) = (self.base.scheme_str(), self.base.authority()) {
            uri.push_str(scheme);
            uri.push_str("://");
            uri.push_str(authority.as_str());
        }
        uri.push_str(self.base.path().trim_end_matches('/'));
        uri.push_str(self.method.path);
        if let Some(q) = &query {
            uri.push('?');
            uri.push_str(q);
        }
        let uri = match http::Uri::try_from(uri) {
            Ok(uri) => uri,
            Err(e) => {
                return self.fail_local(Status::internal(format!("invalid request URI: {e}")))
            }
        };
        let mut head = http::Request::new(());
        *head.uri_mut() = uri;
        if self.protocol == Protocol::Grpc {
            // gRPC needs trailers, so HTTP/2: an HTTP stack then refuses an HTTP/1-only connection
            // instead of sending a call that can never end properly.
            *head.version_mut() = http::Version::HTTP_2;
        }
        *head.method_mut() = if query.is_some() {
            Method::GET
        } else {
            Method::POST
        };
        let headers = head.headers_mut();
        metadata::merge_application(self.protocol, &self.user_headers, headers);
        add_user_agent(self.protocol, headers);
        let streaming = self.method.stream_type != StreamType::Unary;
        if query.is_none() {
            let ct = ContentType::format(self.protocol, streaming, self.codec);
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        let accept = self.registry.accept_header_value().cloned();
        let encoding = self
            .send_compression
            .as_ref()
            .map(|c| HeaderValue::from_static(c.name()));
        match self.protocol {
            Protocol::Connect => {
                if query.is_none() {
                    headers.insert(h::CONNECT_PROTOCOL_VERSION, HeaderValue::from_static("1"));
                }
                if let Some(t) = self.timeout {
                    insert_str(
                        headers,
                        h::CONNECT_TIMEOUT_MS,
                        &timeout::format_connect_timeout(t),
                    );
                }
                let (enc_name, accept_name) = if streaming {
                    (h::CONNECT_CONTENT_ENCODING, h::CONNECT_ACCEPT_ENCODING)
                } else {
                    (header::CONTENT_ENCODING, header::ACCEPT_ENCODING)
                };
                if let Some(enc) =
                    encoding.filter(|_| streaming || unary_compressed && query.is_none())
                {
                    headers.insert(enc_name, enc);
                }
                if let Some(accept) = accept {
                    headers.insert(accept_name, accept);
                }
            }
            Protocol::Grpc | Protocol::GrpcWeb => {
                if self.protocol == Protocol::Grpc {
                    headers.insert(h::TE, HeaderValue::from_static("trailers"));
                } else {
                    headers.insert("x-grpc-web", HeaderValue::from_static("1"));
                }
                if let Some(t) = self.timeout {
                    insert_str(headers, h::GRPC_TIMEOUT, &timeout::format_grpc_timeout(t));
                }
                if let Some(enc) = encoding {
                    headers.insert(h::GRPC_ENCODING, enc);
                }
                if let Some(accept) = accept {
                    headers.insert(h::GRPC_ACCEPT_ENCODING, accept);
                }
            }
        }
        self.set_send(Send::Open);
        self.out.push(ClientTransmit::Head(head));
    }

    /// Command: one request message payload (serialized; the call compresses and frames it). For calls
    /// whose request is a single message the request body ends after it. Ignored once the call finished.
    pub fn send_message(&mut self, payload: Bytes) -> Result<(), UsageError> {
        send_payload(self, payload)
    }

    /// Command, in two steps: a request message serialized straight into the call's send buffer, where
    /// [`ClientCall::send_message`] copies a payload serialized elsewhere: append the message's bytes
    /// to [`MessageWriter::buffer`], then [`MessageWriter::send`] it.
    pub fn message_writer(&mut self) -> MessageWriter<'_> {
        let (call, start, prefix) = writer_for(self);
        MessageWriter::new(WriterCall::Client(call), start, prefix)
    }

    /// Command: no more request messages. A call whose request is one message must have sent it.
    pub fn close_send(&mut self) -> Result<(), UsageError> {
        if self.is_finished() || self.send_state() == Some(Send::Closed) {
            return Ok(());
        }
        if !self.method.stream_type.client_streams() && self.messages_sent == 0 {
            return Err(UsageError("this method takes exactly one request message"));
        }
        self.set_send(Send::Closed);
        self.out.push(ClientTransmit::End);
        Ok(())
    }

    /// Command: cancel the call. It finishes with `canceled` and the request is aborted on the wire.
    pub fn cancel(&mut self) {
        self.fail_local(Status::canceled("the call was canceled by the client"));
    }

    /// Whether the call is over ([`ClientEvent::Finished`] is queued or was emitted). Transmits may
    /// still be pending.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed
    }

    /// The call's deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Input: the response head.
    pub fn recv_head(&mut self, response: http::Response<()>) {
        if self.recv_state() != Some(Recv::AwaitingHead) {
            return;
        }
        self.set_recv(Recv::Body { data: false });
        let (parts, ()) = response.into_parts();
        if let Err(status) = self.recv_head_inner(parts) {
            self.fail_local(status);
        }
    }

    fn recv_head_inner(&mut self, parts: http::response::Parts) -> Result<(), Status> {
        self.http_status = parts.status;
        let headers = parts.headers;
        let connect_unary = self.connect_unary();
        if connect_unary && parts.status != StatusCode::OK {
            // An error: the body should be the JSON error; read it at the end.
            self.recv_compression =
                self.response_compression(&headers, &header::CONTENT_ENCODING)?;
            let (headers, trailers) = connect::split_unary_trailers(headers);
            self.unary_trailers = trailers;
            self.events.push_back(ClientEvent::Headers(headers));
            return Ok(());
        }
        if parts.status != StatusCode::OK {
            let code = Code::from_http_status(parts.status.as_u16());
            return Err(Status::new(
                code,
                format!("unexpected HTTP status {}", parts.status),
            ));
        }
        let is_grpc = matches!(self.protocol, Protocol::Grpc | Protocol::GrpcWeb);
        let trailers_only = is_grpc && headers.contains_key(h::GRPC_STATUS);
        let ct = header_str(&headers, &header::CONTENT_TYPE).and_then(ContentType::parse);
        match ct {
            None if trailers_only && !headers.contains_key(header::CONTENT_TYPE) => {}
            Some(ct) if ct.grpc_web_text => {
                return Err(Status::internal(
                    "the server answered with application/grpc-web-text, which this client does not decode",
                ));
            }
            Some(ct)
                if ct.protocol == self.protocol
                    && (self.protocol != Protocol::Connect
                        || ct.connect_streaming != connect_unary) =>
            {
                if ct.codec != Some(self.codec) {
                    return Err(Status::internal(format!(
                        "response codec {:?} does not match the request's {}",
                        ct.codec_name, self.codec
                    )));
                }
            }
            _ => {
                let code = Code::from_http_status(parts.status.as_u16());
                let got = header_str(&headers, &header::CONTENT_TYPE).unwrap_or("none");
                return Err(Status::new(
                    code,
                    format!("not an RPC response: content type {got:?}"),
                ));
            }
        }
        let encoding_header = match self.protocol {
            Protocol::Connect if connect_unary => header::CONTENT_ENCODING,
            Protocol::Connect => h::CONNECT_CONTENT_ENCODING,
            Protocol::Grpc | Protocol::GrpcWeb => h::GRPC_ENCODING,
        };
        self.recv_compression = self.response_compression(&headers, &encoding_header)?;
        if connect_unary {
            let (headers, trailers) = connect::split_unary_trailers(headers);
            self.unary_trailers = trailers;
            self.events.push_back(ClientEvent::Headers(headers));
        } else if trailers_only {
            let mut metadata = headers;
            let status = grpc::read_status(&metadata).unwrap_or(Ok(()));
            grpc::strip_status(&mut metadata);
            self.head_status = Some((status, metadata));
        } else {
            self.events.push_back(ClientEvent::Headers(headers));
        }
        Ok(())
    }

    fn response_compression(
        &self,
        headers: &HeaderMap,
        name: &HeaderName,
    ) -> Result<Option<Arc<dyn Compressor>>, Status> {
        named_compression(&self.registry, header_str(headers, name)).map_err(|name| {
            Status::internal(format!("response uses unsupported compression {name:?}"))
        })
    }

    /// Input: a chunk of the response body.
    pub fn recv_data(&mut self, data: Bytes) {
        if self.is_finished() || data.is_empty() {
            return;
        }
        if let Err(status) = self.recv_data_inner(data) {
            self.fail_local(status);
        }
    }

    fn recv_data_inner(&mut self, data: Bytes) -> Result<(), Status> {
        match self.recv_state() {
            Some(Recv::AwaitingHead) => {
                return Err(Status::internal("response body before the response head"))
            }
            Some(Recv::Ended) if !self.connect_unary() => {
                return Err(Status::internal(
                    "protocol error: response data after the end of the stream",
                ))
            }
            _ => {}
        }
        if self.connect_unary() {
            return Incoming::Responses.collect(&mut self.body, data, self.max_recv);
        }
        self.set_recv(Recv::Body { data: true });
        self.decoder.push(data);
        while let Some(envelope) = Incoming::Responses.next_envelope(&mut self.decoder)? {
            self.recv_envelope(envelope)?;
        }
        Ok(())
    }

    fn recv_envelope(&mut self, envelope: Envelope) -> Result<(), Status> {
        if self.recv_state() == Some(Recv::Ended) {
            return Err(Status::internal(
                "protocol error: response data after the end of the stream",
            ));
        }
        let end_flag = match self.protocol {
            Protocol::Connect => flags::END_STREAM,
            Protocol::GrpcWeb => flags::TRAILERS,
            Protocol::Grpc => 0,
        };
        if envelope.flags & !(flags::COMPRESSED | end_flag) != 0 {
            return Err(Status::internal(format!(
                "protocol error: invalid envelope flags {:#04x} in a {:?} response",
                envelope.flags, self.protocol
            )));
        }
        let ends_stream = end_flag != 0 && envelope.flags & end_flag != 0;
        let payload =
            Incoming::Responses.open(envelope, self.recv_compression.as_ref(), self.max_recv)?;
        if ends_stream {
            self.set_recv(Recv::Ended);
            self.body_end = Some(if self.protocol == Protocol::Connect {
                let end = connect::decode_end_stream(&payload)?;
                (end.error.map_or(Ok(()), Err), end.metadata)
            } else {
                let mut block = grpc_web::decode_trailers(&payload)?;
                match grpc::read_status(&block) {
                    Some(status) => {
                        grpc::strip_status(&mut block);
                        (status, block)
                    }
                    // An empty trailers frame after a trailers-only head: the head's status stands
                    // (PROTOCOL-TRAPS 21).
                    None if self.head_status.is_some() && self.messages_received == 0 => {
                        let (status, mut metadata) = self.head_status.take().expect("checked");
                        metadata.extend(block);
                        (status, metadata)
                    }
                    None => (
                        Err(Status::unknown(
                            "protocol error: gRPC-Web trailers without grpc-status",
                        )),
                        block,
                    ),
                }
            });
            return Ok(());
        }
        if let Some((_, metadata)) = self.head_status.take() {
            // A message after a head that carried a status: the head was ordinary headers after all
            // and real trailers must follow (PROTOCOL-TRAPS 13).
            self.events.push_back(ClientEvent::Headers(metadata));
        }
        self.messages_received += 1;
        if !self.method.stream_type.server_streams() && self.messages_received > 1 {
            return Err(Status::unimplemented(
                "unary response has more than one message",
            ));
        }
        self.events.push_back(ClientEvent::Message(payload));
        Ok(())
    }

    /// Input: the response ended, with its HTTP trailers if it had any (gRPC's status travels in them;
    /// `fetch` exposes none).
    pub fn recv_end(&mut self, trailers: Option<HeaderMap>) {
        if self.is_finished() {
            return;
        }
        let http_trailers = trailers;
        let (result, trailers) = match self.response_outcome(http_trailers) {
            Ok(outcome) => outcome,
            Err(status) => (Err(status), HeaderMap::new()),
        };
        let result = match result {
            Ok(()) if !self.method.stream_type.server_streams() && self.messages_received == 0 => {
                Err(Status::unimplemented(
                    "the server sent no response message for a unary response",
                ))
            }
            other => other,
        };
        self.close(result, trailers);
    }

    /// The outcome is known: nothing more is received or sent but what is queued.
    fn close(&mut self, result: Result<(), Status>, trailers: HeaderMap) {
        self.state = State::Closed;
        self.events
            .push_back(ClientEvent::Finished { result, trailers });
    }

    fn response_outcome(
        &mut self,
        http_trailers: Option<HeaderMap>,
    ) -> Result<(Result<(), Status>, HeaderMap), Status> {
        if self.recv_state() == Some(Recv::AwaitingHead) {
            return Err(Status::internal("the response ended before its head"));
        }
        let saw_data = self.recv_state() != Some(Recv::Body { data: false });
        let trailers_unary = std::mem::take(&mut self.unary_trailers);
        if self.connect_unary() {
            let body = self.body.take();
            if self.http_status == StatusCode::OK {
                let body = Incoming::Responses.open_body(
                    body,
                    self.recv_compression.as_ref(),
                    self.max_recv,
                )?;
                self.messages_received = 1;
                self.events.push_back(ClientEvent::Message(body));
                return Ok((Ok(()), trailers_unary));
            }
            // An error body is no message: decompression is bounded as always, but its size is not
            // checked against the message limit.
            let body = match &self.recv_compression {
                Some(c) => decompress(c, &body, self.max_recv, Code::INTERNAL)?,
                None => body,
            };
            let code = Code::from_http_status(self.http_status.as_u16());
            let status = connect::decode_error(&body, code)
                .unwrap_or_else(|| Status::new(code, format!("HTTP status {}", self.http_status)));
            return Ok((Err(status), trailers_unary));
        }
        if self.decoder.buffered_len() > 0 {
            return Err(Status::internal(format!(
                "protocol error: response ended inside an envelope ({} bytes left over)",
                self.decoder.buffered_len()
            )));
        }
        if let Some(end) = self.body_end.take() {
            return Ok(end);
        }
        match self.protocol {
            Protocol::Connect => Err(Status::internal(
                "protocol error: stream ended without an EndStream message",
            )),
            Protocol::Grpc | Protocol::GrpcWeb => {
                if let Some(mut block) = http_trailers {
                    // Trailers win over a status in the head (PROTOCOL-TRAPS 13).
                    let status = grpc::read_status(&block).unwrap_or_else(|| {
                        Err(Status::unknown(
                            "protocol error: trailers without grpc-status",
                        ))
                    });
                    grpc::strip_status(&mut block);
                    return Ok((status, block));
                }
                match self.head_status.take() {
                    Some(outcome) if !saw_data => Ok(outcome),
                    // A proxy that strips trailers must not turn a call into a success (PROTOCOL-TRAPS 14).
                    _ => Err(Status::internal(
                        "protocol error: response ended without trailers (no grpc-status)",
                    )),
                }
            }
        }
    }

    /// Input: the stream was reset or the connection failed under the call (see [`Reset::status`]
    /// for the outcome). Nothing more is sent.
    pub fn recv_reset(&mut self, reason: Reset) {
        if self.is_finished() {
            return;
        }
        self.out.clear();
        self.close(Err(reason.status()), HeaderMap::new());
    }

    /// Input: the time is now `now`. Spurious calls are no-ops. Past the deadline the call finishes with
    /// `deadline_exceeded` (never `canceled`) and the request is aborted.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.is_finished() && self.deadline.is_some_and(|d| d <= now) {
            self.fail_local(Status::deadline_exceeded("the call's deadline expired"));
        }
    }

    /// Ends the call from this side: the outcome is `status` and the request is reset on the wire
    /// (unless its head never left: then nothing is sent at all).
    fn fail_local(&mut self, status: Status) {
        if self.is_finished() {
            return;
        }
        let head_sent = self.send_state() != Some(Send::Idle)
            && !self
                .out
                .any_queued(|t| matches!(t, ClientTransmit::Head(_)));
        self.out.clear();
        if head_sent {
            self.out.push(ClientTransmit::Reset);
        }
        self.close(Err(status), HeaderMap::new());
    }

    /// Output: the next thing to put on the wire. Small request messages sent one after another are
    /// framed into one buffer and come out as one `Data` chunk.
    pub fn poll_transmit(&mut self) -> Option<ClientTransmit> {
        self.out.pop()
    }

    /// Output: the next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Output: when `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            None
        } else {
            self.deadline
        }
    }
}

impl SendSide for ClientCall {
    type Transmit = ClientTransmit;

    #[inline]
    fn outbox(&mut self) -> &mut Outbox<ClientTransmit> {
        &mut self.out
    }

    #[inline]
    fn gathered(&self) -> usize {
        self.out.gathered_len()
    }

    fn bare_messages(&self) -> bool {
        self.connect_unary()
    }

    fn refusal(&self, len: usize) -> Option<Refusal> {
        if self.is_finished() {
            return Some(Refusal::Finished);
        }
        if self.send_state() == Some(Send::Closed) {
            return Some(Refusal::Misuse(UsageError("send_message after close_send")));
        }
        if !self.method.stream_type.client_streams() && self.messages_sent > 0 {
            let misuse = UsageError("this method takes exactly one request message");
            return Some(Refusal::Misuse(misuse));
        }
        let too_large = check_raw_size(len, self.max_send, "request");
        too_large.err().map(Refusal::TooLarge)
    }

    #[inline]
    fn count_sent(&mut self) {
        self.messages_sent += 1;
    }

    fn fail_send(&mut self, status: Status) {
        self.fail_local(status);
    }

    /// Queues an admitted message: a Connect unary request's head and body (the head depends on the
    /// message), else the message framed (in place when it goes out uncompressed), and the end of a
    /// one-message request.
    fn queue_message(&mut self, message: Outgoing) {
        let len = message.len(self.out.gathered_len());
        let compress_it = self.send_compression.is_some() && len >= self.compress_min;
        let payload = match message {
            Outgoing::InPlace { start, prefix: _ } if !self.connect_unary() && !compress_it => {
                self.out.commit_in_place(start, 0);
                None
            }
            Outgoing::InPlace { start, prefix } => {
                Some(self.out.take_in_place(start, prefix).freeze())
            }
            Outgoing::Payload(payload) => Some(payload),
        };
        if let Some(payload) = payload {
            let (data, compressed) =
                match compress(self.send_compression.as_ref(), self.compress_min, payload) {
                    Ok(v) => v,
                    Err(status) => return self.fail_local(status),
                };
            if self.connect_unary() {
                if self.use_get && self.method.no_side_effects {
                    let compression = self
                        .send_compression
                        .as_ref()
                        .filter(|_| compressed)
                        .map(|c| c.name());
                    let query = connect::encode_get_query(self.codec.name(), &data, compression);
                    self.queue_head(Some(query), compressed);
                } else {
                    self.queue_head(None, compressed);
                    if !data.is_empty() {
                        self.out.push(ClientTransmit::Data(data));
                    }
                }
            } else {
                self.out.push_envelope(message_flag(compressed), data);
            }
        }
        if !self.method.stream_type.client_streams() && !self.is_finished() {
            self.set_send(Send::Closed);
            self.out.push(ClientTransmit::End);
        }
    }

    fn plain_below(&self) -> usize {
        if !self.method.stream_type.client_streams() || self.send_state() != Some(Send::Open) {
            return 0;
        }
        plain_size_bound(
            self.max_send,
            self.send_compression.is_some(),
            self.compress_min,
        )
    }
}

fn insert_str(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// A structured user agent unless the application set its own (H2 §User Agents). Browsers own
/// `user-agent`, so there (wasm32) only gRPC-Web's `x-user-agent` is sent (WEB §User Agent), which
/// gRPC-Web also sends elsewhere.
fn add_user_agent(protocol: Protocol, headers: &mut HeaderMap) {
    let agent = match protocol {
        Protocol::Connect => concat!("connect-rust-connect-proto/", env!("CARGO_PKG_VERSION")),
        Protocol::Grpc => concat!("grpc-rust-connect-proto/", env!("CARGO_PKG_VERSION")),
        Protocol::GrpcWeb => concat!("grpc-web-rust-connect-proto/", env!("CARGO_PKG_VERSION")),
    };
    if !cfg!(target_arch = "wasm32") && !headers.contains_key(header::USER_AGENT) {
        headers.insert(header::USER_AGENT, HeaderValue::from_static(agent));
    }
    if protocol == Protocol::GrpcWeb && !headers.contains_key("x-user-agent") {
        headers.insert("x-user-agent", HeaderValue::from_static(agent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNARY: MethodInfo = MethodInfo {
        path: "/t.S/Unary",
        stream_type: StreamType::Unary,
        no_side_effects: false,
    };
    const CLIENT_STREAM: MethodInfo = MethodInfo {
        path: "/t.S/Client",
        stream_type: StreamType::ClientStreaming,
        no_side_effects: false,
    };
    const SERVER_STREAM: MethodInfo = MethodInfo {
        path: "/t.S/Server",
        stream_type: StreamType::ServerStreaming,
        no_side_effects: false,
    };

    fn call(protocol: Protocol, method: MethodInfo) -> ClientCall {
        let config = ClientConfig::new(protocol, Codec::Proto);
        let base = http::Uri::from_static("http://h");
        ClientCall::new(
            &config,
            method,
            &base,
            CallOptions::default(),
            Instant::now(),
        )
    }

    fn transmits(call: &mut ClientCall) -> Vec<ClientTransmit> {
        std::iter::from_fn(|| call.poll_transmit()).collect()
    }

    fn events(call: &mut ClientCall) -> Vec<ClientEvent> {
        std::iter::from_fn(|| call.poll_event()).collect()
    }

    fn outcome(call: &mut ClientCall) -> Result<(), Status> {
        match events(call).pop() {
            Some(ClientEvent::Finished { result, .. }) => result,
            other => panic!("not finished: {other:?}"),
        }
    }

    #[test]
    fn a_connect_unary_head_waits_for_its_message() {
        let mut call = call(Protocol::Connect, UNARY);
        assert_eq!(call.send_state(), Some(Send::Idle));
        assert!(transmits(&mut call).is_empty());
        call.send_message(Bytes::from_static(b"m")).unwrap();
        assert_eq!(call.send_state(), Some(Send::Closed));
        match &transmits(&mut call)[..] {
            [ClientTransmit::Head(head), ClientTransmit::Data(body), ClientTransmit::End] => {
                assert_eq!(head.method(), Method::POST);
                assert_eq!(head.uri(), "http://h/t.S/Unary");
                assert_eq!(&body[..], b"m");
            }
            other => panic!("{other:?}"),
        }
        // Enveloped protocols queue the head at once.
        let mut call = call_grpc_stream();
        assert_eq!(call.send_state(), Some(Send::Open));
        assert!(matches!(
            &transmits(&mut call)[..],
            [ClientTransmit::Head(_)]
        ));
    }

    fn call_grpc_stream() -> ClientCall {
        call(Protocol::Grpc, CLIENT_STREAM)
    }

    #[test]
    fn cancel_resets_only_a_request_whose_head_left() {
        // The head is still queued: nothing at all goes out.
        let mut queued = call_grpc_stream();
        queued.cancel();
        assert!(transmits(&mut queued).is_empty());
        assert_eq!(outcome(&mut queued).unwrap_err().code(), Code::CANCELED);
        // The head left: the request is reset.
        let mut sent = call_grpc_stream();
        let _ = transmits(&mut sent);
        sent.cancel();
        assert!(matches!(&transmits(&mut sent)[..], [ClientTransmit::Reset]));
        assert_eq!(outcome(&mut sent).unwrap_err().code(), Code::CANCELED);
        assert!(sent.is_finished() && sent.poll_timeout().is_none());
        // Cancelling again, or anything else after the end, changes nothing.
        sent.cancel();
        sent.recv_reset(Reset::ConnectionLost);
        assert!(transmits(&mut sent).is_empty() && events(&mut sent).is_empty());
    }

    #[test]
    fn messages_the_method_does_not_take_are_refused() {
        let mut unary = call(Protocol::Grpc, UNARY);
        assert_eq!(
            unary.close_send(),
            Err(UsageError("this method takes exactly one request message"))
        );
        unary.send_message(Bytes::from_static(b"1")).unwrap();
        // The one message closed the request; a second is refused, written in place or not.
        assert_eq!(
            unary.send_message(Bytes::from_static(b"2")),
            Err(UsageError("send_message after close_send"))
        );
        let mut writer = unary.message_writer();
        writer.buffer().extend_from_slice(b"3");
        assert!(writer.send().is_err());
        let mut stream = call_grpc_stream();
        stream.close_send().unwrap();
        assert_eq!(
            stream.send_message(Bytes::from_static(b"late")),
            Err(UsageError("send_message after close_send"))
        );
        // Over the limit: the call fails locally.
        let mut config = ClientConfig::new(Protocol::Grpc, Codec::Proto);
        config.max_send_message_size = 1;
        let base = http::Uri::from_static("http://h");
        let now = Instant::now();
        let mut big = ClientCall::new(&config, CLIENT_STREAM, &base, CallOptions::default(), now);
        let _ = transmits(&mut big);
        big.send_message(Bytes::from_static(b"two")).unwrap();
        assert!(matches!(&transmits(&mut big)[..], [ClientTransmit::Reset]));
        let status = outcome(&mut big).unwrap_err();
        assert_eq!(status.code(), Code::RESOURCE_EXHAUSTED);
        assert_eq!(
            status.message(),
            "request message of 3 bytes exceeds the limit of 1"
        );
    }

    /// The client's mirror of the server's test: through one writer, a client stream's messages
    /// leave exactly as `send_message` sends them, plain or compressed, under or over the limit.
    #[test]
    fn a_writers_run_sends_what_send_message_sends() {
        let messages = crate::call::WRITER_RUN_MESSAGES;
        for gzip in [false, true] {
            let mut config = ClientConfig::new(Protocol::Grpc, Codec::Proto);
            config.compress_min_bytes = 8;
            config.max_send_message_size = 20;
            config.send_compression = gzip.then_some("gzip");
            let base = http::Uri::from_static("http://h");
            let new_call = || {
                let options = CallOptions::default();
                ClientCall::new(&config, CLIENT_STREAM, &base, options, Instant::now())
            };
            // The first five through one writer, then what left; then the rest, over the limit.
            let mut by_writer = new_call();
            let mut by_payload = new_call();
            let mut sent = Vec::new();
            for part in [&messages[..5], &messages[5..]] {
                let mut writer = by_writer.message_writer();
                let taken: Vec<_> = part
                    .iter()
                    .map(|message| {
                        writer.buffer().extend_from_slice(message);
                        writer.send_and_continue()
                    })
                    .collect();
                drop(writer);
                let expected: Vec<_> = match part.len() {
                    5 => vec![Ok(true); 5],
                    _ => vec![Ok(false); 2],
                };
                assert_eq!(taken, expected, "gzip {gzip}");
                for message in part {
                    assert_eq!(by_payload.send_message(Bytes::from_static(message)), Ok(()));
                }
                let expected = format!("{:?}", transmits(&mut by_payload));
                assert_eq!(format!("{:?}", transmits(&mut by_writer)), expected);
                sent.push(expected);
            }
            // The first part's body went out, compressed or not; the second failed the call.
            assert!(sent[0].contains("Data("), "{}", sent[0]);
            assert_eq!(sent[0].contains("\\x01\\0\\0\\0"), gzip, "{}", sent[0]);
            assert!(sent[1].contains("Reset"), "{}", sent[1]);
            assert_eq!(
                format!("{:?}", events(&mut by_writer)),
                format!("{:?}", events(&mut by_payload))
            );
        }
    }

    #[test]
    fn the_response_moves_from_its_head_through_its_body_to_its_end() {
        let mut call = call(Protocol::Connect, SERVER_STREAM);
        call.send_message(Bytes::from_static(b"q")).unwrap();
        let recv = |call: &ClientCall| call.recv_state();
        assert_eq!(recv(&call), Some(Recv::AwaitingHead));
        // Data before the head is the server's fault.
        let mut early = self::call(Protocol::Connect, SERVER_STREAM);
        early.recv_data(Bytes::from_static(b"x"));
        assert_eq!(outcome(&mut early).unwrap_err().code(), Code::INTERNAL);

        let mut head = http::Response::new(());
        head.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/connect+proto"),
        );
        call.recv_head(head);
        assert_eq!(recv(&call), Some(Recv::Body { data: false }));
        let (message, _) = crate::envelope::encode(0, Bytes::from_static(b"r"));
        call.recv_data(message);
        assert_eq!(recv(&call), Some(Recv::Body { data: true }));
        let (end, _) = crate::envelope::encode(flags::END_STREAM, Bytes::from_static(b"{}"));
        call.recv_data(end);
        assert_eq!(recv(&call), Some(Recv::Ended));
        // Only the end of the HTTP body may follow the end of the stream.
        call.recv_end(None);
        assert_eq!(call.state, State::Closed);
        let got = events(&mut call);
        assert!(matches!(got[0], ClientEvent::Headers(_)), "{got:?}");
        assert_eq!(got[1], ClientEvent::Message(Bytes::from_static(b"r")));
        assert!(matches!(
            got[2],
            ClientEvent::Finished { result: Ok(()), .. }
        ));
    }
}
