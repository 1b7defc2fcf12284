//! The server side of one call.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::{
    check_raw_size, compress, header_str, message_flag, named_compression, plain_size_bound,
    send_payload, wire_limit, writer_for, BodyCollector, Incoming, MessageWriter, Outbox, Outgoing,
    Refusal, Reset, SendSide, WriterCall,
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

/// Server settings shared by every call (keep it in an `Arc`).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Algorithms the server accepts and may answer with.
    pub compression: CompressionRegistry,
    /// Responses smaller than this are sent uncompressed.
    pub compress_min_bytes: usize,
    /// The largest request message accepted (compressed and decompressed); larger is `resource_exhausted`.
    pub max_recv_message_size: usize,
    /// The largest response message the application may send; larger fails the call with
    /// `resource_exhausted`.
    pub max_send_message_size: usize,
    /// Reject Connect requests without `Connect-Protocol-Version: 1` (GET: `connect=v1`).
    pub require_connect_protocol_version: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            compression: CompressionRegistry::default(),
            compress_min_bytes: 1024,
            max_recv_message_size: 4 * 1024 * 1024,
            max_send_message_size: usize::MAX,
            require_connect_protocol_version: false,
        }
    }
}

/// What the server call asks the adapter to put on the wire, in order.
#[derive(Debug)]
pub enum ServerTransmit {
    /// The response head; always first, exactly once.
    Head(http::Response<()>),
    /// A chunk of the response body.
    Data(Bytes),
    /// HTTP trailers; the response ends after them.
    Trailers(HeaderMap),
    /// The response ends (no HTTP trailers).
    End,
    /// Abort the response: reset the stream (HTTP/2 RST_STREAM CANCEL, HTTP/3 RESET_STREAM) or,
    /// over HTTP/1.1, close the connection. The application cancelled the call
    /// ([`ServerCall::cancel`]); nothing follows.
    Reset,
}

/// What the server call tells the application.
#[derive(Debug, PartialEq)]
pub enum ServerEvent {
    /// A request message payload (decompressed, not yet deserialized). A unary or
    /// server-streaming request's one message comes only once the request body ended: only then is
    /// the request known to be complete (PROTOCOL-TRAPS 27).
    Message(Bytes),
    /// The client finished sending; no more messages will come.
    InputClosed,
    /// The call is over; always the last event. `Ok` when the application finished it with `Ok`,
    /// else the status the client is told: the application's, or one the call decided on its own
    /// (a rejected request head, the deadline, a protocol error, the client's reset, a
    /// cancellation). When the call decided, stop the handler: nothing it sends goes out.
    Finished(Result<(), Status>),
}

/// A request refused before the application sees it.
enum Reject {
    /// A plain HTTP answer: the request is not an RPC we can classify (415, 405).
    Http(StatusCode, &'static str),
    /// An RPC error in the request's protocol, with an optional HTTP status override for Connect.
    Rpc(Status, Option<StatusCode>),
}

/// Refuses from the head a request whose `Content-Length` can only exceed the message limit
/// (PROTOCOL-TRAPS 30): a Connect unary body is the one message; a unary or server-streaming
/// request in envelopes carries one message, so one envelope prefix more at most. Client and bidi
/// streams may carry any number of messages: only a server-wide body limit can bound them (the
/// HTTP adapter's). Without the refusal, a client announcing 5 GB and sending 10 bytes keeps the call
/// waiting for a body that would be refused anyway.
fn announced_body_fits(
    request: &http::request::Parts,
    stream_type: StreamType,
    connect_unary: bool,
    max_recv: usize,
) -> Result<(), Reject> {
    if stream_type.client_streams() {
        return Ok(());
    }
    let Some(announced) = header_str(&request.headers, &header::CONTENT_LENGTH)
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return Ok(());
    };
    let prefix = if connect_unary { 0 } else { 5 };
    let most = (wire_limit(max_recv) as u64).saturating_add(prefix);
    if announced <= most {
        return Ok(());
    }
    let why = format!(
        "request body of {announced} bytes (content-length) exceeds the message limit of {max_recv} bytes"
    );
    Err(Reject::Rpc(Status::resource_exhausted(why), None))
}

/// Where a server call is in its life. The request (received) and the response (sent) move on
/// independently until the outcome is decided:
///
/// ```text
///                 new(request head)
///                        │ rejected from the head (415, unimplemented, bad timeout, ...)
///                        ├───────────────────────────────────────────────┐
///                        ▼                                               │
///   Open { recv: Open,   send: Idle } ── head sent ──► send: HeadSent    │
///          │ recv_end: InputClosed                                      │
///          ▼                                                             │
///   Open { recv: Closed, send: … }                                       │
///          │ finish / deadline / protocol error / recv_reset / cancel   │
///          ▼                                                             ▼
///   Closed ◄─────────────────────────────────────────────────────────────┘
///          (Finished emitted; only queued transmits remain)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open { recv: Recv, send: Send },
    Closed,
}

/// The request side of an open call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recv {
    /// The request body may bring more messages.
    Open,
    /// The request body ended (`InputClosed` emitted).
    Closed,
}

/// The response side of an open call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Send {
    /// No response head queued yet.
    Idle,
    /// The response head is queued; messages may follow.
    HeadSent,
}

