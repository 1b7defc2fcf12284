//! A graceful shutdown that needs no runtime: connections watch a signal, the server waits until the
//! last watcher is gone.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_channel::{mpsc, oneshot};
use futures_util::future::{FutureExt, Shared};
use futures_util::StreamExt;
use hyper::rt::{Read, Write};
use hyper::service::Service;
use hyper_util::server::conn::auto::{Connection, HttpServerConnExec};

use crate::service::{ConnectionService, ServerBody};

/// Tells connections to finish their in-flight calls and close, and waits until they have.
///
/// Each connection holds a [`Watcher`]; [`GracefulShutdown::shutdown`] signals them all, then resolves
/// when the last one is dropped. Signalling is a channel, waiting is a channel closing: no timer and no
/// executor are involved, so any runtime can use it.
#[derive(Debug)]
pub struct GracefulShutdown {
    signal: oneshot::Sender<()>,
    signalled: Shared<oneshot::Receiver<()>>,
    alive: mpsc::Sender<Infallible>,
    all_gone: mpsc::Receiver<Infallible>,
}

impl Default for GracefulShutdown {
    fn default() -> Self {
        GracefulShutdown::new()
    }
}

impl GracefulShutdown {
    /// A shutdown with no connection watching yet.
    pub fn new() -> Self {
        let (signal, signalled) = oneshot::channel();
        let (alive, all_gone) = mpsc::channel(0);
        GracefulShutdown {
            signal,
            signalled: signalled.shared(),
            alive,
            all_gone,
        }
    }

    /// A watcher for one more connection.
    pub fn watcher(&self) -> Watcher {
        Watcher {
            signalled: self.signalled.clone(),
            _alive: self.alive.clone(),
        }
    }

    /// Signals every watcher, then waits until all of them are dropped.
    pub async fn shutdown(self) {
        let GracefulShutdown {
            signal,
            alive,
            mut all_gone,
            ..
        } = self;
        let _ = signal.send(());
        drop(alive);
        // Nothing is ever sent: `next` ends when the last sender (watcher) is dropped.
        while all_gone.next().await.is_some() {}
    }
}

/// One connection's view of a [`GracefulShutdown`]; the shutdown waits until it is dropped.
#[derive(Debug, Clone)]
pub struct Watcher {
    signalled: Shared<oneshot::Receiver<()>>,
    _alive: mpsc::Sender<Infallible>,
}

impl Watcher {
    /// Drives a server connection to its end; once the shutdown is signalled, the connection stops
    /// taking new requests, finishes those in flight and closes.
    ///
    /// The connection is pinned by the caller, best on the heap (`Box::pin`): its state is a few
    /// kilobytes, and a future that held it by value would be as large, as would every future
    /// awaiting that one.
    pub async fn watch<I, E>(
        self,
        mut conn: Pin<&mut Connection<'_, I, ConnectionService, E>>,
    ) -> Result<(), connect_typed::BoxError>
    where
        I: Read + Write + Unpin + 'static,
        E: HttpServerConnExec<
            <ConnectionService as Service<http::Request<hyper::body::Incoming>>>::Future,
            ServerBody,
        >,
    {
        let mut signalled = self.signalled.clone();
        let mut shutting_down = false;
        std::future::poll_fn(|cx| {
            if !shutting_down && Pin::new(&mut signalled).poll(cx).is_ready() {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            match conn.as_mut().poll(cx) {
                Poll::Ready(result) => Poll::Ready(result),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Resolves once the shutdown is signalled.
    pub(crate) fn shutdown_signal(&self) -> impl Future<Output = ()> + Unpin {
        self.signalled.clone().map(drop)
    }

    /// Like [`watch`](Self::watch), and also drains or closes the connection as `clock` decides
    /// (idle, age, request count, no first request, a request head left incomplete), with `stats`
    /// from the connection's service and IO.
    pub(crate) async fn watch_managed<I, E>(
        self,
        conn: Pin<&mut Connection<'_, I, ConnectionService, E>>,
        clock: &mut crate::watch::ConnectionClock<'_>,
        stats: &crate::watch::ConnectionStats,
        timer: &crate::service::DrainTimer,
    ) where
        I: Read + Write + Unpin + 'static,
        E: HttpServerConnExec<
            <ConnectionService as Service<http::Request<hyper::body::Incoming>>>::Future,
            ServerBody,
        >,
    {
        let shutdown = self.shutdown_signal();
        let drain = |conn: Pin<&mut Connection<'_, I, ConnectionService, E>>| {
            conn.graceful_shutdown();
        };
        // The outcome (a connection error, or a close the clock decided) ends only this connection.
        let _ = crate::watch::watched(conn, drain, shutdown, clock, stats, timer).await;
    }
}
