//! async-io's clock and timers and smol's executor, for the typed layer and for hyper.

use std::future::Future;

use connect_typed::Instant;
use connect_typed::{BoxFuture, Runtime};

/// [`Runtime`] on smol: `Instant::now`, `async_io::Timer` and `smol::spawn`.
///
/// Timers need async-io's reactor, which runs by itself (or inside `smol::block_on`); spawned tasks
/// run on smol's global executor. Neither needs to be entered first, so this works from async-std too.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

impl Runtime for SmolRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) {
        smol::spawn(future).detach();
    }
}

/// hyper's executor (HTTP/2 streams and connections) on smol's global executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolExecutor;

impl<F> hyper::rt::Executor<F> for SmolExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        smol::spawn(future).detach();
    }
}
