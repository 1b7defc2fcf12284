//! Connection and request limits of a server.

use std::time::Duration;

/// The HTTP/2 frame size servers and client transports announce by default (64 KiB): see
/// [`Limits::http2_max_frame_size`].
pub const DEFAULT_HTTP2_MAX_FRAME_SIZE: u32 = 64 << 10;

/// `size` within the range HTTP/2 allows for `SETTINGS_MAX_FRAME_SIZE` (RFC 9113, 6.5.2): h2
/// panics on a value outside it, so every builder goes through here.
pub(crate) fn http2_frame_size(size: u32) -> u32 {
    size.clamp(1 << 14, (1 << 24) - 1)
}

/// Connection and request limits of a server. Message size limits are the router's
/// (`ServerConfig::max_recv_message_size`): the core enforces them per message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// The largest request body accepted, all messages together. A request announcing more in
    /// `Content-Length` gets `413`; a streamed body crossing it has its stream reset. `None`: no limit.
    pub max_request_body: Option<u64>,
    /// How long a client may take to send a request head on HTTP/1.1, and to finish the TLS handshake.
    pub header_read_timeout: Option<Duration>,
    /// The most concurrent HTTP/2 streams (calls) per connection.
    pub max_concurrent_streams: Option<u32>,
    /// The largest HTTP/2 frame payload a client may send (`SETTINGS_MAX_FRAME_SIZE`; values
    /// outside HTTP/2's 16 KiB to 16 MiB - 1 are clamped). A message that fits in one DATA frame
    /// reaches the decoder without a copy, so the default, [`DEFAULT_HTTP2_MAX_FRAME_SIZE`], is four
    /// times HTTP/2's 16 KiB: memory a client can make the server hold stays bounded by the
    /// flow-control windows either way.
    pub http2_max_frame_size: u32,
    /// Interval of HTTP/2 keep-alive pings; `None` sends none.
    pub keepalive_interval: Option<Duration>,
    /// How long to wait for a keep-alive ping's answer before closing the connection.
    pub keepalive_timeout: Duration,
    /// Whether HTTP/1.1 connections are kept open between requests.
    pub http1_keepalive: bool,
    /// How long a graceful shutdown waits for in-flight calls before closing connections; `None`
    /// waits as long as they take.
    pub shutdown_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body: None,
            header_read_timeout: Some(Duration::from_secs(30)),
            max_concurrent_streams: Some(256),
            http2_max_frame_size: DEFAULT_HTTP2_MAX_FRAME_SIZE,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            http1_keepalive: true,
            shutdown_timeout: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_outside_http2s_range_are_clamped() {
        assert_eq!(http2_frame_size(0), 16_384);
        assert_eq!(http2_frame_size(16_383), 16_384);
        assert_eq!(http2_frame_size(DEFAULT_HTTP2_MAX_FRAME_SIZE), 65_536);
        assert_eq!(http2_frame_size(16_777_215), 16_777_215);
        assert_eq!(http2_frame_size(u32::MAX), 16_777_215);
    }
}
