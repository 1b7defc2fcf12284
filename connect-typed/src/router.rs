//! The server entry point: `http::Request` in, `http::Response` out, for all three protocols.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};

use crate::body::{BoxError, BoxedBody};
use crate::context::Context;
use crate::cors::Cors;
use crate::handler::{Inbox, RequestPayloads, ResponsePayloads, Service};
use crate::interceptor::{self, CallState, ServerCallHead, ServerChain, ServerInterceptor};
use crate::runtime::{CallTimer, Runtime};
use connect_proto::{Codec, MethodInfo, Protocol};
use connect_proto::{ServerCall, ServerConfig, ServerEvent, ServerTransmit};

/// Request messages buffered for a handler before the driver stops reading the request body.
const INBOX_HIGH_WATER: usize = 4;

/// Response bytes the driver takes from a streaming handler, while it has them ready, before handing
/// them to the HTTP stack as one body frame: a stream of small messages then costs one HTTP/2 DATA
/// frame per 16 KiB instead of one per message. Chunks over [`SMALL_CHUNK`] (the envelope encoder
/// leaves such payloads uncopied) are passed on as they are.
const COALESCE_BYTES: usize = 16 * 1024;

/// The largest chunk [`ServerDriver::coalesce`] copies into a bigger one: the size up to which the
/// core copies a payload behind its envelope prefix.
const SMALL_CHUNK: usize = 8 * 1024;

/// Where a path leads.
#[derive(Clone, Copy)]
struct Route {
    method: MethodInfo,
    service: usize,
    index: usize,
}

/// Serves registered [`Service`]s: looks a request's path up, runs the call's state machine and the
/// handler, and streams the response. Connect, gRPC and gRPC-Web are all served on the same paths.
///
/// Cheap to clone. Hosting it takes one function: [`Router::handle`] turns any
/// `http::Request<impl http_body::Body>` into an `http::Response<`[`ResponseBody`]`>`, so any HTTP
/// stack that speaks the `http` crate types can serve it. No task is spawned: the returned future
/// drives the call until the response head is ready, then the response body drives it.
#[derive(Clone)]
pub struct Router {
    inner: Arc<RouterInner>,
}

#[derive(Clone)]
struct RouterInner {
    services: Vec<Arc<dyn Service>>,
    /// Path → the method, its service's index in `services`, its index in the service's methods.
    routes: HashMap<&'static str, Route>,
    config: ServerConfig,
    runtime: Arc<dyn Runtime>,
    cors: Option<Arc<Cors>>,
    interceptors: ServerChain,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut paths: Vec<_> = self.inner.routes.keys().collect();
        paths.sort();
        f.debug_struct("Router")
            .field("paths", &paths)
            .field("config", &self.inner.config)
            .field("runtime", &self.inner.runtime)
            .finish()
    }
}

impl Router {
    /// An empty router whose calls take time and timers from `runtime`.
    pub fn new(runtime: impl Runtime) -> Self {
        Router {
            inner: Arc::new(RouterInner {
                services: Vec::new(),
                routes: HashMap::new(),
                config: ServerConfig::default(),
                runtime: Arc::new(runtime),
                cors: None,
                interceptors: Arc::new([]),
            }),
        }
    }

