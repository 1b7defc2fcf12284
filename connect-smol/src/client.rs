//! The client transport: hyper's connection halves under a small pool of our own (hyper-util's pooled
//! client needs tokio). HTTP/2: one connection per origin, its sender cloned for each call. HTTP/1.1:
//! idle connections kept per origin, one call at a time on each.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use connect_hyper::{transport_error, within, ClientBody, TransportBuilder, TransportSettings};
use connect_typed::{RequestBody, Transport, TransportError};
use http::uri::{Authority, Scheme};
use hyper::client::conn::{http1, http2, TrySendError};
use smol::io::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;
use smol::Timer;
use smol_hyper::rt::SmolTimer;

use crate::runtime::SmolExecutor;

/// A pooled HTTP client for the typed layer's `Client`: HTTP/1.1 or HTTP/2 with prior knowledge (h2c)
/// over plain TCP, HTTP/2 or HTTP/1.1 over TLS by ALPN (feature `tls`). Cheap to clone; clones share
/// the connection pool.
///
/// Request bodies stream while the response is read, so bidi calls are full duplex over HTTP/2 (and
/// half duplex over HTTP/1.1). Dropping a call's future or response stream aborts its request body and
/// drops the response body: hyper then resets the HTTP/2 stream (`RST_STREAM`) or closes the HTTP/1.1
/// connection.
#[derive(Clone, Debug)]
pub struct SmolTransport {
    inner: Arc<Inner>,
}

impl Default for SmolTransport {
    fn default() -> Self {
        SmolTransport::new()
    }
}

impl SmolTransport {
    /// A transport with default settings: HTTP/1.1 over plain TCP.
    pub fn new() -> Self {
        SmolTransport::builder().build()
    }

    /// A transport that speaks HTTP/2 with prior knowledge (h2c) over plain TCP, and HTTP/2 over TLS.
    pub fn http2() -> Self {
        SmolTransport::builder().http2_only(true).build()
    }

    /// Settings for a transport.
    pub fn builder() -> SmolTransportBuilder {
        SmolTransportBuilder::default()
    }
}

/// Builds a [`SmolTransport`]: `SmolTransport::builder().http2_only(true).build()`.
pub type SmolTransportBuilder = TransportBuilder<SmolTransport>;

impl From<TransportSettings> for SmolTransport {
    fn from(settings: TransportSettings) -> Self {
        SmolTransport {
            inner: Arc::new(Inner {
                #[cfg(feature = "tls")]
                tls: futures_rustls::TlsConnector::from(Arc::new(settings.tls_config())),
                settings,
                pool: Mutex::default(),
            }),
        }
    }
}

impl Transport for SmolTransport {
    type ResponseBody = ClientBody;
    type Future = ResponseFuture;

    fn send(&self, request: http::Request<RequestBody>) -> ResponseFuture {
        ResponseFuture {
            inner: Box::pin(self.inner.clone().send(request)),
        }
    }
}

type Outcome = Result<http::Response<ClientBody>, TransportError>;

/// The future of [`SmolTransport::send`].
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Outcome> + Send>>,
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        self.inner.as_mut().poll(cx)
    }
}

/// An origin: connections are pooled per scheme and authority.
type Origin = (Scheme, Authority);

struct Inner {
    settings: TransportSettings,
    #[cfg(feature = "tls")]
    tls: futures_rustls::TlsConnector,
    pool: Mutex<HashMap<Origin, Idle>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmolTransport")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The reusable connections to one origin.
#[derive(Default)]
struct Idle {
    /// The HTTP/2 connection, shared by all calls, and when a call last took it.
    http2: Option<(http2::SendRequest<RequestBody>, Instant)>,
    /// HTTP/1.1 connections with no call in flight, and since when.
    http1: Vec<(http1::SendRequest<RequestBody>, Instant)>,
    /// Held while connecting where the connection may be HTTP/2, so that calls starting together
    /// share one connection instead of each opening its own.
    connecting: Arc<smol::lock::Mutex<()>>,
}

/// A request that failed, and the request itself when hyper hands it back unsent.
struct Failed {
    unsent: Option<http::Request<RequestBody>>,
    error: hyper::Error,
}

impl From<TrySendError<http::Request<RequestBody>>> for Failed {
    fn from(mut e: TrySendError<http::Request<RequestBody>>) -> Self {
        Failed {
            unsent: e.take_message(),
            error: e.into_error(),
        }
    }
}

/// A connection's sending half.
enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

impl Inner {
    async fn send(self: Arc<Self>, mut request: http::Request<RequestBody>) -> Outcome {
        let origin = origin(request.uri())?;
        // A pooled connection first. When hyper hands the request back unsent (the connection closed
        // while idle), it goes on a new connection.
        if let Some(sender) = self.checkout(&origin) {
            match self.send_on(&origin, sender, request).await {
                Ok(response) => return Ok(response),
                Err(Failed {
                    unsent: Some(unsent),
                    ..
                }) => request = unsent,
                Err(Failed { error, .. }) => return Err(transport_error(error)),
            }
        }
        let sender = self.connect_or_share(&origin).await?;
        self.send_on(&origin, sender, request)
            .await
            .map_err(|failed| transport_error(failed.error))
    }

