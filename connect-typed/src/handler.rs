//! The server side of the typed layer: the [`Service`] trait that generated code implements, and the
//! adapters that turn typed handler functions into [`ResponsePayloads`], which serialize each
//! response straight into the call's send buffer.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};

use buffa::view::HasMessageView;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;

use crate::client::Message;
use crate::context::Context;
use crate::interceptor::{self, MessageRef};
use crate::message::{RequestDecoder, RequestView};
use crate::response::Response;
use crate::runtime::{BoxFuture, BoxStream, MaybeSend};
use connect_proto::{Codec, MessageWriter, MethodInfo, Status, UsageError};

/// Serializes a call's response messages when its driver asks, straight into the buffer it hands
/// over (the call's send buffer: a message is written once, in place).
trait WriteResponses: MaybeSend {
    /// `Ready(Some(Ok(())))`: a message was appended to `buf`; `Ready(Some(Err(status)))`: the call
    /// ends with `status`; `Ready(None)`: the call ends successfully; `Pending`: no message yet (a
    /// waker is registered). Whatever was appended to `buf` is dropped unless it was a message.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>>;

    /// Sends the message just written to `writer`, then writes and sends those ready behind it, one
    /// after another while the call takes more and the send buffer holds under `limit` bytes. One
    /// call for a whole run of a stream's ready messages: each is polled from the handler without
    /// the dispatch this trait object costs per call.
    fn write_run(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        writer: &mut MessageWriter<'_>,
        limit: usize,
    ) -> RunEnd {
        run_with(writer, limit, |buf| self.as_mut().poll_write(cx, buf))
    }
}

/// [`WriteResponses::write_run`] with `next` writing each next message: sends the one written and
/// asks for the next while the call takes more and the buffer holds under `limit` bytes.
#[inline(always)]
fn run_with(
    writer: &mut MessageWriter<'_>,
    limit: usize,
    mut next: impl FnMut(&mut BytesMut) -> Poll<Option<Result<(), Status>>>,
) -> RunEnd {
    loop {
        if !(writer.send_and_continue()? && writer.buffer().len() < limit) {
            return Ok(Poll::Pending);
        }
        match next(writer.buffer()) {
            Poll::Ready(Some(Ok(()))) => {}
            other => return Ok(other),
        }
    }
}

/// How a run of messages ([`ResponsePayloads::write_run`]) ended: what polling for the next message
/// gave (`Pending` also when the run stopped on its own: the buffer full, the call taking no more),
/// or the call's refusal of a message as the handler's misuse.
pub(crate) type RunEnd = Result<Poll<Option<Result<(), Status>>>, UsageError>;

/// The response messages of one call, as a [`Service`] returns them: made by the handler adapters
/// ([`unary`], [`server_streaming`], ...) that generated code uses, or from payloads serialized
/// elsewhere ([`ResponsePayloads::from_stream`]).
pub struct ResponsePayloads {
    inner: Pin<Box<dyn WriteResponses>>,
}

impl std::fmt::Debug for ResponsePayloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponsePayloads").finish_non_exhaustive()
    }
}

impl ResponsePayloads {
    fn new(inner: impl WriteResponses + 'static) -> Self {
        ResponsePayloads {
            inner: Box::pin(inner),
        }
    }

    /// Responses serialized elsewhere (for a [`Service`] written by hand): each payload of `stream`
    /// is one message; an `Err` item ends the call with that status, the end of the stream ends it
    /// successfully.
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, Status>> + MaybeSend + 'static,
    {
        ResponsePayloads::new(PayloadResponses {
            stream: Box::pin(stream),
        })
    }

