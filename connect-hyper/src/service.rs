//! The per-connection hyper service: the peer's identity in each request, the request-body limit, and
//! a response that fails when its request failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use connect_rpc::{BoxError, ResponseBody, Router};
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::peer::PeerAddr;

/// The per-connection hyper service of a server: adds the peer's identity to each request and
/// enforces the request body limit, then hands the request to the router.
#[derive(Clone)]
pub struct ConnectionService {
    router: Router,
    peer: PeerAddr,
    max_request_body: Option<u64>,
    #[cfg(feature = "tls")]
    certificates: Option<crate::PeerCertificates>,
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
            #[cfg(feature = "tls")]
            certificates: None,
        }
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

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        #[cfg(feature = "tls")]
        if let Some(certificates) = &self.certificates {
            request.extensions_mut().insert(certificates.clone());
        }
        let limit = self.max_request_body.unwrap_or(u64::MAX);
        if request.body().size_hint().lower() > limit {
            let response = http::Response::builder()
                .status(http::StatusCode::PAYLOAD_TOO_LARGE)
                .body(ServerBody::empty())
                .unwrap_or_default();
            return Box::pin(async move { Ok(response) });
        }
        let trip = Arc::new(Trip::default());
        let request = request.map(|body| WatchedBody {
            inner: body,
            remaining: limit,
            trip: trip.clone(),
        });
        let mut serve = self.router.handle(request);
        Box::pin(std::future::poll_fn(move |cx| {
            if let Poll::Ready(response) = Pin::new(&mut serve).poll(cx) {
                let trip = trip.clone();
                return Poll::Ready(Ok(response.map(|body| ServerBody {
                    rpc: Some((body, trip)),
                })));
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

/// Set when a request body failed (the client went away mid-request, or the body crossed its limit), so
/// that the response fails too and hyper resets the stream or closes the connection: the call machine
/// sends nothing after a reset, and a response body left waiting would keep the connection (and a
/// graceful shutdown) open for ever.
#[derive(Debug, Default)]
struct Trip {
    tripped: AtomicBool,
    waker: AtomicWaker,
}

impl Trip {
    fn set(&self) {
        self.tripped.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn poll(&self, cx: &mut Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.tripped.load(Ordering::Acquire)
    }
}

/// A request body that reports its failure to the response, and fails once more than `remaining` bytes
/// arrive.
struct WatchedBody {
    inner: Incoming,
    remaining: u64,
    trip: Arc<Trip>,
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
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > self.remaining {
                        self.trip.set();
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    self.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.trip.set();
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body of a server: an RPC response, or a plain HTTP answer (`413`). Its error makes
/// hyper reset the stream.
#[derive(Default)]
pub struct ServerBody {
    /// `None` for a plain answer without a body.
    rpc: Option<(ResponseBody, Arc<Trip>)>,
}

impl ServerBody {
    fn empty() -> Self {
        ServerBody { rpc: None }
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
        let Some((body, trip)) = &mut self.rpc else {
            return Poll::Ready(None);
        };
        if trip.poll(cx) {
            self.rpc = None;
            return Poll::Ready(Some(Err(Box::new(RequestFailed))));
        }
        Pin::new(body)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(|reset| Box::new(reset) as BoxError)))
    }

    fn is_end_stream(&self) -> bool {
        self.rpc
            .as_ref()
            .is_none_or(|(body, _)| body.is_end_stream())
    }
}