/// The server side of one RPC as a pure state machine.
///
/// # Driving it
///
/// Method groups, in the order a driver uses them:
///
/// * **Inputs** from the HTTP stack: [`recv_data`](Self::recv_data), [`recv_end`](Self::recv_end),
///   [`recv_reset`](Self::recv_reset), and [`handle_timeout`](Self::handle_timeout) when the instant from
///   [`poll_timeout`](Self::poll_timeout) has passed.
/// * **Commands** from the application: [`send_headers`](Self::send_headers),
///   [`send_message`](Self::send_message) (or [`message_writer`](Self::message_writer) to serialize in
///   place), [`finish`](Self::finish), [`cancel`](Self::cancel).
/// * **Outputs**: [`poll_transmit`](Self::poll_transmit) (to the wire), [`poll_event`](Self::poll_event)
///   (to the application), [`poll_timeout`](Self::poll_timeout) (to the timer).
///
/// After every input or command, drain `poll_transmit` and `poll_event` until both return `None`, then
/// re-arm the timer from `poll_timeout`. The request head is consumed by [`new`](Self::new), which
/// already decides rejections (unknown content type, unsupported compression, bad timeout) so that they
/// are answered before any body is read. [`ServerEvent::Finished`] is always the last event; after it
/// the call ignores input and commands. [`ClientCall`](crate::ClientCall) is driven the same way.
///
/// ```no_run
/// use connect_proto::{Instant, ServerCall, ServerConfig, ServerEvent, ServerTransmit};
/// # fn method_for(_: &str) -> Option<connect_proto::MethodInfo> { None }
/// # fn next_body_chunk() -> Option<bytes::Bytes> { None }
/// # fn write(_: ServerTransmit) {}
/// let config = ServerConfig::default();
/// let (parts, ()) = http::Request::new(()).into_parts();
/// let mut call = ServerCall::new(&config, method_for(parts.uri.path()), &parts, Instant::now());
/// loop {
///     while let Some(t) = call.poll_transmit() {
///         write(t);
///     }
///     while let Some(event) = call.poll_event() {
///         match event {
///             ServerEvent::Message(payload) => {
///                 // decode, run the handler, answer:
///                 call.send_message(payload).unwrap();
///                 call.finish(Ok(()), http::HeaderMap::new()).unwrap();
///             }
///             ServerEvent::InputClosed => {}
///             ServerEvent::Finished(_outcome) => {}
///         }
///     }
///     if call.is_finished() && call.poll_transmit().is_none() {
///         break;
///     }
///     // wait for the body or for `call.poll_timeout()`, then feed the call:
///     match next_body_chunk() {
///         Some(chunk) => call.recv_data(chunk),
///         None => call.recv_end(None),
///     }
///     call.handle_timeout(Instant::now());
/// }
/// ```
#[derive(Debug)]
pub struct ServerCall {
    protocol: Option<Protocol>,
    codec: Option<Codec>,
    stream_type: StreamType,
    deadline: Option<Instant>,
    recv_compression: Option<Arc<dyn Compressor>>,
    send_compression: Option<Arc<dyn Compressor>>,
    accept_encoding: Option<HeaderValue>,
    max_recv: usize,
    max_send: usize,
    compress_min: usize,
    /// `None` for Connect unary, whose body is the bare message.
    decoder: Option<EnvelopeDecoder>,
    body: BodyCollector,
    /// The one request message of a unary or server-streaming call, held until the request body
    /// ends: only then is the request known to be complete (PROTOCOL-TRAPS 27).
    single_request: Option<Bytes>,
    state: State,
    messages_received: u32,
    response_headers: HeaderMap,
    unary_response: Option<Bytes>,
    messages_sent: u32,
    out: Outbox<ServerTransmit>,
    events: VecDeque<ServerEvent>,
}

impl ServerCall {
    /// Starts a call from a request head. `method` is `None` when no handler serves the path; the call
    /// then answers `unimplemented` in the request's protocol. Rejections (unknown content type → 415,
    /// unsupported compression → `unimplemented`, bad timeout, ...) are decided here from the head alone
    /// and queued as output at once, before any body is read (PROTOCOL-TRAPS 26).
    pub fn new(
        config: &ServerConfig,
        method: Option<MethodInfo>,
        request: &http::request::Parts,
        now: Instant,
    ) -> Self {
        let stream_type = method.map_or(StreamType::Unary, |m| m.stream_type);
        let mut call = ServerCall {
            protocol: None,
            codec: None,
            stream_type,
            deadline: None,
            recv_compression: None,
            send_compression: None,
            accept_encoding: config.compression.accept_header_value().cloned(),
            max_recv: config.max_recv_message_size,
            max_send: config.max_send_message_size,
            compress_min: config.compress_min_bytes,
            decoder: None,
            body: BodyCollector::default(),
            single_request: None,
            state: State::Open {
                recv: Recv::Open,
                send: Send::Idle,
            },
            messages_received: 0,
            response_headers: HeaderMap::new(),
            unary_response: None,
            messages_sent: 0,
            out: Outbox::new(ServerTransmit::Data, stream_type.server_streams()),
            events: VecDeque::new(),
        };
        match call.start(config, method, request, now) {
            Ok(()) => {}
            Err(Reject::Http(status, why)) => {
                let mut head = http::Response::new(());
                *head.status_mut() = status;
                if status == StatusCode::METHOD_NOT_ALLOWED {
                    head.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
                }
                call.out.push(ServerTransmit::Head(head));
                call.out.push(ServerTransmit::End);
                let code = Code::from_http_status(status.as_u16());
                call.close(Err(Status::new(code, why)));
            }
            Err(Reject::Rpc(status, http_status)) => {
                call.emit_finish(Err(&status), &HeaderMap::new(), http_status);
                call.close(Err(status));
            }
        }
        call
    }

