//! One server connection over any `hyper::rt` types.

use hyper::rt::{Read, Write};
use hyper::service::Service;
use hyper_util::server::conn::auto::{self, HttpServerConnExec};

use crate::graceful::Watcher;
use crate::limits::Limits;
use crate::service::{ConnectionService, ServerBody};

/// hyper's HTTP/1.1-and-HTTP/2 connection builder with `limits`, spawning HTTP/2 streams on
/// `executor` and keeping time with `timer`.
pub fn http_builder<E, T>(limits: &Limits, executor: E, timer: T) -> auto::Builder<E>
where
    T: hyper::rt::Timer + Clone + Send + Sync + 'static,
{
    let mut builder = auto::Builder::new(executor);
    builder
        .http1()
        .timer(timer.clone())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(limits.http1_keepalive);
    builder
        .http2()
        .timer(timer)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_frame_size(crate::limits::http2_frame_size(limits.http2_max_frame_size))
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    builder
}

/// Serves one accepted (and, over TLS, handshaken) connection until it closes: HTTP/1.1 or HTTP/2,
/// told apart by the HTTP/2 preface. Connection errors (a client that went away) end only this
/// connection, so they are not returned.
pub async fn serve_connection<I, E>(
    builder: &auto::Builder<E>,
    io: I,
    service: ConnectionService,
    watcher: Watcher,
) where
    I: Read + Write + Unpin + 'static,
    E: HttpServerConnExec<
        <ConnectionService as Service<http::Request<hyper::body::Incoming>>>::Future,
        ServerBody,
    >,
{
    // On the heap: see `Watcher::watch`.
    let mut conn = Box::pin(builder.serve_connection(io, service));
    let _ = watcher.watch(conn.as_mut()).await;
}
