//! Connection management: how long a connection may live, stay idle or stay silent, how long a
//! request head may take, how many calls it may carry, and how many connections a server holds at
//! once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use crate::limits::Limits;
use crate::service::DrainTimer;

/// What a connection's calls tell its watcher: how many started, how many are in flight, when the
/// last one ended. Shared by the connection's service (which counts) and its watcher (which reads).
#[derive(Debug)]
pub(crate) struct ConnectionStats {
    opened: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// When the last call ended, in nanoseconds since `opened` (0: none ended yet).
    last_end: AtomicU64,
    /// Since when the HTTP/2 framing read has been incomplete (a request head, a frame header), in
    /// nanoseconds since `opened` plus one (0: nothing incomplete). Set by the connection's
    /// [`HeaderWatch`](crate::header_watch::HeaderWatch).
    incomplete_since: AtomicU64,
    /// Wakes the watcher when the request count reaches `max_requests`.
    max_requests: Option<u64>,
    watcher: AtomicWaker,
    /// Set when something changed that may call for the watcher's clock before its alarm: the
    /// request count reached `max_requests`, or a read left something incomplete. (Everything else
    /// the clock decides waits for its alarm, so a busy connection's many polls need not ask it.)
    changed: AtomicBool,
}

impl ConnectionStats {
    pub(crate) fn new(max_requests: Option<u64>) -> Self {
        ConnectionStats {
            opened: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            incomplete_since: AtomicU64::new(0),
            max_requests,
            watcher: AtomicWaker::new(),
            changed: AtomicBool::new(false),
        }
    }

    /// Counts a call that starts; the guard counts its end when dropped.
    pub(crate) fn start(self: &Arc<Self>) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let started = self.requests.fetch_add(1, Ordering::AcqRel) + 1;
        if self.max_requests == Some(started) {
            self.changed.store(true, Ordering::Release);
            self.watcher.wake();
        }
        CallGuard {
            stats: self.clone(),
        }
    }

    /// Records since when something the connection reads has been incomplete (`None`: since
    /// nothing).
    pub(crate) fn set_incomplete_since(&self, since: Option<Instant>) {
        let nanos = since.map_or(0, |at| {
            let offset = at.saturating_duration_since(self.opened).as_nanos();
            u64::try_from(offset).unwrap_or(u64::MAX - 1) + 1
        });
        self.incomplete_since.store(nanos, Ordering::Release);
        if nanos != 0 {
            // Read from within the connection's poll: the watcher looks once that returns.
            self.changed.store(true, Ordering::Release);
        }
    }

    /// Whether something changed since the last look (see `changed`).
    fn take_changed(&self) -> bool {
        self.changed.load(Ordering::Acquire) && self.changed.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn incomplete_since(&self) -> Option<Instant> {
        match self.incomplete_since.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.opened + Duration::from_nanos(nanos - 1)),
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }

    /// How long no call has been in flight; `None` while one is.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last_end = Duration::from_nanos(self.last_end.load(Ordering::Acquire));
        Some(now.saturating_duration_since(self.opened + last_end))
    }
}

/// One call in flight on a connection; dropped when its response is done (or abandoned).
#[derive(Debug)]
pub(crate) struct CallGuard {
    stats: Arc<ConnectionStats>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let since_open = self.stats.opened.elapsed().as_nanos();
        self.stats.last_end.store(
            u64::try_from(since_open).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        self.stats.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the watcher of one connection enforces (from [`Limits`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnectionPolicy {
    /// How long the first request may take to arrive, and an HTTP/2 request head (or any frame but
    /// DATA) from its first byte ([`Limits::header_read_timeout`]).
    pub(crate) header_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) max_age_grace: Option<Duration>,
    pub(crate) max_requests: Option<u64>,
}

impl ConnectionPolicy {
    pub(crate) fn from_limits(limits: &Limits) -> Self {
        ConnectionPolicy {
            header_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            max_age: limits.max_connection_age,
            max_age_grace: limits.max_connection_age_grace,
            max_requests: limits.max_requests_per_connection,
        }
    }

    pub(crate) fn is_inert(&self) -> bool {
        self.header_timeout.is_none()
            && self.idle_timeout.is_none()
            && self.max_age.is_none()
            && self.max_requests.is_none()
    }
}

/// What the watcher decided for the connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing to do until the deadline, if any.
    Keep(Option<Instant>),
    /// Stop taking calls, finish those in flight, close (HTTP/2 GOAWAY).
    Drain,
    /// Close now: nothing (left) worth waiting for.
    Close,
}

/// The per-connection decisions, pure: what to do at `now` given the connection's stats, and when to
/// look again.
#[derive(Debug)]
pub(crate) struct ConnectionClock<'a> {
    /// The server's, borrowed: a clone in each connection's task would cost it about 100 bytes.
    policy: &'a ConnectionPolicy,
    /// When a drain started (by this clock, or by the server's shutdown).
    draining_since: Option<Instant>,
    /// When to look again whether a busy connection went idle.
    busy_check: Option<Instant>,
}

impl<'a> ConnectionClock<'a> {
    pub(crate) fn new(policy: &'a ConnectionPolicy) -> Self {
        ConnectionClock {
            policy,
            draining_since: None,
            busy_check: None,
        }
    }