    fn start(
        &mut self,
        config: &ServerConfig,
        method: Option<MethodInfo>,
        request: &http::request::Parts,
        now: Instant,
    ) -> Result<(), Reject> {
        if request.method == Method::GET {
            return self.start_get(config, method, request, now);
        }
        let ct = header_str(&request.headers, &header::CONTENT_TYPE).and_then(ContentType::parse);
        let Some(ct) = ct else {
            return Err(Reject::Http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported content type",
            ));
        };
        if request.method != Method::POST {
            return Err(Reject::Http(
                StatusCode::METHOD_NOT_ALLOWED,
                "RPCs must use POST",
            ));
        }
        self.protocol = Some(ct.protocol);
        let Some(codec) = ct.codec else {
            return Err(Reject::Http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported codec",
            ));
        };
        if ct.grpc_web_text {
            return Err(Reject::Http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/grpc-web-text is not supported; use application/grpc-web+proto",
            ));
        }
        self.codec = Some(codec);
        let method = method.ok_or_else(|| no_such_method(request))?;
        if ct.protocol == Protocol::Grpc && request.version < http::Version::HTTP_2 {
            // Its status travels in trailers, which HTTP/1.1 stacks rarely carry: refuse clearly
            // (trailers-only, so the status still arrives in the head) rather than answer without one.
            let status =
                Status::unimplemented("gRPC needs HTTP/2; over HTTP/1.1 use gRPC-Web or Connect");
            return Err(Reject::Rpc(status, None));
        }
        if ct.protocol == Protocol::Connect {
            if ct.connect_streaming != (method.stream_type != StreamType::Unary) {
                return Err(Reject::Http(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "content type does not match the method's stream type",
                ));
            }
            match request.headers.get(h::CONNECT_PROTOCOL_VERSION) {
                Some(v) if v != "1" => {
                    let status = Status::invalid_argument(format!(
                        "connect-protocol-version must be \"1\", got {:?}",
                        String::from_utf8_lossy(v.as_bytes())
                    ));
                    return Err(Reject::Rpc(status, None));
                }
                None if config.require_connect_protocol_version => {
                    let status = Status::invalid_argument(
                        "missing required header: connect-protocol-version: 1",
                    );
                    return Err(Reject::Rpc(status, None));
                }
                _ => {}
            }
        }
        self.read_timeout(&request.headers, ct.protocol, now)?;

        let connect_unary =
            ct.protocol == Protocol::Connect && method.stream_type == StreamType::Unary;
        let (encoding, accept) = match ct.protocol {
            Protocol::Connect if connect_unary => {
                (header::CONTENT_ENCODING, header::ACCEPT_ENCODING)
            }
            Protocol::Connect => (h::CONNECT_CONTENT_ENCODING, h::CONNECT_ACCEPT_ENCODING),
            Protocol::Grpc | Protocol::GrpcWeb => (h::GRPC_ENCODING, h::GRPC_ACCEPT_ENCODING),
        };
        self.negotiate_compression(
            config,
            header_str(&request.headers, &encoding),
            header_str(&request.headers, &accept),
        )?;
        announced_body_fits(request, method.stream_type, connect_unary, self.max_recv)?;
        if !connect_unary {
            self.decoder = Some(EnvelopeDecoder::new(wire_limit(self.max_recv)));
        }
        Ok(())
    }

    fn start_get(
        &mut self,
        config: &ServerConfig,
        method: Option<MethodInfo>,
        request: &http::request::Parts,
        now: Instant,
    ) -> Result<(), Reject> {
        self.protocol = Some(Protocol::Connect);
        let method = method.ok_or_else(|| no_such_method(request))?;
        if method.stream_type != StreamType::Unary || !method.no_side_effects {
            return Err(Reject::Http(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET is only allowed for unary methods without side effects",
            ));
        }
        let query = request.uri.query().unwrap_or("");
        let get = connect::decode_get_query(query, config.require_connect_protocol_version)
            .map_err(|status| Reject::Rpc(status, None))?;
        let Some(codec) = Codec::from_name(&get.encoding) else {
            return Err(Reject::Http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported codec",
            ));
        };
        self.codec = Some(codec);
        // Timeouts stay in headers for GET (PROTOCOL-TRAPS 8).
        self.read_timeout(&request.headers, Protocol::Connect, now)?;
        self.negotiate_compression(
            config,
            get.compression.as_deref(),
            header_str(&request.headers, &header::ACCEPT_ENCODING),
        )?;
        if get.message.len() > wire_limit(self.max_recv) {
            let why = format!(
                "request message of {} bytes exceeds the limit of {}",
                get.message.len(),
                self.max_recv
            );
            return Err(Reject::Rpc(Status::resource_exhausted(why), None));
        }
        let message = Incoming::Requests
            .open_body(get.message, self.recv_compression.as_ref(), self.max_recv)
            .map_err(|s| Reject::Rpc(s, None))?;
        self.close_recv();
        self.messages_received = 1;
        self.events.push_back(ServerEvent::Message(message));
        self.events.push_back(ServerEvent::InputClosed);
        Ok(())
    }

    /// The request's compression from its encoding (`unimplemented` naming what we support when we
    /// do not speak it, PROTOCOL-TRAPS 10), and the response's from the accept list (without one,
    /// the request's own encoding is acceptable).
    fn negotiate_compression(
        &mut self,
        config: &ServerConfig,
        encoding: Option<&str>,
        accept: Option<&str>,
    ) -> Result<(), Reject> {
        self.recv_compression = named_compression(&config.compression, encoding)
            .map_err(|name| unsupported_compression(config, name))?;
        self.send_compression = match accept {
            Some(list) => config.compression.negotiate(Some(list)).cloned(),
            None => self.recv_compression.clone(),
        };
        Ok(())
    }

    fn read_timeout(
        &mut self,
        headers: &HeaderMap,
        protocol: Protocol,
        now: Instant,
    ) -> Result<(), Reject> {
        let (name, parse): (HeaderName, fn(&[u8]) -> Result<_, _>) = match protocol {
            Protocol::Connect => (h::CONNECT_TIMEOUT_MS, timeout::parse_connect_timeout),
            Protocol::Grpc | Protocol::GrpcWeb => (h::GRPC_TIMEOUT, timeout::parse_grpc_timeout),
        };
        let Some(value) = headers.get(&name) else {
            return Ok(());
        };
        match parse(value.as_bytes()) {
            // A deadline too far to represent is no deadline.
            Ok(d) => self.deadline = now.checked_add(d),
            Err(e) => {
                return Err(Reject::Rpc(
                    Status::invalid_argument(format!("{name}: {e}")),
                    None,
                ))
            }
        }
        if self.deadline.is_some_and(|d| d <= now) {
            return Err(Reject::Rpc(
                Status::deadline_exceeded("the request's timeout had already expired"),
                None,
            ));
        }
        Ok(())
    }

    /// The protocol of the request, once classified.
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// The codec of the request.
    pub fn codec(&self) -> Option<Codec> {
        self.codec
    }

    /// The call's deadline, from the request's timeout header.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the call is over ([`ServerEvent::Finished`] is queued or was emitted): finished by the
    /// application or ended by the call itself. Transmits may still be pending.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed
    }

    fn recv_open(&self) -> bool {
        matches!(
            self.state,
            State::Open {
                recv: Recv::Open,
                ..
            }
        )
    }

    fn head_sent(&self) -> bool {
        matches!(
            self.state,
            State::Open {
                send: Send::HeadSent,
                ..
            }
        )
    }

    fn close_recv(&mut self) {
        if let State::Open { send, .. } = self.state {
            self.state = State::Open {
                recv: Recv::Closed,
                send,
            };
        }
    }

    /// Input: a chunk of the request body.
    pub fn recv_data(&mut self, data: Bytes) {
        if !self.recv_open() {
            return;
        }
        if let Err(status) = self.recv_data_inner(data) {
            self.fail(status);
        }
    }

    fn recv_data_inner(&mut self, data: Bytes) -> Result<(), Status> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Incoming::Requests.collect(&mut self.body, data, self.max_recv);
        };
        decoder.push(data);
        while let Some(decoder) = self.decoder.as_mut() {
            let Some(envelope) = Incoming::Requests.next_envelope(decoder)? else {
                break;
            };
            self.recv_envelope(envelope)?;
        }
        Ok(())
    }

    fn recv_envelope(&mut self, envelope: Envelope) -> Result<(), Status> {
        if envelope.flags & !flags::COMPRESSED != 0 {
            return Err(Status::internal(format!(
                "protocol error: invalid envelope flags {:#04x} in a request",
                envelope.flags
            )));
        }
        let payload =
            Incoming::Requests.open(envelope, self.recv_compression.as_ref(), self.max_recv)?;
        self.messages_received += 1;
        if self.stream_type.client_streams() {
            self.events.push_back(ServerEvent::Message(payload));
            return Ok(());
        }
        if self.messages_received > 1 {
            self.single_request = None;
            return Err(Status::unimplemented(format!(
                "protocol error: a {} request has exactly one message, got a second one",
                self.stream_type.name()
            )));
        }
        self.single_request = Some(payload);
        Ok(())
    }

    /// Input: the request body ended, with HTTP trailers if there were any (they carry no meaning in any
    /// of the protocols and are ignored).
    pub fn recv_end(&mut self, trailers: Option<HeaderMap>) {
        let _ = trailers;
        if !self.recv_open() {
            return;
        }
        self.close_recv();
        if let Err(status) = self.recv_end_inner() {
            self.fail(status);
        }
    }

    fn recv_end_inner(&mut self) -> Result<(), Status> {
        match &self.decoder {
            Some(decoder) => {
                if decoder.buffered_len() > 0 {
                    return Err(Status::invalid_argument(format!(
                        "request body ended inside an envelope ({} bytes left over)",
                        decoder.buffered_len()
                    )));
                }
                if !self.stream_type.client_streams() {
                    let Some(message) = self.single_request.take() else {
                        return Err(Status::unimplemented(format!(
                            "protocol error: a {} request has exactly one message, got none",
                            self.stream_type.name()
                        )));
                    };
                    self.events.push_back(ServerEvent::Message(message));
                }
            }
            None => {
                let body = self.body.take();
                let message = Incoming::Requests.open_body(
                    body,
                    self.recv_compression.as_ref(),
                    self.max_recv,
                )?;
                self.messages_received = 1;
                self.events.push_back(ServerEvent::Message(message));
            }
        }
        self.events.push_back(ServerEvent::InputClosed);
        Ok(())
    }

    /// Input: the client reset the stream or the connection went away. Nothing more is sent; the call
    /// finishes `canceled`.
    pub fn recv_reset(&mut self, reason: Reset) {
        self.out.clear();
        if !self.is_finished() {
            self.close(Err(Status::canceled(format!(
                "the client went away: {reason}"
            ))));
        }
    }

    /// Input: the time is now `now`. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.is_finished() && self.deadline.is_some_and(|d| d <= now) {
            self.fail(Status::deadline_exceeded("the call's deadline expired"));
        }
    }

    /// Command: abandon the call: the response is reset ([`ServerTransmit::Reset`]) instead of
    /// answered, and the call finishes `canceled`. Ignored once the call is finished.
    pub fn cancel(&mut self) {
        if self.is_finished() {
            return;
        }
        self.out.clear();
        self.out.push(ServerTransmit::Reset);
        self.close(Err(Status::canceled("the server canceled the call")));
    }

    /// Command: response headers (custom metadata; names the protocol owns are dropped). Optional; must
    /// come before the first message. Ignored once the call is finished.
    pub fn send_headers(&mut self, headers: HeaderMap) -> Result<(), UsageError> {
        if self.is_finished() {
            return Ok(());
        }
        if self.head_sent() || self.messages_sent > 0 {
            return Err(UsageError(
                "response headers must come before the first message",
            ));
        }
        let protocol = self.protocol.unwrap_or(Protocol::Connect);
        metadata::merge_application(protocol, &headers, &mut self.response_headers);
        if !self.connect_unary() {
            self.send_head();
        }
        Ok(())
    }

    /// Command: one response message payload (serialized; the call compresses and frames it). A payload
    /// over the send limit fails the call with `resource_exhausted`. Ignored once the call is finished
    /// (it may have ended on its own meanwhile).
    pub fn send_message(&mut self, payload: Bytes) -> Result<(), UsageError> {
        send_payload(self, payload)
    }

    /// Command, in two steps: a response message serialized straight into the call's send buffer,
    /// where [`ServerCall::send_message`] copies a payload serialized elsewhere. Append the message's
    /// bytes to [`MessageWriter::buffer`], then [`MessageWriter::send`] it; a writer dropped unsent
    /// leaves nothing behind.
    ///
    /// ```
    /// # use connect_proto::{ServerCall, ServerConfig};
    /// # fn reply(call: &mut ServerCall) -> Result<(), connect_proto::UsageError> {
    /// let mut writer = call.message_writer();
    /// writer.buffer().extend_from_slice(b"serialized message");
    /// writer.send()
    /// # }
    /// ```
    pub fn message_writer(&mut self) -> MessageWriter<'_> {
        let (call, start, prefix) = writer_for(self);
        MessageWriter::new(WriterCall::Server(call), start, prefix)
    }

    /// Command: the call's outcome and trailers (custom metadata). Nothing may be sent after it. Ignored
    /// once the call is done. Finishing a unary call with `Ok` but no message is a usage error; the call
    /// then fails with `internal`.
    pub fn finish(
        &mut self,
        result: Result<(), Status>,
        trailers: HeaderMap,
    ) -> Result<(), UsageError> {
        if self.is_finished() {
            return Ok(());
        }
        if result.is_ok() && !self.stream_type.server_streams() && self.messages_sent == 0 {
            self.fail(Status::internal(
                "the handler finished a unary call without a response message",
            ));
            return Err(UsageError(
                "a unary call finished with Ok but no response message",
            ));
        }
        let protocol = self.protocol.unwrap_or(Protocol::Connect);
        let mut app_trailers = HeaderMap::new();
        metadata::merge_application(protocol, &trailers, &mut app_trailers);
        self.emit_finish(result.as_ref().map(|_| ()), &app_trailers, None);
        self.close(result);
        Ok(())
    }

    /// Output: the next thing to put on the wire. Small response messages sent one after another are
    /// framed into one buffer and come out as one `Data` chunk (however many were sent since the last
    /// poll), so a caller that lets several messages gather before polling writes fewer, larger
    /// chunks; see [`ServerCall::gathered_len`].
    pub fn poll_transmit(&mut self) -> Option<ServerTransmit> {
        self.out.pop()
    }

    /// Bytes of framed messages gathered for the next `Data` chunk and not yet returned by
    /// [`ServerCall::poll_transmit`]: a caller may go on sending messages while this is below the
    /// chunk size it wants.
    pub fn gathered_len(&self) -> usize {
        self.out.gathered_len()
    }

    /// Output: the next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
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

    fn connect_unary(&self) -> bool {
        self.protocol == Some(Protocol::Connect) && self.stream_type == StreamType::Unary
    }

    /// Ends the call with an error the server detected, answering the client in protocol form.
    fn fail(&mut self, status: Status) {
        if self.is_finished() {
            return;
        }
        self.emit_finish(Err(&status), &HeaderMap::new(), None);
        self.close(Err(status));
    }

    /// The outcome is decided: nothing more is received or sent but what is queued.
    fn close(&mut self, outcome: Result<(), Status>) {
        self.state = State::Closed;
        self.events.push_back(ServerEvent::Finished(outcome));
    }

    fn content_type(&self) -> &'static str {
        let protocol = self.protocol.unwrap_or(Protocol::Connect);
        let streaming = self.stream_type != StreamType::Unary;
        ContentType::format(protocol, streaming, self.codec.unwrap_or(Codec::Proto))
    }

    /// The head of a streaming response (Connect streams, gRPC, gRPC-Web), sent once.
    fn send_head(&mut self) {
        let State::Open {
            recv,
            send: Send::Idle,
        } = self.state
        else {
            return;
        };
        self.state = State::Open {
            recv,
            send: Send::HeadSent,
        };
        let mut head = http::Response::new(());
        let headers = head.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        let (encoding, accept) = match self.protocol {
            Some(Protocol::Connect) => (h::CONNECT_CONTENT_ENCODING, h::CONNECT_ACCEPT_ENCODING),
            _ => (h::GRPC_ENCODING, h::GRPC_ACCEPT_ENCODING),
        };
        if let Some(c) = &self.send_compression {
            headers.insert(encoding, HeaderValue::from_static(c.name()));
        }
        if let Some(v) = &self.accept_encoding {
            headers.insert(accept, v.clone());
        }
        append_all(headers, std::mem::take(&mut self.response_headers));
        self.out.push(ServerTransmit::Head(head));
    }

    /// Queues the end of the response in the protocol's form.
    fn emit_finish(
        &mut self,
        result: Result<(), &Status>,
        trailers: &HeaderMap,
        http_status: Option<StatusCode>,
    ) {
        match self.protocol {
            None | Some(Protocol::Connect) if self.connect_unary() || self.protocol.is_none() => {
                self.emit_connect_unary(result, trailers, http_status)
            }
            None | Some(Protocol::Connect) => {
                self.send_head();
                let end = connect::encode_end_stream(result.err(), trailers);
                let (data, compressed) = compress(
                    self.send_compression.as_ref(),
                    self.compress_min,
                    end.clone(),
                )
                .unwrap_or((end, false));
                let flag = flags::END_STREAM | message_flag(compressed);
                self.out.push_envelope(flag, data);
                self.out.push(ServerTransmit::End);
            }
            Some(Protocol::Grpc) => {
                let mut block = trailers.clone();
                grpc::write_status(result, &mut block);
                if self.head_sent() {
                    self.out.push(ServerTransmit::Trailers(block));
                } else {
                    self.emit_trailers_only(block);
                }
            }
            Some(Protocol::GrpcWeb) => {
                let mut block = trailers.clone();
                grpc::write_status(result, &mut block);
                if self.head_sent() {
                    let payload = grpc_web::encode_trailers(&block);
                    self.out.push_envelope(flags::TRAILERS, payload);
                    self.out.push(ServerTransmit::End);
                } else {
                    self.emit_trailers_only(block);
                }
            }
        }
    }

    /// gRPC and gRPC-Web without any message: one head carrying the status (PROTOCOL-TRAPS 13, 21).
    fn emit_trailers_only(&mut self, block: HeaderMap) {
        self.send_head();
        if let Some(ServerTransmit::Head(head)) = self.out.last_mut() {
            append_all(head.headers_mut(), block);
        }
        self.out.push(ServerTransmit::End);
    }

    fn emit_connect_unary(
        &mut self,
        result: Result<(), &Status>,
        trailers: &HeaderMap,
        http_status: Option<StatusCode>,
    ) {
        let mut head = http::Response::new(());
        let mut headers = std::mem::take(&mut self.response_headers);
        connect::trailers_to_headers(trailers, &mut headers);
        let body = match result {
            Ok(()) => {
                let message = self.unary_response.take().unwrap_or_default();
                let (body, compressed) =
                    match compress(self.send_compression.as_ref(), self.compress_min, message) {
                        Ok(v) => v,
                        Err(status) => {
                            return self.emit_connect_unary(Err(&status), trailers, None)
                        }
                    };
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type()),
                );
                if compressed {
                    if let Some(c) = &self.send_compression {
                        headers
                            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(c.name()));
                    }
                }
                body
            }
            Err(status) => {
                // Errors are always JSON, whatever the request's codec (PROTOCOL-TRAPS 1).
                *head.status_mut() = http_status.unwrap_or_else(|| status.code().http_status());
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                connect::encode_error(status)
            }
        };
        *head.headers_mut() = headers;
        self.out.push(ServerTransmit::Head(head));
        if !body.is_empty() {
            self.out.push(ServerTransmit::Data(body));
        }
        self.out.push(ServerTransmit::End);
    }
}

