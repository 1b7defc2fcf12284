//! The tokio clock, timers and tasks for the typed layer.

use connect_typed::Instant;
use connect_typed::{BoxFuture, Runtime};

/// [`Runtime`] on tokio: `Instant::now`, `tokio::time::sleep_until` and `tokio::spawn`.
///
/// Timers and spawning need to run inside a tokio runtime with the time driver enabled.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) {
        tokio::spawn(future);
    }
}
