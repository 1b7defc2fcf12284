//! The typed RPC layer: handlers, a router serving all three protocols, and a typed client, with no
//! async runtime of its own.
//!
//! Generated code (see the `connect-build` crate) implements [`Service`] for each `.proto` service and
//! wraps a [`Client`] in a typed client; hand-written code can use the same pieces.
//!
//! - **Server**: a [`Router`] maps paths to [`Service`]s. [`Router::handle`] takes any
//!   `http::Request<impl http_body::Body>` and returns an `http::Response<`[`ResponseBody`]`>`; the
//!   returned future and body drive the call's [`ServerCall`](crate::ServerCall), so serving spawns no
//!   task. Handlers get a [`Context`] (deadline, request headers, extensions, response headers and
//!   trailers) and decoded messages: zero-copy [`RequestView`]s, or a [`Streaming`] of them. Their
//!   responses are serialized in place, into the call's send buffer
//!   ([`ServerCall::message_writer`](crate::ServerCall::message_writer)).
//! - **Client**: [`Client`] sends requests through a [`Transport`] and drives a
//!   [`ClientCall`](crate::ClientCall) per RPC; per-call [`CallOptions`](crate::CallOptions) override the
//!   client's defaults.
//! - **Runtime**: where time or tasks are needed, they come from a [`Runtime`] that each adapter
//!   implements.

mod body;
mod client;
mod context;
mod handler;
mod json_types;
mod message;
mod router;
mod runtime;
pub mod view_decode;

pub use body::{BoxError, RequestBody, TransportError};
pub use client::{merge_options, Client, Outcome, Response, ResponseStream, Transport};
pub use context::Context;
pub use handler::{
    bidi_streaming, client_streaming, raw_responses, server_streaming, unary, HandlerStream,
    RawRequests, RawResponses, ResponseSource, Service, Streaming,
};
pub use json_types::{register_json_types, RegisterTypes};
pub use message::{
    decode_request, decode_response, encode, RequestDecoder, RequestView, ViewDecoder,
};
pub use router::{CallReset, ResponseBody, Router, ServeFuture};
pub use runtime::{BoxFuture, BoxStream, MaybeSend, Runtime};

/// The stream trait of the typed layer (re-exported so generated code needs no extra dependency).
pub use futures_core::Stream;
