//! The server's limits and refusals as an attacker meets them: client faults answered with the
//! right code, connection management (silence, idleness, age, request count, connection count,
//! keep-alive pings) and the response budget.
//!
//! Raw clients are blocking sockets on threads of their own, so that the checks need no runtime's
//! IO and can send what no real client would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use connect_hyper::Limits;
use connect_typed::{Codec, Protocol, RequestBody, Transport};

use crate::hyper::{client, HyperAdapter};
use crate::proto::testkit::v1::EchoRequest;
use crate::suite::{echo, CALL_LIMIT};
use crate::{bounded, Http, Suite, TestServer};

/// The client preface, an empty SETTINGS frame and an ACK of the server's SETTINGS.
const HTTP2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\
    \x00\x00\x00\x04\x00\x00\x00\x00\x00\
    \x00\x00\x00\x04\x01\x00\x00\x00\x00";

/// How long a raw exchange may take before the check fails.
const RAW_LIMIT: Duration = Duration::from_secs(20);

/// Runs blocking `work` on a thread of its own and awaits its result.
async fn blocking<A: HyperAdapter, T: Send + 'static>(
    suite: &Suite<A>,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = futures_channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    bounded(&*suite.runtime, RAW_LIMIT, what, result)
        .await
        .expect("the raw client's thread answers")
}

fn authority(server: &TestServer) -> String {
    server.base().authority().expect("authority").to_string()
}

/// Sends `request` on a fresh connection and reads what comes back until the server closes or
/// `wait` passes.
fn exchange(authority: &str, request: &[u8], wait: Duration) -> std::io::Result<String> {
    let mut socket = TcpStream::connect(authority)?;
    socket.set_read_timeout(Some(wait))?;
    socket.write_all(request)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let started = Instant::now();
    while started.elapsed() < wait {
        match socket.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// How long until the server closes a connection that sent `hello`; `None` if it is still open
/// after `wait`. What the server sends meanwhile (SETTINGS, pings) is read and dropped.
fn closed_after(
    authority: &str,
    hello: &[u8],
    wait: Duration,
) -> std::io::Result<Option<Duration>> {
    let mut socket = TcpStream::connect(authority)?;
    socket.write_all(hello)?;
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        match socket.read(&mut chunk) {
            Ok(0) => return Ok(Some(started.elapsed())),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            // Reset by the server: closed too.
            Err(_) => return Ok(Some(started.elapsed())),
        }
    }
}

/// An HTTP/2 frame on `stream`.
fn http2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A HEADERS frame (END_HEADERS, and END_STREAM when `end`) of a Connect unary call with an empty
/// request, in HPACK with no table and no Huffman coding.
fn unary_headers(stream: u32, end: bool) -> Vec<u8> {
    let literal = |index: &[u8], value: &str| {
        let mut field = index.to_vec();
        field.push(value.len() as u8);
        field.extend_from_slice(value.as_bytes());
        field
    };
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.extend(literal(&[0x04], "/testkit.v1.EchoService/Unary")); // :path
    block.extend(literal(&[0x01], "x")); // :authority
    block.extend(literal(&[0x0f, 0x10], "application/proto")); // content-type
    let flags = if end { 0x4 | 0x1 } else { 0x4 };
    http2_frame(0x1, flags, stream, &block)
}

/// A HEADERS frame (END_HEADERS only) of a POST to `path` with `headers`, in HPACK with no table
/// and no Huffman coding.
fn request_headers(stream: u32, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut block = vec![0x83, 0x86, 0x04, path.len() as u8]; // :method POST, :scheme http, :path
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 0x01, b'x']); // :authority
    for (name, value) in headers {
        // A literal field without indexing, with its name.
        block.extend_from_slice(&[0x00, name.len() as u8]);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    http2_frame(0x1, 0x4, stream, &block)
}

/// The frames on `stream` (type, flags, payload length) until one ends it.
fn frames_until_stream_ends(
    socket: &mut TcpStream,
    stream: u32,
) -> std::io::Result<Vec<(u8, u8, usize)>> {
    let mut frames = Vec::new();
    loop {
        let mut header = [0u8; 9];
        socket.read_exact(&mut header)?;
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0u8; len];
        socket.read_exact(&mut payload)?;
        let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        if id != stream {
            continue;
        }
        frames.push((header[3], header[4], len));
        if matches!(header[3], 0x0 | 0x1) && header[4] & 0x1 != 0 {
            return Ok(frames);
        }
        if header[3] == 0x3 {
            return Err(std::io::Error::other(format!("stream {stream} reset")));
        }
    }
}

