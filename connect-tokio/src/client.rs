//! The client transport: hyper's pooled client under the typed layer's [`Transport`] trait.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use connect_hyper::{transport_error, ClientBody, TransportBuilder, TransportSettings};
use connect_proto::rpc::{RequestBody, Transport, TransportError};
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
            .pool_idle_timeout(settings.pool_idle_timeout)
            .http2_only(settings.http2_only)
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
        ResponseFuture {
            inner: self.client.request(request),
        }
    }
}

/// The future of [`HyperTransport::send`].
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture {
    inner: hyper_util::client::legacy::ResponseFuture,
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<ClientBody>, TransportError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx).map(|result| {
            result
                .map(|response| response.map(ClientBody::new))
                .map_err(transport_error)
        })
    }
}
