//! connect-smol from an async-std program: the shared end-to-end matrix with every check driven by
//! `async_std::task::block_on`, and the typed layer's clock, timers and tasks on async-std
//! (`async_std::task::sleep`, `async_std::task::spawn`). async-std shares async-io's reactor with
//! smol, so connect-smol's sockets and timers need nothing more.

mod common;

use std::sync::Arc;

use connect_smol::SmolTransport;
use connect_testkit::{Adapter, Http, PeerDescriber, TestServer};
use connect_typed::Instant;
use connect_typed::{BoxFuture, Router, Runtime};

/// The typed layer's runtime on async-std.
#[derive(Clone, Copy, Debug, Default)]
struct AsyncStdRuntime;

impl Runtime for AsyncStdRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async_std::task::sleep(
            deadline.saturating_duration_since(Instant::now()),
        ))
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) {
        async_std::task::spawn(future);
    }
}

/// connect-smol's server and transport, with async-std as the routers' and clients' runtime.
#[derive(Debug, Default)]
struct AsyncStd(common::Smol);

impl Adapter for AsyncStd {
    type Transport = SmolTransport;

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(AsyncStdRuntime)
    }

    fn serve(&self, router: Router, http: Http) -> BoxFuture<'static, TestServer> {
        self.0.serve(router, http)
    }

    fn transport(&self, http: Http) -> SmolTransport {
        self.0.transport(http)
    }

    fn peer_describer(&self) -> Option<PeerDescriber> {
        self.0.peer_describer()
    }
}

connect_testkit::e2e_tests!(AsyncStd::default(), async_std::task::block_on);
