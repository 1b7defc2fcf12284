//! The HTTP/3 client transport: one pooled QUIC connection per server, a request stream per call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use connect_hyper::{TransportBuilder, TransportSettings};
use connect_typed::{BoxFuture, RequestBody, Transport, TransportError};
use futures_util::FutureExt;
use http_body::Body;

use crate::body::{reset_of, ResponseBody};
use crate::quic::{self, H3_NO_ERROR, H3_REQUEST_CANCELLED};

/// QUIC closes a connection that has been silent for its idle timeout, calls in flight or not; the
/// transport sends PINGs this often unless [`TransportSettings::keepalive_interval`] says otherwise.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);
/// How often a pooled connection checks whether it has been idle for `pool_idle_timeout`.
const IDLE_CHECK: Duration = Duration::from_secs(1);

type SendRequest = h3::client::SendRequest<quic::Opener, Bytes>;

/// A pooled HTTP/3 client for the typed layer's `Client`: one QUIC connection per server
/// (`https` URIs only: QUIC is always TLS), shared by every call to it, each call a request stream.
/// Cheap to clone; clones share the pool.
///
/// - Every stream type works, bidi full duplex: the request body streams while the response is read.
/// - Deadlines are the call's (the typed layer cancels an expired call, which resets its stream).
/// - **Cancellation**: dropping a call's future or response stream resets the request stream
///   (`RESET_STREAM` with `H3_REQUEST_CANCELLED`) and asks the server to stop sending the response
///   (`STOP_SENDING`, same code), so the server drops the handler even when it had read the whole
///   request. A server's `RESET_STREAM` or `STOP_SENDING` reaches the call as
///   [`Reset::H3`](connect_typed::Reset) with its code.
/// - A connection the server closes or sends `GOAWAY` on leaves the pool; a call that could not
///   start on it (no byte of it sent) starts again on a new connection.
/// - Settings are connect-hyper's [`TransportSettings`] ([`TransportBuilder`]): `tls` (its ALPN list
///   becomes `h3`), `connect_timeout` (QUIC handshake), `pool_idle_timeout` (a connection no call
///   started on for that long is closed once its calls are done), `keepalive_interval` (QUIC PINGs;
///   10 s when unset, since QUIC, unlike HTTP/2, closes silent connections even with calls in
///   flight). `http2_only` and the HTTP/2 frame size do not apply.
///
/// The transport needs a tokio runtime: its UDP sockets and timers are tokio's.
#[derive(Clone)]
pub struct H3Transport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for H3Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H3Transport")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// Builds an [`H3Transport`]: `H3Transport::builder().tls_config(config).build()`.
pub type H3TransportBuilder = TransportBuilder<H3Transport>;

impl H3Transport {
    /// Settings for a transport.
    pub fn builder() -> H3TransportBuilder {
        H3TransportBuilder::default()
    }

    /// A transport trusting the roots of `tls` (and presenting its client certificate, if any).
    pub fn new(tls: rustls::ClientConfig) -> Self {
        H3Transport::builder().tls_config(tls).build()
    }
}

impl From<TransportSettings> for H3Transport {
    fn from(settings: TransportSettings) -> Self {
        let mut tls = settings
            .tls
            .clone()
            .unwrap_or_else(connect_hyper::tls::client_config_without_roots);
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))
            .map(|crypto| {
                let mut config = quinn::ClientConfig::new(Arc::new(crypto));
                let mut transport = quinn::TransportConfig::default();
                transport.keep_alive_interval(Some(
                    settings.keepalive_interval.unwrap_or(DEFAULT_KEEPALIVE),
                ));
                config.transport_config(Arc::new(transport));
                config
            })
            .map_err(|e| format!("TLS configuration for QUIC: {e}"));
        H3Transport {
            inner: Arc::new(Inner {
                settings,
                config: crypto,
                endpoints: Mutex::default(),
                pool: Mutex::default(),
            }),
        }
    }
}

impl Transport for H3Transport {
    type ResponseBody = ResponseBody;
    type Future = BoxFuture<'static, Result<http::Response<ResponseBody>, TransportError>>;

    fn send(&self, request: http::Request<RequestBody>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.send(request).await })
    }
}

