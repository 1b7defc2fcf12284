//! The checks, generic over the adapter that serves and calls.

use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use connect_typed::{BoxFuture, Client, Router, Runtime, Transport};
use connect_typed::{CallOptions, ClientConfig, Code, Codec, Protocol, ServerConfig, Status};
use futures_util::StreamExt;
use http::HeaderValue;

use crate::proto::testkit::v1::{EchoRequest, EchoServiceClient, EchoServiceServer};
use crate::service::{Echo, PeerDescriber, Tracker};

/// How a test client reaches a test server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    /// HTTP/1.1 over plain TCP.
    Http1,
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
    /// HTTP/2 over TLS, negotiated with ALPN, with a client certificate.
    H2Tls,
    /// HTTP/3 over QUIC (always TLS), with a client certificate. Only adapters whose
    /// [`Adapter::supports`] says so are asked for it.
    H3,
}

impl Http {
    /// All of them. Checks iterate [`Suite::versions`], the ones the adapter supports.
    pub const ALL: [Http; 4] = [Http::Http1, Http::H2c, Http::H2Tls, Http::H3];

    /// Whether the connection is TLS (and the test client presents its certificate).
    pub fn tls(self) -> bool {
        matches!(self, Http::H2Tls | Http::H3)
    }

    /// Whether bidi streams are full duplex.
    pub fn full_duplex(self) -> bool {
        self != Http::Http1
    }
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// The HTTP version and transport security.
    pub http: Http,
    /// The RPC protocol.
    pub protocol: Protocol,
    /// The message codec.
    pub codec: Codec,
}

impl Case {
    /// Whether the combination exists: gRPC needs HTTP/2 (its status travels in HTTP trailers,
    /// which HTTP/1.1 servers send only for names announced up front), so gRPC over HTTP/1.1 is
    /// left out; Connect and gRPC-Web work over every version.
    pub fn supported(&self) -> bool {
        !(self.protocol == Protocol::Grpc && self.http == Http::Http1)
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}/{:?}", self.http, self.protocol, self.codec)
    }
}

pub(crate) const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];
const CODECS: [Codec; 2] = [Codec::Proto, Codec::Json];

/// What a runtime adapter provides to the checks.
pub trait Adapter: Send + Sync + 'static {
    /// The adapter's client transport.
    type Transport: Transport + Clone;

    /// The adapter's runtime (clock, timers).
    fn runtime(&self) -> Arc<dyn Runtime>;

    /// Serves `router` on `127.0.0.1`, port 0, speaking `http` (for [`Http::H2Tls`]: TLS with
    /// [`TestCerts`](crate::TestCerts), asking for a client certificate).
    fn serve(&self, router: Router, http: Http) -> BoxFuture<'static, TestServer>;

    /// A client transport that speaks `http` (for [`Http::H2Tls`]: trusting the test CA and presenting
    /// the test client certificate).
    fn transport(&self, http: Http) -> Self::Transport;

    /// How the adapter's request extensions describe the peer (`"ip:port"`, then `" cert"` when a
    /// client certificate was presented), so the checks can see that handlers get it.
    fn peer_describer(&self) -> Option<PeerDescriber> {
        None
    }

    /// Whether the adapter serves and calls over `http`. Default: every version but HTTP/3.
    fn supports(&self, http: Http) -> bool {
        http != Http::H3
    }
}

/// A running test server.
pub struct TestServer {
    base: http::Uri,
    stop: Option<Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>>,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// A server reachable at `base`; `stop` shuts it down gracefully (finishing in-flight calls).
    /// Dropping the server without stopping it may stop it abruptly.
    pub fn new(
        base: http::Uri,
        stop: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    ) -> Self {
        TestServer {
            base,
            stop: Some(Box::new(stop)),
        }
    }

    /// The server's base URI.
    pub fn base(&self) -> &http::Uri {
        &self.base
    }

