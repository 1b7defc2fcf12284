//! Interceptors: code that runs around every call of a router (server) or a client, whatever the
//! method, protocol or stream type — authentication, logging, metrics, tracing, retries.
//!
//! An interceptor sees a call in phases, each a method with a default that does nothing:
//!
//! | phase | server ([`ServerInterceptor`]) | client ([`ClientInterceptor`]) |
//! |---|---|---|
//! | head | `on_request_head`: method, protocol, peer, deadline, request headers (changeable) **before any body byte is read or decompressed**; an `Err` rejects the call | `on_request_head`: method, protocol, options (headers, timeout) before anything is sent; an `Err` fails the call |
//! | messages | `on_request_message`, `on_response_message`: each message, typed, in order (streams too) | the same, on the client's side |
//! | headers | `on_response_headers`: the headers about to be sent (changeable) | `on_response_headers`: the headers received (changeable) |
//! | end | `on_finish`: the outcome and trailers about to be sent, which it may replace; also called, to observe, when the call ended on its own (deadline, reset, protocol error) | `on_finish`: the outcome and trailers received, which it may replace |
//! | control | — | `wrap_unary`: wraps the untyped unary call, to retry it, cache it, hedge it |
//!
//! Several interceptors compose as an onion: the first added is the outermost, so it sees the
//! request first and the response last (request-side phases run in the order interceptors were
//! added, response-side phases in reverse). Per-call state travels in [`CallState`] (start times,
//! spans, anything typed).
//!
//! The common case is a closure over the head:
//!
//! ```
//! use connect_typed::{client_head_interceptor, head_interceptor, Client, Code, Router, Status};
//! use connect_typed::Transport;
//! use http::HeaderValue;
//!
//! // The server refuses calls without the token, before reading any of their body.
//! fn secured(router: Router) -> Router {
//!     router.intercept(head_interceptor(|head| {
//!         match head.headers.get("authorization") {
//!             Some(token) if token == "Bearer let-me-in" => Ok(()),
//!             _ => Err(Status::new(Code::UNAUTHENTICATED, "a bearer token is required")),
//!         }
//!     }))
//! }
//!
//! // The client sends it with every call.
//! fn authenticated<T: Transport>(client: Client<T>) -> Client<T> {
//!     client.intercept(client_head_interceptor(|head| {
//!         let token = HeaderValue::from_static("Bearer let-me-in");
//!         head.options.headers.insert("authorization", token);
//!         Ok(())
//!     }))
//! }
//! ```
//!
//! `examples/src/interceptors.rs` has these with a request log and a retry of `unavailable` for
//! idempotent methods (backoff, deadline-aware, through [`ClientInterceptor::wrap_unary`]);
//! [`observe`](crate::observe) has tracing spans and metrics as interceptors.
//!
//! A router or client without interceptors pays nothing for them.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::HeaderMap;

use crate::client::Outcome;
use crate::context::Context;
use crate::runtime::{BoxFuture, Runtime};
use connect_proto::{CallOptions, Codec, Instant, MethodInfo, Protocol, Status};

/// One message of a call, as interceptors see it: typed (downcast to the generated type: the
/// owned message, or on the server's request side buffa's view handle `FooOwnedView`), printable,
/// with its protobuf name and its serialized size.
#[derive(Clone, Copy)]
pub struct MessageRef<'a> {
    message: &'a (dyn Any + Send + Sync),
    debug: &'a dyn fmt::Debug,
    type_name: &'static str,
    len: usize,
}

impl fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug.fmt(f)
    }
}

impl<'a> MessageRef<'a> {
    /// A message of protobuf type `type_name` whose serialized form is `len` bytes.
    pub fn new<M: Any + Send + Sync + fmt::Debug>(
        message: &'a M,
        type_name: &'static str,
        len: usize,
    ) -> Self {
        MessageRef {
            message,
            debug: message,
            type_name,
            len,
        }
    }

    /// The message as `T`, if it is one.
    pub fn downcast_ref<T: Any>(&self) -> Option<&'a T> {
        self.message.downcast_ref()
    }

    /// The full protobuf name of its type (`acme.greet.v1.GreetRequest`).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Its serialized size in bytes (before compression).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it serializes to nothing (a message with every field at its default).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Typed per-call state that interceptors share between their phases (a start time, a span, an
/// authenticated principal a handler may read through [`Context::state`]).
#[derive(Debug, Default)]
pub struct CallState {
    values: Mutex<http::Extensions>,
}

impl CallState {
    /// The values, to read or change.
    pub fn lock(&self) -> MutexGuard<'_, http::Extensions> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a value (replacing one of the same type).
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) {
        self.lock().insert(value);
    }

    /// A copy of the value of type `T`, if one was stored.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().get::<T>().cloned()
    }
}

