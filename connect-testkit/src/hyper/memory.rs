//! What idle connections cost the server: resident memory per connection, measured in-process.
//!
//! The clients are plain blocking sockets on a thread of their own (kernel memory, not the
//! process's), so the growth of the process's resident set is the server's. Run it alone in its test
//! binary: other tests running meanwhile would add their own memory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use connect_hyper::Limits;

use crate::hyper::HyperAdapter;
use crate::suite::CALL_LIMIT;
use crate::{bounded, Http, Suite};

/// Opening thousands of connections to a debug build takes a while.
const OPEN_LIMIT: Duration = Duration::from_secs(60);

/// The client preface, an empty SETTINGS frame and an ACK of the server's SETTINGS.
const HTTP2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\
    \x00\x00\x00\x04\x00\x00\x00\x00\x00\
    \x00\x00\x00\x04\x01\x00\x00\x00\x00";

/// The process's resident set in bytes (Linux); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Opens `count` connections to `authority` one after the other, writing `hello` on each and,
/// when `hello` is not empty, reading until the server has answered something (its SETTINGS)
/// before the next: the connections are established at the HTTP level when this returns, and the
/// server never had more than one handshake in progress (so that the figure is what idle
/// connections hold, not the peak of thousands of handshakes at once, which depends on how busy
/// the machine is).
fn open(authority: &str, count: usize, hello: &[u8]) -> std::io::Result<Vec<TcpStream>> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = TcpStream::connect(authority)?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        socket.write_all(hello)?;
        if !hello.is_empty() {
            let mut frame_header = [0u8; 9];
            socket.read_exact(&mut frame_header)?;
        }
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Memory per connection, in bytes: the growth of the resident set while `count` more connections
/// (after a warm-up of 100, which pays for the server's one-time allocations) are open, each having
/// sent `hello`.
async fn per_connection<A: HyperAdapter>(
    suite: &Suite<A>,
    authority: String,
    count: usize,
    hello: &'static [u8],
) -> Option<u64> {
    let (measured_tx, measured) = futures_channel::oneshot::channel();
    let (settle_tx, settle) = std::sync::mpsc::channel::<()>();
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut open_sockets = Vec::new();
        let mut run = || -> std::io::Result<Option<u64>> {
            open_sockets.push(open(&authority, 100, hello)?);
            // Let the server finish with them (a silent connection has nothing to answer).
            let _ = settle.recv_timeout(Duration::from_millis(300));
            let before = resident_bytes();
            open_sockets.push(open(&authority, count, hello)?);
            let _ = settle.recv_timeout(Duration::from_millis(300));
            let after = resident_bytes();
            Ok(before
                .zip(after)
                .map(|(b, a)| a.saturating_sub(b) / count as u64))
        };
        let _ = measured_tx.send(run());
        // The connections stay open until the measurement was taken in.
        let _ = release.recv_timeout(Duration::from_secs(10));
        drop((open_sockets, settle_tx));
    });
    let what = "opening idle connections";
    let result = bounded(&*suite.runtime, OPEN_LIMIT, what, measured).await;
    drop(release_tx);
    result
        .expect("the connecting thread answers")
        .expect("idle connections open")
}

impl<A: HyperAdapter> Suite<A> {
    /// 2,000 idle HTTP/2 connections (handshake done, no call) and 2,000 TCP connections that never
    /// send a byte each cost the server little ([`IDLE_HTTP2_BYTES`], [`SILENT_TCP_BYTES`]): a
    /// connection with nothing to read or write holds no IO buffer.
    pub async fn idle_connections_cost_little_memory(&self) {
        if resident_bytes().is_none() {
            eprintln!("skipped: no /proc/self/statm to read the resident set from");
            return;
        }
        let mut limits = Limits::default();
        // Long enough that no connection is closed for silence while it is measured.
        limits.header_read_timeout = Some(Duration::from_secs(60));
        let router = self.router(connect_typed::ServerConfig::default());
        let serve = self.adapter.serve_with_limits(router, Http::H2c, limits);
        let server = self.call("starting a server", serve).await;
        let authority = server.base().authority().expect("authority").to_string();

        let silent = per_connection(self, authority.clone(), 2000, b"").await;
        let http2 = per_connection(self, authority, 2000, HTTP2_HELLO).await;
        let (silent, http2) = (silent.expect("resident set"), http2.expect("resident set"));
        eprintln!("per connection: silent TCP {silent} B, idle HTTP/2 {http2} B");
        assert!(
            silent <= SILENT_TCP_BYTES,
            "a silent TCP connection costs {silent} B (at most {SILENT_TCP_BYTES})"
        );
        assert!(
            http2 <= IDLE_HTTP2_BYTES,
            "an idle HTTP/2 connection costs {http2} B (at most {IDLE_HTTP2_BYTES})"
        );
        server.stop_within(&*self.runtime, CALL_LIMIT).await;
    }
}

// The bounds guard against a regression and sit at the peers' figures: measured here 15.7–16.8 KB
// per idle HTTP/2 connection and 2.1–3.8 KB per silent one (debug build, in process), where tonic
// and connectrpc cost 16.2 and 16.7 KB, and 15.4 and 3.8 KB, in the release benchmark
// (`benches/results/memory.md`); the idle bound leaves about a kilobyte for a busy machine. Before
// idle connections gave their IO buffers back and built their state on first use, an idle HTTP/2
// connection cost 27 KB (tokio) and 57 KB (smol), a silent one 16.5 KB (smol).

/// The most an idle HTTP/2 connection may cost.
pub const IDLE_HTTP2_BYTES: u64 = 18_000;
/// The most a TCP connection that never sent a byte may cost.
pub const SILENT_TCP_BYTES: u64 = 8_000;