    /// Adds an interceptor around every call, inside those added before (see
    /// [`ServerInterceptor`]).
    pub fn intercept(mut self, interceptor: impl ServerInterceptor) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.interceptors = interceptor::push(&inner.interceptors, Arc::new(interceptor));
        self
    }

    /// Registers a service (a generated `…Server`). A path registered twice is served by the last one.
    pub fn service(mut self, service: impl Service) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        let service_index = inner.services.len();
        for (index, method) in service.methods().iter().enumerate() {
            let route = Route {
                method: *method,
                service: service_index,
                index,
            };
            inner.routes.insert(method.path, route);
        }
        inner.services.push(Arc::new(service));
        self
    }

    /// Replaces the server settings (compression, size limits, ...).
    pub fn config(mut self, config: ServerConfig) -> Self {
        Arc::make_mut(&mut self.inner).config = config;
        self
    }

    /// Answers CORS preflights and adds CORS headers to responses for browser clients (Connect and
    /// gRPC-Web from `fetch`), as `cors` says.
    pub fn cors(mut self, cors: Cors) -> Self {
        Arc::make_mut(&mut self.inner).cors = Some(Arc::new(cors));
        self
    }

    /// The server settings.
    pub fn server_config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The method served at `path`.
    pub fn lookup(&self, path: &str) -> Option<MethodInfo> {
        self.inner.routes.get(path).map(|r| r.method)
    }

    /// The paths served, sorted.
    pub fn paths(&self) -> Vec<&'static str> {
        let mut paths: Vec<_> = self.inner.routes.keys().copied().collect();
        paths.sort_unstable();
        paths
    }

    /// Serves one request. Unknown paths get `unimplemented` (or 404-style answers) in the request's
    /// protocol; malformed requests are rejected from their head alone.
    pub fn handle<B>(&self, request: http::Request<B>) -> ServeFuture
    where
        B: Body + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = request.into_parts();
        let inner = &self.inner;
        if let Some(cors) = inner.cors.as_ref().filter(|_| Cors::is_preflight(&parts)) {
            let (head, ()) = cors.preflight(&parts).into_parts();
            return ServeFuture {
                driver: None,
                ready: Some(Box::new(http::Response::from_parts(
                    head,
                    ResponseBody { driver: None },
                ))),
                cors: None,
            };
        }
        // CORS needs the request's origin when the head goes out; the headers go to the handler.
        let cors = inner.cors.as_ref().map(|cors| {
            let mut origin = http::HeaderMap::new();
            if let Some(value) = parts.headers.get(http::header::ORIGIN) {
                origin.insert(http::header::ORIGIN, value.clone());
            }
            (cors.clone(), origin)
        });
        let route = inner.routes.get(parts.uri.path()).copied();
        let now = inner.runtime.now();
        let mut call = ServerCall::new(&inner.config, route.map(|r| r.method), &parts, now);

        let inbox = Arc::new(Inbox::default());
        let mut rejected = false;
        let mut early_events = Vec::new();
        while let Some(event) = call.poll_event() {
            if matches!(event, ServerEvent::Finished(_)) {
                rejected = true;
            }
            early_events.push(event);
        }
        let mut responses = None;
        let mut ctx = None;
        if let Some(route) = route {
            let protocol = call.protocol().unwrap_or(Protocol::Connect);
            let codec = call.codec().unwrap_or(Codec::Proto);
            let state = CallState::default();
            if !rejected && !inner.interceptors.is_empty() {
                // The head phase: before any of the body is read.
                let mut head = ServerCallHead {
                    method: route.method,
                    protocol,
                    codec,
                    deadline: call.deadline(),
                    headers: &mut parts.headers,
                    extensions: &parts.extensions,
                    state: &state,
                };
                let verdict = inner
                    .interceptors
                    .iter()
                    .try_for_each(|i| i.on_request_head(&mut head));
                if let Err(status) = verdict {
                    rejected = true;
                    let (mut result, mut trailers) = (Err(status), http::HeaderMap::new());
                    send_error_metadata(&mut result, &mut trailers);
                    // Only fails when the call already ended, which `rejected` rules out.
                    let _ = call.finish(result, trailers);
                    early_events.extend(std::iter::from_fn(|| call.poll_event()));
                }
            }
            let mut context = Context::new(
                route.method,
                protocol,
                codec,
                call.deadline(),
                std::mem::take(&mut parts.headers),
                std::mem::take(&mut parts.extensions),
            )
            .with_uri(std::mem::take(&mut parts.uri));
            if !inner.interceptors.is_empty() {
                context = context.with_interceptors(inner.interceptors.clone(), state);
            }
            if !rejected {
                responses = inner.services[route.service].call(
                    route.index,
                    context.clone(),
                    RequestPayloads::new(inbox.clone()),
                );
            }
            ctx = Some(context);
        }
        #[cfg(feature = "tracing")]
        let span = ctx
            .as_ref()
            .and_then(|c| c.state().get::<crate::observe::CallSpan>())
            .map(|s| s.0);
        let mut driver = Box::new(ServerDriver {
            call,
            runtime: inner.runtime.clone(),
            timer: CallTimer::default(),
            request_body: Some(Box::pin(body) as BoxedBody<'static>),
            inbox,
            responses,
            ctx,
            headers_sent: false,
            finish_reported: false,
            #[cfg(feature = "tracing")]
            span,
            out: VecDeque::new(),
            out_bytes: 0,
            done: false,
            reset: false,
        });
        for event in early_events {
            driver.on_event(event);
        }
        ServeFuture {
            driver: Some(driver),
            ready: None,
            cors,
        }
    }
}