/// A server call before any of its body is read: what it is, who sent it, and its request
/// headers, which an interceptor may change (the handler sees the changed ones).
#[derive(Debug)]
pub struct ServerCallHead<'a> {
    /// The method called.
    pub method: MethodInfo,
    /// The protocol spoken.
    pub protocol: Protocol,
    /// The message codec.
    pub codec: Codec,
    /// The deadline from the request's timeout header.
    pub deadline: Option<Instant>,
    /// The request headers (custom metadata; `-bin` values still base64).
    pub headers: &'a mut HeaderMap,
    /// The request's extensions: the peer address, TLS certificates, whatever the HTTP stack added.
    pub extensions: &'a http::Extensions,
    /// State shared with the call's later phases and its handler.
    pub state: &'a CallState,
}

/// Runs around every call a [`Router`](crate::Router) serves (see the [module](self) docs).
pub trait ServerInterceptor: Send + Sync + 'static {
    /// Before any of the request body is read: inspect or change the head, or reject the call
    /// with a status, which the client gets at once.
    fn on_request_head(&self, head: &mut ServerCallHead<'_>) -> Result<(), Status> {
        let _ = head;
        Ok(())
    }

    /// A request message, before the handler sees it. An `Err` fails the call.
    fn on_request_message(&self, ctx: &Context, message: MessageRef<'_>) -> Result<(), Status> {
        let _ = (ctx, message);
        Ok(())
    }

    /// The response headers, once, just before they are sent.
    fn on_response_headers(&self, ctx: &Context, headers: &mut HeaderMap) {
        let _ = (ctx, headers);
    }

    /// A response message, serialized and about to be sent. An `Err` fails the call instead.
    fn on_response_message(&self, ctx: &Context, message: MessageRef<'_>) -> Result<(), Status> {
        let _ = (ctx, message);
        Ok(())
    }

    /// The call's outcome and trailers, once. When the handler ended the call they are about to
    /// be sent, and may be replaced; when the call ended on its own (deadline, the client's reset,
    /// a protocol error, a rejection) the answer is already on its way and changes are ignored.
    fn on_finish(&self, ctx: &Context, outcome: &mut Result<(), Status>, trailers: &mut HeaderMap) {
        let _ = (ctx, outcome, trailers);
    }
}

/// A server interceptor made of a closure over the head ([`head_interceptor`]).
pub struct HeadInterceptor<F>(F);

impl<F> fmt::Debug for HeadInterceptor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeadInterceptor")
    }
}

