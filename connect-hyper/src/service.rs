//! The per-connection hyper service: the peer's identity in each request, the request-body limit, a
//! response that fails when its request failed, and, over HTTP/1.1, the rest of a request body read
//! before its response ends so that the connection stays usable.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use connect_typed::{BoxError, CallReset, ResponseBody, Router, Status};
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::budget::{ResponseBudget, SLICE};
use crate::peer::PeerAddr;
use crate::watch::{CallGuard, ConnectionStats};

/// At most this much of an unread HTTP/1.1 request body is read (and dropped) after its call ended.
const DRAIN_LIMIT: u64 = 256 * 1024;
/// For at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The timer an HTTP/1.1 drain waits with.
pub type DrainTimer = Arc<dyn hyper::rt::Timer + Send + Sync>;

/// The per-connection hyper service of a server: adds the peer's identity to each request and
/// enforces the request body limit, then hands the request to the router.
///
/// Over HTTP/1.1 a call may end before its request body did (a server stream answered before the
/// client's end of body arrived, an error before all requests were read). An HTTP/1.1 server that
/// stops reading a request body must close the connection after the response, and a client that
/// pools it (connect-node, many others) fails its next request on it with EPIPE or ECONNRESET. So
/// the response's end waits until the rest of the body was read and dropped, up to 256 KiB and
/// 1 s (Go's net/http drains the same way); past either, the connection closes as it would have.
/// This is connection management, which is why it lives here and not in the router.
#[derive(Clone)]
pub struct ConnectionService {
    router: Router,
    peer: PeerAddr,
    max_request_body: Option<u64>,
    timer: Option<DrainTimer>,
    #[cfg(feature = "tls")]
    certificates: Option<crate::PeerCertificates>,
    /// The connection's call counts, for its watcher (connection management).
    stats: Option<Arc<ConnectionStats>>,
    budget: ResponseBudget,
    /// Added to every response (`Server::alt_svc`).
    alt_svc: Option<http::HeaderValue>,
}

impl std::fmt::Debug for ConnectionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionService")
            .field("peer", &self.peer)
            .field("max_request_body", &self.max_request_body)
            .finish_non_exhaustive()
    }
}

impl ConnectionService {
    /// Serves `router` to the client at `peer`, refusing request bodies over `max_request_body`.
    pub fn new(router: Router, peer: PeerAddr, max_request_body: Option<u64>) -> Self {
        ConnectionService {
            router,
            peer,
            max_request_body,
            timer: None,
            #[cfg(feature = "tls")]
            certificates: None,
            stats: None,
            budget: ResponseBudget::default(),
            alt_svc: None,
        }
    }

    /// Adds an `alt-svc` header with `value` to every response (refusals included), to advertise
    /// another endpoint of the same service, such as HTTP/3 (`connect_h3::alt_svc`).
    pub fn with_alt_svc(mut self, value: Option<http::HeaderValue>) -> Self {
        self.alt_svc = value;
        self
    }