/// `unimplemented` for a request compressed with `name`, naming what we support (PROTOCOL-TRAPS 10).
fn unsupported_compression(config: &ServerConfig, name: &str) -> Reject {
    let supported = config.compression.accept_header();
    let supported = if supported.is_empty() {
        "identity".to_owned()
    } else {
        format!("{supported},identity")
    };
    let why = format!("unsupported compression {name:?}; supported: {supported}");
    Reject::Rpc(Status::unimplemented(why), None)
}

/// `unimplemented` (404 in Connect) for a path no handler serves.
fn no_such_method(request: &http::request::Parts) -> Reject {
    let status = Status::unimplemented(format!("no such method: {}", request.uri.path()));
    Reject::Rpc(status, Some(StatusCode::NOT_FOUND))
}

/// Appends every entry of `from` to `to`, keeping duplicates.
fn append_all(to: &mut HeaderMap, from: HeaderMap) {
    let mut last = None;
    for (name, value) in from {
        if let Some(name) = name {
            last = Some(name);
        }
        if let Some(name) = &last {
            to.append(name.clone(), value);
        }
    }
}

impl SendSide for ServerCall {
    type Transmit = ServerTransmit;

    #[inline]
    fn outbox(&mut self) -> &mut Outbox<ServerTransmit> {
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
        if !self.stream_type.server_streams() && self.messages_sent > 0 {
            let misuse = UsageError("a unary response has exactly one message");
            return Some(Refusal::Misuse(misuse));
        }
        let too_large = check_raw_size(len, self.max_send, "response");
        too_large.err().map(Refusal::TooLarge)
    }

