//! Unary echo over HTTP/3 against HTTP/2 on our server, in one run: connect-h3 and connect-tokio's
//! HTTP/2 over TLS (both TLS 1.3, so the comparison is of the HTTP versions and their stacks, not of
//! encryption) serve the same router; our own client (H3Transport, HyperTransport) calls each at
//! concurrency 1 (latency) and 64 (throughput) on one QUIC or TCP connection, and a markdown table is
//! printed. `cargo run --release -p connect-benches --bin h3 [-- SECONDS]` (default 3 per cell).
//!
//! Unlike `e2e` (a raw h2 load generator, servers pinned in child processes), client and servers share
//! this process: 1 tokio worker for the servers, 1 for the clients.

use std::time::{Duration, Instant};

use connect_benches::ours::bench::v1::{
    BenchService, BenchServiceClient, BenchServiceServer, EchoRequest, EchoResponse, IngestRequest,
    IngestResponse, StreamRequest,
};
use connect_tokio::{HyperTransport, TokioRuntime};
use connect_typed::{
    Client, ClientConfig, Codec, Context, HandlerStream, Protocol, RequestView, Response, Status,
    Streaming, Transport,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// Echo only: the other methods answer `unimplemented`, and the load never calls them.
struct Echo;

fn echo_only() -> Status {
    Status::unimplemented("this benchmark serves Echo only")
}

impl BenchService for Echo {
    async fn echo(
        &self,
        _ctx: Context,
        request: RequestView<EchoRequest>,
    ) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            message: request.view().message.to_owned(),
            ..Default::default()
        }))
    }

    async fn ingest(
        &self,
        _ctx: Context,
        _request: RequestView<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        Err(echo_only())
    }

    async fn server_stream(
        &self,
        _ctx: Context,
        _request: RequestView<StreamRequest>,
    ) -> Result<Response<HandlerStream<EchoResponse>>, Status> {
        Err(echo_only())
    }

    async fn client_stream(
        &self,
        _ctx: Context,
        _requests: Streaming<EchoRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        Err(echo_only())
    }
}

struct Cell {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Cell {
    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        self.latencies[i]
    }
}

/// `concurrency` callers making unary echo calls for `duration`.
async fn load<T: Transport + Clone>(
    client: BenchServiceClient<T>,
    concurrency: usize,
    duration: Duration,
) -> Result<Cell, Status> {
    let request = EchoRequest {
        message: "hello, benchmark".into(),
        ..Default::default()
    };
    // Warm up (connection, handshake).
    for _ in 0..100 {
        client.echo(&request).await?;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = client.echo(&request).await?;
                    assert_eq!(response.message().message, request.message);
                    latencies.push(sent.elapsed());
                }
                Ok::<_, Status>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| Status::internal(e.to_string()))??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Ok(Cell {
        calls: latencies.len(),
        elapsed,
        latencies,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(seconds);

    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?
        .signed_by(&key, &ca, &ca_key)?;
    let server_tls = || {
        connect_tokio::tls::server_config(
            vec![cert.der().clone()],
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec()))?;
    let client_tls = connect_tokio::tls::client_config(roots, None)?;

    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (h2, h3) = servers.block_on(async {
        let router = connect_tokio::router().service(BenchServiceServer::new(Echo));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let h2 = connect_tokio::Server::new(router.clone())
            .tls(server_tls()?)
            .spawn(listener)?;
        let h3 = connect_h3::Server::new(router, server_tls()?).bind("127.0.0.1:0".parse()?)?;
        Ok::<_, Box<dyn std::error::Error>>((h2, h3))
    })?;

    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    println!("unary echo, our client -> our server, {seconds} s per cell, 1 connection\n");
    println!("| HTTP | c | calls/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for concurrency in [1, 64] {
        for label in ["HTTP/2 over TLS", "HTTP/3"] {
            let cell = clients.block_on(async {
                let config = ClientConfig::new(Protocol::Grpc, Codec::Proto);
                if label == "HTTP/3" {
                    let base = format!("https://localhost:{}", h3.local_addr().port()).parse()?;
                    let transport = connect_h3::H3Transport::new(client_tls.clone());
                    let client =
                        BenchServiceClient::new(Client::new(transport, base, config, TokioRuntime));
                    load(client, concurrency, duration).await
                } else {
                    let base = format!("https://localhost:{}", h2.local_addr().port()).parse()?;
                    let transport = HyperTransport::builder()
                        .http2_only(true)
                        .tls_config(client_tls.clone())
                        .build();
                    let client =
                        BenchServiceClient::new(Client::new(transport, base, config, TokioRuntime));
                    load(client, concurrency, duration).await
                }
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
            })?;
            println!(
                "| {label} | {concurrency} | {:.0} | {:.0} µs | {:.0} µs |",
                cell.calls as f64 / cell.elapsed.as_secs_f64(),
                cell.percentile(0.5).as_secs_f64() * 1e6,
                cell.percentile(0.99).as_secs_f64() * 1e6,
            );
        }
    }
    servers.block_on(async {
        h2.shutdown().await;
        h3.shutdown().await;
    });
    Ok(())
}
