//! What connections cost each server in memory: resident set per connection, each server in a
//! process of its own (`e2e serve`), 1,000 connections per case:
//!
//! - silent TCP: connected, never a byte sent;
//! - idle HTTP/2: preface and SETTINGS exchanged, no call;
//! - HTTP/2 used once: one unary gRPC echo, then idle.
//!
//! And what calls in flight cost: 40 connections with 250 client-streaming calls each open (10,000
//! streams), each call's first message sent and its handler waiting for the next.
//!
//! ```text
//! cargo build --release -p connect-benches --bin e2e --bin memory
//! target/release/memory [--connections N] [--streams CONNECTIONSxSTREAMS] [--servers a,b] [--out FILE]
//! ```
//!
//! Build `e2e` first: this binary starts it (from the same directory) as the server process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use connect_benches::process::{flag, servers_flag, ServerProcess};
use connect_benches::servers::ServerKind;
use connect_benches::workload;

type Error = Box<dyn std::error::Error>;

const HTTP2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\
    \x00\x00\x00\x04\x00\x00\x00\x00\x00\
    \x00\x00\x00\x04\x01\x00\x00\x00\x00";

#[derive(Clone, Copy, Debug)]
enum Case {
    SilentTcp,
    IdleHttp2,
    Http2UsedOnce,
}

impl Case {
    const ALL: [Case; 3] = [Case::SilentTcp, Case::IdleHttp2, Case::Http2UsedOnce];

    fn name(self) -> &'static str {
        match self {
            Case::SilentTcp => "silent TCP",
            Case::IdleHttp2 => "idle HTTP/2",
            Case::Http2UsedOnce => "HTTP/2 used once, idle",
        }
    }
}

