//! The smol transport's own connection pool (hyper-util's needs tokio): HTTP/2 calls share one
//! connection, even when they start together; HTTP/1.1 connections are reused one call at a time and
//! closed after the idle timeout. The server's `x-peer` header tells the connections apart.

mod common;

use std::time::Duration;

use connect_smol::{Server, SmolRuntime, SmolTransport};
use connect_testkit::proto::testkit::v1::{EchoRequest, EchoServiceClient};
use connect_testkit::{bounded, Suite};
use connect_typed::Client;
use connect_typed::{ClientConfig, Codec, Protocol, ServerConfig};
use futures_util::future::join_all;

const LIMIT: Duration = Duration::from_secs(10);

fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.to_owned(),
        ..Default::default()
    }
}

/// The peer address the server saw for each of `calls` unary calls, `concurrent` or one by one with a
/// pause after each.
async fn peers(
    client: &EchoServiceClient<SmolTransport>,
    calls: usize,
    concurrent: bool,
) -> Vec<String> {
    let call = |i: usize| async move {
        let response = client
            .unary(&echo(&format!("call {i}")))
            .await
            .expect("call");
        response.headers()["x-peer"].to_str().unwrap().to_owned()
    };
    let peers = async {
        if concurrent {
            join_all((0..calls).map(call)).await
        } else {
            let mut peers = Vec::new();
            for i in 0..calls {
                peers.push(call(i).await);
                // A connection goes back to the pool when hyper is ready for its next request,
                // which races with a call made at once after the last one's response.
                smol::Timer::after(Duration::from_millis(100)).await;
            }
            peers
        }
    };
    bounded(&SmolRuntime, LIMIT, "calls", peers).await
}

fn client(
    base: &http::Uri,
    transport: SmolTransport,
    protocol: Protocol,
) -> EchoServiceClient<SmolTransport> {
    EchoServiceClient::new(Client::new(
        transport,
        base.clone(),
        ClientConfig::new(protocol, Codec::Proto),
        SmolRuntime,
    ))
}

#[test]
fn connections_are_pooled() {
    smol::block_on(async {
        let suite = Suite::new(common::Smol::default());
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(suite.router(ServerConfig::default()))
            .spawn(listener)
            .unwrap();
        let base: http::Uri = format!("http://{}", server.local_addr()).parse().unwrap();

        // HTTP/2: eight calls started together, then eight more, all on one connection.
        let h2 = client(&base, SmolTransport::http2(), Protocol::Grpc);
        let mut seen = peers(&h2, 8, true).await;
        seen.extend(peers(&h2, 8, false).await);
        seen.dedup();
        assert_eq!(
            seen.len(),
            1,
            "HTTP/2 calls on several connections: {seen:?}"
        );

        // HTTP/1.1: one call after the other reuse one connection.
        let h1 = client(&base, SmolTransport::new(), Protocol::Connect);
        let mut seen = peers(&h1, 5, false).await;
        seen.dedup();
        assert_eq!(
            seen.len(),
            1,
            "sequential HTTP/1.1 calls not pooled: {seen:?}"
        );

        // HTTP/1.1, concurrent: one connection per call in flight, reused afterwards.
        let mut concurrent = peers(&h1, 3, true).await;
        concurrent.sort();
        concurrent.dedup();
        assert_eq!(concurrent.len(), 3, "{concurrent:?}");
        smol::Timer::after(Duration::from_millis(100)).await;
        let again = peers(&h1, 3, false).await;
        assert!(
            again.iter().all(|p| concurrent.contains(p)),
            "{again:?} not from {concurrent:?}"
        );

        // An idle HTTP/1.1 connection is closed after the idle timeout: the next call connects anew.
        let short = SmolTransport::builder()
            .http1_pool_idle_timeout(Some(Duration::from_millis(100)))
            .build();
        let short = client(&base, short, Protocol::Connect);
        let first = peers(&short, 1, false).await;
        smol::Timer::after(Duration::from_millis(300)).await;
        let second = peers(&short, 1, false).await;
        assert_ne!(first, second, "an expired connection was reused");

        // The same for HTTP/2: after the idle timeout with no call, the next call connects anew.
        let short = SmolTransport::builder()
            .http2_only(true)
            .pool_idle_timeout(Some(Duration::from_millis(100)))
            .build();
        let short = client(&base, short, Protocol::Grpc);
        let mut first = peers(&short, 3, true).await;
        first.dedup();
        assert_eq!(first.len(), 1, "{first:?}");
        smol::Timer::after(Duration::from_millis(300)).await;
        let second = peers(&short, 1, false).await;
        assert_ne!(first, second, "an expired HTTP/2 connection was reused");

        bounded(&SmolRuntime, LIMIT, "shutdown", server.shutdown()).await;
    });
}
