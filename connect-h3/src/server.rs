//! The HTTP/3 server: QUIC connections from quinn, HTTP/3 from h3, calls from the router.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use connect_hyper::{Limits, PeerAddr, PeerCertificates};
use connect_typed::{ResponseBody, Router};
use http_body::Body;
use rustls::pki_types::CertificateDer;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::body::RequestBody;
use crate::quic::{self, StopWatch, Stopped, H3_INTERNAL_ERROR, H3_NO_ERROR, H3_REQUEST_CANCELLED};

/// How long a finished response may wait for the client to acknowledge its last bytes before its
/// stream is let go (a connection closing after a graceful shutdown would otherwise cut them off).
const ACK_WAIT: Duration = Duration::from_secs(5);
/// How long closing connections may take to tell their clients, once the server stopped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

type ServerSend = h3::server::RequestStream<quic::SendStream<Bytes>, Bytes>;

/// Serves a [`Router`] over HTTP/3 on a UDP socket: the same calls as the HTTP/1.1 and HTTP/2
/// servers (Connect, gRPC and gRPC-Web, all four stream types), each request stream of a QUIC
/// connection a call.
///
/// - **TLS** is part of QUIC: the server needs a rustls configuration (its ALPN list is set to
///   `h3`). To make client certificates available to handlers, configure a client certificate
///   verifier on it; handlers find them as [`PeerCertificates`], and the client's address as
///   [`PeerAddr`], in `Context::extensions`, as with connect-hyper's server.
/// - **Limits** are connect-hyper's [`Limits`] where they mean something over QUIC:
///   `max_request_body` (`413` when `Content-Length` announces more, the stream reset when a body
///   streams past it), `header_read_timeout` (for the QUIC handshake), `max_concurrent_streams`
///   (QUIC's bidirectional stream limit), `keepalive_interval` (QUIC PINGs) and `shutdown_timeout`.
/// - **Graceful shutdown** sends each connection an HTTP/3 `GOAWAY` naming the last request it
///   accepted, lets the calls in flight finish (up to `shutdown_timeout`), then closes the
///   connections with `H3_NO_ERROR`. Requests that arrive after the `GOAWAY` are refused with
///   `H3_REQUEST_REJECTED`, which clients may safely retry elsewhere.
/// - **Cancellation**: a client that stops reading a response (`STOP_SENDING`) or resets its request
///   (`RESET_STREAM`) has its handler dropped at once, even one that is not sending anything yet.
#[derive(Clone)]
pub struct Server {
    router: Router,
    limits: Limits,
    tls: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("router", &self.router)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server of `router` with default [`Limits`] and the TLS configuration `tls` (its ALPN list
    /// becomes `h3`; QUIC needs TLS 1.3).
    pub fn new(router: Router, tls: rustls::ServerConfig) -> Self {
        let mut tls = tls;
        tls.alpn_protocols = vec![b"h3".to_vec()];
        Server {
            router,
            limits: Limits::default(),
            tls: Arc::new(tls),
        }
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The quinn server configuration: TLS, and the limits QUIC enforces itself.
    fn quinn_config(&self) -> io::Result<quinn::ServerConfig> {
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(self.tls.clone())
            .map_err(|e| io::Error::other(format!("TLS configuration for QUIC: {e}")))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        if let Some(streams) = self.limits.max_concurrent_streams {
            transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(streams));
        }
        transport.keep_alive_interval(self.limits.keepalive_interval);
        config.transport_config(Arc::new(transport));
        Ok(config)
    }

    /// Binds a UDP socket on `addr` and starts serving it in a background task (inside a tokio
    /// runtime); the returned handle shuts it down.
    pub fn bind(self, addr: SocketAddr) -> io::Result<ServerHandle> {
        self.spawn(UdpSocket::bind(addr)?)
    }

    /// Starts serving `socket` in a background task (inside a tokio runtime); the returned handle
    /// shuts it down.
    pub fn spawn(self, socket: UdpSocket) -> io::Result<ServerHandle> {
        let endpoint = self.endpoint(socket)?;
        let local_addr = endpoint.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_endpoint(endpoint, async move {
            let _ = stopped.await;
        }));
        Ok(ServerHandle {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Serves `socket` until `signal` completes, then shuts down gracefully: stops accepting
    /// connections, sends `GOAWAY` on each, lets in-flight calls finish (up to
    /// [`Limits::shutdown_timeout`]) and closes the connections.
    pub async fn serve_with_shutdown(
        self,
        socket: UdpSocket,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let endpoint = self.endpoint(socket)?;
        self.serve_endpoint(endpoint, signal).await;
        Ok(())
    }

    fn endpoint(&self, socket: UdpSocket) -> io::Result<quinn::Endpoint> {
        let config = self.quinn_config()?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| io::Error::other("an HTTP/3 server needs a tokio runtime"))?;
        quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(config),
            socket,
            runtime,
        )
    }

    async fn serve_endpoint(self, endpoint: quinn::Endpoint, signal: impl Future<Output = ()>) {
        let (shutdown, watch) = watch::channel(false);
        let shared = Arc::new(self);
        let mut connections = JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    connections.spawn(serve_connection(shared.clone(), incoming, watch.clone()));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut signal => break,
            }
        }
        // No new connections; the open ones finish their calls and close.
        endpoint.set_server_config(None);
        let _ = shutdown.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        match shared.limits.shutdown_timeout {
            Some(limit) => {
                let _ = tokio::time::timeout(limit, drain).await;
            }
            None => drain.await,
        }
        connections.abort_all();
        endpoint.close(
            quinn::VarInt::from_u32(H3_NO_ERROR as u32),
            b"server shut down",
        );
        let _ = tokio::time::timeout(CLOSE_WAIT, endpoint.wait_idle()).await;
    }
}

