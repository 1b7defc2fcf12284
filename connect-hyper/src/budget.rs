//! The response budget: how many response bytes the server holds for clients that have not read
//! them yet, per connection and in all.
//!
//! A handler's response is encoded before it is sent; a client that sends requests and never reads
//! the responses makes the server hold them (256 gzip requests of 4 KiB, echoed inflated to 4 MiB
//! each: 1 GiB held for 1 MB sent). The budget counts what responses hold beyond the slice handed to
//! the HTTP stack, and past it:
//! - new calls on a connection over its budget are refused with `resource_exhausted`, and so are
//!   those of a connection that holds anything while the server is over its total budget (a
//!   connection that holds nothing always gets its call: it is not the one filling the server);
//! - a unary response that would take its connection (or the server) past the budget is replaced by
//!   `resource_exhausted` before its head is sent, so what is held stays within the budget (plus one
//!   response, for a connection that held nothing);
//! - a stream that has sent a message waits before producing the next, until the budget has room.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

/// Response bytes at most handed to the HTTP stack at once: larger response chunks are sliced, so
/// that the stack (which takes a chunk whole, then waits for the client's flow-control window) holds
/// at most two slices of a call, and the rest is counted here.
pub(crate) const SLICE: usize = 16 * 1024;

/// A count of bytes held against a limit, with the tasks waiting for room.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
    waiting: Mutex<Vec<Waker>>,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Budget {
            used: AtomicUsize::new(0),
            limit,
            waiting: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn over(&self) -> bool {
        self.used() >= self.limit
    }

    /// Whether `bytes` more fit: always when nothing is held (one response larger than the budget
    /// is still served).
    fn fits(&self, bytes: usize) -> bool {
        let used = self.used();
        used == 0 || used.saturating_add(bytes) <= self.limit
    }

    fn charge(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    fn release(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        if before >= self.limit && before - bytes < self.limit {
            let waiting =
                std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
            waiting.into_iter().for_each(Waker::wake);
        }
    }

    fn wait(&self, cx: &Context<'_>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
    }
}

/// The budgets one connection's responses count against: its own and the server's.
#[derive(Clone, Debug, Default)]
pub(crate) struct ResponseBudget {
    pub(crate) connection: Option<Arc<Budget>>,
    pub(crate) server: Option<Arc<Budget>>,
}

impl ResponseBudget {
    fn connection_used(&self) -> usize {
        self.connection.as_ref().map_or(0, |b| b.used())
    }

    /// Whether a new call on this connection is refused.
    pub(crate) fn refuses_calls(&self) -> bool {
        self.connection.as_ref().is_some_and(|b| b.over())
            || (self.server.as_ref().is_some_and(|b| b.over()) && self.connection_used() > 0)
    }

    /// Whether `bytes` more may be held for this connection.
    pub(crate) fn fits(&self, bytes: usize) -> bool {
        self.connection.as_ref().is_none_or(|b| b.fits(bytes))
            && (self.connection_used() == 0 || self.server.as_ref().is_none_or(|b| b.fits(bytes)))
    }

    /// Whether a stream must wait before producing more; if so, it is woken when there is room.
    pub(crate) fn must_wait(&self, cx: &Context<'_>) -> bool {
        let full = |b: &Option<Arc<Budget>>| b.as_ref().filter(|b| b.over()).cloned();
        let connection_full = full(&self.connection);
        let server_full = full(&self.server).filter(|_| self.connection_used() > 0);
        if connection_full.is_none() && server_full.is_none() {
            return false;
        }
        for budget in connection_full.iter().chain(server_full.iter()) {
            budget.wait(cx);
        }
        // Room may have been made between the look and the registration.
        self.connection.as_ref().is_some_and(|b| b.over())
            || (self.server.as_ref().is_some_and(|b| b.over()) && self.connection_used() > 0)
    }

    pub(crate) fn charge(&self, bytes: usize) {
        for budget in self.connection.iter().chain(self.server.iter()) {
            budget.charge(bytes);
        }
    }

    pub(crate) fn release(&self, bytes: usize) {
        for budget in self.connection.iter().chain(self.server.iter()) {
            budget.release(bytes);
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.connection.is_some() || self.server.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(connection: usize, server: &Arc<Budget>) -> ResponseBudget {
        ResponseBudget {
            connection: Some(Arc::new(Budget::new(connection))),
            server: Some(server.clone()),
        }
    }

    #[test]
    fn a_connection_over_its_budget_is_refused_and_one_holding_nothing_is_not() {
        let server = Arc::new(Budget::new(100));
        let greedy = budget(50, &server);
        let other = budget(50, &server);
        assert!(
            greedy.fits(500),
            "one response larger than the budget is served"
        );
        greedy.charge(500);
        assert!(greedy.refuses_calls());
        assert!(!greedy.fits(1));
        // The server is over its total too, but a connection that holds nothing is served.
        assert!(!other.refuses_calls());
        assert!(other.fits(10));
        other.charge(10);
        assert!(
            other.refuses_calls(),
            "server over budget, and it holds something"
        );
        greedy.release(500);
        other.release(10);
        assert!(!greedy.refuses_calls() && !other.refuses_calls());
    }

    #[test]
    fn waiting_streams_are_woken_when_room_is_made() {
        let server = Arc::new(Budget::new(1000));
        let connection = budget(100, &server);
        connection.charge(150);
        let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::Release);
            }
        }
        let waker = Waker::from(Arc::new(Flag(woken.clone())));
        let cx = Context::from_waker(&waker);
        assert!(connection.must_wait(&cx));
        connection.release(20);
        assert!(!woken.load(Ordering::Acquire), "still over the budget");
        connection.release(100);
        assert!(woken.load(Ordering::Acquire));
        assert!(!connection.must_wait(&cx));
    }
}
