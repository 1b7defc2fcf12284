//! The settings of a client transport and their builder, the same for every adapter.

use std::marker::PhantomData;
use std::time::Duration;

/// What a client transport is built from: HTTP version, timeouts, keep-alive and TLS.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportSettings {
    /// Speak only HTTP/2: with prior knowledge (h2c) over plain TCP, and by ALPN over TLS.
    pub http2_only: bool,
    /// How long connecting may take; `None`: no limit.
    pub connect_timeout: Option<Duration>,
    /// How long an idle pooled HTTP/2 (or HTTP/3) connection is kept; `None`: for ever. A
    /// connection is idle when no call has started on it for that long (calls still in flight
    /// finish on it). Default 90 s, hyper's: below the servers' idle timeouts (ours close at
    /// 120 s), and an HTTP/2 server closing a connection says so with `GOAWAY`, after which no
    /// call is sent on it.
    pub pool_idle_timeout: Option<Duration>,
    /// How long an idle pooled HTTP/1.1 connection is kept; `None`: for ever. Default 4 s (undici's
    /// figure): HTTP/1.1 servers close idle keep-alive connections without a word, Node's (and so
    /// connect-node's) after 5 s, and a request sent while the server's close is on its way is
    /// written and then fails, with no way to tell whether the server acted on it, so it is not
    /// sent again. Closing idle connections before the server does avoids that race. (Requests the
    /// connection had not begun to write when it closed are sent again on a new connection.)
    ///
    /// connect-tokio's pool (hyper-util's) has one idle timeout for all its connections: a
    /// transport that may speak HTTP/1.1 (not [`http2_only`](Self::http2_only)) uses this one for
    /// every connection, HTTP/2 by ALPN included.
    pub http1_pool_idle_timeout: Option<Duration>,
    /// The largest HTTP/2 frame payload a server may send (`SETTINGS_MAX_FRAME_SIZE`): a response
    /// message that fits in one DATA frame is decoded without a copy. Default:
    /// [`DEFAULT_HTTP2_MAX_FRAME_SIZE`](crate::DEFAULT_HTTP2_MAX_FRAME_SIZE) (64 KiB).
    pub http2_max_frame_size: u32,
    /// Interval of HTTP/2 keep-alive pings; `None` sends none.
    pub keepalive_interval: Option<Duration>,
    /// How long to wait for a keep-alive ping's answer.
    pub keepalive_timeout: Duration,
    /// TLS settings for `https` URIs; `None`: trust no certificate.
    #[cfg(feature = "tls")]
    pub tls: Option<rustls::ClientConfig>,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            http2_only: false,
            connect_timeout: Some(Duration::from_secs(10)),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            http1_pool_idle_timeout: Some(Duration::from_secs(4)),
            http2_max_frame_size: crate::DEFAULT_HTTP2_MAX_FRAME_SIZE,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl TransportSettings {
    /// The idle timeout of a pool whose connections may be HTTP/1.1 or HTTP/2 (one timeout for
    /// both): HTTP/2's when the transport speaks only HTTP/2, else HTTP/1.1's.
    pub fn mixed_pool_idle_timeout(&self) -> Option<Duration> {
        if self.http2_only {
            self.pool_idle_timeout
        } else {
            self.http1_pool_idle_timeout
        }
    }

    /// The HTTP/2 frame size to announce: [`http2_max_frame_size`](Self::http2_max_frame_size)
    /// within the range RFC 9113 allows.
    pub fn http2_frame_size(&self) -> u32 {
        crate::limits::http2_frame_size(self.http2_max_frame_size)
    }

    /// The TLS configuration to connect with: the one given (or one trusting nothing), its ALPN list
    /// `h2` (then `http/1.1` unless HTTP/2 only).
    #[cfg(feature = "tls")]
    pub fn tls_config(&self) -> rustls::ClientConfig {
        let config = self
            .tls
            .clone()
            .unwrap_or_else(crate::tls::client_config_without_roots);
        crate::tls::with_client_alpn(config, self.http2_only)
    }
}

/// Builds a client transport `T` of an adapter (`connect_tokio::HyperTransport`,
/// `connect_smol::SmolTransport`) from [`TransportSettings`].
pub struct TransportBuilder<T> {
    settings: TransportSettings,
    transport: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for TransportBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportBuilder")
            .field("settings", &self.settings)
            .finish()
    }
}

impl<T> Default for TransportBuilder<T> {
    fn default() -> Self {
        TransportBuilder {
            settings: TransportSettings::default(),
            transport: PhantomData,
        }
    }
}

impl<T: From<TransportSettings>> TransportBuilder<T> {
    /// Speak only HTTP/2: with prior knowledge (h2c) over plain TCP. Required for gRPC and for
    /// full-duplex bidi streams over plain TCP.
    pub fn http2_only(mut self, enabled: bool) -> Self {
        self.settings.http2_only = enabled;
        self
    }

    /// How long connecting (and the TLS handshake) may take; `None`: no limit.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long an idle pooled HTTP/2 connection is kept (default 90 s); `None`: for ever. A
    /// connection is idle when no call has started on it for that long (calls still in flight
    /// finish on it). See [`TransportSettings::pool_idle_timeout`].
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.pool_idle_timeout = timeout;
        self
    }

    /// How long an idle pooled HTTP/1.1 connection is kept (default 4 s, below the 5 s after which
    /// Node's servers close them); `None`: for ever. See
    /// [`TransportSettings::http1_pool_idle_timeout`].
    pub fn http1_pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.http1_pool_idle_timeout = timeout;
        self
    }

    /// The largest HTTP/2 frame payload the server may send (default 64 KiB; clamped to HTTP/2's
    /// 16 KiB to 16 MiB - 1):
    /// response messages that fit in one frame are decoded without a copy.
    pub fn http2_max_frame_size(mut self, size: u32) -> Self {
        self.settings.http2_max_frame_size = size;
        self
    }

    /// HTTP/2 keep-alive pings: the interval between pings and how long to wait for an answer.
    pub fn keepalive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.settings.keepalive_interval = interval;
        self.settings.keepalive_timeout = timeout;
        self
    }

    /// TLS settings for `https` URIs (trust roots, client certificate). The ALPN list is set by the
    /// transport. Without it, `https` connections trust no certificate.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.settings.tls = Some(config);
        self
    }

    /// The transport.
    pub fn build(self) -> T {
        T::from(self.settings)
    }
}