    /// The server is shutting down: the connection drains (the shutdown's own timeout applies).
    pub(crate) fn drain_for_shutdown(&mut self, now: Instant) {
        self.draining_since.get_or_insert(now);
    }

    pub(crate) fn poll(&mut self, stats: &ConnectionStats, now: Instant) -> Verdict {
        let age = now.saturating_duration_since(stats.opened);
        if let Some(since) = self.draining_since {
            // Only a drain for age has a grace period; other drains wait for their calls.
            return match (self.policy.max_age, self.policy.max_age_grace) {
                (Some(max_age), Some(grace)) if age >= max_age => {
                    let close_at = since + grace;
                    if now >= close_at {
                        Verdict::Close
                    } else {
                        Verdict::Keep(Some(close_at))
                    }
                }
                _ => Verdict::Keep(None),
            };
        }
        let requests = stats.requests();
        let mut next: Option<Instant> = None;
        let mut at = |deadline: Instant| {
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
        };
        if let Some(limit) = self.policy.header_timeout {
            if requests == 0 {
                if age >= limit {
                    return Verdict::Close;
                }
                at(stats.opened + limit);
            }
            // A request head (or frame) begun and left incomplete: a client trickling it.
            if let Some(since) = stats.incomplete_since() {
                if now.saturating_duration_since(since) >= limit {
                    return Verdict::Close;
                }
                at(since + limit);
            }
        }
        if self.policy.max_requests.is_some_and(|max| requests >= max) {
            return self.drain(now);
        }
        if let Some(max_age) = self.policy.max_age {
            if age >= max_age {
                return self.drain(now);
            }
            at(stats.opened + max_age);
        }
        if let Some(limit) = self.policy.idle_timeout {
            match stats.idle_for(now) {
                Some(idle) if idle >= limit => return self.drain(now),
                Some(idle) => at(now + (limit - idle)),
                // Busy: look again a timeout later (a call ending does not wake the watcher). The
                // time is kept, so that the many polls of a busy connection arm no new timer.
                None => {
                    let check = match self.busy_check {
                        Some(check) if check > now => check,
                        _ => now + limit,
                    };
                    self.busy_check = Some(check);
                    at(check);
                }
            }
        }
        Verdict::Keep(next)
    }

