//! The observability interceptors and the example interceptors over real sockets (connect-tokio):
//! client and server spans joined in one OpenTelemetry trace through `traceparent`, their RPC
//! attributes, the metrics through the `metrics` facade, bearer-token auth, the request log, and the
//! retry of `unavailable` for idempotent methods within the call's deadline.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use connect_tokio::{HyperTransport, Server, ServerHandle, TokioRuntime};
use connect_typed::observe::{ClientMetrics, ClientTracing, ServerMetrics, ServerTracing};
use connect_typed::{
    head_interceptor, CallOptions, Client, ClientConfig, Code, Codec, Context, HandlerStream,
    Protocol, RequestView, Response, Router, Status, Streaming,
};
use examples::interceptors::{bearer_token, require_bearer, RequestLog, RetryUnavailable};
use examples::proto::demo::v1::{
    GreetRequest, GreetResponse, GreetService, GreetServiceClient, GreetServiceServer,
};
use examples::Greeter;
use opentelemetry::trace::{
    SpanKind, Status as SpanStatus, TraceContextExt as _, TraceId, TracerProvider as _,
};
use opentelemetry::Value;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// The process-wide span exporter (a subscriber is global: the server runs on other threads).
fn exporter() -> &'static (InMemorySpanExporter, SdkTracerProvider) {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let memory = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(memory.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tests")));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        (memory, provider)
    })
}

async fn serve(router: Router) -> (ServerHandle, http::Uri) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(router).spawn(listener).unwrap();
    let base = format!("http://{}", server.local_addr()).parse().unwrap();
    (server, base)
}

fn request(name: &str) -> GreetRequest {
    GreetRequest {
        name: name.to_owned(),
        ..Default::default()
    }
}

fn client(
    base: &http::Uri,
    protocol: Protocol,
    build: impl FnOnce(Client<HyperTransport>) -> Client<HyperTransport>,
) -> GreetServiceClient<HyperTransport> {
    let transport = if protocol == Protocol::Grpc {
        HyperTransport::http2()
    } else {
        HyperTransport::new()
    };
    let config = ClientConfig::new(protocol, Codec::Proto);
    GreetServiceClient::new(build(Client::new(
        transport,
        base.clone(),
        config,
        TokioRuntime,
    )))
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attribute(span, key).map_or(String::new(), |v| v.to_string())
}

