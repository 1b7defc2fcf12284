//! Isolation under a response flood: while flooding clients send small unary calls as fast as they
//! can and never read a byte of what comes back, how long another client's unary call takes, on
//! each server (each in a process of its own, `e2e serve NAME --threads 1`).
//!
//! The flooders are raw sockets: HTTP/2 preface, then HEADERS and DATA frames of gRPC echo calls on
//! ever new streams, no WINDOW_UPDATE, no reads. So the server's responses pile up behind the
//! flooder's flow-control window and its full socket, its streams stay open up to the concurrency
//! limit, and further streams are refused; a connection the server closes is opened again. The
//! prober is an ordinary h2 client on a connection of its own, one echo every 10 ms: its latency
//! before the flood and during it, and the server's resident set at the end of the flood.
//!
//! ```text
//! cargo build --release -p connect-benches --bin e2e --bin flood
//! target/release/flood [--flooders N] [--seconds S] [--servers a,b] [--out FILE]
//! ```
//!
//! Build `e2e` first: this binary starts it (from the same directory) as the server process.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use connect_benches::process::{flag, servers_flag, ServerProcess};
use connect_benches::servers::ServerKind;
use connect_benches::workload;

type Error = Box<dyn std::error::Error>;

/// The client connection preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Calls written at once by a flooder.
const BATCH: u32 = 64;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The HEADERS block of a gRPC echo call, in HPACK with no table and no Huffman coding.
fn echo_headers(authority: &str) -> Vec<u8> {
    let literal = |index: u8, value: &str| {
        let mut field = vec![index, value.len() as u8];
        field.extend_from_slice(value.as_bytes());
        field
    };
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.extend(literal(0x04, "/bench.v1.BenchService/Echo")); // :path
    block.extend(literal(0x01, authority)); // :authority
    block.extend([0x0f, 0x10, 16]); // content-type (static index 31)
    block.extend_from_slice(b"application/grpc");
    block.extend([0x00, 2]); // te: trailers (a literal name)
    block.extend_from_slice(b"te");
    block.push(8);
    block.extend_from_slice(b"trailers");
    block
}