/// A connection kept open for the measurement: a raw socket, an h2 client connection (its
/// sender, and the runtime that drives it), or one with calls in flight.
enum Held {
    Raw(#[allow(dead_code)] TcpStream),
    H2(#[allow(dead_code)] h2::client::SendRequest<Bytes>),
    Streams(
        #[allow(dead_code)] h2::client::SendRequest<Bytes>,
        #[allow(dead_code)] Vec<OpenCall>,
    ),
}

/// A client-streaming call kept open: its response (never awaited) and its request body (never
/// ended).
type OpenCall = (h2::client::ResponseFuture, h2::SendStream<Bytes>);

fn open_raw(addr: SocketAddr, hello: &[u8]) -> Result<Held, Error> {
    let mut socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    socket.write_all(hello)?;
    if !hello.is_empty() {
        let mut frame_header = [0u8; 9];
        socket.read_exact(&mut frame_header)?;
    }
    Ok(Held::Raw(socket))
}

async fn open_used(addr: SocketAddr, request: Bytes) -> Result<Held, Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut sender = sender.ready().await?;
    let head = http::Request::post(format!("http://{addr}/bench.v1.BenchService/Echo"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let (response, mut body) = sender.send_request(head, false)?;
    body.send_data(request, true)?;
    let mut response = response.await?.into_body();
    while let Some(chunk) = response.data().await {
        let chunk = chunk?;
        let _ = response.flow_control().release_capacity(chunk.len());
    }
    let _ = response.trailers().await?;
    Ok(Held::H2(sender))
}

/// A connection with `streams` client-streaming calls open, each with one message sent.
async fn open_streams(addr: SocketAddr, streams: usize, message: Bytes) -> Result<Held, Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut calls = Vec::with_capacity(streams);
    let mut sender = sender.ready().await?;
    for _ in 0..streams {
        let head = http::Request::post(format!("http://{addr}/bench.v1.BenchService/ClientStream"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())?;
        sender = sender.ready().await?;
        let (response, mut body) = sender.send_request(head, false)?;
        body.send_data(message.clone(), false)?;
        calls.push((response, body));
    }
    Ok(Held::Streams(sender, calls))
}

/// Resident memory growth, in bytes, while `connections` connections hold `streams` open calls
/// each.
fn measure_streams(
    kind: ServerKind,
    connections: usize,
    streams: usize,
    runtime: &tokio::runtime::Runtime,
) -> Result<u64, Error> {
    let server = ServerProcess::spawn_beside(kind)?;
    let message = grpc_message(&workload::echo_request_bytes());
    // A warm-up pays for the server's one-time allocations.
    let warm = runtime.block_on(open_streams(server.addr, streams, message.clone()))?;
    std::thread::sleep(Duration::from_millis(300));
    let before = server.resident()?;
    let mut held = Vec::with_capacity(connections);
    for _ in 0..connections {
        held.push(runtime.block_on(open_streams(server.addr, streams, message.clone()))?);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let after = server.resident()?;
    drop((warm, held));
    Ok(after.saturating_sub(before))
}

/// `message` in a gRPC envelope.
fn grpc_message(message: &[u8]) -> Bytes {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    Bytes::from(framed)
}

fn measure(
    kind: ServerKind,
    case: Case,
    count: usize,
    runtime: &tokio::runtime::Runtime,
) -> Result<f64, Error> {
    let server = ServerProcess::spawn_beside(kind)?;
    let request = grpc_message(&workload::echo_request_bytes());
    let open = |n: usize| -> Result<Vec<Held>, Error> {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(match case {
                Case::SilentTcp => open_raw(server.addr, b"")?,
                Case::IdleHttp2 => open_raw(server.addr, HTTP2_HELLO)?,
                Case::Http2UsedOnce => runtime.block_on(open_used(server.addr, request.clone()))?,
            });
        }
        Ok(held)
    };
    // A warm-up pays for the server's one-time allocations.
    let warm = open(50)?;
    std::thread::sleep(Duration::from_millis(300));
    let before = server.resident()?;
    let held = open(count)?;
    std::thread::sleep(Duration::from_millis(500));
    let after = server.resident()?;
    drop((warm, held));
    Ok(after.saturating_sub(before) as f64 / count as f64)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = flag(&args, "--connections").map_or(Ok(1000), str::parse)?;
    let (stream_connections, streams): (usize, usize) = match flag(&args, "--streams") {
        None => (40, 250),
        Some(spec) => {
            let (c, s) = spec
                .split_once('x')
                .ok_or("--streams CONNECTIONSxSTREAMS")?;
            (c.parse()?, s.parse()?)
        }
    };
    let servers = servers_flag(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut table = format!(
        "| server | {} |\n|---|---|---|---|\n",
        Case::ALL.map(Case::name).join(" | ")
    );
    let total_streams = stream_connections * streams;
    let mut streams_table = format!(
        "| server | {total_streams} open streams ({stream_connections} × {streams}) | per stream |\n|---|---|---|\n"
    );
    for &kind in &servers {
        let bytes = measure_streams(kind, stream_connections, streams, &runtime)?;
        let per_stream = bytes as f64 / total_streams as f64;
        eprintln!(
            "{} {total_streams} open streams: {:.1} MB, {:.1} KB per stream",
            kind.name(),
            bytes as f64 / 1e6,
            per_stream / 1000.0
        );
        streams_table.push_str(&format!(
            "| {} | {:.1} MB | {:.1} KB |\n",
            kind.name(),
            bytes as f64 / 1e6,
            per_stream / 1000.0
        ));
    }
    for kind in servers {
        let mut row = format!("| {} |", kind.name());
        for case in Case::ALL {
            let bytes = measure(kind, case, count, &runtime)?;
            row.push_str(&format!(" {:.1} KB |", bytes / 1000.0));
            eprintln!(
                "{} {}: {:.1} KB per connection",
                kind.name(),
                case.name(),
                bytes / 1000.0
            );
        }
        table.push_str(&row);
        table.push('\n');
    }
    println!("Resident memory per connection ({count} connections each):\n\n{table}");
    println!("Resident memory with calls in flight (client streams, handler waiting):\n\n{streams_table}");
    if let Some(out) = flag(&args, "--out") {
        std::fs::write(out, format!("{table}\n{streams_table}"))?;
    }
    Ok(())
}
