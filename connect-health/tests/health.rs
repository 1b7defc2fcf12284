//! `grpc.health.v1.Health` served by connect-tokio and connect-smol and called with our generated
//! client over every protocol: `Check`, `List`, `Watch` following status changes, and graceful
//! shutdown turning everything `NOT_SERVING` and ending the watches so that the drain completes.

use std::time::Duration;

use connect_health::proto::{HealthCheckRequest, HealthClient, HealthListRequest};
use connect_health::{Health, ServingStatus};
use connect_tokio::{HyperTransport, Server, TokioRuntime};
use connect_typed::{Client, ClientConfig, Code, Codec, Protocol, ResponseStream};
use futures_util::StreamExt;

const GREET: &str = "acme.greet.v1.GreetService";

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
        ..Default::default()
    }
}

fn tokio_client(
    base: &http::Uri,
    protocol: Protocol,
    codec: Codec,
    http2: bool,
) -> HealthClient<HyperTransport> {
    let transport = if http2 {
        HyperTransport::http2()
    } else {
        HyperTransport::new()
    };
    HealthClient::new(Client::new(
        transport,
        base.clone(),
        ClientConfig::new(protocol, codec),
        TokioRuntime,
    ))
}

/// The next status on a watch, failing the test after 5 s.
async fn next_status(
    watch: &mut ResponseStream<connect_health::proto::HealthCheckResponse>,
) -> Option<ServingStatus> {
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a watch message within 5 s");
    next.map(|m| {
        m.expect("a watch message, not an error")
            .status
            .as_known()
            .expect("a known status")
    })
}

#[tokio::test]
async fn check_list_and_watch_over_every_protocol() {
    let health = Health::new();
    let router = connect_tokio::router().service(health.server());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(router).spawn(listener).unwrap();
    let base: http::Uri = format!("http://{}", server.local_addr()).parse().unwrap();

    let cases = [
        (Protocol::Connect, Codec::Json, false),
        (Protocol::Connect, Codec::Proto, true),
        (Protocol::Grpc, Codec::Proto, true),
        (Protocol::Grpc, Codec::Json, true),
        (Protocol::GrpcWeb, Codec::Proto, false),
        (Protocol::GrpcWeb, Codec::Json, true),
    ];
    for (protocol, codec, http2) in cases {
        let label = format!("{protocol:?} {codec:?} http2={http2}");
        let client = tokio_client(&base, protocol, codec, http2);
        health.set_status(GREET, ServingStatus::SERVING);

        let server_status = client.check(&request("")).await.expect(&label);
        assert_eq!(
            server_status.message().status.as_known(),
            Some(ServingStatus::SERVING),
            "{label}"
        );
        let unknown = client.check(&request("no.such.Service")).await.unwrap_err();
        assert_eq!(unknown.code(), Code::NOT_FOUND, "{label}: {unknown:?}");

        let list = client
            .list(&HealthListRequest::default())
            .await
            .expect(&label);
        let statuses = &list.message().statuses;
        assert_eq!(statuses.len(), 2, "{label}: {statuses:?}");
        assert_eq!(
            statuses[GREET].status.as_known(),
            Some(ServingStatus::SERVING),
            "{label}"
        );

        // A watch starts with the current status and follows every change.
        let mut watch = client.watch(&request(GREET)).await.expect(&label);
        assert_eq!(next_status(&mut watch).await, Some(ServingStatus::SERVING));
        health.set_status(GREET, ServingStatus::NOT_SERVING);
        assert_eq!(
            next_status(&mut watch).await,
            Some(ServingStatus::NOT_SERVING),
            "{label}"
        );
        health.set_status(GREET, ServingStatus::SERVING);
        assert_eq!(
            next_status(&mut watch).await,
            Some(ServingStatus::SERVING),
            "{label}"
        );

        // A service without a status: SERVICE_UNKNOWN, and the watch stays open until it has one.
        let mut later = client.watch(&request("acme.Later")).await.expect(&label);
        assert_eq!(
            next_status(&mut later).await,
            Some(ServingStatus::SERVICE_UNKNOWN),
            "{label}"
        );
        health.set_status("acme.Later", ServingStatus::SERVING);
        assert_eq!(
            next_status(&mut later).await,
            Some(ServingStatus::SERVING),
            "{label}"
        );
        health.clear_status("acme.Later");
        assert_eq!(
            next_status(&mut later).await,
            Some(ServingStatus::SERVICE_UNKNOWN),
            "{label}"
        );
    }
    server.shutdown().await;
}