    #[inline]
    fn count_sent(&mut self) {
        self.messages_sent += 1;
    }

    fn fail_send(&mut self, status: Status) {
        self.fail(status);
    }

    /// Queues an admitted message: kept as the body of a Connect unary response, else compressed
    /// (as a payload of its own) or framed behind the response head.
    fn queue_message(&mut self, message: Outgoing) {
        let len = message.len(self.out.gathered_len());
        let compress_it = self.send_compression.is_some() && len >= self.compress_min;
        let payload = match message {
            Outgoing::InPlace { start, prefix: _ } if !self.connect_unary() && !compress_it => {
                let mut start = start;
                if !self.head_sent() {
                    // The head goes out before the message: the message steps aside meanwhile.
                    let message = self.out.take_in_place(start, 0);
                    self.send_head();
                    start = self.out.put_back_in_place(message);
                }
                self.out.commit_in_place(start, 0);
                return;
            }
            Outgoing::InPlace { start, prefix } => self.out.take_in_place(start, prefix).freeze(),
            Outgoing::Payload(payload) => payload,
        };
        if self.connect_unary() {
            self.unary_response = Some(payload);
            return;
        }
        self.send_head();
        match compress(self.send_compression.as_ref(), self.compress_min, payload) {
            Ok((data, compressed)) => self.out.push_envelope(message_flag(compressed), data),
            Err(status) => self.fail(status),
        }
    }

