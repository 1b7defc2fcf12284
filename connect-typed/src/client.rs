//! The client side of the typed layer: the [`Transport`] trait and [`Client`], which drives one
//! [`ClientCall`] per RPC exactly as the router drives a `ServerCall`.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::{Buf, Bytes};
use futures_core::Stream;
use futures_util::StreamExt;
use http::HeaderMap;

use crate::body::{BodyChannel, BoxError, BoxedBody, RequestBody, TransportError};
use crate::interceptor::{
    self, CallState, ClientCallHead, ClientCallInfo, ClientChain, ClientInterceptor, MessageRef,
    UnaryCall, UnaryRequest,
};
use crate::message::{decode_response, encode};
use crate::response::Response;
use crate::runtime::{BoxFuture, BoxStream, CallTimer, MaybeSend, Runtime};
use connect_proto::Status;
use connect_proto::{CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit};
use connect_proto::{Codec, MethodInfo, Protocol};

/// Request bytes buffered in the request body before the driver stops pulling request messages.
const REQUEST_HIGH_WATER: usize = 64 * 1024;
/// Response messages buffered before the driver stops reading the response body.
const RESPONSE_HIGH_WATER: usize = 4;

/// Sends one HTTP request and resolves to the response head and a streaming body. Implemented by each
/// adapter (hyper on tokio or smol, `fetch` in the browser) and by in-memory test transports.
///
/// The request body streams: for client- and bidi-streaming calls, its frames are produced while the
/// response is already being read, so the transport must send the body concurrently with waiting for
/// the response (as hyper and h2 do).
pub trait Transport: MaybeSend + Sync + 'static {
    /// The response body.
    type ResponseBody: http_body::Body<Data: Buf + MaybeSend, Error: Into<BoxError>>
        + MaybeSend
        + 'static;
    /// The future of a response.
    type Future: Future<Output = Result<http::Response<Self::ResponseBody>, TransportError>>
        + MaybeSend
        + 'static;

    /// Sends `request`; the URI is absolute (scheme, authority, path and, for Connect GET, a query).
    fn send(&self, request: http::Request<RequestBody>) -> Self::Future;

    /// Whether this transport can carry a call of `method` in `protocol`. [`Client`] asks before it
    /// builds the request, and fails the call with the returned status. A browser's `fetch`, for one,
    /// cannot read trailers (so no gRPC) nor stream a request body while reading the response, and
    /// refuses those calls with `unimplemented` at call time instead of hanging. Default: every call.
    fn check_call(&self, protocol: Protocol, method: &MethodInfo) -> Result<(), Status> {
        let _ = (protocol, method);
        Ok(())
    }
}

/// A typed RPC client over a [`Transport`]: per-client defaults ([`ClientConfig`] and default
/// [`CallOptions`]) that each call's options override. Generated clients wrap one.
pub struct Client<T> {
    transport: Arc<T>,
    base: http::Uri,
    config: Arc<ClientConfig>,
    defaults: CallOptions,
    runtime: Arc<dyn Runtime>,
    interceptors: ClientChain,
}

impl<T> Clone for Client<T> {
    fn clone(&self) -> Self {
        Client {
            transport: self.transport.clone(),
            base: self.base.clone(),
            config: self.config.clone(),
            defaults: self.defaults.clone(),
            runtime: self.runtime.clone(),
            interceptors: self.interceptors.clone(),
        }
    }
}

impl<T> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("config", &self.config)
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

/// Merges per-call options over the client's defaults: set fields win; headers named in the call
/// replace the defaults of the same name.
pub fn merge_options(defaults: &CallOptions, call: CallOptions) -> CallOptions {
    let mut headers = defaults.headers.clone();
    for name in call.headers.keys() {
        headers.remove(name);
    }
    for (name, value) in &call.headers {
        headers.append(name.clone(), value.clone());
    }
    CallOptions {
        timeout: call.timeout.or(defaults.timeout),
        headers,
        send_compression: call.send_compression.or(defaults.send_compression),
        max_recv_message_size: call
            .max_recv_message_size
            .or(defaults.max_recv_message_size),
    }
}

