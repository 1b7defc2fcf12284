//! What the typed layer needs from an async runtime: the clock, timers and (rarely) tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use connect_proto::Instant;

/// `Send` everywhere except on wasm32, where futures from `web-sys` are not `Send` and there is one thread.
///
/// Bounds in this module use it so that the same code compiles for native adapters (which need `Send`
/// futures for multi-threaded executors) and for the browser.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}

/// `Send` everywhere except on wasm32, where futures from `web-sys` are not `Send` and there is one thread.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// A boxed future that is `Send` except on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed future that is `Send` except on wasm32.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A boxed stream that is `Send` except on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxStream<'a, T> = Pin<Box<dyn futures_core::Stream<Item = T> + Send + 'a>>;
/// A boxed stream that is `Send` except on wasm32.
#[cfg(target_arch = "wasm32")]
pub type BoxStream<'a, T> = Pin<Box<dyn futures_core::Stream<Item = T> + 'a>>;

/// The clock, timers and task spawning of an async runtime, implemented once per adapter
/// (tokio, smol, the browser).
///
/// The typed layer reads the clock only through [`Runtime::now`] and waits only through
/// [`Runtime::sleep_until`]; the call state machines themselves never read a clock. Serving and calling
/// need no spawned tasks: the futures and bodies the layer returns drive their calls when polled.
/// [`Runtime::spawn`] exists for applications and adapters that want to run work in the background.
///
/// A runtime is `Send + Sync` even on wasm32 (unlike the futures it makes): it is a handle to the
/// clock, timers and executor (zero-sized in every adapter), shared as `Arc<dyn Runtime>`, which is
/// `Sync` only for a `Send + Sync` runtime.
pub trait Runtime: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Instant;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Runs `future` to completion in the background.
    fn spawn(&self, future: BoxFuture<'static, ()>);
}

impl<R: Runtime + ?Sized> Runtime for Arc<R> {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        (**self).sleep_until(deadline)
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) {
        (**self).spawn(future)
    }
}

/// A timer that follows the call machine's `poll_timeout`: re-armed when the wanted deadline changes,
/// it reports when `handle_timeout` is due. Shared by the server and client drivers.
#[derive(Default)]
pub(crate) struct CallTimer {
    armed: Option<(Instant, BoxFuture<'static, ()>)>,
}

impl std::fmt::Debug for CallTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallTimer")
            .field("deadline", &self.armed.as_ref().map(|(d, _)| *d))
            .finish()
    }
}

impl CallTimer {
    /// Polls the timer for `wanted` (the machine's `poll_timeout`). Returns the current time when the
    /// deadline has passed, so the caller can feed `handle_timeout(now)`: time is read from the clock,
    /// never taken from the deadline, so it never runs backwards.
    pub(crate) fn poll(
        &mut self,
        runtime: &dyn Runtime,
        wanted: Option<Instant>,
        cx: &mut std::task::Context<'_>,
    ) -> Option<Instant> {
        let Some(wanted) = wanted else {
            self.armed = None;
            return None;
        };
        // A sleep that fired a hair early (coarse timers) is re-armed and polled again.
        loop {
            let now = runtime.now();
            if now >= wanted {
                self.armed = None;
                return Some(now);
            }
            match &mut self.armed {
                Some((deadline, _)) if *deadline == wanted => {}
                slot => *slot = Some((wanted, runtime.sleep_until(wanted))),
            }
            let (_, sleep) = self.armed.as_mut()?;
            if sleep.as_mut().poll(cx).is_pending() {
                return None;
            }
            self.armed = None;
        }
    }
}
