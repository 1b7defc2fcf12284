//! The server side of one call.

use bytes::Bytes;
use http::HeaderMap;

use crate::compression::CompressionRegistry;
use crate::protocol::{Codec, MethodInfo, Protocol};
use crate::status::{Status, UsageError};
use crate::time::Instant;

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
}

/// What the server call tells the application.
#[derive(Debug, PartialEq)]
pub enum ServerEvent {
    /// A request message payload (decompressed, not yet deserialized).
    Message(Bytes),
    /// The client finished sending; no more messages will come.
    InputClosed,
    /// The call is over without the application: the deadline passed, the peer broke the protocol or
    /// went away, or the request was rejected up front. Any response is already queued; stop the handler.
    Aborted(Status),
}

/// The server side of one RPC as a pure state machine.
#[derive(Debug)]
pub struct ServerCall {
    _p: (),
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
        let _ = (config, method, request, now);
        todo!("call machine")
    }

    /// The protocol of the request, once classified.
    pub fn protocol(&self) -> Option<Protocol> {
        todo!()
    }

    /// The codec of the request.
    pub fn codec(&self) -> Option<Codec> {
        todo!()
    }

    /// The request headers the application may read (custom metadata).
    pub fn request_headers(&self) -> &HeaderMap {
        todo!()
    }

    /// The call's deadline, from the request's timeout header.
    pub fn deadline(&self) -> Option<Instant> {
        todo!()
    }

    /// Input: a chunk of the request body.
    pub fn recv_data(&mut self, data: Bytes) {
        let _ = data;
        todo!()
    }

    /// Input: the request body ended, with HTTP trailers if there were any.
    pub fn recv_end(&mut self, trailers: Option<HeaderMap>) {
        let _ = trailers;
        todo!()
    }

    /// Input: the client reset the stream or the connection went away.
    pub fn recv_reset(&mut self) {
        todo!()
    }

    /// Input: the time is now `now`. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// Command: response headers (custom metadata). Optional; must come before the first message.
    pub fn send_headers(&mut self, headers: HeaderMap) -> Result<(), UsageError> {
        let _ = headers;
        todo!()
    }

    /// Command: one response message payload (serialized; the call compresses and frames it).
    pub fn send_message(&mut self, payload: Bytes) -> Result<(), UsageError> {
        let _ = payload;
        todo!()
    }

    /// Command: the call's outcome and trailers. Nothing may be sent after it.
    pub fn finish(
        &mut self,
        result: Result<(), Status>,
        trailers: HeaderMap,
    ) -> Result<(), UsageError> {
        let _ = (result, trailers);
        todo!()
    }

    /// Output: the next thing to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<ServerTransmit> {
        todo!()
    }

    /// Output: the next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        todo!()
    }

    /// Output: when `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
}