/// Graceful shutdown with watches open: they get NOT_SERVING and end, and the drain (which waits
/// for in-flight calls with no time limit by default) completes.
#[tokio::test]
async fn shutdown_on_signal_reports_not_serving_and_ends_watches_tokio() {
    let health = Health::new();
    health.set_status(GREET, ServingStatus::SERVING);
    let router = connect_tokio::router().service(health.server());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base: http::Uri = format!("http://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        let _ = stopped.await;
    };
    let serving =
        tokio::spawn(Server::new(router).serve_with_shutdown(listener, health.shutdown_on(signal)));

    let mut watches = Vec::new();
    for (protocol, http2) in [
        (Protocol::Grpc, true),
        (Protocol::Connect, true),
        (Protocol::GrpcWeb, false),
    ] {
        let client = tokio_client(&base, protocol, Codec::Proto, http2);
        for service in ["", GREET] {
            let mut watch = client.watch(&request(service)).await.unwrap();
            assert_eq!(next_status(&mut watch).await, Some(ServingStatus::SERVING));
            watches.push(watch);
        }
    }

    stop.send(()).unwrap();
    for watch in &mut watches {
        assert_eq!(next_status(watch).await, Some(ServingStatus::NOT_SERVING));
        assert_eq!(next_status(watch).await, None, "the watch ends");
    }
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the server drains within 10 s")
        .unwrap()
        .unwrap();
    // Later changes are ignored.
    health.set_status(GREET, ServingStatus::SERVING);
    assert_eq!(health.status(GREET), Some(ServingStatus::NOT_SERVING));
}

/// The same on connect-smol, with a spawned server: `shutdown()` on the handle, then on the server.
#[test]
fn shutdown_reports_not_serving_and_ends_watches_smol() {
    smol::block_on(async {
        let health = Health::new();
        let router = connect_smol::router().service(health.server());
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = connect_smol::Server::new(router).spawn(listener).unwrap();
        let base: http::Uri = format!("http://{}", server.local_addr()).parse().unwrap();
        let client = HealthClient::new(Client::new(
            connect_smol::SmolTransport::http2(),
            base,
            ClientConfig::new(Protocol::Grpc, Codec::Proto),
            connect_smol::SmolRuntime,
        ));
        let mut watch = client.watch(&request("")).await.unwrap();
        let first = within_5s(watch.next()).await.unwrap().unwrap();
        assert_eq!(first.status.as_known(), Some(ServingStatus::SERVING));

        health.shutdown();
        let last = within_5s(watch.next()).await.unwrap().unwrap();
        assert_eq!(last.status.as_known(), Some(ServingStatus::NOT_SERVING));
        assert!(within_5s(watch.next()).await.is_none(), "the watch ends");
        within_5s(server.shutdown()).await;
    });
}

/// `future`'s output, failing the test after 5 s (on smol's timer).
async fn within_5s<T>(future: impl std::future::Future<Output = T>) -> T {
    let timeout = async {
        smol::Timer::after(Duration::from_secs(5)).await;
        panic!("nothing within 5 s");
    };
    futures_util::future::select(Box::pin(future), Box::pin(timeout))
        .await
        .factor_first()
        .0
}

#[test]
fn statuses_change_until_shutdown() {
    let health = Health::new();
    assert_eq!(health.status(""), Some(ServingStatus::SERVING));
    assert_eq!(health.status(GREET), None);
    health.set_status(GREET, ServingStatus::NOT_SERVING);
    assert_eq!(health.status(GREET), Some(ServingStatus::NOT_SERVING));
    health.clear_status(GREET);
    assert_eq!(health.status(GREET), None);
    health.set_status(GREET, ServingStatus::SERVING);
    health.shutdown();
    assert_eq!(health.status(""), Some(ServingStatus::NOT_SERVING));
    assert_eq!(health.status(GREET), Some(ServingStatus::NOT_SERVING));
    health.set_status("", ServingStatus::SERVING);
    health.clear_status(GREET);
    assert_eq!(health.status(""), Some(ServingStatus::NOT_SERVING));
    assert_eq!(health.status(GREET), Some(ServingStatus::NOT_SERVING));
}