    /// Shuts down gracefully; resolves when in-flight calls are done.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop().await;
        }
    }

    /// Shuts down gracefully, panicking if that takes longer than `limit` (a connection or a call
    /// left hanging).
    pub async fn stop_within(self, runtime: &dyn Runtime, limit: Duration) {
        let base = self.base.clone();
        bounded(
            runtime,
            limit,
            format!("stopping the server at {base}"),
            self.stop(),
        )
        .await;
    }
}

/// Runs `future`, panicking with `what` if it takes longer than `limit`.
pub async fn bounded<F: Future>(
    runtime: &dyn Runtime,
    limit: Duration,
    what: impl fmt::Display,
    future: F,
) -> F::Output {
    let sleep = runtime.sleep_until(runtime.now() + limit);
    let future = std::pin::pin!(future);
    match futures_util::future::select(future, sleep).await {
        futures_util::future::Either::Left((output, _)) => output,
        futures_util::future::Either::Right(_) => panic!("{what}: timed out after {limit:?}"),
    }
}

/// Every call of a check must finish within this.
pub(crate) const CALL_LIMIT: Duration = Duration::from_secs(10);
/// A cancelled handler must be dropped within this.
const DROP_LIMIT: Duration = Duration::from_secs(5);

type EchoClient<T> = EchoServiceClient<T>;

/// The end-to-end checks over one adapter. Each check starts its own servers.
pub struct Suite<A> {
    pub(crate) adapter: Arc<A>,
    tracker: Arc<Tracker>,
    pub(crate) runtime: Arc<dyn Runtime>,
    tags: AtomicUsize,
}

impl<A> fmt::Debug for Suite<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suite").finish_non_exhaustive()
    }
}

pub(crate) fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.to_owned(),
        ..Default::default()
    }
}

fn with_timeout(timeout: Duration) -> CallOptions {
    CallOptions {
        timeout: Some(timeout),
        ..Default::default()
    }
}

fn header<'a>(map: &'a http::HeaderMap, name: &str) -> &'a str {
    map.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

impl<A: Adapter> Suite<A> {
    /// Checks of `adapter`.
    pub fn new(adapter: A) -> Self {
        let runtime = adapter.runtime();
        Suite {
            adapter: Arc::new(adapter),
            tracker: Arc::default(),
            runtime,
            tags: AtomicUsize::new(0),
        }
    }

