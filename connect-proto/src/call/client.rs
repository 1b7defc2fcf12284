//! The client side of one call.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::compression::CompressionRegistry;
use crate::protocol::{Codec, MethodInfo, Protocol};
use crate::status::{Status, UsageError};
use crate::time::Instant;

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
    /// Abort the HTTP request (RST_STREAM / AbortController): the call was cancelled or failed locally.
    Abort,
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

/// The client side of one RPC as a pure state machine.
#[derive(Debug)]
pub struct ClientCall {
    _p: (),
}

impl ClientCall {
    /// Starts a call of `method` on the server at `base` (scheme, authority and any path prefix).
    pub fn new(
        config: &ClientConfig,
        method: MethodInfo,
        base: &http::Uri,
        options: CallOptions,
        now: Instant,
    ) -> Self {
        let _ = (config, method, base, options, now);
        todo!()
    }

    /// Command: one request message payload (serialized; the call compresses and frames it).
    pub fn send_message(&mut self, payload: Bytes) -> Result<(), UsageError> {
        let _ = payload;
        todo!()
    }

    /// Command: no more request messages.
    pub fn close_send(&mut self) -> Result<(), UsageError> {
        todo!()
    }

    /// Command: cancel the call. It finishes with `canceled` and the request is aborted on the wire.
    pub fn cancel(&mut self) {
        todo!()
    }

    /// Input: the response head.
    pub fn recv_head(&mut self, response: http::Response<()>) {
        let _ = response;
        todo!()
    }

    /// Input: a chunk of the response body.
    pub fn recv_data(&mut self, data: Bytes) {
        let _ = data;
        todo!()
    }

    /// Input: HTTP trailers (they end the response).
    pub fn recv_trailers(&mut self, trailers: HeaderMap) {
        let _ = trailers;
        todo!()
    }

    /// Input: the response body ended without HTTP trailers (fetch has none).
    pub fn recv_end(&mut self) {
        todo!()
    }

    /// Input: the stream was reset (`Some(h2 reason code)`) or the connection failed (`None`).
    pub fn recv_reset(&mut self, reason: Option<u32>) {
        let _ = reason;
        todo!()
    }

    /// Input: the time is now `now`. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// Output: the next thing to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<ClientTransmit> {
        todo!()
    }

    /// Output: the next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        todo!()
    }

    /// Output: when `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
}
