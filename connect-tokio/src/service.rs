//! The router as a [`tower_service::Service`], for tower stacks and axum.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use connect_typed::{BoxError, ResponseBody, Router, ServeFuture};

/// A [`Router`] as a `tower::Service` over any request body: serves Connect, gRPC and gRPC-Web; never
/// fails (errors are RPC responses). Cheap to clone.
///
/// In axum, mount it with `route_service` on each path of [`Router::paths`] (or use
/// `connect_tokio::axum_router` with the `axum` feature) or as a `fallback_service`.
#[derive(Clone, Debug)]
pub struct ConnectService {
    router: Router,
}

impl ConnectService {
    /// Serves `router`.
    pub fn new(router: Router) -> Self {
        ConnectService { router }
    }

    /// The router served.
    pub fn router(&self) -> &Router {
        &self.router
    }
}

impl From<Router> for ConnectService {
    fn from(router: Router) -> Self {
        ConnectService::new(router)
    }
}

impl<B> tower_service::Service<http::Request<B>> for ConnectService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ConnectServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> ConnectServiceFuture {
        ConnectServiceFuture {
            inner: self.router.handle(request),
        }
    }
}

/// The future of [`ConnectService`]: the router's [`ServeFuture`], infallible.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ConnectServiceFuture {
    inner: ServeFuture,
}

impl Future for ConnectServiceFuture {
    type Output = Result<http::Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx).map(Ok)
    }
}