impl<T: Transport> Client<T> {
    /// A client of the server at `base` (scheme, authority and an optional path prefix).
    pub fn new(transport: T, base: http::Uri, config: ClientConfig, runtime: impl Runtime) -> Self {
        Client {
            transport: Arc::new(transport),
            base,
            config: Arc::new(config),
            defaults: CallOptions::default(),
            runtime: Arc::new(runtime),
            interceptors: Arc::new([]),
        }
    }

    /// Sets the default options of every call (headers, timeout, compression, receive limit).
    pub fn with_default_options(mut self, defaults: CallOptions) -> Self {
        self.defaults = defaults;
        self
    }

    /// Adds an interceptor around every call of this client, inside those added before (see
    /// [`ClientInterceptor`]).
    pub fn intercept(mut self, interceptor: impl ClientInterceptor) -> Self {
        self.interceptors = interceptor::push(&self.interceptors, Arc::new(interceptor));
        self
    }

    /// The call's options over the defaults, after the interceptors' head phase; the interceptors'
    /// view of the call when there are any.
    fn begin(
        &self,
        method: MethodInfo,
        options: CallOptions,
    ) -> Result<(CallOptions, Option<Hooks>), Status> {
        let mut options = merge_options(&self.defaults, options);
        if self.interceptors.is_empty() {
            return Ok((options, None));
        }
        let (protocol, codec) = (self.config.protocol, self.config.codec);
        let state = CallState::default();
        let mut head = ClientCallHead {
            method,
            protocol,
            codec,
            options: &mut options,
            state: &state,
        };
        for interceptor in self.interceptors.iter() {
            interceptor.on_request_head(&mut head)?;
        }
        let mut info = ClientCallInfo::new(method, protocol, codec, self.runtime.clone(), state);
        let timeout = options.timeout.or(self.config.timeout);
        info.set_deadline(timeout.and_then(|t| self.runtime.now().checked_add(t)));
        let hooks = Hooks {
            chain: self.interceptors.clone(),
            info: Arc::new(info),
        };
        Ok((options, Some(hooks)))
    }