/// A [`ServerInterceptor`] that only looks at the request head: `f` may change the head or
/// reject the call.
pub fn head_interceptor<F>(f: F) -> HeadInterceptor<F>
where
    F: Fn(&mut ServerCallHead<'_>) -> Result<(), Status> + Send + Sync + 'static,
{
    HeadInterceptor(f)
}

impl<F> ServerInterceptor for HeadInterceptor<F>
where
    F: Fn(&mut ServerCallHead<'_>) -> Result<(), Status> + Send + Sync + 'static,
{
    fn on_request_head(&self, head: &mut ServerCallHead<'_>) -> Result<(), Status> {
        (self.0)(head)
    }
}

/// A client call before anything is sent: what it is, and its options, which an interceptor may
/// change (headers, timeout, compression).
#[derive(Debug)]
pub struct ClientCallHead<'a> {
    /// The method called.
    pub method: MethodInfo,
    /// The protocol spoken.
    pub protocol: Protocol,
    /// The message codec.
    pub codec: Codec,
    /// The call's options: request headers, timeout, compression, receive limit.
    pub options: &'a mut CallOptions,
    /// State shared with the call's later phases.
    pub state: &'a CallState,
}

/// A client call as its later phases see it.
#[derive(Debug)]
pub struct ClientCallInfo {
    method: MethodInfo,
    protocol: Protocol,
    codec: Codec,
    deadline: Option<Instant>,
    runtime: Arc<dyn Runtime>,
    state: CallState,
}

impl ClientCallInfo {
    pub(crate) fn new(
        method: MethodInfo,
        protocol: Protocol,
        codec: Codec,
        runtime: Arc<dyn Runtime>,
        state: CallState,
    ) -> Self {
        ClientCallInfo {
            method,
            protocol,
            codec,
            deadline: None,
            runtime,
            state,
        }
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// The method called.
    pub fn method(&self) -> &MethodInfo {
        &self.method
    }

    /// The protocol spoken.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The message codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// When the call must be over (from its timeout), if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The client's runtime: its clock and timers (for backoff between retries).
    pub fn runtime(&self) -> &dyn Runtime {
        &*self.runtime
    }

    /// State shared between the call's phases.
    pub fn state(&self) -> &CallState {
        &self.state
    }
}

/// A unary call as [`ClientInterceptor::wrap_unary`] sees it: the serialized request, which can be
/// sent again.
#[derive(Clone, Debug)]
pub struct UnaryRequest {
    /// The serialized request message.
    pub payload: Bytes,
    /// The call's options (after the head phase).
    pub options: CallOptions,
    /// The call.
    pub info: Arc<ClientCallInfo>,
}

/// The untyped unary call: the serialized request in, everything the server answered out (the
/// response message still serialized). `Send + Sync` except on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub type UnaryCall = Arc<dyn Fn(UnaryRequest) -> BoxFuture<'static, Outcome<Bytes>> + Send + Sync>;
/// The untyped unary call: the serialized request in, everything the server answered out (the
/// response message still serialized). `Send + Sync` except on wasm32.
#[cfg(target_arch = "wasm32")]
pub type UnaryCall = Arc<dyn Fn(UnaryRequest) -> BoxFuture<'static, Outcome<Bytes>>>;

/// Runs around every call a [`Client`](crate::Client) makes (see the [module](self) docs).
pub trait ClientInterceptor: Send + Sync + 'static {
    /// Before anything is sent: change the options (add headers, shorten the timeout) or fail
    /// the call with a status.
    fn on_request_head(&self, head: &mut ClientCallHead<'_>) -> Result<(), Status> {
        let _ = head;
        Ok(())
    }

    /// A request message, before it is serialized. An `Err` fails the call.
    fn on_request_message(
        &self,
        call: &ClientCallInfo,
        message: MessageRef<'_>,
    ) -> Result<(), Status> {
        let _ = (call, message);
        Ok(())
    }

    /// The response headers, as received.
    fn on_response_headers(&self, call: &ClientCallInfo, headers: &mut HeaderMap) {
        let _ = (call, headers);
    }

    /// A response message, decoded. An `Err` fails the call instead.
    fn on_response_message(
        &self,
        call: &ClientCallInfo,
        message: MessageRef<'_>,
    ) -> Result<(), Status> {
        let _ = (call, message);
        Ok(())
    }

    /// The call's outcome and trailers, once, which it may replace.
    fn on_finish(
        &self,
        call: &ClientCallInfo,
        outcome: &mut Result<(), Status>,
        trailers: &mut HeaderMap,
    ) {
        let _ = (call, outcome, trailers);
    }

    /// Wraps the untyped unary call (unary methods only): `next` sends the request and returns
    /// what came back; a wrapper may call it again (retries), not at all (a cache), or change what
    /// goes in and comes out.
    fn wrap_unary(&self, next: UnaryCall) -> UnaryCall {
        next
    }
}

/// A client interceptor made of a closure over the head ([`client_head_interceptor`]).
pub struct ClientHeadInterceptor<F>(F);

impl<F> fmt::Debug for ClientHeadInterceptor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientHeadInterceptor")
    }
}

/// A [`ClientInterceptor`] that only looks at the request head: `f` may change the options (add a
/// bearer token) or fail the call.
pub fn client_head_interceptor<F>(f: F) -> ClientHeadInterceptor<F>
where
    F: Fn(&mut ClientCallHead<'_>) -> Result<(), Status> + Send + Sync + 'static,
{
    ClientHeadInterceptor(f)
}

impl<F> ClientInterceptor for ClientHeadInterceptor<F>
where
    F: Fn(&mut ClientCallHead<'_>) -> Result<(), Status> + Send + Sync + 'static,
{
    fn on_request_head(&self, head: &mut ClientCallHead<'_>) -> Result<(), Status> {
        (self.0)(head)
    }
}

/// The interceptors of a router, outermost first.
pub(crate) type ServerChain = Arc<[Arc<dyn ServerInterceptor>]>;
/// The interceptors of a client, outermost first.
pub(crate) type ClientChain = Arc<[Arc<dyn ClientInterceptor>]>;

/// `chain` with `interceptor` added innermost.
pub(crate) fn push<T: ?Sized>(chain: &Arc<[Arc<T>]>, interceptor: Arc<T>) -> Arc<[Arc<T>]> {
    chain.iter().cloned().chain([interceptor]).collect()
}

/// Runs the server's request-message hooks, outermost first.
pub(crate) fn server_request_message(
    chain: &[Arc<dyn ServerInterceptor>],
    ctx: &Context,
    message: MessageRef<'_>,
) -> Result<(), Status> {
    chain
        .iter()
        .try_for_each(|i| i.on_request_message(ctx, message))
}

/// Runs the server's response-message hooks, innermost first.
pub(crate) fn server_response_message(
    chain: &[Arc<dyn ServerInterceptor>],
    ctx: &Context,
    message: MessageRef<'_>,
) -> Result<(), Status> {
    chain
        .iter()
        .rev()
        .try_for_each(|i| i.on_response_message(ctx, message))
}