/// The finished spans of one trace, once `count` of them have arrived (the server's span can end a
/// moment after the client has its answer).
async fn trace_spans(trace: TraceId, count: usize) -> Vec<SpanData> {
    for _ in 0..200 {
        let spans: Vec<SpanData> = exporter()
            .0
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect();
        if spans.len() >= count {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the trace never got its {count} spans");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_spans_join_one_trace() {
    exporter();
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        .intercept(ServerTracing::new());
    let (server, base) = serve(router).await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let client = client(&base, protocol, |c| c.intercept(ClientTracing::new()));
        let root = tracing::info_span!("test root");
        let trace = root.context().span().span_context().trace_id();
        async {
            let mut stream = client.greet_many(&request("Ada")).await.unwrap();
            let mut n = 0;
            while let Some(message) = futures_util::StreamExt::next(&mut stream).await {
                message.unwrap();
                n += 1;
            }
            assert_eq!(n, 3);
            let error = client.greet(&request("")).await.unwrap_err();
            assert_eq!(error.code(), Code::INVALID_ARGUMENT);
        }
        .instrument(root.clone())
        .await;
        drop(root);

        // root, then a client and a server span for each of the two calls.
        let spans = trace_spans(trace, 5).await;
        let of = |kind: SpanKind, method: &str| {
            spans
                .iter()
                .find(|s| s.span_kind == kind && text(s, "rpc.method") == method)
                .unwrap_or_else(|| panic!("no {kind:?} span for {method} over {protocol:?}"))
        };
        let system = if protocol == Protocol::Connect {
            "connect_rpc"
        } else {
            "grpc"
        };
        for method in ["GreetMany", "Greet"] {
            let (client_span, server_span) =
                (of(SpanKind::Client, method), of(SpanKind::Server, method));
            // Joined through the `traceparent` header: the server's span is the client's child.
            assert_eq!(
                server_span.parent_span_id,
                client_span.span_context.span_id()
            );
            assert_eq!(
                &*server_span.name,
                &*format!("demo.v1.GreetService/{method}")
            );
            for span in [client_span, server_span] {
                assert_eq!(text(span, "rpc.system"), system);
                assert_eq!(text(span, "rpc.service"), "demo.v1.GreetService");
            }
        }
        // Message counts and sizes, each side from its own point of view.
        let many_server = of(SpanKind::Server, "GreetMany");
        let many_client = of(SpanKind::Client, "GreetMany");
        assert_eq!(text(many_server, "rpc.message.received"), "1");
        assert_eq!(text(many_server, "rpc.message.sent"), "3");
        assert_eq!(text(many_client, "rpc.message.sent"), "1");
        assert_eq!(text(many_client, "rpc.message.received"), "3");
        assert_eq!(
            text(many_server, "rpc.message.sent_bytes"),
            text(many_client, "rpc.message.received_bytes")
        );
        // The outcome, in the protocol's own terms.
        let failed = of(SpanKind::Server, "Greet");
        assert!(matches!(failed.status, SpanStatus::Error { .. }));
        if protocol == Protocol::Connect {
            assert_eq!(
                text(failed, "rpc.connect_typed.error_code"),
                "invalid_argument"
            );
            assert_eq!(text(many_server, "rpc.connect_typed.error_code"), "");
        } else {
            assert_eq!(text(failed, "rpc.grpc.status_code"), "3");
            assert_eq!(text(many_server, "rpc.grpc.status_code"), "0");
        }
        assert!(!matches!(many_server.status, SpanStatus::Error { .. }));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_span_without_traceparent_starts_its_own_trace() {
    exporter();
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        .intercept(ServerTracing::new());
    let (server, base) = serve(router).await;
    // The client sends no trace context, so the server's span is nobody's child.
    let client = client(&base, Protocol::Connect, |c| c);
    let root = tracing::info_span!("untraced client");
    let trace = root.context().span().span_context().trace_id();
    client
        .hello(&request("nobody"))
        .instrument(root.clone())
        .await
        .unwrap();
    drop(root);
    let root_trace = trace_spans(trace, 1).await;
    assert!(root_trace.iter().all(|s| s.span_kind != SpanKind::Server));
    let server_span = loop {
        let found = exporter()
            .0
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|s| s.span_kind == SpanKind::Server && text(s, "rpc.method") == "Hello");
        if let Some(span) = found {
            break span;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_ne!(server_span.span_context.trace_id(), trace);
    assert_eq!(
        server_span.parent_span_id,
        opentelemetry::trace::SpanId::INVALID
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_method_and_code() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder");

    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        .intercept(ServerMetrics::new());
    let (server, base) = serve(router).await;
    let client = client(&base, Protocol::Grpc, |c| c.intercept(ClientMetrics::new()));
    for _ in 0..3 {
        client.greet(&request("Ada")).await.unwrap();
    }
    client.greet(&request("")).await.unwrap_err();
    let mut stream = client.greet_many(&request("Grace")).await.unwrap();
    while let Some(message) = futures_util::StreamExt::next(&mut stream).await {
        message.unwrap();
    }
    drop(stream);
    // The server's call ends a moment after the client's.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown().await;

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .filter(|(key, ..)| {
                labels.iter().all(|(k, v)| {
                    key.key()
                        .labels()
                        .any(|label| label.key() == *k && label.value() == *v)
                })
            })
            .map(|(_, _, _, value)| value)
            .collect::<Vec<_>>()
    };
    use metrics_util::debugging::DebugValue;
    for side in ["server", "client"] {
        let calls = |method: &str, status: &str| {
            find(
                &format!("rpc.{side}.calls"),
                &[
                    ("rpc.system", "grpc"),
                    ("rpc.service", "demo.v1.GreetService"),
                    ("rpc.method", method),
                    ("rpc.status", status),
                ],
            )
        };
        assert_eq!(calls("Greet", "ok"), [&DebugValue::Counter(3)], "{side}");
        assert_eq!(
            calls("Greet", "invalid_argument"),
            [&DebugValue::Counter(1)],
            "{side}"
        );
        assert_eq!(
            calls("GreetMany", "ok"),
            [&DebugValue::Counter(1)],
            "{side}"
        );
        // Every call that started has ended.
        for value in find(&format!("rpc.{side}.active_calls"), &[]) {
            assert!(
                matches!(value, DebugValue::Gauge(g) if g.0 == 0.0),
                "{side}: {value:?}"
            );
        }
        let durations = find(
            &format!("rpc.{side}.duration"),
            &[("rpc.method", "Greet"), ("rpc.status", "ok")],
        );
        assert!(matches!(durations[..], [DebugValue::Histogram(d)] if d.len() == 3));
        let per_rpc = find(
            &format!("rpc.{side}.responses_per_rpc"),
            &[("rpc.method", "GreetMany")],
        );
        assert!(
            matches!(per_rpc[..], [DebugValue::Histogram(d)] if d.iter().map(|v| v.0).eq([3.0]))
        );
    }
}

#[tokio::test]
async fn auth_rejects_without_the_token_and_the_log_sees_every_call() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        .intercept(RequestLog::new(move |line| sink.lock().unwrap().push(line)))
        .intercept(require_bearer("sesame"));
    let (server, base) = serve(router).await;

    let anonymous = client(&base, Protocol::Connect, |c| c);
    let error = anonymous.greet(&request("Ada")).await.unwrap_err();
    assert_eq!(error.code(), Code::UNAUTHENTICATED);
    let wrong = client(&base, Protocol::Grpc, |c| {
        c.intercept(bearer_token("guess"))
    });
    let error = wrong.greet(&request("Ada")).await.unwrap_err();
    assert_eq!(error.code(), Code::UNAUTHENTICATED);
    assert_eq!(error.message(), "the bearer token is not valid");
    let friend = client(&base, Protocol::GrpcWeb, |c| {
        c.intercept(bearer_token("sesame"))
    });
    let names = futures_util::stream::iter(["Ken", "Dennis"].map(request));
    let response = friend.greet_all(names).await.unwrap();
    assert_eq!(response.message().greeting, "Hello, Ken and Dennis!");
    server.shutdown().await;

    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("/demo.v1.GreetService/Greet over Connect: unauthenticated"));
    assert!(lines[1].starts_with("/demo.v1.GreetService/Greet over Grpc: unauthenticated"));
    assert!(
        lines[2].starts_with("/demo.v1.GreetService/GreetAll over GrpcWeb: ok, 2 in / 1 out"),
        "{}",
        lines[2]
    );
}

/// A router whose `Hello` and `Greet` answer `unavailable` `outage` times before they work.
fn flaky(outage: u32) -> (Router, Arc<AtomicU32>) {
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = attempts.clone();
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        .intercept(head_interceptor(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) < outage {
                Err(Status::unavailable("restarting"))
            } else {
                Ok(())
            }
        }));
    (router, attempts)
}