    fn drain(&mut self, now: Instant) -> Verdict {
        self.draining_since = Some(now);
        Verdict::Drain
    }
}

/// Drives `conn` under `clock`: calls `drain` once the clock (or `shutdown`) says so, and ends the
/// connection when the clock says close. `conn` resolves when the connection is done.
///
/// `conn` is pinned by the caller (on the heap: a connection's state is kilobytes, and every async
/// function it were passed through by value would keep a copy of it in its own state).
pub(crate) async fn watched<C: Future>(
    mut conn: Pin<&mut C>,
    mut drain: impl FnMut(Pin<&mut C>),
    mut shutdown: impl Future<Output = ()> + Unpin,
    clock: &mut ConnectionClock<'_>,
    stats: &ConnectionStats,
    timer: &DrainTimer,
) -> Option<C::Output> {
    let mut shutting_down = false;
    let mut draining = false;
    let mut sleep = Alarm::default();
    // Whether the clock must look: at first, when its alarm went off, after a drain began, or when
    // the stats say something changed. Otherwise its armed alarm stands.
    let mut look = true;
    std::future::poll_fn(move |cx: &mut Context<'_>| loop {
        stats.watcher.register(cx.waker());
        if !shutting_down && Pin::new(&mut shutdown).poll(cx).is_ready() {
            shutting_down = true;
            look = true;
            clock.drain_for_shutdown(Instant::now());
            if !draining {
                draining = true;
                drain(conn.as_mut());
            }
        }
        // The connection first: what it reads may start a request head, whose deadline the clock
        // then knows.
        if let Poll::Ready(output) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if !std::mem::take(&mut look) && !stats.take_changed() {
            if !sleep.poll(cx) {
                return Poll::Pending;
            }
            look = true;
            continue;
        }
        match clock.poll(stats, Instant::now()) {
            Verdict::Close => return Poll::Ready(None),
            Verdict::Drain if !draining => {
                draining = true;
                look = true;
                drain(conn.as_mut());
                // hyper starts draining when polled.
                continue;
            }
            Verdict::Drain => {}
            Verdict::Keep(deadline) => sleep.arm(deadline, timer),
        }
        if !sleep.poll(cx) {
            return Poll::Pending;
        }
        look = true;
    })
    .await
}

/// Waits for a connection's first bytes (`first_bytes`): `true` once they arrived, `false` when the
/// clock closes the connection first (nothing arrived within the header timeout, its idle timeout or
/// its age) or the server shuts down (a connection that sent nothing has nothing to finish).
pub(crate) async fn first_bytes(
    first_bytes: impl Future<Output = ()>,
    mut shutdown: impl Future<Output = ()> + Unpin,
    mut clock: Option<(&mut ConnectionClock<'_>, &ConnectionStats)>,
    timer: &DrainTimer,
) -> bool {
    let mut first_bytes = std::pin::pin!(first_bytes);
    let mut sleep = Alarm::default();
    std::future::poll_fn(move |cx: &mut Context<'_>| loop {
        if first_bytes.as_mut().poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        if Pin::new(&mut shutdown).poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        let Some((clock, stats)) = clock.as_mut() else {
            return Poll::Pending;
        };
        match clock.poll(stats, Instant::now()) {
            Verdict::Close | Verdict::Drain => return Poll::Ready(false),
            Verdict::Keep(deadline) => sleep.arm(deadline, timer),
        }
        if !sleep.poll(cx) {
            return Poll::Pending;
        }
    })
    .await
}

/// The watcher's one timer.
#[derive(Default)]
struct Alarm {
    armed: Option<(Instant, Pin<Box<dyn hyper::rt::Sleep>>)>,
}

impl Alarm {
    /// Makes sure the alarm goes off by `deadline`. An alarm already set earlier is kept: going off
    /// early only makes the clock look again, and a busy connection whose deadlines keep moving
    /// (each request head read in two pieces moves one) then sets no new timer for each.
    fn arm(&mut self, deadline: Option<Instant>, timer: &DrainTimer) {
        let Some(at) = deadline else { return };
        if self.armed.as_ref().is_none_or(|(armed, _)| at < *armed) {
            self.armed = Some((at, timer.sleep_until(at)));
        }
    }

    /// Whether the alarm went off (it is then unset).
    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        let fired = self
            .armed
            .as_mut()
            .is_some_and(|(_, sleep)| sleep.as_mut().poll(cx).is_ready());
        if fired {
            self.armed = None;
        }
        fired
    }
}

/// How many connections a server holds, and the accept loop's wait for a free place.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCount {
    open: AtomicUsize,
    accept: AtomicWaker,
}

