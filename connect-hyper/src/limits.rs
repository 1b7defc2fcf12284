//! Connection and request limits of a server.

use std::time::Duration;

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
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            http1_keepalive: true,
            shutdown_timeout: None,
        }
    }
}