/// The response body's error: the client reset the stream or the request body failed, so the call was
/// abandoned. An HTTP stack answers it by resetting the stream (HTTP/2) or closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallReset;

impl fmt::Display for CallReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the call was reset by the client")
    }
}

impl std::error::Error for CallReset {}

/// The future of [`Router::handle`]: resolves to the response once its head is known.
#[must_use = "futures do nothing unless polled"]
pub struct ServeFuture {
    /// Boxed, like the response body's: the driver is ~700 bytes, and this future and then the body
    /// are moved several times per call (into the HTTP stack's per-stream task among others).
    driver: Option<Box<ServerDriver>>,
    /// An answer known without running a call (a CORS preflight).
    /// Boxed: it is rare, and the future is moved a few times per call.
    ready: Option<Box<http::Response<ResponseBody>>>,
    /// The CORS policy, with the request's `Origin` (the only request header it reads).
    cors: Option<(Arc<Cors>, http::HeaderMap)>,
}

impl fmt::Debug for ServeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeFuture").finish_non_exhaustive()
    }
}

impl Future for ServeFuture {
    type Output = http::Response<ResponseBody>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if let Some(ready) = self.ready.take() {
            return Poll::Ready(*ready);
        }
        let this = &mut *self;
        let Some(driver) = this.driver.as_mut() else {
            return Poll::Pending;
        };
        driver.drive(cx);
        match driver.out.pop_front() {
            Some(ServerTransmit::Head(head)) => {
                let (mut parts, ()) = head.into_parts();
                if let Some((cors, origin)) = this.cors.take() {
                    cors.apply(&origin, &mut parts.headers);
                }
                let driver = this.driver.take();
                Poll::Ready(http::Response::from_parts(parts, ResponseBody { driver }))
            }
            // The call was reset before a head existed (the client went away, or the application
            // cancelled): answer with a body that fails at once, which makes the HTTP stack reset
            // the stream instead of waiting forever.
            Some(ServerTransmit::Reset) => {
                driver.out.push_front(ServerTransmit::Reset);
                let driver = self.driver.take();
                Poll::Ready(http::Response::new(ResponseBody { driver }))
            }
            None if driver.reset => {
                let driver = self.driver.take();
                Poll::Ready(http::Response::new(ResponseBody { driver }))
            }
            Some(other) => {
                // The machine promises the head first; keep the order if it ever does not.
                driver.out.push_front(other);
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}

/// The body of a response from [`Router::handle`]. Polling it drives the call: it reads the request
/// body, runs the handler and frames its messages. Dropping it cancels the handler.
pub struct ResponseBody {
    driver: Option<Box<ServerDriver>>,
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = CallReset;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CallReset>>> {
        let Some(driver) = self.driver.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            if matches!(driver.out.front(), Some(ServerTransmit::Data(_)))
                && driver.out_bytes < COALESCE_BYTES
                && !driver.done
            {
                // Let the handler add what it has ready, so that small messages share a frame.
                driver.drive(cx);
            }
            match driver.out.pop_front() {
                Some(ServerTransmit::Data(data)) if data.is_empty() => continue,
                Some(ServerTransmit::Data(data)) => {
                    driver.out_bytes -= data.len();
                    let data = driver.coalesce(data);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(last @ (ServerTransmit::Trailers(_) | ServerTransmit::End)) => {
                    self.driver = None;
                    return Poll::Ready(match last {
                        ServerTransmit::Trailers(trailers) => Some(Ok(Frame::trailers(trailers))),
                        _ => None,
                    });
                }
                Some(ServerTransmit::Head(_)) => continue,
                Some(ServerTransmit::Reset) => {
                    self.driver = None;
                    return Poll::Ready(Some(Err(CallReset)));
                }
                None => {}
            }
            if !driver.drive(cx) {
                if driver.reset {
                    self.driver = None;
                    return Poll::Ready(Some(Err(CallReset)));
                }
                return Poll::Pending;
            }
        }
    }

    /// True once nothing is left to send, and also right after the head of a trailers-only
    /// response (the head carries the status and only the end follows): the HTTP stack then ends the
    /// stream with the head itself. gRPC requires that (one HEADERS frame with END_STREAM); grpcio and
    /// grpc-js fail a call whose trailers-only HEADERS are followed by an empty DATA frame.
    fn is_end_stream(&self) -> bool {
        match &self.driver {
            None => true,
            Some(d) => d.out.len() == 1 && matches!(d.out.front(), Some(ServerTransmit::End)),
        }
    }
}

/// Moves one call along: request body → machine → handler → machine → response output.
struct ServerDriver {
    call: ServerCall,
    runtime: Arc<dyn Runtime>,
    timer: CallTimer,
    request_body: Option<BoxedBody<'static>>,
    inbox: Arc<Inbox>,
    responses: Option<ResponsePayloads>,
    ctx: Option<Context>,
    headers_sent: bool,
    out: VecDeque<ServerTransmit>,
    /// Bytes of the `Data` items in `out`.
    out_bytes: usize,
    done: bool,
    /// The request failed or was reset: no response will ever be produced.
    reset: bool,
    /// The interceptors' finish phase ran.
    finish_reported: bool,
    /// The call's span (from `observe::ServerTracing`): the handler runs inside it.
    #[cfg(feature = "tracing")]
    span: Option<tracing::Span>,
}

/// The handler's response headers when they are due (once, before the first response; nothing when
/// the handler set none, did not ask for them to be sent, and no interceptor added any), marking
/// them sent.
#[inline]
fn due_headers(sent: &mut bool, ctx: Option<&Context>) -> Option<http::HeaderMap> {
    if std::mem::replace(sent, true) {
        return None;
    }
    first_headers(ctx?)
}

/// The handler's response headers as they go out, the interceptors' changes made.
fn first_headers(ctx: &Context) -> Option<http::HeaderMap> {
    let mut headers = ctx.take_response_headers();
    for interceptor in ctx.interceptors().iter().rev() {
        interceptor.on_response_headers(ctx, &mut headers);
    }
    (!headers.is_empty() || ctx.response_headers_requested()).then_some(headers)
}

/// Moves the metadata of an error into the trailers (without the names a protocol owns), as the
/// other implementations send an error's metadata.
fn send_error_metadata(result: &mut Result<(), crate::Status>, trailers: &mut http::HeaderMap) {
    if let Err(status) = result {
        if !status.metadata().is_empty() {
            let metadata = std::mem::take(status.metadata_mut());
            for (name, value) in &metadata {
                if !connect_proto::is_protocol_header(name) {
                    trailers.append(name.clone(), value.clone());
                }
            }
        }
    }
}

/// Runs the handler's side of `work` (polling its responses); a panicking handler is caught here
/// (it fails its own call with `internal`, never the connection it shares).
fn guarded<T>(work: impl FnOnce() -> T) -> std::thread::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
}

#[cfg(feature = "tracing")]
/// What a panic carried, for the log.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload")
}