    async fn send_on(
        self: &Arc<Self>,
        origin: &Origin,
        sender: Sender,
        mut request: http::Request<RequestBody>,
    ) -> Result<http::Response<ClientBody>, Failed> {
        let response = match sender {
            // An HTTP/2 sender is shared: its readiness is the connection's.
            Sender::Http2(mut sender) => sender
                .try_send_request(request)
                .await
                .map_err(Failed::from)?,
            Sender::Http1(mut sender) => {
                // HTTP/1.1 wants the origin-form target and a Host header.
                let absolute = request.uri().clone();
                if let Ok(host) = http::HeaderValue::from_str(origin.1.as_str()) {
                    request
                        .headers_mut()
                        .entry(http::header::HOST)
                        .or_insert(host);
                }
                let target = absolute.path_and_query().map_or("/", |p| p.as_str());
                *request.uri_mut() = target.parse().unwrap_or_default();
                let response = match sender.try_send_request(request).await {
                    Ok(response) => response,
                    Err(e) => {
                        let mut failed = Failed::from(e);
                        // A retry may go over HTTP/2 (by ALPN), which wants the absolute URI.
                        if let Some(unsent) = &mut failed.unsent {
                            *unsent.uri_mut() = absolute;
                        }
                        return Err(failed);
                    }
                };
                self.return_when_ready(origin.clone(), sender);
                response
            }
        };
        Ok(response.map(ClientBody::new))
    }

    /// An idle connection to `origin`, if one is still open.
    fn checkout(&self, origin: &Origin) -> Option<Sender> {
        if let Some(shared) = self.checkout_http2(origin) {
            return Some(shared);
        }
        self.evict_idle(origin);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let (sender, _) = pool.get_mut(origin)?.http1.pop()?;
        Some(Sender::Http1(sender))
    }

    /// A new connection, or the HTTP/2 connection another call opened meanwhile.
    async fn connect_or_share(self: &Arc<Self>, origin: &Origin) -> Result<Sender, TransportError> {
        let maybe_http2 = self.settings.http2_only || origin.0 == Scheme::HTTPS;
        if !maybe_http2 {
            return self.connect(origin).await;
        }
        let connecting = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.entry(origin.clone()).or_default().connecting.clone()
        };
        let _connecting = connecting.lock().await;
        if let Some(Sender::Http2(shared)) = self.checkout_http2(origin) {
            return Ok(Sender::Http2(shared));
        }
        self.connect(origin).await
    }