    /// The client settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Calls a unary method.
    pub async fn unary<Req, Resp>(
        &self,
        method: MethodInfo,
        request: &Req,
        options: CallOptions,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message,
        Resp: Message + serde::de::DeserializeOwned,
    {
        self.unary_outcome(method, request, options)
            .await
            .into_result()
    }

    /// Calls a unary method, keeping headers, trailers and HTTP status apart from the outcome.
    pub async fn unary_outcome<Req, Resp>(
        &self,
        method: MethodInfo,
        request: &Req,
        options: CallOptions,
    ) -> Outcome<Resp>
    where
        Req: Message,
        Resp: Message + serde::de::DeserializeOwned,
    {
        let (options, hooks) = match self.begin(method, options) {
            Ok(begun) => begun,
            Err(status) => return Outcome::failed(status),
        };
        let payload = match encode(self.config.codec, request) {
            Ok(payload) => payload,
            Err(status) => return Outcome::failed(status),
        };
        let Some(hooks) = hooks else {
            let raw = self.unary_raw(method, payload, options).await;
            return raw.decode(self.config.codec);
        };
        if let Err(status) = hooks.request_message(request, payload.len()) {
            let mut outcome = Outcome::failed(status);
            hooks.finish_outcome(&mut outcome, 0);
            return outcome;
        }
        let core: UnaryCall = {
            let client = self.clone();
            Arc::new(move |request: UnaryRequest| {
                let client = client.clone();
                Box::pin(async move {
                    let method = *request.info.method();
                    client
                        .unary_raw(method, request.payload, request.options)
                        .await
                })
            })
        };
        let call = hooks
            .chain
            .iter()
            .rev()
            .fold(core, |next, interceptor| interceptor.wrap_unary(next));
        let raw = call(UnaryRequest {
            payload,
            options,
            info: hooks.info.clone(),
        })
        .await;
        let len = raw.message_len();
        let mut outcome = raw.decode(self.config.codec);
        hooks.finish_outcome(&mut outcome, len);
        outcome
    }

    /// A unary call with its request already serialized (after the interceptors' head phase): what
    /// the server answered, its message still serialized.
    async fn unary_raw(
        &self,
        method: MethodInfo,
        payload: Bytes,
        options: CallOptions,
    ) -> Outcome<Bytes> {
        let input = Box::pin(futures_util::stream::iter([Ok(payload)]));
        match self.start(method, input, options).await {
            Ok(driver) => collect_single(driver).await,
            Err(status) => Outcome::failed(status),
        }
    }

    /// Calls a server-streaming method; resolves once the response headers arrived.
    pub async fn server_streaming<Req, Resp>(
        &self,
        method: MethodInfo,
        request: &Req,
        options: CallOptions,
    ) -> Result<ResponseStream<Resp>, Status>
    where
        Req: Message,
        Resp: Message + serde::de::DeserializeOwned,
    {
        let (options, hooks) = self.begin(method, options)?;
        let payload = encode(self.config.codec, request)?;
        if let Some(hooks) = &hooks {
            if let Err(status) = hooks.request_message(request, payload.len()) {
                return Err(hooks.finish_error(status));
            }
        }
        let input = Box::pin(futures_util::stream::iter([Ok(payload)]));
        match self.start(method, input, options).await {
            Ok(driver) => ResponseStream::open(driver, self.config.codec, hooks).await,
            Err(status) => Err(match &hooks {
                Some(hooks) => hooks.finish_error(status),
                None => status,
            }),
        }
    }

    /// Calls a client-streaming method with the messages of `requests`.
    pub async fn client_streaming<Req, Resp, S>(
        &self,
        method: MethodInfo,
        requests: S,
        options: CallOptions,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message,
        Resp: Message + serde::de::DeserializeOwned,
        S: Stream<Item = Req> + MaybeSend + 'static,
    {
        self.client_streaming_outcome(method, requests, options)
            .await
            .into_result()
    }

    /// Calls a client-streaming method, keeping headers, trailers and HTTP status apart from the
    /// outcome.
    pub async fn client_streaming_outcome<Req, Resp, S>(
        &self,
        method: MethodInfo,
        requests: S,
        options: CallOptions,
    ) -> Outcome<Resp>
    where
        Req: Message,
        Resp: Message + serde::de::DeserializeOwned,
        S: Stream<Item = Req> + MaybeSend + 'static,
    {
        let (options, hooks) = match self.begin(method, options) {
            Ok(begun) => begun,
            Err(status) => return Outcome::failed(status),
        };
        let input = self.encode_stream(requests, hooks.clone());
        let raw = match self.start(method, input, options).await {
            Ok(driver) => collect_single(driver).await,
            Err(status) => Outcome::failed(status),
        };
        let len = raw.message_len();
        let mut outcome = raw.decode(self.config.codec);
        if let Some(hooks) = &hooks {
            hooks.finish_outcome(&mut outcome, len);
        }
        outcome
    }

    /// Calls a bidi-streaming method: `requests` is sent while responses are read. Resolves once the
    /// response headers arrived.
    pub async fn bidi_streaming<Req, Resp, S>(
        &self,
        method: MethodInfo,
        requests: S,
        options: CallOptions,
    ) -> Result<ResponseStream<Resp>, Status>
    where
        Req: Message,
        Resp: Message + serde::de::DeserializeOwned,
        S: Stream<Item = Req> + MaybeSend + 'static,
    {
        let (options, hooks) = self.begin(method, options)?;
        let input = self.encode_stream(requests, hooks.clone());
        match self.start(method, input, options).await {
            Ok(driver) => ResponseStream::open(driver, self.config.codec, hooks).await,
            Err(status) => Err(match &hooks {
                Some(hooks) => hooks.finish_error(status),
                None => status,
            }),
        }
    }

    fn encode_stream<Req, S>(
        &self,
        requests: S,
        hooks: Option<Hooks>,
    ) -> BoxStream<'static, Result<Bytes, Status>>
    where
        Req: Message,
        S: Stream<Item = Req> + MaybeSend + 'static,
    {
        let codec = self.config.codec;
        Box::pin(requests.map(move |m| {
            let payload = encode(codec, &m)?;
            if let Some(hooks) = &hooks {
                hooks.request_message(&m, payload.len())?;
            }
            Ok(payload)
        }))
    }

    /// Creates the call, feeds it until the request head exists, and hands the head to the transport.
    /// `options` are final: the defaults merged in, the interceptors' head phase done.
    async fn start(
        &self,
        method: MethodInfo,
        mut input: BoxStream<'static, Result<Bytes, Status>>,
        options: CallOptions,
    ) -> Result<ClientDriver, Status> {
        self.transport.check_call(self.config.protocol, &method)?;
        let now = self.runtime.now();
        let mut call = ClientCall::new(&self.config, method, &self.base, options, now);
        let mut input_open = true;
        let mut early = Vec::new();
        let head = loop {
            if let Some(transmit) = call.poll_transmit() {
                match transmit {
                    ClientTransmit::Head(head) => break head,
                    other => early.push(other),
                }
                continue;
            }
            if let Some(ClientEvent::Finished {
                result: Err(status),
                ..
            }) = call.poll_event()
            {
                return Err(status);
            }
            if !input_open {
                return Err(Status::internal(
                    "the call produced no request head after its input ended",
                ));
            }
            match input.next().await {
                Some(Ok(payload)) => call
                    .send_message(payload)
                    .map_err(|e| Status::internal(e.to_string()))?,
                Some(Err(status)) => return Err(status),
                None => {
                    input_open = false;
                    call.close_send()
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
            }
        };
        let (body, chan) = RequestBody::channel();
        let (parts, ()) = head.into_parts();
        let response = self.transport.send(http::Request::from_parts(parts, body));
        let response: BoxFuture<'static, _> = Box::pin(async move {
            let response = response.await?;
            let (parts, body) = response.into_parts();
            Ok::<_, TransportError>(http::Response::from_parts(
                parts,
                Box::pin(body) as BoxedBody<'static>,
            ))
        });
        let mut driver = ClientDriver {
            call,
            runtime: self.runtime.clone(),
            timer: CallTimer::default(),
            input: input_open.then_some(input),
            local_error: None,
            chan,
            response: Some(response),
            response_body: None,
            headers: None,
            http_status: None,
            messages: VecDeque::new(),
            finished: None,
            done: false,
        };
        for transmit in early {
            driver.on_transmit(transmit);
        }
        Ok(driver)
    }
}

/// Drives one client call: request messages → machine → request body; response → machine → events.
struct ClientDriver {
    call: ClientCall,
    runtime: Arc<dyn Runtime>,
    timer: CallTimer,
    input: Option<BoxStream<'static, Result<Bytes, Status>>>,
    /// A request message that failed to serialize: the call is cancelled and fails with this instead.
    local_error: Option<Status>,
    chan: Arc<BodyChannel>,
    response:
        Option<BoxFuture<'static, Result<http::Response<BoxedBody<'static>>, TransportError>>>,
    response_body: Option<BoxedBody<'static>>,
    headers: Option<HeaderMap>,
    http_status: Option<http::StatusCode>,
    messages: VecDeque<Bytes>,
    finished: Option<(Result<(), Status>, HeaderMap)>,
    /// The call is over (the outcome may have been taken from `finished` already).
    done: bool,
}

impl ClientDriver {
    /// Makes all the progress possible without waiting.
    fn drive(&mut self, cx: &mut TaskContext<'_>) {
        loop {
            let mut progress = false;

            if let Some(now) = self
                .timer
                .poll(&*self.runtime, self.call.poll_timeout(), cx)
            {
                self.call.handle_timeout(now);
                progress = true;
            }

            if self.input.is_some() && self.chan.has_room(REQUEST_HIGH_WATER, cx) {
                if let Some(input) = self.input.as_mut() {
                    if let Poll::Ready(item) = input.as_mut().poll_next(cx) {
                        progress = true;
                        match item {
                            Some(Ok(payload)) => {
                                if let Err(e) = self.call.send_message(payload) {
                                    self.fail_locally(Status::internal(e.to_string()));
                                }
                            }
                            Some(Err(status)) => self.fail_locally(status),
                            None => {
                                self.input = None;
                                // Fails only when the call is already over.
                                let _ = self.call.close_send();
                            }
                        }
                    }
                }
            }

            while let Some(transmit) = self.call.poll_transmit() {
                self.on_transmit(transmit);
                progress = true;
            }

            if let Some(response) = self.response.as_mut() {
                if let Poll::Ready(result) = response.as_mut().poll(cx) {
                    self.response = None;
                    progress = true;
                    match result {
                        Ok(response) => {
                            let (parts, body) = response.into_parts();
                            self.http_status = Some(parts.status);
                            self.call.recv_head(http::Response::from_parts(parts, ()));
                            self.response_body = Some(body);
                        }
                        Err(e) => {
                            // A reset that races an expired deadline is the deadline (TRAP 12).
                            self.call.handle_timeout(self.runtime.now());
                            self.call.recv_reset(e.reason());
                        }
                    }
                }
            }

            if self.messages.len() < RESPONSE_HIGH_WATER {
                if let Some(body) = self.response_body.as_mut() {
                    if let Poll::Ready(frame) = body.as_mut().poll_bytes(cx) {
                        progress = true;
                        match frame {
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => self.call.recv_data(data),
                                Err(frame) => {
                                    self.response_body = None;
                                    self.call.recv_end(frame.into_trailers().ok());
                                }
                            },
                            Some(Err(e)) => {
                                self.response_body = None;
                                self.call.handle_timeout(self.runtime.now());
                                self.call.recv_reset(TransportError::reason_of(&e));
                            }
                            None => {
                                self.response_body = None;
                                self.call.recv_end(None);
                            }
                        }
                    }
                }
            }

            while let Some(event) = self.call.poll_event() {
                progress = true;
                match event {
                    ClientEvent::Headers(headers) => self.headers = Some(headers),
                    ClientEvent::Message(payload) => self.messages.push_back(payload),
                    ClientEvent::Finished { result, trailers } => {
                        let result = match self.local_error.take() {
                            Some(status) => Err(status),
                            None => result,
                        };
                        self.finished = Some((result, trailers));
                        self.done = true;
                        self.input = None;
                        self.response = None;
                        self.response_body = None;
                    }
                }
            }

            if !progress {
                return;
            }
        }
    }

