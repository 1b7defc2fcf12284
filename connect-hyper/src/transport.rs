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
    /// How long an idle pooled connection is kept; `None`: for ever. An HTTP/2 connection is idle
    /// when no call has started on it for that long (calls still in flight finish on it).
    pub pool_idle_timeout: Option<Duration>,
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
            http2_max_frame_size: crate::DEFAULT_HTTP2_MAX_FRAME_SIZE,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl TransportSettings {
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

    /// How long an idle pooled connection is kept; `None`: for ever. An HTTP/2 connection is idle
    /// when no call has started on it for that long (calls still in flight finish on it).
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.pool_idle_timeout = timeout;
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
