//! The typed RPC layer over `connect-proto`'s call machines: handlers, a router serving Connect, gRPC
//! and gRPC-Web on the same paths, a typed client, the protobuf and JSON codecs, and CORS, with no
//! async runtime of its own.
//!
//! Generated code (the `connect-build` crate) implements [`Service`] for each `.proto` service and
//! wraps a [`Client`] in a typed client; hand-written code can use the same pieces.
//!
//! - **Server**: a [`Router`] maps paths to [`Service`]s. [`Router::handle`] takes any
//!   `http::Request<impl http_body::Body>` and returns an `http::Response<`[`ResponseBody`]`>`; the
//!   returned future and body drive the call's [`ServerCall`] (the server driver), so serving spawns
//!   no task. Handlers get a [`Context`] (deadline, request headers, extensions, response headers
//!   and trailers) and decoded messages: zero-copy [`RequestView`]s, or a [`Streaming`] of them.
//!   Their responses are serialized in place, into the call's send buffer
//!   ([`ServerCall::message_writer`]).
//! - **Client**: [`Client`] sends requests through a [`Transport`] and drives a [`ClientCall`] per
//!   RPC (the client driver); per-call [`CallOptions`] override the client's defaults.
//! - **Runtime**: where time or tasks are needed, they come from a [`Runtime`] that each adapter
//!   implements (tokio, smol, the browser).
//! - **JSON**: `google.protobuf.Any` needs its types registered ([`register_json_types`]); generated
//!   servers and clients register their own.
//! - **Testing** (feature `testing`): `testing::InMemory`, a transport straight into a router,
//!   with a runtime of plain threads, to test handlers and clients with no sockets.
//!
//! The protocol itself (framing, compression, limits, timeouts, status codes, wire forms) is
//! `connect-proto`'s; the items of it that handlers and clients meet are re-exported here, so that
//! generated code and most applications need only this crate.
// One function may use `unsafe`: `message::owned_view`, which says why.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod client;
pub mod codec;
#[doc(hidden)]
pub mod codegen;
mod context;
pub mod cors;
mod descriptors;
mod details;
mod handler;
pub mod interceptor;
mod json_types;
mod message;
pub mod observe;
mod response;
mod router;
mod runtime;
#[cfg(feature = "testing")]
pub mod testing;

pub use body::{BoxError, RequestBody, TransportError};
pub use client::{merge_options, Client, Message, Outcome, ResponseStream, Transport};
pub use context::{Context, MetadataSent};
pub use descriptors::ServiceDescriptors;
pub use details::{DetailMessage, StatusDetails};
pub use handler::{
    bidi_streaming, client_streaming, server_streaming, unary, HandlerStream, RequestMessage,
    RequestPayloads, ResponsePayloads, Service, Streaming,
};
pub use interceptor::{
    client_head_interceptor, head_interceptor, CallState, ClientCallHead, ClientCallInfo,
    ClientInterceptor, MessageRef, ServerCallHead, ServerInterceptor, UnaryCall, UnaryRequest,
};
pub use json_types::{register_json_types, RegisterTypes};
pub use message::{
    decode_request, decode_response, encode, RequestDecoder, RequestView, ViewDecoder,
};
pub use response::Response;
pub use router::{CallReset, ResponseBody, Router, ServeFuture};
pub use runtime::{BoxFuture, BoxStream, MaybeSend, Runtime};

/// The stream trait of the typed layer (re-exported so generated code needs no extra dependency).
pub use futures_core::Stream;

/// The `google.rpc` error detail messages (`ErrorInfo`, `RetryInfo`, `BadRequest`, ...), for
/// [`StatusDetails`] and [`DetailMessage`].
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
mod generated {
    include!("generated/types.rs");
}
pub use generated::google;

pub use connect_proto::{
    CallOptions, ClientCall, ClientConfig, Code, Codec, CompressionRegistry, Compressor,
    ErrorDetail, Instant, MethodInfo, Protocol, Reset, ServerCall, ServerConfig, Status,
    StreamType,
};
