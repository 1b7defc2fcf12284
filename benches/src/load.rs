//! The load generator: one raw h2c client (the h2 crate, as under hyper) for every server, sending
//! pre-encoded gRPC and Connect requests, so that all servers face exactly the same client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

/// The wire protocol of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Protocol {
    /// gRPC over h2c.
    Grpc,
    /// Connect over h2c (unary: bare body; streams: envelopes and an EndStream message).
    Connect,
}

impl Protocol {
    /// Lower-case name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "gRPC",
            Protocol::Connect => "Connect",
        }
    }
}

/// One kind of call to repeat.
#[derive(Clone, Debug)]
pub struct CallSpec {
    /// The wire protocol.
    pub protocol: Protocol,
    /// Method name in `bench.v1.BenchService`.
    pub method: &'static str,
    /// Whether the method streams in either direction (Connect then uses envelopes).
    pub streaming: bool,
    /// The request messages (protobuf encoded); more than one for client streaming.
    pub messages: Vec<Bytes>,
}

/// A complete response: HTTP status, body bytes, trailers.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: http::StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// Body bytes, all chunks concatenated (only when asked to keep them).
    pub body: Bytes,
    /// Body length.
    pub body_len: usize,
    /// HTTP trailers.
    pub trailers: Option<HeaderMap>,
}

impl Answer {
    /// Whether the RPC succeeded as far as the protocol says (gRPC status 0, Connect 200 without an
    /// error end).
    pub fn ok(&self, protocol: Protocol) -> bool {
        if self.status != http::StatusCode::OK {
            return false;
        }
        match protocol {
            Protocol::Grpc => {
                let status = self
                    .trailers
                    .as_ref()
                    .and_then(|t| t.get("grpc-status"))
                    .or_else(|| self.headers.get("grpc-status"));
                status.is_some_and(|s| s == "0")
            }
            Protocol::Connect => true,
        }
    }
}

/// Splits an enveloped body into (flags, payload) pairs.
pub fn unframe(mut body: Bytes) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let flags = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body.advance(5);
        if body.len() < len {
            break;
        }
        out.push((flags, body.split_to(len)));
    }
    out
}

fn frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.freeze()
}

/// A call spec turned into request parts that are cheap to clone per call.
#[derive(Clone, Debug)]
struct Prepared {
    uri: http::Uri,
    headers: HeaderMap,
    frames: Vec<Bytes>,
}

impl Prepared {
    fn new(addr: SocketAddr, spec: &CallSpec) -> Self {
        let uri: http::Uri = format!("http://{addr}/bench.v1.BenchService/{}", spec.method)
            .parse()
            .expect("valid uri");
        let mut headers = HeaderMap::new();
        let enveloped = spec.protocol == Protocol::Grpc || spec.streaming;
        let content_type = match (spec.protocol, spec.streaming) {
            (Protocol::Grpc, _) => "application/grpc",
            (Protocol::Connect, false) => "application/proto",
            (Protocol::Connect, true) => "application/connect+proto",
        };
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        match spec.protocol {
            Protocol::Grpc => {
                headers.insert("te", HeaderValue::from_static("trailers"));
            }
            Protocol::Connect => {
                headers.insert("connect-protocol-version", HeaderValue::from_static("1"));
            }
        }
        let frames: Vec<Bytes> = if enveloped {
            spec.messages.iter().map(|m| frame(m)).collect()
        } else {
            spec.messages.clone()
        };
        // A body known in full carries its length, as HTTP clients send it (hyper's among them).
        if let [only] = frames.as_slice() {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(only.len()));
        }
        Prepared {
            uri,
            headers,
            frames,
        }
    }

    fn request(&self) -> http::Request<()> {
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// An open h2c connection. The load generator speaks HTTP/2 through the h2 crate directly: hyper's
/// client would add a channel hop to its connection task and a oneshot back per call, and the load
/// generator must cost less per call than the fastest server it drives.
type Conn = h2::client::SendRequest<Bytes>;

/// HTTP/2 settings of the load generator's connections: hyper's client defaults (2 MiB stream and
/// 5 MiB connection windows, 16 KiB frames), so that every server sees what a hyper client sends.
fn h2_builder() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .max_frame_size(16 * 1024)
        .max_header_list_size(16 * 1024)
        .max_send_buffer_size(1024 * 1024)
        .enable_push(false);
    builder
}

async fn connect(addr: SocketAddr) -> std::io::Result<(Conn, tokio::task::JoinHandle<()>)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = h2_builder()
        .handshake(tcp)
        .await
        .map_err(std::io::Error::other)?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((send, driver))
}

fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn call(conn: &mut Conn, prepared: &Prepared, keep_body: bool) -> Result<Answer, String> {
    std::future::poll_fn(|cx| conn.poll_ready(cx))
        .await
        .map_err(|e| describe(&e))?;
    let (response, mut sending) = conn
        .send_request(prepared.request(), prepared.frames.is_empty())
        .map_err(|e| describe(&e))?;
    // Data beyond the peer's flow-control window waits in h2's send buffer until it opens.
    let last = prepared.frames.len().saturating_sub(1);
    for (i, data) in prepared.frames.iter().enumerate() {
        sending
            .send_data(data.clone(), i == last)
            .map_err(|e| describe(&e))?;
    }
    let response = response.await.map_err(|e| describe(&e))?;
    let (parts, mut body) = response.into_parts();
    let mut kept = BytesMut::new();
    let mut body_len = 0;
    while let Some(data) = body.data().await {
        let data = data.map_err(|e| describe(&e))?;
        body_len += data.len();
        body.flow_control()
            .release_capacity(data.len())
            .map_err(|e| describe(&e))?;
        if keep_body {
            kept.extend_from_slice(&data);
        }
    }
    let trailers = body.trailers().await.map_err(|e| describe(&e))?;
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: kept.freeze(),
        body_len,
        trailers,
    })
}

/// Makes one call and returns the complete answer (for validation before a measurement).
pub async fn call_once(addr: SocketAddr, spec: &CallSpec) -> Result<Answer, String> {
    let (mut conn, driver) = connect(addr).await.map_err(|e| e.to_string())?;
    let answer = call(&mut conn, &Prepared::new(addr, spec), true).await;
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
    answer
}

/// How a load run is shaped.
#[derive(Clone, Debug)]
pub struct LoadShape {
    /// Calls in flight at any time.
    pub concurrency: usize,
    /// HTTP/2 connections the calls are spread over.
    pub connections: usize,
    /// Time before the measurement window.
    pub warmup: Duration,
    /// The measurement window.
    pub measure: Duration,
}

/// What a load run saw inside its measurement window.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Calls completed successfully in the window.
    pub calls: u64,
    /// Failed calls (wrong status or body length) in the whole run.
    pub errors: u64,
    /// First error seen, for the report.
    pub first_error: Option<String>,
    /// Latencies of the calls in the window, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// The window's actual length.
    pub window: Duration,
    /// Server CPU time used during the window, if it could be read.
    pub server_cpu: Option<Duration>,
}

impl LoadResult {
    /// A latency percentile in microseconds.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        Some(f64::from(self.latencies_us[rank]))
    }
}

/// Runs `spec` at `shape` against `addr`. `expected_len` is the body length of a correct answer;
/// `cpu` reads the server's CPU time at the window's edges.
pub async fn run(
    addr: SocketAddr,
    spec: &CallSpec,
    shape: &LoadShape,
    expected_len: usize,
    cpu: impl Fn() -> Option<Duration>,
) -> Result<LoadResult, String> {
    let prepared = Arc::new(Prepared::new(addr, spec));
    let mut conns = Vec::new();
    let mut drivers = Vec::new();
    for _ in 0..shape.connections.max(1) {
        let (conn, driver) = connect(addr).await.map_err(|e| e.to_string())?;
        conns.push(conn);
        drivers.push(driver);
    }
    let start = Instant::now();
    let window_start = start + shape.warmup;
    let window_end = window_start + shape.measure;
    let stop = Arc::new(AtomicBool::new(false));
    let protocol = spec.protocol;
    let mut workers = Vec::new();
    for i in 0..shape.concurrency {
        let mut conn = conns[i % conns.len()].clone();
        let prepared = prepared.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut calls = 0u64;
            let mut errors = 0u64;
            let mut first_error = None;
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let result = call(&mut conn, &prepared, false).await;
                let ended = Instant::now();
                let failure = match result {
                    Ok(a) if a.ok(protocol) && a.body_len == expected_len => None,
                    Ok(a) => Some(format!(
                        "status {}, {} body bytes (expected {expected_len}), grpc-status {:?}",
                        a.status,
                        a.body_len,
                        a.trailers
                            .as_ref()
                            .and_then(|t| t.get("grpc-status"))
                            .or(a.headers.get("grpc-status"))
                    )),
                    Err(e) => Some(e),
                };
                if let Some(failure) = failure {
                    errors += 1;
                    first_error.get_or_insert(failure);
                    if errors > 1000 {
                        break;
                    }
                    continue;
                }
                if began >= window_start && ended <= window_end {
                    calls += 1;
                    latencies.push((ended - began).as_micros().min(u128::from(u32::MAX)) as u32);
                }
            }
            (calls, errors, first_error, latencies)
        }));
    }
    tokio::time::sleep_until(window_start.into()).await;
    let cpu_start = cpu();
    let measured_from = Instant::now();
    tokio::time::sleep_until(window_end.into()).await;
    let cpu_end = cpu();
    let window = measured_from.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut result = LoadResult {
        window,
        server_cpu: cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a)),
        ..Default::default()
    };
    for worker in workers {
        let (calls, errors, first_error, latencies) = worker.await.map_err(|e| e.to_string())?;
        result.calls += calls;
        result.errors += errors;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
        result.latencies_us.extend(latencies);
    }
    result.latencies_us.sort_unstable();
    // Close the connections so that the next run starts from a quiet server.
    drop(conns);
    for driver in drivers {
        let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
    }
    Ok(result)
}