    /// The pooled HTTP/2 connection to `origin`, if it is still open.
    fn checkout_http2(&self, origin: &Origin) -> Option<Sender> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let idle = pool.get_mut(origin)?;
        let now = Instant::now();
        let limit = self.settings.pool_idle_timeout;
        match &mut idle.http2 {
            Some((sender, last_used))
                if !sender.is_closed()
                    && limit.is_none_or(|limit| now.duration_since(*last_used) < limit) =>
            {
                *last_used = now;
                Some(Sender::Http2(sender.clone()))
            }
            _ => {
                idle.http2 = None;
                None
            }
        }
    }

    /// Drops the pool's handle on the HTTP/2 connection to `origin` once no call has taken it for the
    /// pool's idle timeout; the connection closes when its calls in flight are done.
    fn expire_http2(self: &Arc<Self>, origin: Origin) {
        let Some(limit) = self.settings.pool_idle_timeout else {
            return;
        };
        let pool: Weak<Inner> = Arc::downgrade(self);
        smol::spawn(async move {
            let mut wait = limit;
            loop {
                // A little past the limit, so that the connection counts as expired by then.
                Timer::after(wait + Duration::from_millis(1)).await;
                let Some(inner) = pool.upgrade() else { return };
                let mut pool = inner.pool.lock().unwrap_or_else(|e| e.into_inner());
                let Some(idle) = pool.get_mut(&origin) else {
                    return;
                };
                let Some((sender, last_used)) = &idle.http2 else {
                    return;
                };
                let idle_for = last_used.elapsed();
                if sender.is_closed() || idle_for >= limit {
                    idle.http2 = None;
                    return;
                }
                wait = limit - idle_for;
            }
        })
        .detach();
    }

    /// Drops the HTTP/1.1 connections to `origin` idle for longer than the pool's HTTP/1.1 idle
    /// timeout.
    fn evict_idle(&self, origin: &Origin) {
        let Some(limit) = self.settings.http1_pool_idle_timeout else {
            return;
        };
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(idle) = pool.get_mut(origin) {
            let now = Instant::now();
            idle.http1.retain(|(sender, since)| {
                !sender.is_closed() && now.duration_since(*since) < limit
            });
        }
    }

    /// Puts an HTTP/1.1 connection back in the pool once its call is done (response read to the end),
    /// unless the transport is gone by then, and closes it when it has been idle for the pool's
    /// HTTP/1.1 idle timeout. A connection that closes instead is dropped.
    fn return_when_ready(
        self: &Arc<Self>,
        origin: Origin,
        mut sender: http1::SendRequest<RequestBody>,
    ) {
        let pool: Weak<Inner> = Arc::downgrade(self);
        smol::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let Some(inner) = pool.upgrade() else { return };
            {
                let mut pool = inner.pool.lock().unwrap_or_else(|e| e.into_inner());
                let idle = pool.entry(origin.clone()).or_default();
                idle.http1.push((sender, Instant::now()));
            }
            let Some(limit) = inner.settings.http1_pool_idle_timeout else {
                return;
            };
            drop(inner);
            // A little past the limit, so that this connection counts as expired by then.
            Timer::after(limit + Duration::from_millis(1)).await;
            if let Some(inner) = pool.upgrade() {
                inner.evict_idle(&origin);
            }
        })
        .detach();
    }

    /// A new connection to `origin`: TCP, TLS for `https` (ALPN picks the HTTP version), then hyper's
    /// handshake, with its driving task spawned. An HTTP/2 connection goes in the pool at once.
    async fn connect(self: &Arc<Self>, origin: &Origin) -> Result<Sender, TransportError> {
        let (scheme, authority) = origin;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let tcp = self
            .within_connect_timeout(TcpStream::connect((host, port)))
            .await?;
        let tcp = crate::io::TcpIo::new(tcp);
        if *scheme == Scheme::HTTPS {
            #[cfg(feature = "tls")]
            {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(TransportError::connection)?;
                let tls = self
                    .within_connect_timeout(self.tls.connect(name, tcp))
                    .await?;
                let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                return self.handshake(origin, tls, http2).await;
            }
            #[cfg(not(feature = "tls"))]
            return Err(TransportError::connection(io::Error::new(
                io::ErrorKind::Unsupported,
                "https needs the `tls` feature of connect-smol",
            )));
        }
        self.handshake(origin, tcp, self.settings.http2_only).await
    }

    async fn handshake<I>(
        self: &Arc<Self>,
        origin: &Origin,
        io: I,
        http2: bool,
    ) -> Result<Sender, TransportError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = crate::io::HyperIo::new(io);
        if http2 {
            let (sender, conn) = http2::Builder::new(SmolExecutor)
                .timer(SmolTimer::new())
                .max_frame_size(self.settings.http2_frame_size())
                .keep_alive_interval(self.settings.keepalive_interval)
                .keep_alive_timeout(self.settings.keepalive_timeout)
                .handshake(io)
                .await
                .map_err(transport_error)?;
            // The connection's task ends when it closes (its error has nowhere else to go).
            smol::spawn(conn).detach();
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.entry(origin.clone()).or_default().http2 = Some((sender.clone(), Instant::now()));
            drop(pool);
            self.expire_http2(origin.clone());
            return Ok(Sender::Http2(sender));
        }
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(transport_error)?;
        smol::spawn(conn).detach();
        Ok(Sender::Http1(sender))
    }
}

impl Inner {
    /// `connect`'s stream, unless [`TransportSettings::connect_timeout`] passes first.
    async fn within_connect_timeout<T>(
        &self,
        connect: impl Future<Output = io::Result<T>>,
    ) -> Result<T, TransportError> {
        let timeout = self.settings.connect_timeout.map(|limit| async move {
            Timer::after(limit).await;
        });
        match within(connect, timeout).await {
            Some(connected) => connected.map_err(TransportError::connection),
            None => Err(TransportError::connection(io::Error::new(
                io::ErrorKind::TimedOut,
                "connect timed out",
            ))),
        }
    }
}

/// The scheme and authority of an absolute URI.
fn origin(uri: &http::Uri) -> Result<Origin, TransportError> {
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok((scheme.clone(), authority.clone())),
        _ => Err(TransportError::connection(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not an absolute URI: {uri}"),
        ))),
    }
}
