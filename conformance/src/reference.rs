//! The reference server's raw responses, for our runner's client-mode cases: the conformance router
//! behind a hyper service that answers a call with the `RawHTTPResponse` its response definition
//! carries, byte for byte, in place of the RPC response.
//!
//! The handlers of [`crate::service`] see the definition; when the request carries a [`RawSlot`] (only
//! this server adds one) they put the raw response in it and fail the call, and this service then
//! writes the raw response instead of the router's.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Either, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::convert::append_headers;
use crate::proto::connectrpc::conformance::v1 as pb;
use crate::raw::{message_bytes, stream_bytes};
use pb::__buffa::oneof::raw_http_response::Body as RawBody;

/// Where a handler leaves the raw response its definition asks for.
#[derive(Clone, Debug, Default)]
pub struct RawSlot(Arc<Mutex<Option<pb::RawHTTPResponse>>>);

impl RawSlot {
    /// Asks for `response` to be written in place of the call's.
    pub fn set(&self, response: pb::RawHTTPResponse) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(response);
    }

    fn take(&self) -> Option<pb::RawHTTPResponse> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

type FrameStream = futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>;

/// The HTTP response a `RawHTTPResponse` describes.
fn raw_response(raw: &pb::RawHTTPResponse) -> http::Response<StreamBody<FrameStream>> {
    let body = match &raw.body {
        Some(RawBody::Unary(contents)) => message_bytes(contents),
        Some(RawBody::Stream(contents)) => stream_bytes(contents),
        None => Ok(Vec::new()),
    };
    let (status, body) = match body {
        Ok(body) => (
            http::StatusCode::from_u16(if raw.status_code == 0 {
                200
            } else {
                raw.status_code as u16
            })
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
            body,
        ),
        Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, e.into_bytes()),
    };
    let mut frames = Vec::new();
    if !body.is_empty() {
        frames.push(Ok(Frame::data(Bytes::from(body))));
    }
    if !raw.trailers.is_empty() {
        let mut trailers = http::HeaderMap::new();
        append_headers(&raw.trailers, &mut trailers);
        frames.push(Ok(Frame::trailers(trailers)));
    }
    let mut response = http::Response::new(StreamBody::new(futures_util::stream::iter(frames)));
    *response.status_mut() = status;
    append_headers(&raw.headers, response.headers_mut());
    response
}

/// A running reference server; dropping it does not stop it, [`ReferenceHandle::shutdown`] does.
#[derive(Debug)]
pub struct ReferenceHandle {
    stop: oneshot::Sender<()>,
}

impl ReferenceHandle {
    /// Stops accepting connections.
    pub fn shutdown(self) {
        let _ = self.stop.send(());
    }
}

/// Starts the reference server on 127.0.0.1 (an ephemeral port) with the request's TLS settings
/// and receive limit; HTTP/1.1 and HTTP/2 on the same port. Must run inside tokio.
pub async fn start(
    request: &pb::ServerCompatRequest,
) -> io::Result<(ReferenceHandle, pb::ServerCompatResponse)> {
    let router = crate::server::router(request.message_receive_limit);
    let tls = crate::server::tls_config(request)?.map(|config| {
        tokio_rustls::TlsAcceptor::from(Arc::new(connect_tokio::tls::with_default_alpn(config)))
    });
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let port = listener.local_addr()?.port();
    let (stop, mut stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let _ = stream.set_nodelay(true);
            let (router, tls) = (router.clone(), tls.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                        let slot = RawSlot::default();
                        request.extensions_mut().insert(slot.clone());
                        let serve = router.handle(request);
                        async move {
                            let response = serve.await;
                            Ok::<_, Infallible>(match slot.take() {
                                Some(raw) => {
                                    raw_response(&raw).map(|body| Either::Right(body.boxed()))
                                }
                                None => response.map(Either::Left),
                            })
                        }
                    });
                let builder = auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    let response = pb::ServerCompatResponse {
        host: "127.0.0.1".to_owned(),
        port: port.into(),
        pem_cert: match request.server_creds.as_option() {
            Some(creds) if request.use_tls => creds.cert.clone(),
            _ => Vec::new(),
        },
        ..Default::default()
    };
    Ok((ReferenceHandle { stop }, response))
}
