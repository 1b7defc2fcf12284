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
///
/// Each field says its default and why. The defaults aim at a server facing the open internet:
/// nothing a well-behaved client does is refused, and what a client can make the server hold
/// (connections, time, memory) is bounded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// The largest request body accepted, all messages together. A request announcing more in
    /// `Content-Length` is refused from its head (`resource_exhausted` in its protocol); a streamed
    /// body crossing it has its stream reset.
    ///
    /// Default `None`: a client stream may legitimately run for hours, so only the application
    /// knows a sensible total; each message is bounded by the router's message limit anyway.
    pub max_request_body: Option<u64>,
    /// How long a client may take to send a request head, and to finish the TLS handshake. A
    /// connection that has not completed a first request head within it (whatever its HTTP version:
    /// a TCP connection that sends nothing, an HTTP/2 connection that sends no request) is closed.
    /// On HTTP/2 it also bounds every later request head from its first byte (the HEADERS frame
    /// and its CONTINUATIONs; likewise a frame header, or a frame other than DATA): a connection
    /// whose client trickles one is closed, where before only the idle timeout ended it.
    ///
    /// Default 30 s, as connectrpc's and Go's servers: long enough for any real client on a slow
    /// network, short enough that silent connections cannot pile up.
    pub header_read_timeout: Option<Duration>,
    /// The most concurrent HTTP/2 streams (calls) per connection.
    ///
    /// Default 256: what gRPC clients expect to be able to multiplex; with the response budget it
    /// bounds what one connection can make the server hold.
    pub max_concurrent_streams: Option<u32>,
    /// The largest HTTP/2 frame payload a client may send (`SETTINGS_MAX_FRAME_SIZE`; values
    /// outside HTTP/2's 16 KiB to 16 MiB - 1 are clamped). A message that fits in one DATA frame
    /// reaches the decoder without a copy, so the default, [`DEFAULT_HTTP2_MAX_FRAME_SIZE`], is four
    /// times HTTP/2's 16 KiB: memory a client can make the server hold stays bounded by the
    /// flow-control windows either way.
    pub http2_max_frame_size: u32,
    /// Interval of HTTP/2 keep-alive pings: a peer that does not answer one within
    /// [`keepalive_timeout`](Self::keepalive_timeout) is taken for dead and its connection closed.
    ///
    /// Default `None`: pings cost every idle connection a wakeup and a packet; the idle timeout
    /// already closes connections nobody uses. Set it when dead peers (a NAT that dropped the
    /// connection) must be noticed while calls are in flight.
    pub keepalive_interval: Option<Duration>,
    /// How long to wait for a keep-alive ping's answer before closing the connection.
    ///
    /// Default 20 s (hyper's and gRPC's): a round trip on the worst network, with room to spare.
    pub keepalive_timeout: Duration,
    /// Whether HTTP/1.1 connections are kept open between requests. Default `true`.
    pub http1_keepalive: bool,
    /// How long a graceful shutdown waits for in-flight calls before closing connections; `None`
    /// waits as long as they take.
    ///
    /// Default `None`: the application decides how long a deploy may wait for its longest calls.
    pub shutdown_timeout: Option<Duration>,
    /// The most connections open at once. At the limit the server stops accepting (new connections
    /// wait in the kernel's listen queue) until one closes.
    ///
    /// Default `None`: the process's file-descriptor limit bounds it already, and the accept loop
    /// survives running out of descriptors; a fixed number would be wrong for most deployments.
    pub max_connections: Option<usize>,
    /// How long a connection may live. Past it, it stops taking calls (HTTP/2 `GOAWAY`; HTTP/1.1
    /// closes after the current response) and its calls in flight finish, for at most
    /// [`max_connection_age_grace`](Self::max_connection_age_grace).
    ///
    /// Default `None`, as gRPC's: clients behind a layer-4 balancer reconnect only when told to,
    /// so set it to spread long-lived clients over new servers.
    pub max_connection_age: Option<Duration>,
    /// How long calls in flight may go on once a connection reached its
    /// [`max_connection_age`](Self::max_connection_age); then it is closed. `None`: as long as they
    /// take.
    ///
    /// Default 30 s: a unary call is long done by then; streams are cut, and reconnect.
    pub max_connection_age_grace: Option<Duration>,
    /// How long a connection may go without a call in flight before it is closed (HTTP/2
    /// `GOAWAY`).
    ///
    /// Default 120 s: longer than client pools keep idle connections (90 s for ours and hyper's),
    /// so that clients let go first, and short enough that abandoned connections do not pile up.
    pub idle_timeout: Option<Duration>,
    /// The most calls one connection may carry; the connection then drains as at its maximum age
    /// (calls already received are served) and the client opens a new one.
    ///
    /// Default `None`: the number of calls says nothing about harm. Set it to rotate connections
    /// behind layer-4 balancers by traffic rather than by time.
    pub max_requests_per_connection: Option<u64>,
    /// The most response bytes one connection's calls may hold while its client does not read
    /// them. Past it, new calls on the connection get `resource_exhausted`, a unary response that
    /// would cross it is replaced by `resource_exhausted`, and streams wait before producing more.
    /// A connection holding nothing is always served one response, however large.
    ///
    /// Default 16 MiB: four responses at the default 4 MiB message limit, far more than a client
    /// that reads its responses ever has waiting, and 64 such connections before the server-wide
    /// budget is reached.
    pub response_buffer_per_connection: Option<usize>,
    /// The most response bytes all connections together may hold for clients that do not read
    /// them. Past it, connections that hold any get `resource_exhausted` for new calls and their
    /// streams wait; connections that hold none are still served, so the clients filling the
    /// budget are the ones refused.
    ///
    /// Default 256 MiB: a bound on what slow or hostile readers can make the server hold, well
    /// within any server's memory.
    pub response_buffer_total: Option<usize>,
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
            max_connections: None,
            max_connection_age: None,
            max_connection_age_grace: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(120)),
            max_requests_per_connection: None,
            response_buffer_per_connection: Some(16 << 20),
            response_buffer_total: Some(256 << 20),
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