    /// Counts this connection's calls for its watcher.
    pub(crate) fn with_stats(mut self, stats: Arc<ConnectionStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Counts the responses' unread bytes against `budget` (see [`Limits`](crate::Limits)).
    pub(crate) fn with_budget(mut self, budget: ResponseBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Drains the unread rest of HTTP/1.1 request bodies with `timer` bounding the wait (without a
    /// timer, such bodies are dropped and the connection closes).
    pub fn with_drain_timer(mut self, timer: DrainTimer) -> Self {
        self.timer = Some(timer);
        self
    }

    /// Puts the client's TLS certificate chain in each request too.
    #[cfg(feature = "tls")]
    pub fn with_certificates(mut self, certificates: Option<crate::PeerCertificates>) -> Self {
        self.certificates = certificates;
        self
    }
}

impl hyper::service::Service<http::Request<Incoming>> for ConnectionService {
    type Response = http::Response<ServerBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let response = self.respond(request);
        match self.alt_svc.clone() {
            None => response,
            Some(value) => Box::pin(async move {
                let mut response = response.await?;
                response.headers_mut().insert(http::header::ALT_SVC, value);
                Ok(response)
            }),
        }
    }
}

impl ConnectionService {
    fn respond(
        &self,
        mut request: http::Request<Incoming>,
    ) -> <Self as hyper::service::Service<http::Request<Incoming>>>::Future {
        request.extensions_mut().insert(self.peer);
        #[cfg(feature = "tls")]
        if let Some(certificates) = &self.certificates {
            request.extensions_mut().insert(certificates.clone());
        }
        let call = self.stats.as_ref().map(|stats| stats.start());
        let limit = self.max_request_body.unwrap_or(u64::MAX);
        let announced = request.body().size_hint().lower();
        if announced > limit || self.budget.refuses_calls() {
            let why = if announced > limit {
                format!("request body of {announced} bytes exceeds the server's limit of {limit}")
            } else {
                "the server holds too many unread response bytes for this connection; read the \
                 responses, or call again later"
                    .to_owned()
            };
            let (parts, _body) = request.into_parts();
            let response = refusal(&self.router, &parts, Status::resource_exhausted(why), call);
            return Box::pin(async move { Ok(response) });
        }
        let http1 = request.version() < http::Version::HTTP_2;
        let trip = Arc::new(Trip {
            drain: (http1 && self.timer.is_some()).then(Mutex::default),
            ..Trip::default()
        });
        // What a refusal from the budget needs of the request, once the router has it.
        let mut head = self.budget.is_active().then(|| RefusalHead::of(&request));
        let request = request.map(|body| WatchedBody {
            inner: Some(body),
            remaining: limit,
            trip: trip.clone(),
        });
        let mut serve = self.router.handle(request);
        let timer = self.timer.clone();
        let (router, budget) = (self.router.clone(), self.budget.clone());
        let mut call = call;
        Box::pin(std::future::poll_fn(move |cx| {
            if let Poll::Ready(response) = Pin::new(&mut serve).poll(cx) {
                let (parts, body) = response.into_parts();
                let mut rpc = Box::new(Rpc {
                    body,
                    trip: trip.clone(),
                    timer: timer.clone(),
                    last: None,
                    drain: None,
                    budget: budget.clone(),
                    pending: VecDeque::new(),
                    pending_len: 0,
                    counted: 0,
                    peeked: None,
                    sent_data: false,
                });
                if let Some(head) = head.take().filter(|_| !rpc.body.is_end_stream()) {
                    // A unary response is ready with its head (its envelope prefix and message may
                    // come as separate chunks): refused if it does not fit, else held, and counted
                    // if more than the one slice that the HTTP stack takes.
                    while rpc.pending_len <= SLICE {
                        match Pin::new(&mut rpc.body).poll_frame(cx) {
                            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                                let data = frame.into_data().unwrap_or_default();
                                rpc.pending_len += data.len();
                                rpc.pending.push_back(data);
                            }
                            Poll::Ready(other) => {
                                rpc.peeked = Some(other);
                                break;
                            }
                            Poll::Pending => break,
                        }
                    }
                    let total = rpc.pending_len;
                    if total > SLICE {
                        if !budget.fits(total) {
                            let status = Status::resource_exhausted(
                                "the server holds too many unread response bytes for this \
                                 connection; read the responses, or call again later",
                            );
                            let head = head.into_parts();
                            return Poll::Ready(Ok(refusal(&router, &head, status, call.take())));
                        }
                        rpc.budget.charge(total);
                        rpc.counted = total;
                    }
                }
                return Poll::Ready(Ok(http::Response::from_parts(
                    parts,
                    ServerBody {
                        rpc: Some(rpc),
                        fixed: None,
                        _call: call.take(),
                    },
                )));
            }
            // The request failed before the response head: fail the service call, so that hyper
            // resets the stream or closes the connection instead of waiting for ever.
            if trip.poll(cx) {
                return Poll::Ready(Err(Box::new(RequestFailed) as BoxError));
            }
            Poll::Pending
        }))
    }
}

/// What [`refusal`] needs of a request (what tells its method and protocol), kept in case the
/// budget refuses its response: no header map is built for every call until one is.
struct RefusalHead {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    content_type: Option<http::HeaderValue>,
}

impl RefusalHead {
    fn of<B>(request: &http::Request<B>) -> Self {
        RefusalHead {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            content_type: request.headers().get(http::header::CONTENT_TYPE).cloned(),
        }
    }

    fn into_parts(self) -> http::request::Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = self.method;
        parts.uri = self.uri;
        parts.version = self.version;
        if let Some(content_type) = self.content_type {
            parts
                .headers
                .insert(http::header::CONTENT_TYPE, content_type);
        }
        parts
    }
}

