//! HTTP/3 discovery through `Alt-Svc`: connect-tokio's server advertises connect-h3's endpoint of
//! the same router on every HTTP/1.1 and HTTP/2 response ([`connect_tokio::Server::alt_svc`]); a
//! client reads the header from an HTTP/2 response and calls the same router over HTTP/3 at the
//! port it names.

mod common;

use std::sync::Arc;

use connect_h3::H3Transport;
use connect_testkit::hyper::{client_tls, peer_describer, server_tls};
use connect_testkit::proto::testkit::v1::{EchoRequest, EchoServiceClient, EchoServiceServer};
use connect_testkit::{Echo, Tracker};
use connect_tokio::{HyperTransport, TokioRuntime};
use connect_typed::{Client, ClientConfig, Code, Codec, Protocol, Router, Transport};

fn router() -> Router {
    let runtime = Arc::new(TokioRuntime);
    let echo = Echo::new(
        runtime.clone(),
        Arc::new(Tracker::default()),
        Some(peer_describer()),
    );
    Router::new(runtime).service(EchoServiceServer::new(echo))
}

fn client<T: Transport>(transport: T, base: &str, protocol: Protocol) -> EchoServiceClient<T> {
    EchoServiceClient::new(Client::new(
        transport,
        base.parse().expect("base URI"),
        ClientConfig::new(protocol, Codec::Proto),
        Arc::new(TokioRuntime),
    ))
}

fn request(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.to_owned(),
        ..Default::default()
    }
}

/// The port of an `h3` alternative in an `Alt-Svc` value such as `h3=":4433"; ma=86400`.
fn h3_port(alt_svc: &str) -> Option<u16> {
    alt_svc.split(',').find_map(|alternative| {
        let authority = alternative
            .trim()
            .strip_prefix("h3=\"")?
            .split('"')
            .next()?;
        authority.rsplit(':').next()?.parse().ok()
    })
}

#[test]
fn h3_port_reads_the_h3_alternative() {
    assert_eq!(h3_port(r#"h3=":4433"; ma=86400"#), Some(4433));
    assert_eq!(h3_port(r#"h2="alt.example:443", h3=":8443""#), Some(8443));
    assert_eq!(h3_port(r#"h2=":443""#), None);
    assert_eq!(h3_port("clear"), None);
}

#[test]
fn a_client_finds_http3_through_alt_svc_over_http2() {
    common::block_on(async {
        let router = router();
        let h3 = connect_h3::Server::new(router.clone(), server_tls())
            .bind(([127, 0, 0, 1], 0).into())
            .expect("bind 127.0.0.1:0 (UDP)");
        let advertised = connect_h3::alt_svc(h3.local_addr().port());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let tcp = connect_tokio::Server::new(router)
            .tls(server_tls())
            .alt_svc(advertised.clone())
            .spawn(listener)
            .expect("serve");
        let tcp_port = tcp.local_addr().port();

        // HTTP/2 over TLS (ALPN h2 only): the response carries the advertisement.
        let h2 = HyperTransport::builder()
            .tls_config(client_tls())
            .http2_only(true)
            .build();
        let over_h2 = client(h2, &format!("https://localhost:{tcp_port}"), Protocol::Grpc);
        let response = over_h2
            .unary(&request("over h2"))
            .await
            .expect("HTTP/2 call");
        assert_eq!(response.message().text, "over h2");
        let value = response
            .headers()
            .get(http::header::ALT_SVC)
            .expect("an alt-svc header on the HTTP/2 response");
        assert_eq!(value, advertised);
        let port = h3_port(value.to_str().expect("ASCII")).expect("an h3 alternative");
        assert_eq!(port, h3.local_addr().port());

        // The same router over HTTP/3, at the advertised port (an H3Transport speaks only HTTP/3);
        // the HTTP/3 server itself advertises nothing.
        let quic = H3Transport::new(client_tls());
        for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
            let over_h3 = client(quic.clone(), &format!("https://localhost:{port}"), protocol);
            let response = over_h3
                .unary(&request("over h3"))
                .await
                .unwrap_or_else(|status| panic!("HTTP/3 call ({protocol:?}): {status:?}"));
            assert_eq!(response.message().text, "over h3");
            assert!(response.headers().get(http::header::ALT_SVC).is_none());
        }

        tcp.shutdown().await;
        h3.shutdown().await;
    });
}

#[test]
fn every_http1_and_h2c_response_carries_alt_svc() {
    common::block_on(async {
        let value = connect_h3::alt_svc(4433);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let server = connect_tokio::Server::new(router())
            .alt_svc(value.clone())
            .spawn(listener)
            .expect("serve");
        let base = format!("http://127.0.0.1:{}", server.local_addr().port());
        for (transport, protocol) in [
            (HyperTransport::new(), Protocol::Connect),
            (HyperTransport::new(), Protocol::GrpcWeb),
            (HyperTransport::http2(), Protocol::Grpc),
        ] {
            let echo = client(transport, &base, protocol);
            let response = echo.unary(&request("plain")).await.expect("call");
            assert_eq!(
                response.headers().get(http::header::ALT_SVC),
                Some(&value),
                "{protocol:?}"
            );
            // An error response too (its headers reach the status's metadata).
            let failing = EchoRequest {
                fail_code: "failed_precondition".into(),
                ..request("fail")
            };
            let status = echo.unary(&failing).await.expect_err("a failing call");
            assert_eq!(status.code(), Code::FAILED_PRECONDITION);
            assert_eq!(
                status.metadata().get(http::header::ALT_SVC),
                Some(&value),
                "{protocol:?} error"
            );
        }
        // Without the setting, no header.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let plain = connect_tokio::Server::new(router())
            .spawn(listener)
            .expect("serve");
        let base = format!("http://127.0.0.1:{}", plain.local_addr().port());
        let echo = client(HyperTransport::new(), &base, Protocol::Connect);
        let response = echo.unary(&request("plain")).await.expect("call");
        assert!(response.headers().get(http::header::ALT_SVC).is_none());
        server.shutdown().await;
        plain.shutdown().await;
    });
}