/// A raw HTTP/2 call: what it is, its path, its headers, its body, and the type of the frame that
/// must end its response.
type RawCase = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u8,
);

/// Makes one call on a fresh HTTP/2 connection: `headers`, then `body` in a DATA frame that ends
/// the request; the response's frames.
fn raw_http2_call(
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Vec<(u8, u8, usize)>> {
    let mut socket = TcpStream::connect(authority)?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = HTTP2_HELLO.to_vec();
    request.extend(request_headers(1, path, headers));
    request.extend(http2_frame(0x0, 0x1, 1, body));
    socket.write_all(&request)?;
    frames_until_stream_ends(&mut socket, 1)
}

/// Reads frames until one on `stream` ends it.
fn read_until_stream_ends(socket: &mut TcpStream, stream: u32) -> std::io::Result<()> {
    frames_until_stream_ends(socket, stream).map(drop)
}

/// Makes a call on a fresh HTTP/2 connection, then sends `then` a byte every `pace`; how long after
/// its first byte the server closed the connection (`None`: still open a second after the last).
fn closed_while_trickling(
    authority: &str,
    then: &[u8],
    pace: Duration,
) -> std::io::Result<Option<Duration>> {
    let mut socket = TcpStream::connect(authority)?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    socket.write_all(HTTP2_HELLO)?;
    socket.write_all(&unary_headers(1, true))?;
    read_until_stream_ends(&mut socket, 1)?;
    let wait = pace * then.len() as u32 + Duration::from_secs(1);
    let mut writer = socket.try_clone()?;
    let then = then.to_vec();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let trickle = std::thread::spawn(move || {
        for byte in then {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            if stopped.recv_timeout(pace).is_ok() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            break None;
        }
        socket.set_read_timeout(Some(left))?;
        match socket.read(&mut chunk) {
            Ok(0) => break Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Reset by the server: closed too.
            Err(_) => break Some(started.elapsed()),
        }
    };
    let _ = stop.send(());
    let _ = trickle.join();
    Ok(closed)
}

fn post(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers.iter().any(|(n, _)| *n == "content-length") {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn envelope(payload: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(payload);
    framed
}

/// The `x-peer` header the test service answers with: which connection served the call.
fn peer<T>(response: &connect_typed::Response<T>) -> String {
    response
        .headers()
        .get("x-peer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl<A: HyperAdapter> Suite<A> {
    async fn serve_limited(&self, http: Http, limits: Limits) -> TestServer {
        let router = self.router(connect_typed::ServerConfig::default());
        let serve = self.adapter.serve_with_limits(router, http, limits);
        self.call("starting a server", serve).await
    }

    /// Requests that are the client's fault get the client's codes (PROTOCOL-TRAPS 27, 29, 30): a
    /// body or GET message that is not the gzip it says is `invalid_argument`, a zstd window past
    /// our cap `resource_exhausted`, a unary request with two messages `unimplemented`, and a
    /// `Content-Length` past the message limit `resource_exhausted` from the head alone, while the
    /// rest of the body never comes.
    pub async fn client_faults_get_client_codes(&self) {
        let server = self.serve_limited(Http::Http1, Limits::default()).await;
        let authority = authority(&server);
        let unary = "/testkit.v1.EchoService/Unary";
        let proto = ("content-type", "application/proto");
        let zstd_bomb: &[u8] = &[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xA8, 0x09, 0x00, 0x00, 0x00];
        // "not gzip at all", URL-safe base64.
        let message = "bm90IGd6aXAgYXQgYWxs";
        let get = format!(
            "GET /testkit.v1.EchoService/Lookup?connect=v1&encoding=proto&base64=1&compression=gzip\
             &message={message} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        );
        let two_messages = [envelope(b""), envelope(b"")].concat();
        let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
            (
                "a Connect body that is not gzip",
                post(
                    unary,
                    &[proto, ("content-encoding", "gzip")],
                    b"not gzip at all",
                ),
                "400",
                "invalid_argument",
            ),
            (
                "a GET message that is not gzip",
                get.into_bytes(),
                "400",
                "invalid_argument",
            ),
            (
                "a zstd window past the cap",
                post(unary, &[proto, ("content-encoding", "zstd")], zstd_bomb),
                "429",
                "resource_exhausted",
            ),
            (
                "two messages to a unary gRPC-Web method",
                post(
                    unary,
                    &[("content-type", "application/grpc-web+proto")],
                    &two_messages,
                ),
                "200",
                "grpc-status: 12",
            ),
            (
                "a body announced far past the message limit",
                post(
                    unary,
                    &[proto, ("content-length", "5000000000")],
                    b"0123456789",
                ),
                "429",
                "resource_exhausted",
            ),
        ];
        for (what, request, status, expected) in cases {
            let authority = authority.clone();
            let started = Instant::now();
            let answer = blocking(self, what, move || {
                exchange(&authority, &request, Duration::from_secs(5))
            })
            .await
            .expect("a raw exchange");
            let status_line = answer.lines().next().unwrap_or_default();
            assert!(
                status_line.contains(status),
                "{what}: {status_line:?}\n{answer}"
            );
            assert!(
                answer.to_ascii_lowercase().contains(expected),
                "{what}: no {expected:?} in\n{answer}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "{what}: answered only after {:?}",
                started.elapsed()
            );
        }
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// A connection that completes no request head within [`Limits::header_read_timeout`] is
    /// closed, whatever its version: one that sends nothing, and an HTTP/2 connection that sends
    /// its preface and settings but no request.
    pub async fn connections_without_a_request_are_closed(&self) {
        let mut limits = Limits::default();
        limits.header_read_timeout = Some(Duration::from_millis(300));
        let server = self.serve_limited(Http::H2c, limits).await;
        for (what, hello) in [
            ("silent TCP", &b""[..]),
            ("HTTP/2 without a request", HTTP2_HELLO),
        ] {
            let authority = authority(&server);
            let closed = blocking(self, what, move || {
                closed_after(&authority, hello, Duration::from_secs(5))
            })
            .await
            .expect("a raw connection");
            assert!(closed.is_some(), "{what}: still open after 5 s");
        }
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// On HTTP/2, [`Limits::header_read_timeout`] also bounds a request head from its first byte:
    /// a connection that has made a call and then sends the next call's HEADERS frame a byte at a
    /// time is closed within the timeout (not at the idle timeout), while one that just stays idle
    /// is not.
    pub async fn trickled_http2_request_heads_are_cut(&self) {
        let mut limits = Limits::default();
        limits.header_read_timeout = Some(Duration::from_millis(400));
        limits.idle_timeout = None;
        let server = self.serve_limited(Http::H2c, limits).await;
        let pace = Duration::from_millis(100);
        // About 60 bytes: six seconds at this pace.
        let head = unary_headers(3, true);
        for (trickled, then) in [(true, head), (false, Vec::new())] {
            let authority = authority(&server);
            let what = if trickled {
                "a trickled head"
            } else {
                "an idle connection"
            };
            let closed = blocking(self, what, move || {
                closed_while_trickling(&authority, &then, pace)
            })
            .await
            .expect("a raw HTTP/2 connection");
            if !trickled {
                assert_eq!(closed, None, "{what} was closed");
                continue;
            }
            let closed = closed.unwrap_or_else(|| panic!("{what}: still open once it was sent"));
            assert!(
                closed < Duration::from_secs(3),
                "{what}: closed only after {closed:?}"
            );
        }
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// Over HTTP/2 a response's last frame ends its stream: a Connect unary response's data, a
    /// Connect stream's end-of-stream message, gRPC's trailers; no empty DATA frame of its own
    /// follows (a frame per call for both peers to handle, which the response budget's look at a
    /// unary response before its head once added). Run with the default limits, which hold the
    /// budget.
    pub async fn http2_responses_end_with_their_last_frame(&self) {
        let server = self.serve_limited(Http::H2c, Limits::default()).await;
        let message = connect_typed::encode(Codec::Proto, &echo("hi")).expect("a message");
        let cases: [RawCase; 4] = [
            (
                "Connect unary",
                "/testkit.v1.EchoService/Unary",
                vec![("content-type", "application/proto")],
                message.to_vec(),
                0x0,
            ),
            (
                "Connect server stream",
                "/testkit.v1.EchoService/ServerStream",
                vec![("content-type", "application/connect+proto")],
                envelope(&message),
                0x0,
            ),
            (
                "gRPC unary",
                "/testkit.v1.EchoService/Unary",
                vec![("content-type", "application/grpc"), ("te", "trailers")],
                envelope(&message),
                0x1,
            ),
            (
                "gRPC-Web unary",
                "/testkit.v1.EchoService/Unary",
                vec![("content-type", "application/grpc-web")],
                envelope(&message),
                0x0,
            ),
        ];
        for (what, path, headers, body, last_kind) in cases {
            let authority = authority(&server);
            let frames = blocking(self, what, move || {
                raw_http2_call(&authority, path, &headers, &body)
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            let empty_data = frames.iter().any(|&(kind, _, len)| kind == 0x0 && len == 0);
            let &(kind, _, len) = frames.last().expect("a frame ends the stream");
            assert!(
                !empty_data && kind == last_kind && len > 0,
                "{what}: the response's frames (type, flags, length) were {frames:?}"
            );
        }
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// HTTP/2 keep-alive pings close a peer that does not answer them; without pings the same
    /// silent peer stays connected.
    pub async fn keepalive_pings_close_dead_peers(&self) {
        for pings in [true, false] {
            let mut limits = Limits::default();
            limits.header_read_timeout = None;
            limits.idle_timeout = None;
            if pings {
                limits.keepalive_interval = Some(Duration::from_millis(200));
                limits.keepalive_timeout = Duration::from_millis(200);
            }
            let server = self.serve_limited(Http::H2c, limits).await;
            let authority = authority(&server);
            let closed = blocking(self, "a dead peer", move || {
                closed_after(&authority, HTTP2_HELLO, Duration::from_millis(2500))
            })
            .await
            .expect("a raw connection");
            assert_eq!(
                closed.is_some(),
                pings,
                "pings: {pings}, closed: {closed:?}"
            );
            server.stop_within(&*self.runtime, CALL_LIMIT).await;
        }
    }

    /// A connection with no call in flight for [`Limits::idle_timeout`] is closed (the client's
    /// next call goes on a new connection); without the timeout, the same connection serves both.
    pub async fn idle_connections_are_closed(&self) {
        for http in [Http::Http1, Http::H2c] {
            for idle_timeout in [Some(Duration::from_millis(300)), None] {
                let mut limits = Limits::default();
                limits.idle_timeout = idle_timeout;
                let server = self.serve_limited(http, limits).await;
                let client = client(
                    self,
                    self.adapter.transport(http),
                    server.base(),
                    Protocol::Connect,
                );
                let first = self
                    .call("a first call", client.unary(&echo("one")))
                    .await
                    .unwrap();
                self.sleep(Duration::from_millis(900)).await;
                let second = self
                    .call("a later call", client.unary(&echo("two")))
                    .await
                    .unwrap();
                let reconnected = peer(&first) != peer(&second);
                assert_eq!(
                    reconnected,
                    idle_timeout.is_some(),
                    "{http:?} idle timeout {idle_timeout:?}: {} then {}",
                    peer(&first),
                    peer(&second)
                );
                server.stop_within(&*self.runtime, CALL_LIMIT).await;
            }
        }
    }

    /// After [`Limits::max_requests_per_connection`] calls a connection drains: every call succeeds,
    /// the calls past the limit on a new connection.
    pub async fn connections_rotate_after_their_request_limit(&self) {
        let mut limits = Limits::default();
        limits.max_requests_per_connection = Some(2);
        let server = self.serve_limited(Http::H2c, limits).await;
        let client = client(
            self,
            self.adapter.transport(Http::H2c),
            server.base(),
            Protocol::Grpc,
        );
        let mut peers = Vec::new();
        for i in 0..5 {
            let response = self
                .call("a call", client.unary(&echo(&format!("{i}"))))
                .await;
            let response = response.unwrap_or_else(|e| panic!("call {i}: {e}"));
            peers.push(peer(&response));
            // Let the GOAWAY reach the client's pool.
            self.sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(peers[0], peers[1], "{peers:?}");
        assert_ne!(peers[1], peers[2], "{peers:?}");
        assert_eq!(peers[2], peers[3], "{peers:?}");
        assert_ne!(peers[3], peers[4], "{peers:?}");
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// At [`Limits::max_connection_age`] a connection drains: a call in flight finishes, the next
    /// goes on a new connection; a stream still running after the grace period is cut.
    pub async fn old_connections_drain_then_close(&self) {
        let mut limits = Limits::default();
        limits.max_connection_age = Some(Duration::from_millis(300));
        limits.max_connection_age_grace = Some(Duration::from_millis(1500));
        let server = self.serve_limited(Http::H2c, limits).await;
        let client = client(
            self,
            self.adapter.transport(Http::H2c),
            server.base(),
            Protocol::Grpc,
        );
        let slow = EchoRequest {
            delay_ms: 700,
            ..echo("slow")
        };
        let first = self
            .call("a call across the age", client.unary(&slow))
            .await;
        let first = first.expect("a call in flight when the age passed finishes");
        let second = self
            .call("a later call", client.unary(&echo("later")))
            .await;
        let second = second.expect("a later call");
        assert_ne!(
            peer(&first),
            peer(&second),
            "the old connection was not left"
        );
        // A stream outliving the grace is cut.
        let endless = EchoRequest {
            count: -1,
            delay_ms: 50,
            ..echo("endless")
        };
        let cut = async {
            let mut stream = client.server_stream(&endless).await?;
            while let Some(item) = futures_util::StreamExt::next(&mut stream).await {
                item?;
            }
            Ok::<(), connect_typed::Status>(())
        };
        let started = Instant::now();
        let result = self.call("a stream past the grace", cut).await;
        assert!(result.is_err(), "an endless stream ended well");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// At [`Limits::max_connections`] the server accepts no more until one closes.
    pub async fn connection_count_is_bounded(&self) {
        let mut limits = Limits::default();
        limits.max_connections = Some(1);
        let server = self.serve_limited(Http::H2c, limits).await;
        let authority = authority(&server);
        // One connection holds the only place.
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        let (held_tx, held) = futures_channel::oneshot::channel();
        std::thread::spawn(move || {
            let held = TcpStream::connect(&authority).and_then(|mut s| {
                s.write_all(HTTP2_HELLO)?;
                let mut settings = [0u8; 9];
                s.read_exact(&mut settings)?;
                Ok(s)
            });
            let _ = held_tx.send(held.is_ok());
            let _ = release.recv_timeout(Duration::from_secs(20));
            drop(held);
        });
        assert!(self
            .call("the first connection", held)
            .await
            .unwrap_or(false));
        let client = client(
            self,
            self.adapter.transport(Http::H2c),
            server.base(),
            Protocol::Grpc,
        );
        let request = echo("waits");
        let mut waiting = Box::pin(client.unary(&request));
        let early = futures_util::future::select(
            waiting.as_mut(),
            self.runtime
                .sleep_until(self.runtime.now() + Duration::from_millis(500)),
        )
        .await;
        assert!(
            matches!(early, futures_util::future::Either::Right(_)),
            "a call was served past the connection limit"
        );
        drop(release_tx);
        let served = self.call("the call once a place is free", waiting).await;
        served.expect("served once the first connection closed");
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }

    /// A client that sends calls and never reads their responses makes the server hold at most its
    /// connection's response budget: past it, its calls get `resource_exhausted`, while another
    /// client's calls are served; once it reads (drops) what it got, its calls are served again.
    pub async fn response_budget_refuses_clients_that_do_not_read(&self) {
        let mut limits = Limits::default();
        limits.response_buffer_per_connection = Some(4 << 20);
        let server = self.serve_limited(Http::H2c, limits).await;
        let transport = self.adapter.transport(Http::H2c);
        let big = EchoRequest {
            response_padding: 1 << 20,
            ..echo("big")
        };
        let uri: http::Uri = format!("{}testkit.v1.EchoService/Unary", server.base())
            .parse()
            .expect("a URI");
        let message = connect_typed::encode(Codec::Proto, &big).expect("an encoded request");
        let body = Bytes::from(envelope(&message));
        let request = || {
            http::Request::post(uri.clone())
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(RequestBody::full(body.clone()))
                .expect("a request")
        };
        // 24 responses of 1 MiB, none read: the client's windows take the first few MiB, the
        // server's budget a few more, the rest are refused.
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..24 {
            let response = self.call("an unread call", transport.send(request())).await;
            let response = response.expect("a response head");
            let status = response
                .headers()
                .get("grpc-status")
                .map(|v| v.as_bytes().to_vec());
            if status.as_deref() == Some(b"8") {
                refused += 1;
            }
            held.push(response);
        }
        assert!(refused >= 8, "only {refused} of 24 unread calls refused");
        // Another client is served meanwhile.
        let other = client(
            self,
            self.adapter.transport(Http::H2c),
            server.base(),
            Protocol::Grpc,
        );
        let served = self.call("another client's call", other.unary(&big)).await;
        served.expect("another client is served");
        // Dropping the held responses (the client resets their streams) frees the budget.
        drop(held);
        self.sleep(Duration::from_millis(300)).await;
        let again = self
            .call("a call after reading", transport.send(request()))
            .await;
        let again = again.expect("a response head");
        assert_ne!(
            again.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"8"[..]),
            "refused after the client let go of everything"
        );
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }
}

/// Expands to one `#[test]` per limit check of [`Suite`] over a [`HyperAdapter`], like
/// [`e2e_tests!`](crate::e2e_tests).
#[macro_export]
macro_rules! limits_tests {
    ($adapter:expr, $block_on:path) => {
        $crate::e2e_tests!(@each $adapter, $block_on;
            client_faults_get_client_codes, connections_without_a_request_are_closed,
            trickled_http2_request_heads_are_cut, http2_responses_end_with_their_last_frame,
            keepalive_pings_close_dead_peers, idle_connections_are_closed,
            connections_rotate_after_their_request_limit, old_connections_drain_then_close,
            connection_count_is_bounded, response_budget_refuses_clients_that_do_not_read);
    };
}