    fn plain_below(&self) -> usize {
        if !self.stream_type.server_streams() || !self.head_sent() {
            return 0;
        }
        plain_size_bound(
            self.max_send,
            self.send_compression.is_some(),
            self.compress_min,
        )
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
    const STREAM: MethodInfo = MethodInfo {
        path: "/t.S/Stream",
        stream_type: StreamType::ServerStreaming,
        no_side_effects: false,
    };

    fn head(method: &str, path: &str, content_type: Option<&str>) -> http::request::Parts {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .version(http::Version::HTTP_2);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.body(()).expect("request").into_parts().0
    }

    fn start(method: MethodInfo, parts: &http::request::Parts) -> ServerCall {
        ServerCall::new(
            &ServerConfig::default(),
            Some(method),
            parts,
            Instant::now(),
        )
    }

    fn transmits(call: &mut ServerCall) -> Vec<ServerTransmit> {
        std::iter::from_fn(|| call.poll_transmit()).collect()
    }

    /// The body bytes the call sent, its `Data` transmits joined.
    fn sent_data(call: &mut ServerCall) -> Vec<u8> {
        transmits(call)
            .into_iter()
            .filter_map(|t| match t {
                ServerTransmit::Data(d) => Some(d.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn events(call: &mut ServerCall) -> Vec<ServerEvent> {
        std::iter::from_fn(|| call.poll_event()).collect()
    }

    fn envelope(payload: &'static [u8]) -> Bytes {
        let (head, tail) = crate::envelope::encode(0, Bytes::from_static(payload));
        assert!(tail.is_none());
        head
    }

    #[test]
    fn the_state_follows_the_request_and_the_response_apart() {
        let mut call = start(STREAM, &head("POST", STREAM.path, Some("application/grpc")));
        let open = |recv, send| State::Open { recv, send };
        assert_eq!(call.state, open(Recv::Open, Send::Idle));
        call.send_headers(HeaderMap::new()).unwrap();
        assert_eq!(call.state, open(Recv::Open, Send::HeadSent));
        call.recv_data(envelope(b"m"));
        call.recv_end(None);
        assert_eq!(call.state, open(Recv::Closed, Send::HeadSent));
        assert_eq!(
            events(&mut call),
            [
                ServerEvent::Message(Bytes::from_static(b"m")),
                ServerEvent::InputClosed
            ]
        );
        call.send_message(Bytes::from_static(b"r")).unwrap();
        call.finish(Ok(()), HeaderMap::new()).unwrap();
        assert_eq!(call.state, State::Closed);
        assert_eq!(events(&mut call), [ServerEvent::Finished(Ok(()))]);
        let sent = transmits(&mut call);
        assert!(matches!(sent.first(), Some(ServerTransmit::Head(_))));
        assert!(matches!(sent.last(), Some(ServerTransmit::Trailers(_))));
    }

    #[test]
    fn a_request_refused_from_its_head_is_over_before_any_body() {
        let mut call = start(UNARY, &head("POST", UNARY.path, Some("text/plain")));
        assert_eq!(call.state, State::Closed);
        let sent = transmits(&mut call);
        match &sent[..] {
            [ServerTransmit::Head(head), ServerTransmit::End] => {
                assert_eq!(head.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            other => panic!("{other:?}"),
        }
        match &events(&mut call)[..] {
            [ServerEvent::Finished(Err(status))] => assert_eq!(status.code(), Code::UNKNOWN),
            other => panic!("{other:?}"),
        }
        // Input and commands after the end change nothing.
        call.recv_data(Bytes::from_static(b"body"));
        call.recv_end(None);
        assert_eq!(call.send_message(Bytes::from_static(b"r")), Ok(()));
        assert_eq!(call.finish(Ok(()), HeaderMap::new()), Ok(()));
        assert!(transmits(&mut call).is_empty() && events(&mut call).is_empty());
    }

    #[test]
    fn get_and_other_methods_are_refused_where_they_do_not_apply() {
        // GET of a method with side effects: 405 naming what is allowed.
        let mut call = start(
            UNARY,
            &head("GET", "/t.S/Unary?encoding=proto&message=", None),
        );
        match &transmits(&mut call)[..] {
            [ServerTransmit::Head(head), ServerTransmit::End] => {
                assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
                assert_eq!(head.headers()[header::ALLOW], "GET, POST");
            }
            other => panic!("{other:?}"),
        }
        // GET of a path nobody serves, and POST to it: unimplemented, 404 in Connect.
        for parts in [
            head("GET", "/t.S/Missing?encoding=proto&message=", None),
            head("POST", "/t.S/Missing", Some("application/proto")),
        ] {
            let mut call = ServerCall::new(&ServerConfig::default(), None, &parts, Instant::now());
            match &transmits(&mut call)[..] {
                [ServerTransmit::Head(head), ServerTransmit::Data(body), ServerTransmit::End] => {
                    assert_eq!(head.status(), StatusCode::NOT_FOUND);
                    assert!(body.starts_with(br#"{"code":"unimplemented""#), "{body:?}");
                }
                other => panic!("{other:?}"),
            }
        }
        // PUT with an RPC content type.
        let mut call = start(UNARY, &head("PUT", UNARY.path, Some("application/proto")));
        match &transmits(&mut call)[..] {
            [ServerTransmit::Head(head), ServerTransmit::End] => {
                assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_the_call_cannot_take_are_refused_dropped_or_fail_it() {
        let parts = head("POST", UNARY.path, Some("application/grpc"));
        let mut call = start(UNARY, &parts);
        call.send_message(Bytes::from_static(b"one")).unwrap();
        let gathered = call.gathered_len();
        assert_eq!(
            call.send_message(Bytes::from_static(b"two")),
            Err(UsageError("a unary response has exactly one message"))
        );
        // Written in place: refused the same way, and nothing of it stays in the buffer.
        let mut writer = call.message_writer();
        writer.buffer().extend_from_slice(b"three");
        assert!(writer.send().is_err());
        assert_eq!(call.gathered_len(), gathered);
        // A writer dropped unsent leaves nothing either.
        let mut writer = call.message_writer();
        writer.buffer().extend_from_slice(b"four");
        drop(writer);
        assert_eq!(call.gathered_len(), gathered);
        // Over the send limit: the call fails with resource_exhausted.
        let config = ServerConfig {
            max_send_message_size: 2,
            ..ServerConfig::default()
        };
        let parts = head("POST", STREAM.path, Some("application/grpc"));
        let mut call = ServerCall::new(&config, Some(STREAM), &parts, Instant::now());
        assert_eq!(call.send_message(Bytes::from_static(b"big")), Ok(()));
        match &events(&mut call)[..] {
            [ServerEvent::Finished(Err(status))] => {
                assert_eq!(status.code(), Code::RESOURCE_EXHAUSTED);
                assert_eq!(
                    status.message(),
                    "response message of 3 bytes exceeds the limit of 2"
                );
            }
            other => panic!("{other:?}"),
        }
        // Once over, messages are dropped without a word.
        assert_eq!(call.send_message(Bytes::from_static(b"x")), Ok(()));
        assert_eq!(call.message_writer().send(), Ok(()));
    }

    #[test]
    fn one_writer_sends_a_streams_messages_one_after_another() {
        let parts = head("POST", STREAM.path, Some("application/grpc"));
        let mut call = start(STREAM, &parts);
        let mut writer = call.message_writer();
        writer.buffer().extend_from_slice(b"one");
        assert_eq!(writer.send_and_continue(), Ok(true));
        assert!(writer.is_empty(), "the next message starts empty");
        writer.buffer().extend_from_slice(b"two");
        assert_eq!(writer.send_and_continue(), Ok(true));
        // Begun, nothing written, dropped: nothing of it is sent.
        drop(writer);
        call.finish(Ok(()), HeaderMap::new()).unwrap();
        let body = sent_data(&mut call);
        assert_eq!(body, b"\0\0\0\0\x03one\0\0\0\0\x03two");

        // A unary response takes one message: the writer says so, and refuses another as a new
        // writer would.
        let parts = head("POST", UNARY.path, Some("application/grpc"));
        let mut call = start(UNARY, &parts);
        let mut writer = call.message_writer();
        writer.buffer().extend_from_slice(b"only");
        assert_eq!(writer.send_and_continue(), Ok(false));
        assert!(writer.is_empty());
        writer.buffer().extend_from_slice(b"more");
        assert_eq!(
            writer.send(),
            Err(UsageError("a unary response has exactly one message"))
        );
        let data = sent_data(&mut call);
        assert_eq!(data, b"\0\0\0\0\x04only", "the one message, enveloped");

        // A message over the limit fails the call and ends the run.
        let config = ServerConfig {
            max_send_message_size: 3,
            ..ServerConfig::default()
        };
        let parts = head("POST", STREAM.path, Some("application/grpc"));
        let mut call = ServerCall::new(&config, Some(STREAM), &parts, Instant::now());
        let mut writer = call.message_writer();
        writer.buffer().extend_from_slice(b"big!");
        assert_eq!(writer.send_and_continue(), Ok(false));
        drop(writer);
        match &events(&mut call)[..] {
            [ServerEvent::Finished(Err(status))] => {
                assert_eq!(status.code(), Code::RESOURCE_EXHAUSTED)
            }
            other => panic!("{other:?}"),
        }
    }

    /// Through one writer, a stream's messages leave exactly as `send_message` sends them, those
    /// that take the plain path (under the limit and the compression threshold) and those that take
    /// the whole one (compressed; over the limit, which fails the call) alike.
    #[test]
    fn a_writers_run_sends_what_send_message_sends() {
        let config = ServerConfig {
            compress_min_bytes: 8,
            max_send_message_size: 20,
            ..ServerConfig::default()
        };
        let messages = crate::call::WRITER_RUN_MESSAGES;
        for gzip in [false, true] {
            let mut parts = head("POST", STREAM.path, Some("application/grpc"));
            if gzip {
                let gzip = HeaderValue::from_static("gzip");
                parts.headers.insert(h::GRPC_ACCEPT_ENCODING, gzip);
            }
            let mut by_writer = ServerCall::new(&config, Some(STREAM), &parts, Instant::now());
            let mut writer = by_writer.message_writer();
            let mut taken = Vec::new();
            for message in messages {
                writer.buffer().extend_from_slice(message);
                taken.push(writer.send_and_continue());
            }
            drop(writer);
            let over = [Ok(false), Ok(false)];
            assert!(taken[..5].iter().all(|t| *t == Ok(true)), "{taken:?}");
            assert_eq!(taken[5..], over, "the message over the limit ends the run");
            let mut by_payload = ServerCall::new(&config, Some(STREAM), &parts, Instant::now());
            for message in messages {
                assert_eq!(by_payload.send_message(Bytes::from_static(message)), Ok(()));
            }
            let expected = transmits(&mut by_payload);
            let body: Vec<u8> = expected
                .iter()
                .filter_map(|t| match t {
                    ServerTransmit::Data(d) => Some(d.to_vec()),
                    _ => None,
                })
                .flatten()
                .collect();
            let second_flag = body[7];
            assert_eq!(second_flag, u8::from(gzip), "{body:?}");
            let sent = format!("{:?}", transmits(&mut by_writer));
            assert_eq!(sent, format!("{expected:?}"));
            assert_eq!(
                format!("{:?}", events(&mut by_writer)),
                format!("{:?}", events(&mut by_payload))
            );
        }
    }

    #[test]
    fn the_deadline_ends_the_call_once_and_early_timeouts_do_nothing() {
        let mut parts = head("POST", UNARY.path, Some("application/grpc"));
        parts
            .headers
            .insert(h::GRPC_TIMEOUT, HeaderValue::from_static("10m"));
        let now = Instant::now();
        let mut call = ServerCall::new(&ServerConfig::default(), Some(UNARY), &parts, now);
        let deadline = call.poll_timeout().expect("a deadline");
        call.handle_timeout(now);
        assert!(events(&mut call).is_empty() && transmits(&mut call).is_empty());
        call.handle_timeout(deadline);
        match &events(&mut call)[..] {
            [ServerEvent::Finished(Err(status))] => {
                assert_eq!(status.code(), Code::DEADLINE_EXCEEDED)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(call.poll_timeout(), None);
        call.handle_timeout(deadline + std::time::Duration::from_secs(1));
        assert!(events(&mut call).is_empty());
    }
}
