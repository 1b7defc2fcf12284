//! The typed layer's runtime in a browser: `performance.now`, `setTimeout`, `spawn_local`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use connect_typed::Instant;
use connect_typed::{BoxFuture, Runtime};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsValue;

use crate::js;

/// The clock, timers and tasks of the JavaScript event loop (browser or Node).
///
/// `now` is `web_time::Instant` (monotonic `performance.now`); `sleep_until` arms a `setTimeout`,
/// cleared when the sleep is dropped; `spawn` is `wasm_bindgen_futures::spawn_local`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BrowserRuntime;

impl Runtime for BrowserRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(Sleep {
            deadline,
            timer: None,
        })
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) {
        wasm_bindgen_futures::spawn_local(future)
    }
}

/// Completes at `deadline`. A timer that fires early (browsers clamp and round) is re-armed.
struct Sleep {
    deadline: Instant,
    timer: Option<Timer>,
}

#[derive(Default)]
struct TimerState {
    fired: bool,
    waker: Option<Waker>,
}

/// One armed `setTimeout`.
struct Timer {
    state: Rc<RefCell<TimerState>>,
    handle: JsValue,
    /// Keeps the JavaScript callback alive until it runs or the timer is cleared.
    _callback: Closure<dyn FnMut()>,
}

impl Drop for Timer {
    fn drop(&mut self) {
        if !self.state.borrow().fired {
            js::clear_timeout(&self.handle);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.deadline {
            self.timer = None;
            return Poll::Ready(());
        }
        if let Some(timer) = &self.timer {
            let mut state = timer.state.borrow_mut();
            if !state.fired {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        // Not armed yet, or fired early: arm for the rest, rounded up to whole milliseconds.
        let state = Rc::new(RefCell::new(TimerState {
            fired: false,
            waker: Some(cx.waker().clone()),
        }));
        let callback = {
            let state = state.clone();
            Closure::once(move || {
                let mut state = state.borrow_mut();
                state.fired = true;
                if let Some(waker) = state.waker.take() {
                    waker.wake();
                }
            })
        };
        let ms = (self.deadline - now).as_micros().div_ceil(1000) as f64;
        match js::set_timeout(callback.as_ref(), ms) {
            Ok(handle) => {
                self.timer = Some(Timer {
                    state,
                    handle,
                    _callback: callback,
                });
            }
            // No timers in this JavaScript environment: the sleep never ends (a deadline is then not
            // enforced locally; the server still enforces the one it was sent).
            Err(_) => self.timer = None,
        }
        Poll::Pending
    }
}