/// What every request of a connection shares.
struct Connection {
    server: Arc<Server>,
    peer: PeerAddr,
    certificates: Option<PeerCertificates>,
    stops: StopWatch,
}

async fn serve_connection(
    server: Arc<Server>,
    incoming: quinn::Incoming,
    mut shutdown: watch::Receiver<bool>,
) {
    let handshake = async {
        match server.limits.header_read_timeout {
            Some(limit) => tokio::time::timeout(limit, incoming).await.ok()?.ok(),
            None => incoming.await.ok(),
        }
    };
    let Some(conn) = handshake.await else { return };
    let certificates = conn
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|chain| PeerCertificates(Arc::new(*chain)));
    let stops = StopWatch::default();
    let h3 = h3::server::builder()
        .build::<_, Bytes>(quic::Connection::server(conn.clone(), stops.clone()))
        .await;
    let Ok(mut h3) = h3 else { return };
    let shared = Arc::new(Connection {
        server,
        peer: PeerAddr(conn.remote_address()),
        certificates,
        stops,
    });
    let mut requests = JoinSet::new();
    let mut draining = *shutdown.borrow();
    if draining {
        let _ = h3.shutdown(0).await;
        return;
    }
    loop {
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests.spawn(serve_request(shared.clone(), resolver));
                }
                // The client went away, or said GOAWAY and its calls are done.
                Ok(None) | Err(_) => break,
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {
                if draining && requests.is_empty() {
                    break;
                }
            }
            _ = shutdown.changed(), if !draining => {
                draining = true;
                // GOAWAY: requests after the last accepted one are refused, the others finish.
                if h3.shutdown(0).await.is_err() || requests.is_empty() {
                    break;
                }
            }
        }
    }
    // Dropping the h3 connection closes it with H3_NO_ERROR; calls still in flight (the client
    // went away) end with it.
    requests.abort_all();
}

type Resolver = h3::server::RequestResolver<quic::Connection, Bytes>;

async fn serve_request(conn: Arc<Connection>, resolver: Resolver) {
    let Ok((mut request, stream)) = resolver.resolve_request().await else {
        return;
    };
    let mut stopped = conn
        .stops
        .take(stream.id())
        .unwrap_or_else(|| Box::pin(std::future::pending()));
    let (mut send, recv) = stream.split();
    request.extensions_mut().insert(conn.peer);
    if let Some(certificates) = &conn.certificates {
        request.extensions_mut().insert(certificates.clone());
    }
    let limit = conn.server.limits.max_request_body;
    let announced = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let (Some(limit), Some(announced)) = (limit, announced) {
        if announced > limit {
            let response = http::Response::builder()
                .status(http::StatusCode::PAYLOAD_TOO_LARGE)
                .body(())
                .unwrap_or_default();
            if send.send_response(response).await.is_ok() && send.finish().await.is_ok() {
                let _ = tokio::time::timeout(ACK_WAIT, stopped).await;
            }
            return;
        }
    }
    let request = request.map(|()| RequestBody::new(recv, limit));
    let serve = conn.server.router.handle(request);
    let response = tokio::select! {
        response = serve => response,
        // The client stopped reading before a response existed: drop the call and its handler.
        _ = &mut stopped => {
            send.stop_stream(h3::error::Code::from(H3_REQUEST_CANCELLED));
            return;
        }
    };
    let (parts, body) = response.into_parts();
    if send
        .send_response(http::Response::from_parts(parts, ()))
        .await
        .is_err()
    {
        return;
    }
    if send_body(&mut send, body, &mut stopped).await {
        // Keep the stream until the client has the whole response: a connection closed after a
        // graceful shutdown would otherwise take unacknowledged bytes with it.
        let _ = tokio::time::timeout(ACK_WAIT, stopped).await;
    }
}

/// Sends the response body and its trailers, then ends the stream; false when the stream was
/// reset instead (by the client, or because the call was abandoned). The body, and with it the
/// call, is dropped on return.
async fn send_body(send: &mut ServerSend, body: ResponseBody, stopped: &mut Stopped) -> bool {
    let mut body = std::pin::pin!(body);
    loop {
        // A trailers-only response (gRPC) ends with its head.
        if body.is_end_stream() {
            return send.finish().await.is_ok();
        }
        let frame = tokio::select! {
            frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)) => frame,
            _ = &mut *stopped => {
                send.stop_stream(h3::error::Code::from(H3_REQUEST_CANCELLED));
                return false;
            }
        };
        match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if send.send_data(data).await.is_err() {
                        return false;
                    }
                }
                Err(frame) => {
                    return match frame.into_trailers() {
                        Ok(trailers) => finish_with_trailers(send, trailers).await,
                        Err(_) => send.finish().await.is_ok(),
                    };
                }
            },
            Some(Err(_reset)) => {
                // The call was abandoned (its request failed): the response must not look complete.
                send.stop_stream(h3::error::Code::from(H3_INTERNAL_ERROR));
                return false;
            }
            None => return send.finish().await.is_ok(),
        }
    }
}

async fn finish_with_trailers(send: &mut ServerSend, trailers: http::HeaderMap) -> bool {
    send.send_trailers(trailers).await.is_ok() && send.finish().await.is_ok()
}

/// A running server started with [`Server::spawn`] or [`Server::bind`].
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ServerHandle {
    /// The UDP address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shuts down gracefully and waits until in-flight calls are done and connections closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    /// A handle dropped without [`ServerHandle::shutdown`] stops the server at once.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
