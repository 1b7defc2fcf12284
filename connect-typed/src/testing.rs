//! A router and a client in one process with no sockets and no async runtime (feature `testing`):
//! what the crate's own tests, the generated-code tests and an application's handler tests share.
//!
//! [`InMemory`] is a [`Transport`] that hands each request straight to a [`Router`], bodies
//! streamed both ways; [`ThreadRuntime`] is real time with timers on helper threads; [`block_on`]
//! runs a future on the current thread; [`collect_body`] reads a response body to its end.
//!
//! ```
//! use connect_typed::testing::{block_on, InMemory, ThreadRuntime};
//! use connect_typed::{Client, ClientConfig, Code, Codec, MethodInfo, Protocol, Router, StreamType};
//! use connect_typed::google::rpc::ErrorInfo;
//!
//! let router = Router::new(ThreadRuntime); // no services: every method is unimplemented
//! let client = Client::new(
//!     InMemory::new(router),
//!     "http://in-memory".parse().unwrap(),
//!     ClientConfig::new(Protocol::Grpc, Codec::Proto),
//!     ThreadRuntime,
//! );
//! let method = MethodInfo { path: "/pkg.Svc/Missing", stream_type: StreamType::Unary, no_side_effects: false };
//! let status = block_on(client.unary::<_, ErrorInfo>(method, &ErrorInfo::default(), Default::default()))
//!     .unwrap_err();
//! assert_eq!(status.code(), Code::UNIMPLEMENTED);
//! ```

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;

use crate::body::{RequestBody, TransportError};
use crate::client::Transport;
use crate::router::{CallReset, ResponseBody, Router};
use crate::runtime::{BoxFuture, Runtime};
use connect_proto::Instant;

/// Runs `future` to completion on the current thread, parking it while the future waits.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// Real time, each timer on a helper thread, each spawned task on a thread of its own: enough for
/// tests, no async runtime needed.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadRuntime;

/// A sleep: fired by its helper thread, started on first poll.
struct Sleep {
    deadline: Instant,
    /// Fired, and the waker to wake when it fires.
    shared: Arc<Mutex<(bool, Option<Waker>)>>,
    started: bool,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut state = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 || Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        state.1 = Some(cx.waker().clone());
        drop(state);
        if !self.started {
            self.started = true;
            let (shared, deadline) = (self.shared.clone(), self.deadline);
            std::thread::spawn(move || {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                state.0 = true;
                if let Some(waker) = state.1.take() {
                    waker.wake();
                }
            });
        }
        Poll::Pending
    }
}

impl Runtime for ThreadRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(Sleep {
            deadline,
            shared: Arc::default(),
            started: false,
        })
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) {
        std::thread::spawn(move || block_on(future));
    }
}

/// A [`Transport`] that hands each request straight to a [`Router`]'s server entry point.
#[derive(Clone, Debug)]
pub struct InMemory {
    router: Router,
}

impl InMemory {
    /// A transport to `router`.
    pub fn new(router: Router) -> Self {
        InMemory { router }
    }

    /// The router served.
    pub fn router(&self) -> &Router {
        &self.router
    }
}

impl Transport for InMemory {
    type ResponseBody = ResponseBody;
    type Future = BoxFuture<'static, Result<http::Response<ResponseBody>, TransportError>>;

    fn send(&self, request: http::Request<RequestBody>) -> Self::Future {
        let serve = self.router.handle(request);
        Box::pin(async move { Ok(serve.await) })
    }
}

/// Reads a response body to its end: its data joined, and its trailers if it had any; `Err` when
/// the body failed (the call was reset).
pub async fn collect_body(body: ResponseBody) -> Result<(Bytes, Option<HeaderMap>), CallReset> {
    let mut body = pin!(body);
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        match frame?.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Ok((data.freeze(), trailers))
}