    fn fail_locally(&mut self, status: Status) {
        self.input = None;
        self.local_error = Some(status);
        self.call.cancel();
    }

    fn on_transmit(&mut self, transmit: ClientTransmit) {
        match transmit {
            ClientTransmit::Head(_) => {}
            ClientTransmit::Data(data) => self.chan.push(data),
            ClientTransmit::End => self.chan.close(),
            ClientTransmit::Reset => {
                self.chan.abort();
                self.response = None;
                self.response_body = None;
            }
        }
    }

    /// Polls until `ready` holds for the driver's outputs, or the call is over.
    fn poll_until(
        &mut self,
        cx: &mut TaskContext<'_>,
        ready: impl Fn(&ClientDriver) -> bool,
    ) -> Poll<()> {
        if ready(self) || self.finished.is_some() {
            return Poll::Ready(());
        }
        self.drive(cx);
        if ready(self) || self.finished.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ClientDriver {
    fn drop(&mut self) {
        if self.done {
            // The response is complete. A request body the application had finished still goes
            // out to its end (an HTTP/1.1 server drains it, and the connection stays reusable). One
            // it had not finished is cut off: ending it cleanly would tell the server it was whole,
            // and over HTTP/1.1 would hand back to the pool a connection the server may be closing
            // (it stops waiting for the rest of a body after a while).
            self.chan.abort_unless_closed();
            return;
        }
        self.call.cancel();
        while let Some(transmit) = self.call.poll_transmit() {
            if matches!(transmit, ClientTransmit::Reset) {
                self.chan.abort();
            }
        }
        self.chan.abort();
    }
}

/// Runs a unary or client-streaming call to its end: the response message still serialized.
async fn collect_single(mut driver: ClientDriver) -> Outcome<Bytes> {
    futures_util::future::poll_fn(|cx| driver.poll_until(cx, |_| false)).await;
    let (result, trailers) = driver.finished.take().unwrap_or_else(|| {
        (
            Err(Status::internal("the call ended without an outcome")),
            HeaderMap::new(),
        )
    });
    let result = result.and_then(|()| {
        driver.messages.pop_front().ok_or_else(|| {
            Status::unimplemented(
                "the response ended without a message, but the method returns one",
            )
        })
    });
    Outcome {
        headers: driver.headers.take().unwrap_or_default(),
        result,
        trailers,
        http_status: driver.http_status,
    }
}

/// Messages a client sends and receives: generated types (buffa's, with their protobuf name,
/// printable, shareable for interceptors).
pub trait Message:
    buffa::Message + buffa::MessageName + serde::Serialize + std::fmt::Debug + Send + Sync + 'static
{
}

impl<M> Message for M where
    M: buffa::Message
        + buffa::MessageName
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A client's interceptors and their view of one call.
#[derive(Clone)]
struct Hooks {
    chain: ClientChain,
    info: Arc<ClientCallInfo>,
}

impl Hooks {
    /// A request message, serialized in `len` bytes: outermost interceptor first.
    fn request_message<M: Message>(&self, message: &M, len: usize) -> Result<(), Status> {
        let message = MessageRef::new(message, M::FULL_NAME, len);
        self.chain
            .iter()
            .try_for_each(|i| i.on_request_message(&self.info, message))
    }

    /// The response headers: innermost first.
    fn response_headers(&self, headers: &mut HeaderMap) {
        for interceptor in self.chain.iter().rev() {
            interceptor.on_response_headers(&self.info, headers);
        }
    }

    /// A decoded response message: innermost first.
    fn response_message<M: Message>(&self, message: &M, len: usize) -> Result<(), Status> {
        let message = MessageRef::new(message, M::FULL_NAME, len);
        self.chain
            .iter()
            .rev()
            .try_for_each(|i| i.on_response_message(&self.info, message))
    }

    /// The outcome: innermost first, each may replace it.
    fn finish(&self, outcome: &mut Result<(), Status>, trailers: &mut HeaderMap) {
        for interceptor in self.chain.iter().rev() {
            interceptor.on_finish(&self.info, outcome, trailers);
        }
    }

    /// A call that failed before any response: the finish phase, then its error.
    fn finish_error(&self, status: Status) -> Status {
        let mut outcome = Err(status);
        self.finish(&mut outcome, &mut HeaderMap::new());
        outcome.err().unwrap_or_else(|| {
            Status::internal("an interceptor replaced an error with Ok, but there is no response")
        })
    }

    /// Every response phase of a unary or client-streaming call: headers, the message, the finish
    /// (an `Ok` replacing an error without a message is ignored: there is nothing to return).
    fn finish_outcome<T: Message>(&self, outcome: &mut Outcome<T>, len: usize) {
        self.response_headers(&mut outcome.headers);
        if let Ok(message) = &outcome.result {
            if let Err(status) = self.response_message(message, len) {
                outcome.result = Err(status);
            }
        }
        let mut result = outcome.result.as_ref().map(drop).map_err(Clone::clone);
        self.finish(&mut result, &mut outcome.trailers);
        if let Err(status) = result {
            outcome.result = Err(status);
        }
    }
}

/// Everything a unary or client-streaming call returned, error or not: the response headers, the
/// outcome, the trailers and the HTTP status. [`Client::unary`] folds this into a `Result` (an error's
/// headers and trailers then travel merged in [`Status::metadata`]); use the `_outcome` variants when
/// headers and trailers must stay apart.
#[derive(Clone, Debug)]
pub struct Outcome<T> {
    /// The response headers (empty when none arrived).
    pub headers: HeaderMap,
    /// The message or the error.
    pub result: Result<T, Status>,
    /// The trailers.
    pub trailers: HeaderMap,
    /// The HTTP status of the response, when one arrived.
    pub http_status: Option<http::StatusCode>,
}

impl Outcome<Bytes> {
    /// The serialized response message's size (0 without one).
    fn message_len(&self) -> usize {
        self.result.as_ref().map_or(0, Bytes::len)
    }

    /// The response message decoded.
    fn decode<T>(self, codec: Codec) -> Outcome<T>
    where
        T: buffa::Message + serde::de::DeserializeOwned,
    {
        Outcome {
            headers: self.headers,
            result: self
                .result
                .and_then(|payload| decode_response::<T>(codec, &payload)),
            trailers: self.trailers,
            http_status: self.http_status,
        }
    }
}

impl<T> Outcome<T> {
    fn failed(status: Status) -> Self {
        Outcome {
            headers: HeaderMap::new(),
            result: Err(status),
            trailers: HeaderMap::new(),
            http_status: None,
        }
    }

    /// The outcome as a `Result`: the message with its metadata, or the error carrying the headers and
    /// trailers in its metadata.
    pub fn into_result(self) -> Result<Response<T>, Status> {
        match self.result {
            Ok(message) => Ok(Response::from_parts(message, self.headers, self.trailers)),
            Err(mut status) => {
                let metadata = status.metadata_mut();
                for (name, value) in self.headers.iter().chain(self.trailers.iter()) {
                    metadata.append(name.clone(), value.clone());
                }
                Err(status)
            }
        }
    }
}

/// The response messages of a server- or bidi-streaming call. An error ends the stream with one
/// `Err` item; the trailers are available once the stream has ended. Dropping it cancels the call.
pub struct ResponseStream<T> {
    driver: ClientDriver,
    codec: Codec,
    headers: HeaderMap,
    trailers: Option<HeaderMap>,
    hooks: Option<Hooks>,
    _message: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ResponseStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseStream")
            .field("headers", &self.headers)
            .field("trailers", &self.trailers)
            .finish_non_exhaustive()
    }
}

impl<T> ResponseStream<T> {
    async fn open(
        mut driver: ClientDriver,
        codec: Codec,
        hooks: Option<Hooks>,
    ) -> Result<Self, Status> {
        futures_util::future::poll_fn(|cx| driver.poll_until(cx, |d| d.headers.is_some())).await;
        if driver.headers.is_none() {
            if let Some((Err(status), trailers)) = &driver.finished {
                let mut status = status.clone();
                for (name, value) in trailers {
                    status.metadata_mut().append(name.clone(), value.clone());
                }
                return Err(match &hooks {
                    Some(hooks) => hooks.finish_error(status),
                    None => status,
                });
            }
        }
        let mut headers = driver.headers.take().unwrap_or_default();
        if let Some(hooks) = &hooks {
            hooks.response_headers(&mut headers);
        }
        Ok(ResponseStream {
            driver,
            codec,
            headers,
            trailers: None,
            hooks,
            _message: PhantomData,
        })
    }