struct Inner {
    settings: TransportSettings,
    config: Result<quinn::ClientConfig, String>,
    /// Client endpoints (UDP sockets), one per address family, bound on first use.
    endpoints: Mutex<[Option<quinn::Endpoint>; 2]>,
    pool: Mutex<HashMap<String, Arc<Slot>>>,
}

/// The pooled connection to one server. Callers take turns on its lock to connect, so concurrent
/// first calls share one handshake, and a caller dropped mid-handshake leaves the next to connect.
#[derive(Default)]
struct Slot {
    conn: tokio::sync::Mutex<Option<Pooled>>,
}

#[derive(Clone)]
struct Pooled {
    quic: quinn::Connection,
    send: SendRequest,
    /// A call could not start on it (`GOAWAY`, or closed): no more calls go there.
    closing: Arc<AtomicBool>,
    /// When the last call started on it, in milliseconds since `epoch`.
    last_used: Arc<AtomicU64>,
    epoch: Instant,
}

impl Pooled {
    /// Open, and no `GOAWAY` came on it.
    fn usable(&self) -> bool {
        self.quic.close_reason().is_none() && !self.closing.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_used.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_used.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// Why a request could not be started on a connection.
enum StartError {
    /// Nothing of the request went out (a closed or closing connection): it may be sent again.
    Retry(TransportError),
    Fatal(TransportError),
}

impl Inner {
    async fn send(
        self: Arc<Self>,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<ResponseBody>, TransportError> {
        let (parts, body) = request.into_parts();
        if parts.uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return Err(TransportError::connection(
                "HTTP/3 needs an https URI: QUIC is always TLS",
            ));
        }
        let authority = parts
            .uri
            .authority()
            .ok_or_else(|| TransportError::connection("the request URI has no authority"))?
            .clone();
        let key = authority.as_str().to_ascii_lowercase();
        let head = || {
            let mut head = http::Request::new(());
            *head.method_mut() = parts.method.clone();
            *head.uri_mut() = parts.uri.clone();
            *head.headers_mut() = parts.headers.clone();
            head
        };
        let mut last_error = None;
        for _ in 0..2 {
            let pooled = self.connection(&key, &authority).await?;
            match start(pooled.send.clone(), head()).await {
                Ok(stream) => return exchange(stream, body).await,
                Err(StartError::Fatal(e)) => return Err(e),
                Err(StartError::Retry(e)) => {
                    pooled.closing.store(true, Ordering::Relaxed);
                    self.evict(&key, &pooled);
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| TransportError::connection("no connection")))
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.entry(key.to_owned()).or_default().clone()
    }

    /// Forgets `pooled` (if it is still the pooled connection of `key`).
    fn evict(&self, key: &str, pooled: &Pooled) {
        let slot = self.slot(key);
        let Ok(mut conn) = slot.conn.try_lock() else {
            // A caller is connecting or checking: it will find the connection unusable itself.
            return;
        };
        if conn
            .as_ref()
            .is_some_and(|c| c.quic.stable_id() == pooled.quic.stable_id())
        {
            *conn = None;
        }
    }

    async fn connection(
        self: &Arc<Self>,
        key: &str,
        authority: &http::uri::Authority,
    ) -> Result<Pooled, TransportError> {
        let slot = self.slot(key);
        let mut conn = slot.conn.lock().await;
        if let Some(pooled) = conn.as_ref().filter(|c| c.usable()) {
            pooled.touch();
            return Ok(pooled.clone());
        }
        let connect = self.connect(authority);
        let pooled = match self.settings.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connect)
                .await
                .map_err(|_| TransportError::connection("connecting timed out"))??,
            None => connect.await?,
        };
        pooled.touch();
        *conn = Some(pooled.clone());
        Ok(pooled)
    }

    async fn connect(
        self: &Arc<Self>,
        authority: &http::uri::Authority,
    ) -> Result<Pooled, TransportError> {
        let config = self
            .config
            .as_ref()
            .map_err(|e| TransportError::connection(e.clone()))?;
        let host = authority.host();
        // A bracketed IPv6 literal resolves without its brackets.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(443);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(TransportError::connection)?
            .next()
            .ok_or_else(|| TransportError::connection(format!("{host} has no address")))?;
        let endpoint = self.endpoint(addr)?;
        let connecting = endpoint
            .connect_with(config.clone(), addr, host)
            .map_err(TransportError::connection)?;
        let quic = connecting.await.map_err(TransportError::connection)?;
        let (mut driver, send) = h3::client::builder()
            .build::<_, _, Bytes>(quic::Connection::client(quic.clone()))
            .await
            .map_err(TransportError::connection)?;
        let pooled = Pooled {
            quic: quic.clone(),
            send,
            closing: Arc::default(),
            last_used: Arc::default(),
            epoch: Instant::now(),
        };
        // The connection's driver: control streams, GOAWAY, and the pool's idle timeout.
        let (idle_limit, watched) = (self.settings.pool_idle_timeout, pooled.clone());
        let pool = Arc::downgrade(self);
        let key = authority.as_str().to_ascii_lowercase();
        tokio::spawn(async move {
            let mut checks = tokio::time::interval(IDLE_CHECK);
            loop {
                tokio::select! {
                    _ = std::future::poll_fn(|cx| driver.poll_close(cx)) => break,
                    _ = checks.tick() => {
                        // Closed when idle for too long, or when the transport is gone.
                        let pool = pool.upgrade();
                        let idle = idle_limit.is_some_and(|limit| watched.idle_for() >= limit);
                        if pool.is_some() && !idle {
                            continue;
                        }
                        // No new calls here; those in flight finish, then the connection closes.
                        if let Some(pool) = pool {
                            pool.evict(&key, &watched);
                        }
                        let _ = driver.shutdown(0).await;
                        std::future::poll_fn(|cx| driver.poll_close(cx)).await;
                        break;
                    }
                }
            }
            watched
                .quic
                .close(quinn::VarInt::from_u32(H3_NO_ERROR as u32), b"");
        });
        Ok(pooled)
    }

    fn endpoint(&self, addr: SocketAddr) -> Result<quinn::Endpoint, TransportError> {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        let (index, local): (usize, SocketAddr) = if addr.is_ipv4() {
            (0, (std::net::Ipv4Addr::UNSPECIFIED, 0).into())
        } else {
            (1, (std::net::Ipv6Addr::UNSPECIFIED, 0).into())
        };
        if let Some(endpoint) = &endpoints[index] {
            return Ok(endpoint.clone());
        }
        let endpoint = quinn::Endpoint::client(local).map_err(TransportError::connection)?;
        endpoints[index] = Some(endpoint.clone());
        Ok(endpoint)
    }
}

type ClientStream = h3::client::RequestStream<quic::BidiStream<Bytes>, Bytes>;

/// Opens the request stream and sends the head.
async fn start(mut send: SendRequest, head: http::Request<()>) -> Result<ClientStream, StartError> {
    send.send_request(head).await.map_err(|e| match e {
        // GOAWAY, or a connection that closed under us: nothing of this request was processed.
        h3::error::StreamError::RemoteClosing { .. }
        | h3::error::StreamError::ConnectionError { .. } => {
            StartError::Retry(TransportError::connection(e))
        }
        e => StartError::Fatal(TransportError::reset(reset_of(&e), e)),
    })
}

/// Sends the request body (in a task of its own once it has to wait for the application) while the
/// response head is awaited.
async fn exchange(
    stream: ClientStream,
    body: RequestBody,
) -> Result<http::Response<ResponseBody>, TransportError> {
    let (mut send, mut recv) = stream.split();
    let mut body = Box::pin(body);
    // What the body has now (all of a unary request) goes out without a task.
    let mut done = false;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).now_or_never() {
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if send.send_data(data).await.is_err() {
                        done = true;
                        break;
                    }
                }
            }
            Some(Err(_cancelled)) => {
                send.stop_stream(h3::error::Code::from(H3_REQUEST_CANCELLED));
                done = true;
                break;
            }
            None => {
                let _ = send.finish().await;
                done = true;
                break;
            }
        }
    }
    if !done {
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            // The server stopped reading (it answered already, or gave up).
                            if send.send_data(data).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Err(_cancelled)) => {
                        send.stop_stream(h3::error::Code::from(H3_REQUEST_CANCELLED));
                        return;
                    }
                    None => {
                        let _ = send.finish().await;
                        return;
                    }
                }
            }
        });
    }
    let head = recv
        .recv_response()
        .await
        .map_err(|e| TransportError::reset(reset_of(&e), e))?;
    let (parts, ()) = head.into_parts();
    Ok(http::Response::from_parts(parts, ResponseBody::new(recv)))
}