/// One flooding connection's life: calls on ever new streams until the server closes it, the
/// stream ids run out, or `stop`. Never reads. Counts the calls written.
fn flood_connection(
    addr: SocketAddr,
    block: &[u8],
    body: &[u8],
    stop: &AtomicBool,
    written: &AtomicU64,
) -> std::io::Result<()> {
    let mut socket = TcpStream::connect(addr)?;
    socket.set_nodelay(true)?;
    socket.set_write_timeout(Some(Duration::from_millis(100)))?;
    socket.write_all(PREFACE)?;
    let mut stream = 1u32;
    let mut batch = Vec::new();
    while !stop.load(Ordering::Relaxed) && stream < (1 << 31) - 2 * BATCH {
        batch.clear();
        for _ in 0..BATCH {
            batch.extend(frame(0x1, 0x4, stream, block));
            batch.extend(frame(0x0, 0x1, stream, body));
            stream += 2;
        }
        let mut sent = 0;
        while sent < batch.len() {
            match socket.write(&batch[sent..]) {
                Ok(0) => return Ok(()),
                Ok(n) => sent += n,
                // The server does not read: wait, unless the flood is over.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        written.fetch_add(u64::from(BATCH), Ordering::Relaxed);
    }
    Ok(())
}

/// A flooder: connection after connection until `stop`.
fn flooder(addr: SocketAddr, stop: Arc<AtomicBool>, written: Arc<AtomicU64>) {
    let block = echo_headers(&addr.to_string());
    let body = grpc_message(&workload::echo_request_bytes());
    while !stop.load(Ordering::Relaxed) {
        if flood_connection(addr, &block, &body, &stop, &written).is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn grpc_message(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// The prober's connection.
async fn prober(addr: SocketAddr) -> Result<h2::client::SendRequest<Bytes>, Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One unary echo on the prober's connection: how long it took.
async fn probe(
    sender: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    request: Bytes,
) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut ready = sender.clone().ready().await?;
    let head = http::Request::post(format!("http://{addr}/bench.v1.BenchService/Echo"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let (response, mut body) = ready.send_request(head, false)?;
    body.send_data(request, true)?;
    let response = response.await?;
    let status = response.status();
    let mut response = response.into_body();
    while let Some(chunk) = response.data().await {
        let chunk = chunk?;
        let _ = response.flow_control().release_capacity(chunk.len());
    }
    let trailers = response.trailers().await?;
    let grpc_status = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.as_bytes().to_vec());
    if status != 200 || grpc_status.as_deref() != Some(b"0") {
        return Err(format!("probe failed: {status}, grpc-status {grpc_status:?}").into());
    }
    Ok(started.elapsed())
}

/// Probes every 10 ms for `length`: the latencies, and how many probes failed.
async fn probes(
    sender: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    length: Duration,
) -> (Vec<Duration>, usize) {
    let request = Bytes::from(grpc_message(&workload::echo_request_bytes()));
    let (mut latencies, mut failed) = (Vec::new(), 0);
    let started = Instant::now();
    while started.elapsed() < length {
        let probe = probe(sender, addr, request.clone());
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(latency)) => latencies.push(latency),
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies.sort();
    (latencies, failed)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Figures {
    quiet: Vec<Duration>,
    flood: Vec<Duration>,
    failed: usize,
    calls: u64,
    resident: u64,
}

fn measure(
    kind: ServerKind,
    flooders: usize,
    length: Duration,
    runtime: &tokio::runtime::Runtime,
) -> Result<Figures, Error> {
    let server = ServerProcess::spawn_beside(kind)?;
    let addr = server.addr;
    let mut sender = runtime.block_on(prober(addr))?;
    let (quiet, _) = runtime.block_on(probes(&mut sender, addr, Duration::from_secs(2)));
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..flooders)
        .map(|_| {
            let (stop, written) = (stop.clone(), written.clone());
            std::thread::spawn(move || flooder(addr, stop, written))
        })
        .collect();
    // Let the flood build up first.
    std::thread::sleep(Duration::from_millis(500));
    let (flood, failed) = runtime.block_on(probes(&mut sender, addr, length));
    let resident = server.resident()?;
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    Ok(Figures {
        quiet,
        flood,
        failed,
        calls: written.load(Ordering::Relaxed),
        resident,
    })
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flooders: usize = flag(&args, "--flooders").map_or(Ok(4), str::parse)?;
    let seconds: u64 = flag(&args, "--seconds").map_or(Ok(8), str::parse)?;
    let servers = servers_flag(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut table = String::from(
        "| server | quiet p50 / p99 (ms) | flood p50 / p99 / max (ms) | probes failed | flood calls written | server RSS at the end |\n\
         |---|---|---|---|---|---|\n",
    );
    for kind in servers {
        let f = measure(kind, flooders, Duration::from_secs(seconds), &runtime)?;
        let row = format!(
            "| {} | {} / {} | {} / {} / {} | {} of {} | {} | {:.0} MB |\n",
            kind.name(),
            ms(quantile(&f.quiet, 0.5)),
            ms(quantile(&f.quiet, 0.99)),
            ms(quantile(&f.flood, 0.5)),
            ms(quantile(&f.flood, 0.99)),
            ms(f.flood.last().copied().unwrap_or_default()),
            f.failed,
            f.failed + f.flood.len(),
            f.calls,
            f.resident as f64 / 1e6,
        );
        eprint!("{row}");
        table.push_str(&row);
    }
    println!(
        "Another client's unary latency under a response flood ({flooders} flooding connections, \
         {seconds} s):\n\n{table}"
    );
    if let Some(out) = flag(&args, "--out") {
        std::fs::write(out, &table)?;
    }
    Ok(())
}
