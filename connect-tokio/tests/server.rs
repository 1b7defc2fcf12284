//! tokio-specific behaviour: a killed client runtime, tower and axum mounting, no client tasks left
//! behind. The hyper-level checks (request limits, TLS client certificates, header read timeout) are
//! connect-testkit's, run in `e2e.rs`.

mod common;

use std::time::Duration;

use connect_testkit::proto::testkit::v1::{EchoRequest, EchoServiceClient};
use connect_testkit::Suite;
use connect_tokio::{ConnectService, HyperTransport, Server, TokioRuntime};
use connect_typed::{ClientConfig, Codec, Protocol, ServerConfig};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tower::ServiceExt;

const LIMIT: Duration = Duration::from_secs(10);

fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.to_owned(),
        ..Default::default()
    }
}

async fn wait_dropped(suite: &Suite<common::Tokio>, tag: &str) {
    tokio::time::timeout(LIMIT, async {
        while !suite.tracker().get(tag).dropped {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{tag}: handler not dropped"));
}

/// The client's whole runtime (its tasks and sockets) goes away mid-stream: the server drops the
/// handler, over HTTP/1.1 and h2c, for a server stream and a bidi stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_client_mid_stream_drops_the_handler() {
    let suite = Suite::new(common::Tokio::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(suite.router(ServerConfig::default()))
        .spawn(listener)
        .unwrap();
    let base: http::Uri = format!("http://{}", server.local_addr()).parse().unwrap();
    for (h2, bidi) in [(false, false), (true, false), (false, true), (true, true)] {
        let tag = format!("killed-h2={h2}-bidi={bidi}");
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (base, request_tag) = (base.clone(), tag.clone());
        // The client lives on its own runtime, which is shut down mid-stream: its tasks and sockets
        // vanish without a goodbye, as when a client process dies.
        let client_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        client_runtime.spawn(async move {
            let transport = if h2 {
                HyperTransport::http2()
            } else {
                HyperTransport::new()
            };
            let client = EchoServiceClient::new(connect_tokio::Client::new(
                transport,
                base,
                ClientConfig::new(Protocol::Connect, Codec::Proto),
                TokioRuntime,
            ));
            let request = EchoRequest {
                count: -1,
                delay_ms: 10,
                tag: request_tag,
                ..echo("endless")
            };
            let (tx, rx) = futures_channel::mpsc::unbounded();
            let mut stream = if bidi {
                tx.unbounded_send(request).unwrap();
                client.bidi(rx).await.unwrap()
            } else {
                client.server_stream(&request).await.unwrap()
            };
            stream.next().await.unwrap().unwrap();
            started_tx.send(()).unwrap();
            while stream.next().await.is_some() {}
            drop(tx);
        });
        tokio::time::timeout(LIMIT, started_rx)
            .await
            .expect("the stream started")
            .unwrap();
        assert!(!suite.tracker().get(&tag).dropped, "{tag}");
        client_runtime.shutdown_background();
        wait_dropped(&suite, &tag).await;
    }
    server.shutdown().await;
}

/// The router as a tower service: called directly with `oneshot`, any request body type.
#[tokio::test]
async fn router_is_a_tower_service() {
    let suite = Suite::new(common::Tokio::default());
    let service = ConnectService::new(suite.router(ServerConfig::default()));
    let request = http::Request::post("/testkit.v1.EchoService/Unary")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"text":"tower"}"#,
        )))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["text"], "tower");
}