impl ServerDriver {
    /// Makes all the progress possible without waiting; returns whether output is ready.
    fn drive(&mut self, cx: &mut TaskContext<'_>) -> bool {
        loop {
            let mut progress = false;

            if let Some(now) = self
                .timer
                .poll(&*self.runtime, self.call.poll_timeout(), cx)
            {
                self.call.handle_timeout(now);
                progress = true;
            }

            if self.inbox.len() < INBOX_HIGH_WATER {
                if let Some(body) = self.request_body.as_mut() {
                    match body.as_mut().poll_bytes(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            match frame.into_data() {
                                Ok(data) => self.call.recv_data(data),
                                Err(frame) => {
                                    self.call.recv_end(frame.into_trailers().ok());
                                    self.request_body = None;
                                }
                            }
                            progress = true;
                        }
                        Poll::Ready(Some(Err(e))) => {
                            self.call
                                .recv_reset(crate::body::TransportError::reason_of(&e));
                            self.reset = true;
                            self.request_body = None;
                            progress = true;
                        }
                        Poll::Ready(None) => {
                            self.call.recv_end(None);
                            self.request_body = None;
                            progress = true;
                        }
                        Poll::Pending => {}
                    }
                }
            }

            while let Some(event) = self.call.poll_event() {
                self.on_event(event);
                progress = true;
            }

            // The handler's ready messages, one after another while they fit the chunk being
            // gathered.
            let mut sent_message = false;
            while self.out_bytes + self.call.gathered_len() < COALESCE_BYTES && !self.done {
                let Some(sent) = self.poll_response(cx) else {
                    break;
                };
                sent_message = sent;
                progress = true;
                if !sent || self.call.is_finished() {
                    break;
                }
            }

            if !self.headers_sent
                && self
                    .ctx
                    .as_ref()
                    .is_some_and(Context::response_headers_requested)
            {
                self.send_headers_once();
                progress = true;
            }

            // While the handler has messages ready, let them gather in the call's buffer: they leave
            // as one chunk, framed with one copy each.
            let gathering = sent_message && self.call.gathered_len() < COALESCE_BYTES;
            while let Some(transmit) = (!gathering).then(|| self.call.poll_transmit()).flatten() {
                match &transmit {
                    ServerTransmit::End | ServerTransmit::Trailers(_) => {
                        self.done = true;
                        self.responses = None;
                    }
                    ServerTransmit::Data(data) => self.out_bytes += data.len(),
                    ServerTransmit::Reset => {
                        self.done = true;
                        self.reset = true;
                        self.responses = None;
                    }
                    ServerTransmit::Head(_) => {}
                }
                self.out.push_back(transmit);
                progress = true;
            }

            if !progress {
                return !self.out.is_empty();
            }
        }
    }

    /// `first` joined with the small `Data` chunks queued behind it, up to [`COALESCE_BYTES`].
    ///
    /// A stream's small messages are gathered by the call machine itself, so this is rarely
    /// reached; where it is, it pays: a gRPC-Web response's last message and its trailer frame
    /// leave in one HTTP/2 DATA frame instead of two (measured with h2load on unary gRPC-Web echo:
    /// 9 bytes and about 0.4 µs of server CPU less per call; `benches/README.md`).
    fn coalesce(&mut self, first: Bytes) -> Bytes {
        let small = |len: usize| len <= SMALL_CHUNK;
        if !small(first.len()) {
            return first;
        }
        let (mut total, mut count) = (first.len(), 0);
        for transmit in &self.out {
            match transmit {
                ServerTransmit::Data(d) if small(d.len()) && total + d.len() <= COALESCE_BYTES => {
                    total += d.len();
                    count += 1;
                }
                _ => break,
            }
        }
        if count == 0 {
            return first;
        }
        let mut buf = BytesMut::with_capacity(total);
        buf.extend_from_slice(&first);
        for _ in 0..count {
            if let Some(ServerTransmit::Data(d)) = self.out.pop_front() {
                self.out_bytes -= d.len();
                buf.extend_from_slice(&d);
            }
        }
        buf.freeze()
    }

    fn on_event(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Message(payload) => self.inbox.push(payload),
            ServerEvent::InputClosed => self.inbox.close(),
            ServerEvent::Finished(outcome) => {
                // The response is already queued by the machine; the handler (if still running: the
                // call ended on its own) is dropped here.
                self.responses = None;
                self.inbox.close();
                if !self.finish_reported {
                    // The call ended on its own: the interceptors observe the outcome sent.
                    self.finish_reported = true;
                    if let Some(ctx) = self.ctx.as_ref() {
                        let (mut outcome, mut trailers) = (outcome, http::HeaderMap::new());
                        for interceptor in ctx.interceptors().iter().rev() {
                            interceptor.on_finish(ctx, &mut outcome, &mut trailers);
                        }
                    }
                }
            }
        }
    }

    /// Polls the handler for its next response, which it serializes straight into the call's send
    /// buffer. `None` when it has none ready; else whether it was a message (not the call's end).
    fn poll_response(&mut self, cx: &mut TaskContext<'_>) -> Option<bool> {
        #[cfg(feature = "tracing")]
        let span = self.span.clone();
        #[cfg(feature = "tracing")]
        let _entered = span.as_ref().map(tracing::Span::enter);
        let responses = self.responses.as_mut()?;
        let mut writer = self.call.message_writer();
        let mut polled = guarded(|| responses.poll_write(cx, writer.buffer()));
        if let Ok(Poll::Ready(Some(Ok(())))) = polled {
            if let Some(headers) = due_headers(&mut self.headers_sent, self.ctx.as_ref()) {
                // Response headers go first: the message steps out of the buffer meanwhile.
                let message = writer.take().freeze();
                // Only fails when the call is already over; then the message is dropped too.
                let _ = self.call.send_headers(headers);
                let sent = self.call.send_message(message);
                self.fail_misuse(sent.err());
                return Some(true);
            }
        }
        // The message, then those the handler has ready behind it while they fit the chunk being
        // gathered: one writer for them all, each written in place.
        let (mut sent, mut misuse) = (false, None);
        if let Ok(Poll::Ready(Some(Ok(())))) = polled {
            sent = true;
            let limit = COALESCE_BYTES.saturating_sub(self.out_bytes);
            polled = match guarded(|| responses.write_run(cx, &mut writer, limit)) {
                Ok(Ok(end)) => Ok(end),
                Ok(Err(e)) => {
                    misuse = Some(e);
                    Ok(Poll::Pending)
                }
                Err(panic) => Err(panic),
            };
        }
        // A message begun and not written is dropped with the writer.
        drop(writer);
        self.fail_misuse(misuse);
        let item = match polled {
            Ok(Poll::Ready(item)) => item,
            Ok(Poll::Pending) => return sent.then_some(true),
            Err(panic) => {
                // The payload goes to the log (and the panic hook's report), not to the client.
                #[cfg(feature = "tracing")]
                tracing::error!(
                    rpc.method = self.ctx.as_ref().map_or("", |c| c.method().path),
                    panic = panic_message(&*panic),
                    "an RPC handler panicked; the call fails with internal"
                );
                drop(panic);
                self.send_headers_once();
                self.finish(Err(connect_proto::Status::internal("the handler panicked")));
                return Some(false);
            }
        };
        // The handler's responses ended (every message was taken by the loop above).
        self.send_headers_once();
        match item {
            Some(Err(status)) => self.finish(Err(status)),
            _ => self.finish(Ok(())),
        }
        Some(false)
    }

    /// A message the call refused as the handler's misuse (a second message of a unary response)
    /// fails the call with `internal`.
    fn fail_misuse(&mut self, misuse: Option<connect_proto::UsageError>) {
        if let Some(misuse) = misuse {
            self.finish(Err(connect_proto::Status::internal(format!(
                "the handler's response could not be sent: {misuse}"
            ))));
        }
    }

    fn send_headers_once(&mut self) {
        if let Some(headers) = due_headers(&mut self.headers_sent, self.ctx.as_ref()) {
            // Only fails when the call is already over; then there is nothing left to send.
            let _ = self.call.send_headers(headers);
        }
    }

    fn finish(&mut self, mut result: Result<(), crate::Status>) {
        self.responses = None;
        let mut trailers = self
            .ctx
            .as_ref()
            .map(Context::take_response_trailers)
            .unwrap_or_default();
        if let Some(ctx) = self.ctx.as_ref().filter(|_| !self.call.is_finished()) {
            self.finish_reported = true;
            for interceptor in ctx.interceptors().iter().rev() {
                interceptor.on_finish(ctx, &mut result, &mut trailers);
            }
        }
        send_error_metadata(&mut result, &mut trailers);
        // Fails only when the machine already ended the call (deadline, reset): its answer stands.
        let _ = self.call.finish(result, trailers);
    }
}