/// The request refused with `status` in its protocol, from its head alone (as the call machine
/// answers it): Connect's error JSON with its HTTP status, gRPC's trailers-only response.
fn refusal(
    router: &Router,
    parts: &http::request::Parts,
    status: Status,
    call: Option<CallGuard>,
) -> http::Response<ServerBody> {
    use connect_proto::ServerTransmit;
    let method = router.lookup(parts.uri.path());
    let now = connect_typed::Instant::now();
    let mut machine = connect_typed::ServerCall::new(router.server_config(), method, parts, now);
    // A call the machine already refused from its head keeps that answer.
    let _ = machine.finish(Err(status), http::HeaderMap::new());
    let mut head = http::Response::new(());
    let (mut data, mut trailers) = (BytesMut::new(), None);
    while let Some(transmit) = machine.poll_transmit() {
        match transmit {
            ServerTransmit::Head(h) => head = h,
            ServerTransmit::Data(d) => data.extend_from_slice(&d),
            ServerTransmit::Trailers(t) => trailers = Some(t),
            ServerTransmit::End | ServerTransmit::Reset => {}
        }
    }
    let fixed = Fixed {
        data: (!data.is_empty()).then(|| data.freeze()),
        trailers,
    };
    head.map(|()| ServerBody {
        rpc: None,
        fixed: Some(Box::new(fixed)),
        _call: call,
    })
}

/// Set when a request body failed (the client went away mid-request, or the body crossed its limit), so
/// that the response fails too and hyper resets the stream or closes the connection: the call machine
/// sends nothing after a reset, and a response body left waiting would keep the connection (and a
/// graceful shutdown) open for ever.
#[derive(Debug, Default)]
struct Trip {
    tripped: AtomicBool,
    waker: AtomicWaker,
    /// HTTP/1.1 with a drain timer: where the request body's unread rest waits for the response's end
    /// (the router drops its request body when the call ends).
    drain: Option<Mutex<Option<Incoming>>>,
    /// The request body was read to its end (or failed): nothing is left to drain.
    request_done: AtomicBool,
}

impl Trip {
    fn request_ended(&self) -> bool {
        self.request_done.load(Ordering::Acquire)
    }

    fn take_leftover(&self) -> Option<Incoming> {
        let slot = self.drain.as_ref()?;
        slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Trip {
    fn set(&self) {
        self.request_done.store(true, Ordering::Release);
        self.tripped.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn poll(&self, cx: &mut Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.tripped.load(Ordering::Acquire)
    }
}

/// A request body that reports its failure to the response, and fails once more than `remaining` bytes
/// arrive. Dropped unfinished over HTTP/1.1, it leaves its rest to the response to drain.
struct WatchedBody {
    /// `None` once it ended, failed, or was handed over to be drained.
    inner: Option<Incoming>,
    remaining: u64,
    trip: Arc<Trip>,
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        if let (Some(body), Some(slot)) = (self.inner.take(), self.trip.drain.as_ref()) {
            if !body.is_end_stream() {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
            }
        }
    }
}

/// The request body crossed [`Limits::max_request_body`](crate::Limits::max_request_body).
#[derive(Debug)]
struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body larger than the server's limit")
    }
}

impl std::error::Error for BodyTooLarge {}

/// The response is abandoned because its request body failed.
#[derive(Debug)]
struct RequestFailed;

impl std::fmt::Display for RequestFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body failed; the response is abandoned")
    }
}

impl std::error::Error for RequestFailed {}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > self.remaining {
                        self.inner = None;
                        self.trip.set();
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    self.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.inner = None;
                self.trip.set();
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                self.inner = None;
                self.trip.request_done.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// An HTTP/1.1 request body's unread rest, being read and dropped before the response ends.
struct Drain {
    body: Incoming,
    read: u64,
    deadline: Pin<Box<dyn hyper::rt::Sleep>>,
}

impl Drain {
    /// Ready once the body ended, failed, passed [`DRAIN_LIMIT`] or ran out of [`DRAIN_TIME`].
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    self.read += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if self.read > DRAIN_LIMIT {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return self.deadline.as_mut().poll(cx),
            }
        }
    }
}

/// The response body of a server: an RPC response, or a refusal decided before the call ran. Its
/// error makes hyper reset the stream.
#[derive(Default)]
pub struct ServerBody {
    // Both on the heap: the body is moved several times per call (into the HTTP stack's
    // per-stream task among others), and inline they made it about 500 bytes.
    rpc: Option<Box<Rpc>>,
    fixed: Option<Box<Fixed>>,
    /// Counts the call in flight until the response is done (connection management).
    _call: Option<CallGuard>,
}