    /// Polls for the next response message, appending it to `buf`: `Ready(Some(Ok(())))` when one
    /// was appended, `Ready(Some(Err(status)))` when the call ends with `status`, `Ready(None)` when
    /// it ends successfully. Whatever was appended is to be dropped unless it was a message.
    pub fn poll_write(
        &mut self,
        cx: &mut TaskContext<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>> {
        self.inner.as_mut().poll_write(cx, buf)
    }

    /// Sends the message just written to `writer` and those ready behind it while the send buffer
    /// holds under `limit` bytes (see [`RunEnd`]).
    pub(crate) fn write_run(
        &mut self,
        cx: &mut TaskContext<'_>,
        writer: &mut MessageWriter<'_>,
        limit: usize,
    ) -> RunEnd {
        self.inner.as_mut().write_run(cx, writer, limit)
    }
}

struct PayloadResponses {
    stream: BoxStream<'static, Result<Bytes, Status>>,
}

impl WriteResponses for PayloadResponses {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>> {
        self.stream
            .as_mut()
            .poll_next(cx)
            .map(|item| item.map(|payload| payload.map(|payload| buf.extend_from_slice(&payload))))
    }
}

/// Request messages a handler receives: generated types (a view handle to decode into, a protobuf
/// name and a printable handle for interceptors).
pub trait RequestMessage:
    HasMessageView<ViewHandle: std::fmt::Debug>
    + buffa::MessageName
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<M> RequestMessage for M where
    M: HasMessageView<ViewHandle: std::fmt::Debug>
        + buffa::MessageName
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Serializes `message` into `buf` and shows it to the interceptors (if the call has any), which
/// may fail the call instead.
fn write_response<Resp: Message>(
    codec: Codec,
    ctx: Option<&Context>,
    message: &Resp,
    cache: &mut buffa::SizeCache,
    buf: &mut BytesMut,
) -> Result<(), Status> {
    let start = buf.len();
    crate::codec::encode_into(codec, message, cache, buf)?;
    if let Some(ctx) = ctx {
        let seen = MessageRef::new(message, Resp::FULL_NAME, buf.len() - start);
        interceptor::server_response_message(ctx.interceptors(), ctx, seen)?;
    }
    Ok(())
}

/// The context, when its call has interceptors that want to see messages.
fn hooked(ctx: &Context) -> Option<Context> {
    (!ctx.interceptors().is_empty()).then(|| ctx.clone())
}

pin_project_lite::pin_project! {
    /// The one response of a unary or client-streaming method: the handler's future, its message
    /// serialized when it resolves.
    struct OneResponse<Fut> {
        codec: Codec,
        hooks: Option<Context>,
        done: bool,
        #[pin]
        future: Fut,
    }
}

impl<Resp, Fut> WriteResponses for OneResponse<Fut>
where
    Resp: Message,
    Fut: Future<Output = Result<Resp, Status>> + MaybeSend,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let result = std::task::ready!(this.future.poll(cx));
        *this.done = true;
        Poll::Ready(Some(result.and_then(|message| {
            let mut cache = buffa::SizeCache::new();
            write_response(*this.codec, this.hooks.as_ref(), &message, &mut cache, buf)
        })))
    }
}

/// The stream of responses a server-streaming or bidi handler returns.
pub type HandlerStream<T> = BoxStream<'static, Result<T, Status>>;

/// A set of RPC methods: implemented by generated `…Server` types and registered with a
/// [`Router`](crate::Router), which finds a request's method by its path once and dispatches by
/// its index (generated code: a `match` on the index).
pub trait Service: Send + Sync + 'static {
    /// The methods served.
    fn methods(&self) -> &'static [MethodInfo];

    /// Starts a call of `methods()[method]`. `None` when there is no such method.
    fn call(
        &self,
        method: usize,
        ctx: Context,
        requests: RequestPayloads,
    ) -> Option<ResponsePayloads>;
}

impl<S: Service + ?Sized> Service for Arc<S> {
    fn methods(&self) -> &'static [MethodInfo] {
        (**self).methods()
    }

    fn call(
        &self,
        method: usize,
        ctx: Context,
        requests: RequestPayloads,
    ) -> Option<ResponsePayloads> {
        (**self).call(method, ctx, requests)
    }
}