impl ConnectionCount {
    /// Resolves once fewer than `max` connections are open.
    pub(crate) async fn below(&self, max: usize) {
        std::future::poll_fn(|cx| {
            if self.open.load(Ordering::Acquire) < max {
                return Poll::Ready(());
            }
            self.accept.register(cx.waker());
            if self.open.load(Ordering::Acquire) < max {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Counts an accepted connection until the guard is dropped.
    pub(crate) fn open(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenConnection {
            count: self.clone(),
        }
    }
}

/// One open connection of a [`ConnectionCount`].
#[derive(Debug)]
pub(crate) struct OpenConnection {
    count: Arc<ConnectionCount>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.count.open.fetch_sub(1, Ordering::AcqRel);
        self.count.accept.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ConnectionPolicy {
        ConnectionPolicy::default()
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_connection_without_a_first_request_is_closed() {
        let stats = Arc::new(ConnectionStats::new(None));
        let rules = ConnectionPolicy {
            header_timeout: Some(S),
            ..policy()
        };
        let mut clock = ConnectionClock::new(&rules);
        let t0 = stats.opened;
        assert_eq!(clock.poll(&stats, t0), Verdict::Keep(Some(t0 + S)));
        assert_eq!(clock.poll(&stats, t0 + S), Verdict::Close);
        // With a request, the first-request timeout no longer applies.
        let _call = stats.start();
        let rules = ConnectionPolicy {
            header_timeout: Some(S),
            ..policy()
        };
        let mut clock = ConnectionClock::new(&rules);
        assert_eq!(clock.poll(&stats, t0 + 2 * S), Verdict::Keep(None));
    }

    #[test]
    fn a_request_head_left_incomplete_closes_the_connection() {
        let stats = Arc::new(ConnectionStats::new(None));
        let rules = ConnectionPolicy {
            header_timeout: Some(S),
            ..policy()
        };
        let mut clock = ConnectionClock::new(&rules);
        let t0 = stats.opened;
        let _call = stats.start();
        assert_eq!(clock.poll(&stats, t0 + 5 * S), Verdict::Keep(None));
        // A head begun at 6 s must be complete by 7 s.
        stats.set_incomplete_since(Some(t0 + 6 * S));
        assert_eq!(
            clock.poll(&stats, t0 + 6 * S),
            Verdict::Keep(Some(t0 + 7 * S))
        );
        assert_eq!(clock.poll(&stats, t0 + 7 * S), Verdict::Close);
        // Completed in time, it closes nothing.
        stats.set_incomplete_since(None);
        assert_eq!(clock.poll(&stats, t0 + 9 * S), Verdict::Keep(None));
    }

    #[test]
    fn an_idle_connection_drains_after_the_idle_timeout() {
        let stats = Arc::new(ConnectionStats::new(None));
        let rules = ConnectionPolicy {
            idle_timeout: Some(S),
            ..policy()
        };
        let mut clock = ConnectionClock::new(&rules);
        let t0 = stats.opened;
        let call = stats.start();
        // Busy: looked at again a timeout later.
        assert_eq!(
            clock.poll(&stats, t0 + 5 * S),
            Verdict::Keep(Some(t0 + 6 * S))
        );
        drop(call);
        let ended = t0 + stats.opened.elapsed();
        assert!(matches!(clock.poll(&stats, ended), Verdict::Keep(Some(_))));
        assert_eq!(clock.poll(&stats, ended + S), Verdict::Drain);
        // Once draining, it waits for the calls (none) and hyper to close.
        assert_eq!(clock.poll(&stats, ended + 3 * S), Verdict::Keep(None));
    }

    #[test]
    fn an_old_connection_drains_then_closes_after_the_grace() {
        let stats = Arc::new(ConnectionStats::new(None));
        let rules = ConnectionPolicy {
            max_age: Some(10 * S),
            max_age_grace: Some(2 * S),
            ..policy()
        };
        let mut clock = ConnectionClock::new(&rules);
        let t0 = stats.opened;
        let _call = stats.start();
        assert_eq!(clock.poll(&stats, t0 + S), Verdict::Keep(Some(t0 + 10 * S)));
        assert_eq!(clock.poll(&stats, t0 + 10 * S), Verdict::Drain);
        assert_eq!(
            clock.poll(&stats, t0 + 11 * S),
            Verdict::Keep(Some(t0 + 12 * S))
        );
        assert_eq!(clock.poll(&stats, t0 + 12 * S), Verdict::Close);
    }

    #[test]
    fn a_connection_drains_after_its_last_allowed_request() {
        let stats = Arc::new(ConnectionStats::new(Some(2)));
        let rules = ConnectionPolicy {
            max_requests: Some(2),
            ..policy()
        };
        let mut clock = ConnectionClock::new(&rules);
        let t0 = stats.opened;
        drop(stats.start());
        assert_eq!(clock.poll(&stats, t0), Verdict::Keep(None));
        let _second = stats.start();
        assert_eq!(clock.poll(&stats, t0), Verdict::Drain);
    }
}