/// A response known in full: a refusal's body and trailers.
struct Fixed {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

/// An RPC response in progress.
struct Rpc {
    body: ResponseBody,
    trip: Arc<Trip>,
    timer: Option<DrainTimer>,
    /// The response's last item (its trailers, or its end), held while the request body drains.
    last: Option<Option<Frame<Bytes>>>,
    drain: Option<Drain>,
    /// The response bytes held here and counted against it, handed on a [`SLICE`] at a time.
    budget: ResponseBudget,
    pending: VecDeque<Bytes>,
    pending_len: usize,
    /// How much of `pending` is counted against the budget (a response's first slice is not).
    counted: usize,
    /// The body's item after the data taken before the head went out (to weigh a unary response).
    peeked: Option<Option<Result<Frame<Bytes>, CallReset>>>,
    /// Whether a message went out: a stream then waits for the budget before producing more.
    sent_data: bool,
}

impl Rpc {
    /// The next slice of what is held (at most [`SLICE`] bytes), released from the budget as far
    /// as it was counted.
    fn next_slice(&mut self) -> Bytes {
        let Some(front) = self.pending.front_mut() else {
            return Bytes::new();
        };
        let slice = front.split_to(front.len().min(SLICE));
        if front.is_empty() {
            self.pending.pop_front();
        }
        self.pending_len -= slice.len();
        let released = slice.len().min(self.counted);
        if released > 0 {
            self.counted -= released;
            self.budget.release(released);
        }
        slice
    }

    /// A data chunk from the router: sliced (and the rest held against the budget) when large.
    fn pass(&mut self, data: Bytes) -> Bytes {
        self.sent_data = true;
        if data.len() <= SLICE || !self.budget.is_active() {
            return data;
        }
        let len = data.len();
        self.budget.charge(len);
        self.counted += len;
        self.pending_len += len;
        self.pending.push_back(data);
        self.next_slice()
    }
}

impl Drop for Rpc {
    fn drop(&mut self) {
        if self.counted > 0 {
            self.budget.release(self.counted);
        }
    }
}

impl ServerBody {
    fn done(&mut self) {
        self.rpc = None;
        self.fixed = None;
    }
}

impl std::fmt::Debug for ServerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBody").finish_non_exhaustive()
    }
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(fixed) = &mut self.fixed {
            if let Some(data) = fixed.data.take() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            let trailers = fixed.trailers.take();
            self.done();
            return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
        }
        let Some(rpc) = &mut self.rpc else {
            return Poll::Ready(None);
        };
        if rpc.last.is_none() {
            if rpc.trip.poll(cx) {
                self.done();
                return Poll::Ready(Some(Err(Box::new(RequestFailed))));
            }
            if rpc.pending_len > 0 {
                rpc.sent_data = true;
                return Poll::Ready(Some(Ok(Frame::data(rpc.next_slice()))));
            }
            let next = match rpc.peeked.take() {
                Some(peeked) => peeked,
                None => {
                    // A stream produces its next message only when the budget has room.
                    if rpc.sent_data && rpc.budget.must_wait(cx) {
                        return Poll::Pending;
                    }
                    std::task::ready!(Pin::new(&mut rpc.body).poll_frame(cx))
                }
            };
            let frame = match next {
                Some(Ok(frame)) if frame.is_data() => {
                    let data = frame.into_data().unwrap_or_default();
                    return Poll::Ready(Some(Ok(Frame::data(rpc.pass(data)))));
                }
                Some(Ok(trailers)) => Some(trailers),
                Some(Err(reset)) => return Poll::Ready(Some(Err(Box::new(reset)))),
                None => None,
            };
            // The call is over and the router dropped the request body: drain what it left unread.
            rpc.last = Some(frame);
            if let (Some(body), Some(timer)) = (rpc.trip.take_leftover(), rpc.timer.as_ref()) {
                rpc.drain = Some(Drain {
                    body,
                    read: 0,
                    deadline: timer.sleep(DRAIN_TIME),
                });
            }
        }
        if let Some(drain) = rpc.drain.as_mut() {
            std::task::ready!(drain.poll(cx));
            rpc.drain = None;
        }
        let last = rpc.last.take().flatten();
        self.done();
        Poll::Ready(last.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        if let Some(fixed) = &self.fixed {
            return fixed.data.is_none() && fixed.trailers.is_none();
        }
        self.rpc.as_ref().is_none_or(|rpc| {
            // Over HTTP/1.1 an unfinished request body must be drained through `poll_frame` first.
            let request_pending = rpc.trip.drain.is_some() && !rpc.trip.request_ended();
            // A body whose end was peeked has ended: said here, the HTTP/2 stream's end goes out
            // with its last data instead of in an empty DATA frame of its own.
            let body_ended = match &rpc.peeked {
                None => rpc.body.is_end_stream(),
                Some(next) => next.is_none(),
            };
            rpc.last.is_none()
                && rpc.drain.is_none()
                && rpc.pending_len == 0
                && body_ended
                && !request_pending
        })
    }
}