    /// The response headers (custom metadata).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The trailers, once the stream has ended.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }
}

impl<T> Stream for ResponseStream<T>
where
    T: Message + serde::de::DeserializeOwned,
{
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.trailers.is_some() {
            return Poll::Ready(None);
        }
        let ready = this.driver.poll_until(cx, |d| !d.messages.is_empty());
        if let Some(payload) = this.driver.messages.pop_front() {
            let message = decode_response::<T>(this.codec, &payload);
            let checked = match (&message, &this.hooks) {
                (Ok(m), Some(hooks)) => hooks.response_message(m, payload.len()),
                _ => Ok(()),
            };
            if let Err(status) = checked {
                // The interceptor ends the call here: cancel it, and report its status.
                this.driver.fail_locally(status.clone());
                this.driver.finished = None;
                let mut outcome = Err(status);
                let mut trailers = HeaderMap::new();
                if let Some(hooks) = &this.hooks {
                    hooks.finish(&mut outcome, &mut trailers);
                }
                this.trailers = Some(trailers);
                return Poll::Ready(outcome.err().map(Err));
            }
            return Poll::Ready(Some(message));
        }
        if ready.is_pending() {
            return Poll::Pending;
        }
        match this.driver.finished.take() {
            Some((mut result, mut trailers)) => {
                if let Some(hooks) = &this.hooks {
                    hooks.finish(&mut result, &mut trailers);
                }
                match result {
                    Ok(()) => {
                        this.trailers = Some(trailers);
                        Poll::Ready(None)
                    }
                    Err(mut status) => {
                        // As for every error a client receives: the headers, then the trailers.
                        let metadata = status.metadata_mut();
                        for (name, value) in this.headers.iter().chain(trailers.iter()) {
                            metadata.append(name.clone(), value.clone());
                        }
                        this.trailers = Some(trailers);
                        Poll::Ready(Some(Err(status)))
                    }
                }
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_proto::Code;
    use connect_proto::Instant;
    use connect_proto::StreamType;

    #[derive(Debug)]
    struct NoRuntime;

    impl Runtime for NoRuntime {
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn sleep_until(&self, _: Instant) -> BoxFuture<'static, ()> {
            Box::pin(std::future::pending())
        }
        fn spawn(&self, _: BoxFuture<'static, ()>) {}
    }

    /// Carries unary calls only, and panics if asked to send anything else.
    struct UnaryOnly;

    impl Transport for UnaryOnly {
        type ResponseBody = RequestBody;
        type Future = BoxFuture<'static, Result<http::Response<RequestBody>, TransportError>>;

        fn send(&self, request: http::Request<RequestBody>) -> Self::Future {
            panic!("sent {}", request.uri())
        }

        fn check_call(&self, _: Protocol, method: &MethodInfo) -> Result<(), Status> {
            match method.stream_type {
                StreamType::Unary => Ok(()),
                other => Err(Status::unimplemented(format!("no {other:?} here"))),
            }
        }
    }

    #[test]
    fn a_call_the_transport_cannot_carry_fails_before_sending() {
        let client = Client::new(
            UnaryOnly,
            "http://x".parse().unwrap(),
            ClientConfig::new(Protocol::Connect, Codec::Proto),
            NoRuntime,
        );
        let method = MethodInfo {
            path: "/pkg.Svc/Upload",
            stream_type: StreamType::ClientStreaming,
            no_side_effects: false,
        };
        let requests = futures_util::stream::pending::<()>();
        let result = futures_executor::block_on(client.start(
            method,
            Box::pin(requests.map(|()| Ok(Bytes::new()))),
            CallOptions::default(),
        ));
        let status = result.err().expect("refused");
        assert_eq!(status.code(), Code::UNIMPLEMENTED);
        assert!(status.message().contains("ClientStreaming"), "{status}");
    }
}