#[tokio::test]
async fn retry_rides_out_an_outage_of_an_idempotent_method() {
    let (router, attempts) = flaky(2);
    let (server, base) = serve(router).await;
    let retry = RetryUnavailable::new(5, Duration::from_millis(10));
    let client = client(&base, Protocol::Connect, |c| c.intercept(retry.clone()));
    let response = client.hello(&request("Ada")).await.unwrap();
    assert_eq!(response.message().greeting, "Hello, Ada!");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(retry.retries(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn retry_leaves_methods_with_side_effects_alone() {
    let (router, attempts) = flaky(1);
    let (server, base) = serve(router).await;
    let retry = RetryUnavailable::new(5, Duration::from_millis(10));
    let client = client(&base, Protocol::Grpc, |c| c.intercept(retry.clone()));
    let error = client.greet(&request("Ada")).await.unwrap_err();
    assert_eq!(error.code(), Code::UNAVAILABLE);
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(retry.retries(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn retry_gives_up_at_the_deadline() {
    let (router, attempts) = flaky(u32::MAX);
    let (server, base) = serve(router).await;
    // Backoff 40 ms, 80 ms, 160 ms (± half): a 150 ms timeout leaves room for two or three
    // attempts, never the hundred allowed.
    let retry = RetryUnavailable::new(100, Duration::from_millis(40));
    let client = client(&base, Protocol::Connect, |c| c.intercept(retry.clone()));
    let options = CallOptions {
        timeout: Some(Duration::from_millis(150)),
        ..Default::default()
    };
    let error = client
        .hello_with_options(&request("Ada"), options)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::UNAVAILABLE);
    let made = attempts.load(Ordering::SeqCst);
    assert!((2..=4).contains(&made), "{made} attempts");
    assert_eq!(u64::from(made) - 1, retry.retries());
    server.shutdown().await;
}

/// The demo service, except that `Greet` panics for "boom".
struct Panicky;

impl GreetService for Panicky {
    async fn greet(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        if request.name() == "boom" {
            panic!("the greeter exploded");
        }
        Greeter.greet(ctx, request).await
    }

    async fn hello(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        Greeter.hello(ctx, request).await
    }

    async fn greet_many(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        Greeter.greet_many(ctx, request).await
    }

    async fn greet_all(
        &self,
        ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        Greeter.greet_all(ctx, requests).await
    }

    async fn chat(
        &self,
        ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        Greeter.chat(ctx, requests).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_panic_is_logged_in_its_span_and_fails_only_its_call() {
    exporter();
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Panicky))
        .intercept(ServerTracing::new());
    let (server, base) = serve(router).await;
    // One HTTP/2 connection for both calls: the panic must not take the other one down.
    let client = client(&base, Protocol::Grpc, |c| c.intercept(ClientTracing::new()));
    let root = tracing::info_span!("panic test");
    let trace = root.context().span().span_context().trace_id();
    async {
        let (boom, ada) = (request("boom"), request("Ada"));
        let (boom, fine) = futures_util::join!(client.greet(&boom), client.greet(&ada));
        let error = boom.unwrap_err();
        assert_eq!(error.code(), Code::INTERNAL);
        // The panic's payload is for the server's log, not for the client.
        assert_eq!(error.message(), "the handler panicked");
        assert!(fine.unwrap().message().greeting.starts_with("Hello, Ada!"));
    }
    .instrument(root.clone())
    .await;
    drop(root);
    let spans = trace_spans(trace, 5).await;
    let failed = spans
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Server
                && s.events
                    .iter()
                    .any(|e| e.name.contains("an RPC handler panicked"))
        })
        .expect("the server span of the panicking call has the panic event");
    let event = failed
        .events
        .iter()
        .find(|e| e.name.contains("panicked"))
        .unwrap();
    let panic = event
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "panic")
        .map(|kv| kv.value.to_string());
    assert_eq!(panic.as_deref(), Some("the greeter exploded"));
    assert_eq!(text(failed, "rpc.grpc.status_code"), "13");
    server.shutdown().await;
}
