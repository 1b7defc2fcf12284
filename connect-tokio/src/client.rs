//! The client transport: hyper's pooled client under the typed layer's [`Transport`] trait.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use connect_hyper::{transport_error, ClientBody, TransportBuilder, TransportSettings};
use connect_typed::{RequestBody, Transport, TransportError};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// A pooled HTTP client for the typed layer's `Client`: HTTP/1.1 or HTTP/2 with prior knowledge (h2c)
/// over plain TCP, HTTP/2 or HTTP/1.1 over TLS by ALPN (feature `tls`). Cheap to clone; clones share
/// the connection pool.
///
/// Request bodies stream while the response is read, so bidi calls are full duplex over HTTP/2 (and
/// half duplex over HTTP/1.1). Dropping a call's future or response stream aborts its request body and
/// drops the response body: hyper then resets the HTTP/2 stream (`RST_STREAM`) or closes the HTTP/1.1
/// connection, and no task is left behind.
#[derive(Clone, Debug)]
pub struct HyperTransport {
    client: HyperClient<Connector, RequestBody>,
}

impl Default for HyperTransport {
    fn default() -> Self {
        HyperTransport::new()
    }
}

impl HyperTransport {
    /// A transport with default settings: HTTP/1.1 over plain TCP.
    pub fn new() -> Self {
        HyperTransport::builder().build()
    }

    /// A transport that speaks HTTP/2 with prior knowledge (h2c) over plain TCP, and HTTP/2 over TLS.
    pub fn http2() -> Self {
        HyperTransport::builder().http2_only(true).build()
    }

    /// Settings for a transport.
    pub fn builder() -> HyperTransportBuilder {
        HyperTransportBuilder::default()
    }
}

/// Builds a [`HyperTransport`]: `HyperTransport::builder().http2_only(true).build()`.
pub type HyperTransportBuilder = TransportBuilder<HyperTransport>;

impl From<TransportSettings> for HyperTransport {
    fn from(settings: TransportSettings) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(settings.connect_timeout);
        #[cfg(feature = "tls")]
        let connector = {
            let mut config = settings.tls_config();
            // hyper-rustls sets the ALPN list itself.
            config.alpn_protocols.clear();
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http();
            if settings.http2_only {
                builder.enable_http2().wrap_connector(http)
            } else {
                builder.enable_all_versions().wrap_connector(http)
            }
        };
        #[cfg(not(feature = "tls"))]
        let connector = http;
        let mut builder = HyperClient::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.mixed_pool_idle_timeout())
            .http2_only(settings.http2_only)
            .http2_max_frame_size(settings.http2_frame_size())
            .http2_keep_alive_interval(settings.keepalive_interval)
            .http2_keep_alive_timeout(settings.keepalive_timeout);
        HyperTransport {
            client: builder.build(connector),
        }
    }
}

impl Transport for HyperTransport {
    type ResponseBody = ClientBody;
    type Future = ResponseFuture;

    fn send(&self, request: http::Request<RequestBody>) -> ResponseFuture {
        let resend = Resend {
            client: self.client.clone(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            body: request.body().resend_handle(),
            left: MAX_RESENDS,
        };
        ResponseFuture {
            inner: self.client.request(request),
            resend: Some(resend),
        }
    }
}

/// How many times a request is sent again after its connection was abandoned before it came up.
const MAX_RESENDS: u8 = 3;

/// What it takes to send a request again: hyper-util's pool fails the requests waiting for an HTTP/2
/// connection that another request started, when that request is dropped before the connection is up
/// (`CheckoutNoLongerWanted`, a connect error it does not retry itself). None of such a request has
/// been sent, so sending it again is safe.
struct Resend {
    client: HyperClient<Connector, RequestBody>,
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    body: RequestBody,
    left: u8,
}

impl Resend {
    fn request(&self) -> http::Request<RequestBody> {
        let mut request = http::Request::new(self.body.resend_handle());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Whether `error` is the pool's "the connection this request waited for was abandoned".
fn connection_abandoned(error: &hyper_util::client::legacy::Error) -> bool {
    // The pool's error type is private; its message is the only handle on it.
    error.is_connect()
        && std::error::Error::source(error).is_some_and(|e| e.to_string() == "request was canceled")
}

/// The future of [`HyperTransport::send`].
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture {
    inner: hyper_util::client::legacy::ResponseFuture,
    resend: Option<Resend>,
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<ClientBody>, TransportError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let result = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
            match result {
                Ok(response) => {
                    self.resend = None;
                    return Poll::Ready(Ok(response.map(ClientBody::new)));
                }
                Err(error) => {
                    if connection_abandoned(&error) {
                        if let Some(resend) = self.resend.as_mut().filter(|r| r.left > 0) {
                            resend.left -= 1;
                            let request = resend.request();
                            self.inner = resend.client.request(request);
                            continue;
                        }
                    }
                    self.resend = None;
                    return Poll::Ready(Err(transport_error(error)));
                }
            }
        }
    }
}