/// Mounted in an axum app next to plain routes, served by axum's own server: both answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_in_axum_next_to_other_routes() {
    let suite = Suite::new(common::Tokio::default());
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .merge(connect_tokio::axum_router(
            &suite.router(ServerConfig::default()),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = tokio::spawn(async move { axum::serve(listener, app).await });
    let base: http::Uri = format!("http://{addr}").parse().unwrap();
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        let client = EchoServiceClient::new(connect_tokio::Client::new(
            HyperTransport::new(),
            base.clone(),
            ClientConfig::new(protocol, Codec::Json),
            TokioRuntime,
        ));
        let response = tokio::time::timeout(LIMIT, client.unary(&echo("axum")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.message().text, "axum");
        let stream = tokio::time::timeout(
            LIMIT,
            client.server_stream(&EchoRequest {
                count: 2,
                ..echo("axum")
            }),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(stream.count().await, 2);
    }
    let health = HyperTransport::new();
    let request = http::Request::get(format!("http://{addr}/health"))
        .body(connect_typed::RequestBody::full(bytes::Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(LIMIT, connect_typed::Transport::send(&health, request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    serve.abort();
}

/// Cancelled calls leave no task behind on the client: after streams are dropped mid-flight over
/// h2c, the runtime is back to the tasks it had with one idle pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_leave_no_client_tasks() {
    let suite = Suite::new(common::Tokio::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(suite.router(ServerConfig::default()))
        .spawn(listener)
        .unwrap();
    let client = grpc_client(server.local_addr());
    // Warm up: the pooled connection and its task exist from here on.
    tokio::time::timeout(LIMIT, client.unary(&echo("warm")))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    for i in 0..10 {
        let tag = format!("no-leak-{i}");
        drop(open_bidi(&client, &tag).await);
        wait_dropped(&suite, &tag).await;
    }
    let settled = tokio::time::timeout(LIMIT, async {
        while metrics.num_alive_tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "{} tasks alive after cancelling, {baseline} before",
        metrics.num_alive_tasks()
    );
    server.shutdown().await;
}

/// A gRPC client over HTTP/2 (h2c) to the server at `addr`.
fn grpc_client(addr: std::net::SocketAddr) -> EchoServiceClient<HyperTransport> {
    EchoServiceClient::new(connect_tokio::Client::new(
        HyperTransport::http2(),
        format!("http://{addr}").parse().unwrap(),
        ClientConfig::new(Protocol::Grpc, Codec::Proto),
        TokioRuntime,
    ))
}

/// A bidi stream tagged `tag` whose handler answers without end, once its first answer is in.
/// Dropping the sender and the stream cancels it.
async fn open_bidi(
    client: &EchoServiceClient<HyperTransport>,
    tag: &str,
) -> (
    futures_channel::mpsc::UnboundedSender<EchoRequest>,
    impl futures_util::Stream + use<>,
) {
    let (tx, rx) = futures_channel::mpsc::unbounded();
    tx.unbounded_send(EchoRequest {
        count: -1,
        tag: tag.to_owned(),
        ..echo("open")
    })
    .unwrap();
    let mut stream = tokio::time::timeout(LIMIT, client.bidi(rx))
        .await
        .unwrap()
        .unwrap();
    stream.next().await.unwrap().unwrap();
    (tx, stream)
}

async fn echo_server() -> (connect_tokio::ServerHandle, std::net::SocketAddr) {
    let suite = Suite::new(common::Tokio::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(suite.router(ServerConfig::default()))
        .spawn(listener)
        .unwrap();
    let addr = server.local_addr();
    (server, addr)
}

/// A gRPC error before any message is a trailers-only response: one HEADERS frame with END_STREAM
/// (PROTOCOL-TRAPS 13). Found by interop: grpcio and grpc-js fail the call ("Data frame with
/// END_STREAM flag received", "Call ended without gRPC status") when an empty DATA frame ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_only_response_ends_with_its_headers() {
    let (server, addr) = echo_server().await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{addr}/testkit.v1.EchoService/NoSuchMethod"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = h2.send_request(request, false).unwrap();
    // An unknown method: `unimplemented` before any message (the test service's own errors come
    // after its response headers, so they are not trailers-only).
    let message = b"\x0a\x01a";
    let mut envelope = vec![0, 0, 0, 0, message.len() as u8];
    envelope.extend_from_slice(message);
    // The server may answer (and reset the rest of the request stream with NO_ERROR) as soon as it
    // has the headers, before this data goes out; h2 then refuses the send, which is fine here.
    let _ = body.send_data(envelope.into(), true);
    let response = tokio::time::timeout(LIMIT, response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "12");
    assert!(
        response.body().is_end_stream(),
        "the trailers-only HEADERS frame must carry END_STREAM"
    );
    server.shutdown().await;
}

/// HTTP/1.1: a call is answered before the client's end of body arrives (here: a method nobody
/// serves, refused from the head); connect-hyper reads that end before finishing the response, so
/// the connection stays reusable for the next call. Found by interop: connect-node's pooled
/// HTTP/1.1 connections failed their next call with EPIPE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_connection_is_reused_after_an_early_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, addr) = echo_server().await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // EchoRequest { text: "a", count: 1 } in one Connect envelope, chunked, end of body late.
    let message = b"\x0a\x01a\x10\x01";
    let mut envelope = vec![0, 0, 0, 0, message.len() as u8];
    envelope.extend_from_slice(message);
    for (round, method) in ["NoSuchMethod", "ServerStream"].into_iter().enumerate() {
        let mut request = format!(
            "POST /testkit.v1.EchoService/{method} HTTP/1.1\r\nhost: x\r\n\
             content-type: application/connect+proto\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
            envelope.len()
        )
        .into_bytes();
        request.extend_from_slice(&envelope);
        request.extend_from_slice(b"\r\n");
        tcp.write_all(&request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        tcp.write_all(b"0\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("round {round}: connection closed: {e}"));
        let mut response = Vec::new();
        tokio::time::timeout(LIMIT, async {
            let mut buf = [0u8; 4096];
            while !response.ends_with(b"0\r\n\r\n") {
                let n = tcp.read(&mut buf).await.unwrap();
                assert!(n > 0, "round {round}: connection closed");
                response.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .unwrap();
        let head = String::from_utf8_lossy(&response[..response.len().min(40)]).into_owned();
        let expected = if round == 0 {
            "HTTP/1.1 404"
        } else {
            "HTTP/1.1 200"
        };
        assert!(head.starts_with(expected), "round {round}: {head}");
    }
    server.shutdown().await;
}

async fn limited_server(
    limits: connect_tokio::Limits,
) -> (connect_tokio::ServerHandle, std::net::SocketAddr) {
    let suite = Suite::new(common::Tokio::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(suite.router(ServerConfig::default()))
        .limits(limits)
        .spawn(listener)
        .unwrap();
    let addr = server.local_addr();
    (server, addr)
}

/// `Limits::max_concurrent_streams` caps the calls one HTTP/2 connection carries at once: with two
/// streams held open, a third call waits until one of them ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_streams_holds_back_the_extra_call() {
    let mut limits = connect_tokio::Limits::default();
    limits.max_concurrent_streams = Some(2);
    let (server, addr) = limited_server(limits).await;
    let client = grpc_client(addr);
    tokio::time::timeout(LIMIT, client.unary(&echo("warm")))
        .await
        .unwrap()
        .unwrap();
    let mut open = Vec::new();
    for i in 0..2 {
        open.push(open_bidi(&client, &format!("open-{i}")).await);
    }
    let third_client = client.clone();
    let mut third = tokio::spawn(async move { third_client.unary(&echo("third")).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut third)
            .await
            .is_err(),
        "a third call ran while two streams were open"
    );
    drop(open.pop());
    let result = tokio::time::timeout(LIMIT, third).await.unwrap().unwrap();
    assert!(result.is_ok(), "{result:?}");
    drop(open);
    tokio::time::timeout(LIMIT, server.shutdown())
        .await
        .unwrap();
}

/// `Limits::keepalive_interval`: the server pings idle HTTP/2 connections and closes one whose peer
/// does not answer within `keepalive_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_closes_a_connection_that_does_not_answer_pings() {
    let mut limits = connect_tokio::Limits::default();
    limits.keepalive_interval = Some(Duration::from_millis(100));
    limits.keepalive_timeout = Duration::from_millis(100);
    let (server, addr) = limited_server(limits).await;
    // A client that answers pings: the connection stays up.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (_live, live_connection) = h2::client::handshake(tcp).await.unwrap();
    let live = tokio::spawn(live_connection);
    // A client that never reads after the handshake: its connection is closed.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (_silent, silent_connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let closed = tokio::time::timeout(LIMIT, silent_connection).await;
    assert!(closed.is_ok(), "the silent connection was not closed");
    assert!(!live.is_finished(), "the answering connection was closed");
    live.abort();
    tokio::time::timeout(LIMIT, server.shutdown())
        .await
        .unwrap();
}