    /// The HTTP versions of [`Http::ALL`] the adapter supports: what the checks run over.
    pub fn versions(&self) -> impl Iterator<Item = Http> + '_ {
        Http::ALL
            .into_iter()
            .filter(|http| self.adapter.supports(*http))
    }

    /// The lifetimes of tagged handlers of this suite's routers.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The router of the test service with `config`.
    pub fn router(&self, config: ServerConfig) -> Router {
        let echo = Echo::new(
            self.runtime.clone(),
            self.tracker.clone(),
            self.adapter.peer_describer(),
        );
        Router::new(self.runtime.clone())
            .config(config)
            .service(EchoServiceServer::new(echo))
    }

    pub(crate) async fn server(&self, http: Http, config: ServerConfig) -> TestServer {
        let serve = self.adapter.serve(self.router(config), http);
        bounded(&*self.runtime, CALL_LIMIT, "starting a server", serve).await
    }

    pub(crate) fn client(&self, server: &TestServer, case: Case) -> EchoClient<A::Transport> {
        self.client_with(server, case, |_| {})
    }

    fn client_with(
        &self,
        server: &TestServer,
        case: Case,
        configure: impl FnOnce(&mut ClientConfig),
    ) -> EchoClient<A::Transport> {
        let mut config = ClientConfig::new(case.protocol, case.codec);
        configure(&mut config);
        EchoServiceClient::new(Client::new(
            self.adapter.transport(case.http),
            server.base().clone(),
            config,
            self.runtime.clone(),
        ))
    }

    fn tag(&self, case: Case, what: &str) -> String {
        let n = self.tags.fetch_add(1, Ordering::Relaxed);
        format!("{what}-{case}-{n}")
    }

    pub(crate) async fn call<F: Future>(&self, what: impl fmt::Display, future: F) -> F::Output {
        bounded(&*self.runtime, CALL_LIMIT, what, future).await
    }

    pub(crate) async fn sleep(&self, duration: Duration) {
        self.runtime
            .sleep_until(self.runtime.now() + duration)
            .await;
    }

    /// Waits until the handler tagged `tag` was dropped; panics after [`DROP_LIMIT`].
    pub(crate) async fn assert_dropped(&self, tag: &str) {
        let started = self.runtime.now();
        loop {
            let lifetime = self.tracker.get(tag);
            assert!(lifetime.started, "{tag}: the handler never started");
            if lifetime.dropped {
                return;
            }
            assert!(
                self.runtime.now() - started < DROP_LIMIT,
                "{tag}: the handler was not dropped within {DROP_LIMIT:?}"
            );
            self.sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs `check` for each protocol × codec against one server per HTTP version.
    pub(crate) async fn each_case<'a, F, Fut>(&'a self, config: ServerConfig, check: F)
    where
        F: Fn(&'a Self, TestServerRef, Case) -> Fut,
        Fut: Future<Output = ()> + 'a,
    {
        for http in self.versions() {
            let server = Rc::new(self.server(http, config.clone()).await);
            for protocol in PROTOCOLS {
                for codec in CODECS {
                    let case = Case {
                        http,
                        protocol,
                        codec,
                    };
                    if !case.supported() {
                        continue;
                    }
                    check(self, TestServerRef(server.clone()), case).await;
                }
            }
            if let Ok(server) = Rc::try_unwrap(server) {
                server.stop_within(&*self.runtime, CALL_LIMIT).await;
            }
        }
    }

    /// Unary calls with request headers (text and binary), response headers and trailers, the
    /// deadline header, and the peer as handlers see it.
    pub async fn unary(&self) {
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            let client = s.client(&server.0, case);
            let mut options = with_timeout(Duration::from_secs(30));
            options
                .headers
                .insert("x-echo", HeaderValue::from_static("ping"));
            options
                .headers
                .insert("x-bin-bin", HeaderValue::from_static("AAEC"));
            let response = s
                .call(case, client.unary_with_options(&echo("hello"), options))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(response.message().text, "hello", "{case}");
            let headers = response.headers();
            assert_eq!(header(headers, "x-echoed"), "ping", "{case}");
            assert_eq!(header(headers, "x-bin-bin"), "AAEC", "{case}");
            assert_eq!(header(headers, "x-deadline"), "some", "{case}");
            assert_eq!(header(response.trailers(), "x-trailer"), "hello", "{case}");
            assert_eq!(header(response.trailers(), "x-tbin-bin"), "AAEC", "{case}");
            if s.adapter.peer_describer().is_some() {
                let peer = header(headers, "x-peer");
                assert!(peer.starts_with("127.0.0.1:"), "{case}: peer {peer:?}");
                assert_eq!(
                    peer.ends_with(" cert"),
                    case.http.tls(),
                    "{case}: client certificate visible only over TLS: {peer:?}"
                );
            }
            // Without a timeout, the server sees no deadline.
            let response = s
                .call(case, client.unary(&echo("again")))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(header(response.headers(), "x-deadline"), "none", "{case}");
        })
        .await;
    }

    /// Server streaming: messages in order, headers before them, trailers after.
    pub async fn server_streaming(&self) {
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            let client = s.client(&server.0, case);
            let request = EchoRequest {
                count: 3,
                ..echo("s")
            };
            let mut stream = s
                .call(case, client.server_stream(&request))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(header(stream.headers(), "x-deadline"), "none", "{case}");
            let mut indexes = Vec::new();
            while let Some(item) = s.call(case, stream.next()).await {
                let message = item.unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(message.text, "s", "{case}");
                indexes.push(message.index);
            }
            assert_eq!(indexes, [0, 1, 2], "{case}");
            let trailers = stream.trailers().expect("trailers after the end");
            assert_eq!(header(trailers, "x-trailer"), "s", "{case}");
        })
        .await;
    }

    /// Client streaming: all requests reach the handler, one response with headers and trailers.
    pub async fn client_streaming(&self) {
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            let client = s.client(&server.0, case);
            let requests = futures_util::stream::iter(["a", "b", "c"].map(echo));
            let response = s
                .call(case, client.client_stream(requests))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(response.message().text, "a,b,c", "{case}");
            assert_eq!(response.message().index, 3, "{case}");
            assert_eq!(header(response.headers(), "x-deadline"), "none", "{case}");
            assert_eq!(header(response.trailers(), "x-trailer"), "a", "{case}");
        })
        .await;
    }

    /// Bidi streaming: full duplex (each response read before the next request is sent) over
    /// HTTP/2, half duplex over HTTP/1.1.
    pub async fn bidi_streaming(&self) {
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            let client = s.client(&server.0, case);
            if case.http.full_duplex() {
                let (tx, rx) = futures_channel::mpsc::unbounded();
                tx.unbounded_send(echo("ping 0")).unwrap();
                let mut stream = s
                    .call(case, client.bidi(rx))
                    .await
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                for i in 0..3 {
                    let message = s
                        .call(case, stream.next())
                        .await
                        .unwrap_or_else(|| panic!("{case}: stream ended early"))
                        .unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(message.text, format!("ping {i}"), "{case}");
                    assert_eq!(message.index, i, "{case}");
                    if i < 2 {
                        tx.unbounded_send(echo(&format!("ping {}", i + 1))).unwrap();
                    }
                }
                drop(tx);
                assert!(s.call(case, stream.next()).await.is_none(), "{case}");
                let trailers = stream.trailers().expect("trailers after the end");
                assert_eq!(header(trailers, "x-trailer"), "ping 0", "{case}");
            } else {
                let requests = futures_util::stream::iter(["x", "y", "z"].map(echo));
                let stream = s
                    .call(case, client.bidi(requests))
                    .await
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                let texts: Vec<_> = s
                    .call(case, stream.map(|r| r.map(|m| m.text)).collect::<Vec<_>>())
                    .await
                    .into_iter()
                    .collect::<Result<_, _>>()
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(texts, ["x", "y", "z"], "{case}");
            }
        })
        .await;
    }

    /// Errors with code, message and details from every stream type; streams keep the messages sent
    /// before the error and carry trailers with it.
    pub async fn errors(&self) {
        fn check(case: Case, what: &str, status: &Status, code: Code, text: &str) {
            assert_eq!(status.code(), code, "{case} {what}: {status}");
            assert_eq!(
                status.message(),
                format!("failed as asked: {text}"),
                "{case} {what}"
            );
            assert_eq!(status.details().len(), 1, "{case} {what}");
            assert_eq!(status.details()[0].type_name, "testkit.v1.EchoResponse");
            assert_eq!(&status.details()[0].value[..], b"\x0a\x06detail");
            // The error's metadata arrives; the names protocols own do not travel as metadata.
            let metadata = status.metadata();
            assert_eq!(header(metadata, "x-error-meta"), text, "{case} {what}");
            assert_eq!(
                metadata.get_all("x-error-meta").iter().count(),
                1,
                "{case} {what}: {metadata:?}"
            );
            assert!(
                !metadata.get_all("grpc-status").iter().any(|v| v == "0"),
                "{case} {what}: {metadata:?}"
            );
            assert!(
                metadata.get("connect-protocol-version").is_none(),
                "{case} {what}: {metadata:?}"
            );
        }
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            let client = s.client(&server.0, case);

            let failing = EchoRequest {
                fail_code: "not_found".into(),
                ..echo("u")
            };
            let status = s.call(case, client.unary(&failing)).await.unwrap_err();
            check(case, "unary", &status, Code::NOT_FOUND, "u");

            let failing = EchoRequest {
                count: 2,
                fail_code: "resource_exhausted".into(),
                ..echo("ss")
            };
            let mut stream = s
                .call(case, client.server_stream(&failing))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            for i in 0..2 {
                let item = s.call(case, stream.next()).await;
                let message = item.unwrap().unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(message.index, i, "{case}");
            }
            let status = s.call(case, stream.next()).await.unwrap().unwrap_err();
            check(
                case,
                "server stream",
                &status,
                Code::RESOURCE_EXHAUSTED,
                "ss",
            );
            assert!(s.call(case, stream.next()).await.is_none(), "{case}");
            let trailers = stream.trailers().expect("trailers after an error");
            assert_eq!(header(trailers, "x-trailer"), "ss", "{case}");

            let requests = futures_util::stream::iter([
                echo("c1"),
                EchoRequest {
                    fail_code: "aborted".into(),
                    ..echo("c2")
                },
            ]);
            let status = s
                .call(case, client.client_stream(requests))
                .await
                .unwrap_err();
            check(case, "client stream", &status, Code::ABORTED, "c2");

            let requests = futures_util::stream::iter([
                echo("b1"),
                EchoRequest {
                    fail_code: "permission_denied".into(),
                    ..echo("b2")
                },
            ]);
            let result = s.call(case, client.bidi(requests)).await;
            let status = match result {
                Err(status) => status,
                Ok(mut stream) => {
                    let first = s.call(case, stream.next()).await.unwrap();
                    assert_eq!(first.unwrap_or_else(|e| panic!("{case}: {e}")).text, "b1");
                    s.call(case, stream.next()).await.unwrap().unwrap_err()
                }
            };
            check(case, "bidi", &status, Code::PERMISSION_DENIED, "b2");
        })
        .await;
    }

    /// Deadlines: sent to the server, which cuts its handler off; the client gets
    /// `deadline_exceeded` in time, also mid-stream.
    pub async fn deadlines(&self) {
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            let client = s.client(&server.0, case);

            let tag = s.tag(case, "deadline-unary");
            let slow = EchoRequest {
                delay_ms: 5_000,
                tag: tag.clone(),
                ..echo("slow")
            };
            let started = s.runtime.now();
            let status = s
                .call(
                    case,
                    client.unary_with_options(&slow, with_timeout(Duration::from_millis(200))),
                )
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::DEADLINE_EXCEEDED, "{case}: {status}");
            assert!(s.runtime.now() - started < Duration::from_secs(3), "{case}");
            s.assert_dropped(&tag).await;

            let tag = s.tag(case, "deadline-stream");
            let endless = EchoRequest {
                count: -1,
                delay_ms: 50,
                tag: tag.clone(),
                ..echo("endless")
            };
            let mut stream = s
                .call(
                    case,
                    client.server_stream_with_options(
                        &endless,
                        with_timeout(Duration::from_millis(500)),
                    ),
                )
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            let mut received = 0;
            let status = loop {
                match s.call(case, stream.next()).await {
                    Some(Ok(_)) => received += 1,
                    Some(Err(status)) => break status,
                    None => panic!("{case}: an endless stream ended without error"),
                }
            };
            assert!(received > 0, "{case}");
            assert_eq!(status.code(), Code::DEADLINE_EXCEEDED, "{case}: {status}");
            s.assert_dropped(&tag).await;
        })
        .await;
    }

    /// Dropping a call's future or stream cancels it on the wire: the server drops the handler.
    pub async fn cancellation(&self) {
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            let client = s.client(&server.0, case);

            // Unary: the future is dropped while the handler waits.
            let tag = s.tag(case, "cancel-unary");
            let slow = EchoRequest {
                delay_ms: 30_000,
                tag: tag.clone(),
                ..echo("slow")
            };
            let call = client.unary(&slow);
            let gave_up = s.sleep(Duration::from_millis(200));
            // Both futures are owned by `select`, so the call is dropped when it returns.
            match futures_util::future::select(Box::pin(call), Box::pin(gave_up)).await {
                futures_util::future::Either::Left((result, _)) => {
                    panic!("{case}: the slow call finished: {result:?}")
                }
                futures_util::future::Either::Right(_) => {}
            }
            s.assert_dropped(&tag).await;

            // Server streaming: dropped after the first message.
            let tag = s.tag(case, "cancel-server-stream");
            let endless = EchoRequest {
                count: -1,
                delay_ms: 20,
                tag: tag.clone(),
                ..echo("endless")
            };
            let mut stream = s
                .call(case, client.server_stream(&endless))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            let first = s.call(case, stream.next()).await.unwrap();
            assert!(first.is_ok(), "{case}");
            drop(stream);
            s.assert_dropped(&tag).await;

            // Client streaming: the request stream stays open, the future is dropped.
            let tag = s.tag(case, "cancel-client-stream");
            let (tx, rx) = futures_channel::mpsc::unbounded();
            tx.unbounded_send(EchoRequest {
                tag: tag.clone(),
                ..echo("first")
            })
            .unwrap();
            let call = client.client_stream(rx);
            let gave_up = s.sleep(Duration::from_millis(200));
            // Both futures are owned by `select`, so the call is dropped when it returns.
            match futures_util::future::select(Box::pin(call), Box::pin(gave_up)).await {
                futures_util::future::Either::Left((result, _)) => {
                    panic!("{case}: the open client stream finished: {result:?}")
                }
                futures_util::future::Either::Right(_) => {}
            }
            s.assert_dropped(&tag).await;
            drop(tx);

            // Bidi: dropped after the first response, with the request side still open.
            let tag = s.tag(case, "cancel-bidi");
            let (tx, rx) = futures_channel::mpsc::unbounded();
            tx.unbounded_send(EchoRequest {
                tag: tag.clone(),
                ..echo("first")
            })
            .unwrap();
            let mut stream = s
                .call(case, client.bidi(rx))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            let first = s.call(case, stream.next()).await.unwrap();
            assert!(first.is_ok(), "{case}");
            drop(stream);
            s.assert_dropped(&tag).await;
            drop(tx);
        })
        .await;
    }

    /// Every built-in compression (gzip, zstd, br, deflate, snappy), requests and responses, unary
    /// and streaming.
    pub async fn compression(&self) {
        let config = ServerConfig {
            compress_min_bytes: 0,
            ..Default::default()
        };
        self.each_case(config, |s, server, case| async move {
            for algorithm in ["gzip", "zstd", "br", "deflate", "snappy"] {
                let client = s.client_with(&server.0, case, |c| {
                    c.send_compression = Some(algorithm);
                    c.compress_min_bytes = 0;
                });
                let big = EchoRequest {
                    padding: vec![b'z'; 8_000],
                    response_padding: 8_000,
                    count: 2,
                    ..echo("squeeze")
                };
                let response = s
                    .call(case, client.unary(&big))
                    .await
                    .unwrap_or_else(|e| panic!("{case} {algorithm}: {e}"));
                assert_eq!(response.message().padding.len(), 8_000, "{case}");
                assert_eq!(
                    header(response.headers(), "x-request-encoding"),
                    algorithm,
                    "{case}"
                );
                let stream = s
                    .call(case, client.server_stream(&big))
                    .await
                    .unwrap_or_else(|e| panic!("{case} {algorithm}: {e}"));
                assert_eq!(
                    header(stream.headers(), "x-request-encoding"),
                    algorithm,
                    "{case}"
                );
                let messages: Vec<_> = s.call(case, stream.collect::<Vec<_>>()).await;
                assert_eq!(messages.len(), 2, "{case}");
                for m in messages {
                    let m = m.unwrap_or_else(|e| panic!("{case} {algorithm}: {e}"));
                    assert_eq!(m.padding.len(), 8_000, "{case}");
                }
            }
        })
        .await;
    }

    /// A request in a compression the server does not speak is answered `unimplemented` from the
    /// request head, for every stream type: a full-duplex bidi client that sends nothing until it
    /// sees the response head must not wait forever (PROTOCOL-TRAPS 26).
    pub async fn unsupported_compression(&self) {
        let mut only_gzip = connect_typed::CompressionRegistry::empty();
        only_gzip.register(Arc::new(connect_proto::Gzip::default()));
        let config = ServerConfig {
            compression: only_gzip,
            ..Default::default()
        };
        self.each_case(config, |s, server, case| async move {
            let client = s.client_with(&server.0, case, |c| {
                c.send_compression = Some("snappy");
                c.compress_min_bytes = 0;
            });
            let check = |what: &str, result: Result<(), Status>| {
                let status = result.expect_err(what);
                assert_eq!(
                    status.code(),
                    Code::UNIMPLEMENTED,
                    "{case} {what}: {status}"
                );
                assert!(
                    status.message().contains("snappy"),
                    "{case} {what}: {status}"
                );
            };
            let unary = s.call(case, client.unary(&echo("x"))).await.map(drop);
            check("unary", unary);
            let server_stream = s
                .call(case, async {
                    let mut stream = client.server_stream(&echo("x")).await?;
                    stream.next().await.transpose().map(drop)
                })
                .await;
            check("server stream", server_stream);
            let requests = futures_util::stream::iter([echo("x")]);
            let client_stream = s.call(case, client.client_stream(requests)).await.map(drop);
            check("client stream", client_stream);
            // The request stream stays open and empty: only the server's answer can end the call.
            let (_tx, rx) = futures_channel::mpsc::unbounded::<EchoRequest>();
            let bidi = s
                .call(case, async {
                    let mut stream = client.bidi(rx).await?;
                    stream.next().await.transpose().map(drop)
                })
                .await;
            if case.http.full_duplex() {
                check("bidi", bidi);
            }
        })
        .await;
    }

    /// Connect GET for a method without side effects.
    pub async fn connect_get(&self) {
        self.each_case(ServerConfig::default(), |s, server, case| async move {
            if case.protocol != Protocol::Connect {
                return;
            }
            let client = s.client_with(&server.0, case, |c| c.use_get = true);
            let response = s
                .call(case, client.lookup(&echo("by get")))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(response.message().text, "by get", "{case}");
            assert_eq!(
                header(response.headers(), "x-had-content-type"),
                "no",
                "{case}: not sent as GET"
            );
        })
        .await;
    }

    /// Message size limits on both sides: `resource_exhausted`.
    pub async fn message_size_limits(&self) {
        let config = ServerConfig {
            max_recv_message_size: 16 * 1024,
            ..Default::default()
        };
        self.each_case(config, |s, server, case| async move {
            let client = s.client(&server.0, case);
            let too_big = EchoRequest {
                padding: vec![b'b'; 64 * 1024],
                ..echo("big")
            };
            let status = s.call(case, client.unary(&too_big)).await.unwrap_err();
            assert_eq!(status.code(), Code::RESOURCE_EXHAUSTED, "{case}: {status}");

            let options = CallOptions {
                max_recv_message_size: Some(1024),
                ..Default::default()
            };
            let big_answer = EchoRequest {
                response_padding: 8 * 1024,
                ..echo("big answer")
            };
            let status = s
                .call(case, client.unary_with_options(&big_answer, options))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::RESOURCE_EXHAUSTED, "{case}: {status}");
        })
        .await;
    }

    /// A path nobody serves: `unimplemented`.
    pub async fn unknown_method(&self) {
        for http in self.versions() {
            let router = Router::new(self.runtime.clone());
            let serve = self.adapter.serve(router, http);
            let server = bounded(&*self.runtime, CALL_LIMIT, "starting a server", serve).await;
            for protocol in PROTOCOLS {
                let case = Case {
                    http,
                    protocol,
                    codec: Codec::Proto,
                };
                if !case.supported() {
                    continue;
                }
                let client = self.client(&server, case);
                let status = self.call(case, client.unary(&echo("?"))).await.unwrap_err();
                assert_eq!(status.code(), Code::UNIMPLEMENTED, "{case}: {status}");
            }
            server.stop_within(&*self.runtime, CALL_LIMIT).await;
        }
    }

    /// A graceful shutdown lets in-flight calls finish, then refuses new ones.
    pub async fn graceful_shutdown(&self) {
        for http in self.versions() {
            for protocol in PROTOCOLS {
                let case = Case {
                    http,
                    protocol,
                    codec: Codec::Proto,
                };
                if !case.supported() {
                    continue;
                }
                let server = self.server(http, ServerConfig::default()).await;
                let client = self.client(&server, case);
                let slow = EchoRequest {
                    delay_ms: 400,
                    ..echo("in flight")
                };
                let streaming = EchoRequest {
                    count: 4,
                    delay_ms: 100,
                    ..echo("streaming")
                };
                let unary = client.unary(&slow);
                let stream = async {
                    let stream = client.server_stream(&streaming).await?;
                    stream
                        .collect::<Vec<_>>()
                        .await
                        .into_iter()
                        .collect::<Result<Vec<_>, Status>>()
                };
                let base = server.base().clone();
                let stop = async {
                    self.sleep(Duration::from_millis(150)).await;
                    server.stop().await;
                };
                let (unary, streamed, ()) = self
                    .call(case, futures_util::future::join3(unary, stream, stop))
                    .await;
                let unary = unary.unwrap_or_else(|e| panic!("{case}: in-flight unary lost: {e}"));
                assert_eq!(unary.message().text, "in flight", "{case}");
                let streamed: Vec<_> = streamed
                    .unwrap_or_else(|e: Status| panic!("{case}: in-flight stream lost: {e}"));
                assert_eq!(streamed.len(), 4, "{case}");

                let after = EchoServiceClient::new(Client::new(
                    self.adapter.transport(http),
                    base,
                    ClientConfig::new(protocol, Codec::Proto),
                    self.runtime.clone(),
                ));
                let refused = self.call(case, after.unary(&echo("late"))).await;
                assert!(refused.is_err(), "{case}: served after shutdown");
            }
        }
    }
}

/// A shared handle on the server of the current HTTP version.
pub(crate) struct TestServerRef(pub(crate) Rc<TestServer>);

/// Expands to one `#[test]` per check of [`Suite`], for an adapter: `e2e_tests!(make_adapter(),
/// block_on)` where `block_on` runs a future to completion on the adapter's runtime.
#[macro_export]
macro_rules! e2e_tests {
    ($adapter:expr, $block_on:path) => {
        $crate::e2e_tests!(@each $adapter, $block_on;
            unary, server_streaming, client_streaming, bidi_streaming, errors, deadlines,
            cancellation, compression, unsupported_compression, connect_get,
            message_size_limits, unknown_method, graceful_shutdown, interceptor_rejects_from_head,
            interceptors_run_in_order, interceptors_see_messages_in_order,
            handler_panic_fails_only_its_call);
    };
    (@each $adapter:expr, $block_on:path; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let suite = $crate::Suite::new($adapter);
                // On the heap: a check is a large future, and some `block_on`s keep theirs on the
                // test thread's stack.
                $block_on(::std::boxed::Box::pin(suite.$check()));
            }
        )*
    };
}