/// Request payloads shared between the call driver (producer) and the handler (consumer).
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
}

#[derive(Debug, Default)]
struct InboxState {
    queue: VecDeque<Bytes>,
    closed: bool,
    waker: Option<Waker>,
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, payload: Bytes) {
        let mut state = self.lock();
        state.queue.push_back(payload);
        if let Some(w) = state.waker.take() {
            w.wake();
        }
    }

    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        if let Some(w) = state.waker.take() {
            w.wake();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

/// The request payloads of one call, in order, as a stream; it ends when the client closes its side.
#[derive(Debug)]
pub struct RequestPayloads {
    inbox: Arc<Inbox>,
}

impl RequestPayloads {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Self {
        RequestPayloads { inbox }
    }

    /// A stream over payloads given up front (tests, in-process calls).
    pub fn from_payloads(payloads: impl IntoIterator<Item = Bytes>) -> Self {
        let inbox = Arc::new(Inbox::default());
        for p in payloads {
            inbox.push(p);
        }
        inbox.close();
        RequestPayloads { inbox }
    }

    /// The single request of a unary or server-streaming call.
    pub async fn single(mut self) -> Result<Bytes, Status> {
        match self.next().await {
            Some(payload) => Ok(payload),
            None => Err(Status::unimplemented(
                "the request ended without a message, but the method expects one",
            )),
        }
    }
}

impl Stream for RequestPayloads {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.inbox.lock();
        if let Some(p) = state.queue.pop_front() {
            return Poll::Ready(Some(p));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The request messages of a client-streaming or bidi call, decoded as zero-copy views.
///
/// A message that cannot be decoded is an `Err(invalid_argument)` item; the handler may return it.
pub struct Streaming<M: HasMessageView> {
    raw: RequestPayloads,
    codec: Codec,
    decoder: RequestDecoder<M>,
    /// The call's context, when its interceptors see request messages.
    hooks: Option<Context>,
}

impl<M: HasMessageView> std::fmt::Debug for Streaming<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl<M: HasMessageView> Streaming<M> {
    /// Decodes `raw` with `codec`.
    pub fn new(raw: RequestPayloads, codec: Codec) -> Self {
        Streaming::with_decoder(raw, codec, RequestDecoder::default())
    }

    /// Decodes `raw` with `codec`, proto payloads with `decoder`.
    pub fn with_decoder(raw: RequestPayloads, codec: Codec, decoder: RequestDecoder<M>) -> Self {
        Streaming {
            raw,
            codec,
            decoder,
            hooks: None,
        }
    }

    /// Shows each request to the interceptors of `ctx`'s call (the handler adapters do this).
    fn seen_by(mut self, ctx: &Context) -> Self {
        self.hooks = hooked(ctx);
        self
    }
}

/// Decodes one request payload and shows it to the interceptors, if the call has any.
fn decode_request_message<M: RequestMessage>(
    decoder: RequestDecoder<M>,
    codec: Codec,
    payload: Bytes,
    hooks: Option<&Context>,
) -> Result<RequestView<M>, Status> {
    let len = payload.len();
    let request = decoder.decode(codec, payload)?;
    if let Some(ctx) = hooks {
        let seen = MessageRef::new(&request, M::FULL_NAME, len);
        interceptor::server_request_message(ctx.interceptors(), ctx, seen)?;
    }
    Ok(request)
}

impl<M: RequestMessage> Stream for Streaming<M> {
    type Item = Result<RequestView<M>, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let codec = self.codec;
        match Pin::new(&mut self.raw).poll_next(cx) {
            Poll::Ready(Some(payload)) => {
                let decoded =
                    decode_request_message(self.decoder, codec, payload, self.hooks.as_ref());
                Poll::Ready(Some(decoded))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A streaming method's responses: the handler's start (which yields its stream or fails the call),
/// then each message of its stream, serialized in place.
struct StreamResponses<Resp> {
    codec: Codec,
    hooks: Option<Context>,
    start: Option<BoxFuture<'static, Result<HandlerStream<Resp>, Status>>>,
    stream: Option<HandlerStream<Resp>>,
    cache: buffa::SizeCache,
}

impl<Resp: Message> StreamResponses<Resp> {
    fn new(
        codec: Codec,
        hooks: Option<Context>,
        start: BoxFuture<'static, Result<HandlerStream<Resp>, Status>>,
    ) -> Self {
        StreamResponses {
            codec,
            hooks,
            start: Some(start),
            stream: None,
            cache: buffa::SizeCache::new(),
        }
    }
}

impl<Resp: Message> StreamResponses<Resp> {
    /// The stream's next message, serialized into `buf` (the stream has started).
    #[inline(always)]
    fn write_next(
        &mut self,
        cx: &mut TaskContext<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(stream.as_mut().poll_next(cx)) {
            Some(item) => Poll::Ready(Some(item.and_then(|message| {
                write_response(
                    self.codec,
                    self.hooks.as_ref(),
                    &message,
                    &mut self.cache,
                    buf,
                )
            }))),
            None => {
                self.stream = None;
                Poll::Ready(None)
            }
        }
    }
}

impl<Resp: Message> WriteResponses for StreamResponses<Resp> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>> {
        let this = &mut *self;
        if let Some(start) = this.start.as_mut() {
            let started = std::task::ready!(start.as_mut().poll(cx));
            this.start = None;
            match started {
                Ok(stream) => this.stream = Some(stream),
                Err(status) => return Poll::Ready(Some(Err(status))),
            }
        }
        this.write_next(cx, buf)
    }

    /// The run as the trait's, with each message taken straight from the started stream.
    fn write_run(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        writer: &mut MessageWriter<'_>,
        limit: usize,
    ) -> RunEnd {
        let this = &mut *self;
        run_with(writer, limit, |buf| this.write_next(cx, buf))
    }
}

/// The message of a handler's response, its metadata added to the call's (refused once sent).
fn message_of<T>(ctx: &Context, response: Response<T>) -> Result<T, Status> {
    let (message, headers, trailers) = response.into_parts();
    ctx.extend_response_metadata(headers, trailers)
        .map_err(|late| Status::internal(format!("the handler's response metadata: {late}")))?;
    Ok(message)
}

/// A one-message method's responses: `future`, the handler's, serialized when it resolves.
fn respond_once<Resp, Fut>(ctx: &Context, future: Fut) -> ResponsePayloads
where
    Resp: Message,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    ResponsePayloads::new(OneResponse {
        codec: ctx.codec(),
        hooks: hooked(ctx),
        done: false,
        future,
    })
}

/// A streaming method's responses: `start`, the handler's, then each message of its stream.
fn respond_streaming<Resp, Fut>(ctx: &Context, start: Fut) -> ResponsePayloads
where
    Resp: Message,
    Fut: Future<Output = Result<HandlerStream<Resp>, Status>> + Send + 'static,
{
    ResponsePayloads::new(StreamResponses::new(
        ctx.codec(),
        hooked(ctx),
        Box::pin(start),
    ))
}

/// Runs a single-request handler: the request read (the call's one message), decoded and shown to
/// the interceptors, then the handler, whose response metadata joins the call's.
async fn run_single<Req, T, F, Fut>(
    ctx: Context,
    requests: RequestPayloads,
    decoder: RequestDecoder<Req>,
    handler: F,
) -> Result<T, Status>
where
    Req: RequestMessage,
    F: FnOnce(Context, RequestView<Req>) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let payload = requests.single().await?;
    let hooks = hooked(&ctx);
    let request = decode_request_message(decoder, ctx.codec(), payload, hooks.as_ref())?;
    let response = handler(ctx.clone(), request).await?;
    message_of(&ctx, response)
}

/// Runs a streaming-request handler over its decoded requests (each shown to the interceptors);
/// its response metadata joins the call's.
async fn run_streaming<Req, T, F, Fut>(
    ctx: Context,
    requests: RequestPayloads,
    decoder: RequestDecoder<Req>,
    handler: F,
) -> Result<T, Status>
where
    Req: RequestMessage,
    F: FnOnce(Context, Streaming<Req>) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let requests = Streaming::with_decoder(requests, ctx.codec(), decoder).seen_by(&ctx);
    let response = handler(ctx.clone(), requests).await?;
    message_of(&ctx, response)
}

/// Serves a unary method with `handler`, its request decoded by `decoder` (generated code passes its
/// own for batch-shaped messages; `RequestDecoder::default()` is buffa's).
pub fn unary<Req, Resp, F, Fut>(
    ctx: Context,
    requests: RequestPayloads,
    decoder: RequestDecoder<Req>,
    handler: F,
) -> ResponsePayloads
where
    Req: RequestMessage,
    Resp: Message,
    F: FnOnce(Context, RequestView<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
{
    respond_once(&ctx, run_single(ctx.clone(), requests, decoder, handler))
}

/// Serves a server-streaming method with `handler`, its request decoded by `decoder`.
pub fn server_streaming<Req, Resp, F, Fut>(
    ctx: Context,
    requests: RequestPayloads,
    decoder: RequestDecoder<Req>,
    handler: F,
) -> ResponsePayloads
where
    Req: RequestMessage,
    Resp: Message,
    F: FnOnce(Context, RequestView<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<HandlerStream<Resp>>, Status>> + Send + 'static,
{
    respond_streaming(&ctx, run_single(ctx.clone(), requests, decoder, handler))
}

/// Serves a client-streaming method with `handler`, its requests decoded by `decoder`.
pub fn client_streaming<Req, Resp, F, Fut>(
    ctx: Context,
    requests: RequestPayloads,
    decoder: RequestDecoder<Req>,
    handler: F,
) -> ResponsePayloads
where
    Req: RequestMessage,
    Resp: Message,
    F: FnOnce(Context, Streaming<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
{
    respond_once(&ctx, run_streaming(ctx.clone(), requests, decoder, handler))
}

/// Serves a bidi-streaming method with `handler`, its requests decoded by `decoder`.
pub fn bidi_streaming<Req, Resp, F, Fut>(
    ctx: Context,
    requests: RequestPayloads,
    decoder: RequestDecoder<Req>,
    handler: F,
) -> ResponsePayloads
where
    Req: RequestMessage,
    Resp: Message,
    F: FnOnce(Context, Streaming<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<HandlerStream<Resp>>, Status>> + Send + 'static,
{
    respond_streaming(&ctx, run_streaming(ctx.clone(), requests, decoder, handler))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::rpc::ErrorInfo;
    use buffa::Message as _;
    use connect_proto::{Code, Protocol, StreamType};

    fn ctx(stream_type: StreamType) -> Context {
        let method = MethodInfo {
            path: "/test.v1.Svc/M",
            stream_type,
            no_side_effects: false,
        };
        Context::new(
            method,
            Protocol::Grpc,
            Codec::Proto,
            None,
            http::HeaderMap::new(),
            http::Extensions::new(),
        )
    }

    fn info(reason: &str) -> ErrorInfo {
        ErrorInfo {
            reason: reason.to_owned(),
            ..Default::default()
        }
    }

    fn payload(reason: &str) -> Bytes {
        Bytes::from(info(reason).encode_to_vec())
    }

    /// Polls `responses` to their end: the messages, and the error that ended them if any.
    fn drain(mut responses: ResponsePayloads) -> (Vec<String>, Option<Status>) {
        let mut cx = TaskContext::from_waker(Waker::noop());
        let mut messages = Vec::new();
        loop {
            let mut buf = BytesMut::new();
            match responses.poll_write(&mut cx, &mut buf) {
                Poll::Ready(Some(Ok(()))) => messages.push(
                    ErrorInfo::decode_from_slice(&buf)
                        .expect("a message")
                        .reason,
                ),
                Poll::Ready(Some(Err(status))) => return (messages, Some(status)),
                Poll::Ready(None) => return (messages, None),
                Poll::Pending => panic!("the handler waits"),
            }
        }
    }

    fn echo(
        _ctx: Context,
        request: RequestView<ErrorInfo>,
    ) -> std::future::Ready<Result<Response<ErrorInfo>, Status>> {
        std::future::ready(match request.reason() {
            "fail" => Err(Status::new(Code::NOT_FOUND, "asked to")),
            reason => Ok(Response::new(info(reason))),
        })
    }

    #[test]
    fn unary_answers_once_then_ends() {
        let requests = RequestPayloads::from_payloads([payload("hi")]);
        let responses = unary(
            ctx(StreamType::Unary),
            requests,
            RequestDecoder::<ErrorInfo>::default(),
            echo,
        );
        assert_eq!(drain(responses), (vec!["hi".to_owned()], None));
        let requests = RequestPayloads::from_payloads([payload("fail")]);
        let responses = unary(
            ctx(StreamType::Unary),
            requests,
            RequestDecoder::<ErrorInfo>::default(),
            echo,
        );
        let (messages, error) = drain(responses);
        assert!(messages.is_empty());
        assert_eq!(error.expect("failed").code(), Code::NOT_FOUND);
    }

    #[test]
    fn a_missing_or_undecodable_request_fails_before_the_handler() {
        let missing = RequestPayloads::from_payloads([]);
        let responses = unary(
            ctx(StreamType::Unary),
            missing,
            RequestDecoder::<ErrorInfo>::default(),
            echo,
        );
        assert_eq!(
            drain(responses).1.expect("failed").code(),
            Code::UNIMPLEMENTED
        );
        // Field 1 says it is a string of 9 bytes; one follows.
        let garbage = RequestPayloads::from_payloads([Bytes::from_static(b"\x0a\x09x")]);
        let responses = server_streaming(
            ctx(StreamType::ServerStreaming),
            garbage,
            RequestDecoder::<ErrorInfo>::default(),
            |_ctx, _request: RequestView<ErrorInfo>| async {
                panic!("the handler ran");
                #[allow(unreachable_code)]
                Ok(Response::new(
                    Box::pin(futures_util::stream::empty()) as HandlerStream<ErrorInfo>
                ))
            },
        );
        assert_eq!(
            drain(responses).1.expect("failed").code(),
            Code::INVALID_ARGUMENT
        );
    }

    #[test]
    fn server_streaming_sends_the_handler_s_stream_and_its_error() {
        let requests = RequestPayloads::from_payloads([payload("x")]);
        let responses = server_streaming(
            ctx(StreamType::ServerStreaming),
            requests,
            RequestDecoder::<ErrorInfo>::default(),
            |_ctx, request: RequestView<ErrorInfo>| {
                let reason = request.reason().to_owned();
                async move {
                    let items = [
                        Ok(info(&reason)),
                        Ok(info("y")),
                        Err(Status::new(Code::ABORTED, "z")),
                    ];
                    let stream: HandlerStream<ErrorInfo> =
                        Box::pin(futures_util::stream::iter(items));
                    Ok(Response::new(stream))
                }
            },
        );
        let (messages, error) = drain(responses);
        assert_eq!(messages, ["x", "y"]);
        assert_eq!(error.expect("failed").code(), Code::ABORTED);
    }

    #[test]
    fn client_and_bidi_streaming_see_every_request_decoded() {
        let requests = || {
            RequestPayloads::from_payloads([
                payload("a"),
                Bytes::from_static(b"\x0a\x09x"),
                payload("b"),
            ])
        };
        let responses = client_streaming(
            ctx(StreamType::ClientStreaming),
            requests(),
            RequestDecoder::<ErrorInfo>::default(),
            |_ctx, requests: Streaming<ErrorInfo>| async move {
                let seen: Vec<String> = requests
                    .map(|r| r.map_or_else(|e| e.code().to_string(), |v| v.reason().to_owned()))
                    .collect()
                    .await;
                Ok(Response::new(info(&seen.join(","))))
            },
        );
        assert_eq!(
            drain(responses),
            (vec!["a,invalid_argument,b".to_owned()], None)
        );
        // Bidi: one response per request; the undecodable one ends the call with its error.
        let responses = bidi_streaming(
            ctx(StreamType::BidiStreaming),
            requests(),
            RequestDecoder::<ErrorInfo>::default(),
            |_ctx, requests: Streaming<ErrorInfo>| async move {
                let stream: HandlerStream<ErrorInfo> =
                    Box::pin(requests.map(|r| r.map(|v| info(v.reason()))));
                Ok(Response::new(stream))
            },
        );
        let (messages, error) = drain(responses);
        assert_eq!(messages, ["a"]);
        assert_eq!(error.expect("failed").code(), Code::INVALID_ARGUMENT);
    }

    #[test]
    fn a_response_s_metadata_joins_the_call_s_unless_already_sent() {
        let context = ctx(StreamType::Unary);
        let requests = RequestPayloads::from_payloads([payload("hi")]);
        let responses = unary(
            context.clone(),
            requests,
            RequestDecoder::<ErrorInfo>::default(),
            |_ctx, _request: RequestView<ErrorInfo>| async {
                let response = Response::new(info("ok"))
                    .with_header("x-h", http::HeaderValue::from_static("h"))
                    .with_trailer("x-t", http::HeaderValue::from_static("t"));
                Ok(response)
            },
        );
        assert_eq!(drain(responses), (vec!["ok".to_owned()], None));
        assert_eq!(context.take_response_headers()["x-h"], "h");
        assert_eq!(context.take_response_trailers()["x-t"], "t");
        // Headers already sent (by the driver, with a first message): the response's are refused.
        let context = ctx(StreamType::ServerStreaming);
        let _ = context.take_response_headers();
        let responses = server_streaming(
            context,
            RequestPayloads::from_payloads([payload("hi")]),
            RequestDecoder::<ErrorInfo>::default(),
            |_ctx, _request: RequestView<ErrorInfo>| async {
                let stream: HandlerStream<ErrorInfo> = Box::pin(futures_util::stream::empty());
                Ok(Response::new(stream).with_header("x-h", http::HeaderValue::from_static("h")))
            },
        );
        let error = drain(responses).1.expect("failed");
        assert_eq!(error.code(), Code::INTERNAL);
        assert!(error.message().contains("already sent"), "{error:?}");
    }

    #[test]
    fn payloads_from_a_stream_go_out_as_they_are() {
        let items = [
            Ok(payload("p")),
            Err(Status::new(Code::UNAVAILABLE, "gone")),
        ];
        let responses = ResponsePayloads::from_stream(futures_util::stream::iter(items));
        let (messages, error) = drain(responses);
        assert_eq!(messages, ["p"]);
        assert_eq!(error.expect("failed").code(), Code::UNAVAILABLE);
        let responses = ResponsePayloads::from_stream(futures_util::stream::empty());
        assert_eq!(drain(responses), (Vec::new(), None));
    }

    #[test]
    fn request_payloads_wait_for_the_driver_and_end_when_it_closes() {
        let inbox = Arc::new(Inbox::default());
        let mut requests = RequestPayloads::new(inbox.clone());
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert!(Pin::new(&mut requests).poll_next(&mut cx).is_pending());
        inbox.push(Bytes::from_static(b"1"));
        assert_eq!(inbox.len(), 1);
        let next = Pin::new(&mut requests).poll_next(&mut cx);
        assert_eq!(next, Poll::Ready(Some(Bytes::from_static(b"1"))));
        inbox.close();
        assert_eq!(
            Pin::new(&mut requests).poll_next(&mut cx),
            Poll::Ready(None)
        );
    }
}
