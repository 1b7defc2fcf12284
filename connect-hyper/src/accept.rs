//! The accept loop of a server, with the runtime's parts passed in: how to accept, sleep and spawn.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::{select, Either};

use crate::graceful::{GracefulShutdown, Watcher};

/// Accepts connections until `signal` completes, handing each to `serve` with a [`Watcher`] (which
/// spawns it on the runtime), then shuts down gracefully: stops accepting, and waits until every
/// connection is done or `shutdown_timeout` has passed.
///
/// `accept` is the listener's (owning it, so that it closes when the loop ends); `sleep` the runtime's timer, for the pause after an accept error that
/// is not one connection's (out of file descriptors and the like) and for the shutdown timeout.
pub async fn accept_loop<S, A, Sl>(
    mut accept: impl FnMut() -> A,
    signal: impl Future<Output = ()>,
    sleep: impl Fn(Duration) -> Sl,
    mut serve: impl FnMut(S, SocketAddr, Watcher),
    shutdown_timeout: Option<Duration>,
) where
    A: Future<Output = io::Result<(S, SocketAddr)>>,
    Sl: Future<Output = ()>,
{
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let accepted = std::pin::pin!(accept());
        let (stream, peer) = match select(accepted, signal.as_mut()).await {
            Either::Left((Ok(accepted), _)) => accepted,
            Either::Left((Err(e), _)) if is_connection_error(&e) => continue,
            Either::Left((Err(_), _)) => {
                sleep(Duration::from_millis(50)).await;
                continue;
            }
            Either::Right(_) => break,
        };
        serve(stream, peer, graceful.watcher());
    }
    // Closes the listener (when `accept` owns it), so that new connections are refused while the
    // shutdown waits.
    drop(accept);
    within(graceful.shutdown(), shutdown_timeout.map(sleep)).await;
}

/// `future`'s output, or `None` when `timeout` (a sleep of the runtime's) completes first. Without
/// a timeout, waits as long as `future` takes.
pub async fn within<F: Future>(
    future: F,
    timeout: Option<impl Future<Output = ()>>,
) -> Option<F::Output> {
    let Some(timeout) = timeout else {
        return Some(future.await);
    };
    match select(std::pin::pin!(future), std::pin::pin!(timeout)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// Accept errors that concern one connection only: the accept loop goes on at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
