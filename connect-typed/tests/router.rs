//! The router and its server driver in memory (`connect_typed::testing`): route lookup and the
//! answers to unknown methods in each protocol, CORS preflights, the interceptors' phases in order,
//! a head rejection, and the handler's end: dropped with the response body, at the deadline, or
//! failing its call alone when it panics or sets metadata too late.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use connect_typed::cors::Cors;
use connect_typed::google::rpc::ErrorInfo;
use connect_typed::interceptor::{MessageRef, ServerCallHead, ServerInterceptor};
use connect_typed::testing::{block_on, collect_body, InMemory, ThreadRuntime};
use connect_typed::{
    head_interceptor, server_streaming, unary, CallOptions, Client, ClientConfig, Code, Codec,
    Context, HandlerStream, MethodInfo, Protocol, RequestBody, RequestDecoder, RequestPayloads,
    RequestView, Response, ResponsePayloads, Router, Service, Status, StreamType,
};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};

const UNARY: MethodInfo = MethodInfo {
    path: "/test.v1.Svc/Unary",
    stream_type: StreamType::Unary,
    no_side_effects: true,
};
const STREAM: MethodInfo = MethodInfo {
    path: "/test.v1.Svc/Stream",
    stream_type: StreamType::ServerStreaming,
    no_side_effects: false,
};
const METHODS: [MethodInfo; 2] = [UNARY, STREAM];
const MISSING: MethodInfo = MethodInfo {
    path: "/test.v1.Svc/Missing",
    stream_type: StreamType::Unary,
    no_side_effects: false,
};
const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

/// Set when dropped: shows when the router drops a handler.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A service whose handlers do what the request's `reason` says: `hang` never answers, `panic`
/// panics, `late-header` (streaming) sets a header after its first message; anything else is
/// answered with the reason and the service's name in `domain`.
#[derive(Clone, Default)]
struct Svc {
    name: &'static str,
    calls: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

fn info(reason: &str, domain: &str) -> ErrorInfo {
    ErrorInfo {
        reason: reason.to_owned(),
        domain: domain.to_owned(),
        ..Default::default()
    }
}

impl Service for Svc {
    fn methods(&self) -> &'static [MethodInfo] {
        &METHODS
    }

    fn call(
        &self,
        method: usize,
        ctx: Context,
        requests: RequestPayloads,
    ) -> Option<ResponsePayloads> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (name, dropped) = (self.name, self.dropped.clone());
        let decoder = RequestDecoder::<ErrorInfo>::default();
        match method {
            0 => Some(unary(
                ctx,
                requests,
                decoder,
                move |_ctx, request: RequestView<ErrorInfo>| async move {
                    let _flag = DropFlag(dropped);
                    match request.reason() {
                        "hang" => std::future::pending().await,
                        "panic" => panic!("asked to"),
                        reason => Ok(Response::new(info(reason, name))),
                    }
                },
            )),
            1 => Some(server_streaming(
                ctx,
                requests,
                decoder,
                move |ctx, request: RequestView<ErrorInfo>| async move {
                    let flag = DropFlag(dropped);
                    let late = request.reason() == "late-header";
                    let panic_at = request.reason().strip_prefix("panic-at-");
                    let panic_at = panic_at.and_then(|n| n.parse::<usize>().ok());
                    let stream = futures_util::stream::unfold(0, move |n| {
                        let ctx = ctx.clone();
                        async move {
                            assert_ne!(Some(n), panic_at, "asked to");
                            if late && n == 1 {
                                let set = ctx.set_response_header(
                                    http::HeaderName::from_static("x-late"),
                                    HeaderValue::from_static("1"),
                                );
                                return Some((
                                    set.map(|()| info("set", "")).map_err(Status::from),
                                    2,
                                ));
                            }
                            (n < 2 || !late).then(|| (Ok(info(&n.to_string(), "")), n + 1))
                        }
                    });
                    // The flag lives as long as the stream.
                    let stream: HandlerStream<ErrorInfo> = Box::pin(stream.map(move |item| {
                        let _alive = &flag;
                        item
                    }));
                    Ok(Response::new(stream))
                },
            )),
            _ => None,
        }
    }
}

fn client(router: Router, protocol: Protocol) -> Client<InMemory> {
    Client::new(
        InMemory::new(router),
        "http://in-memory".parse().expect("uri"),
        ClientConfig::new(protocol, Codec::Proto),
        ThreadRuntime,
    )
}

fn call(
    client: &Client<InMemory>,
    method: MethodInfo,
    reason: &str,
) -> connect_typed::Outcome<ErrorInfo> {
    block_on(client.unary_outcome(method, &info(reason, ""), CallOptions::default()))
}

#[test]
fn routes_are_found_by_path_and_the_last_registration_wins() {
    let first = Svc {
        name: "first",
        ..Svc::default()
    };
    let second = Svc {
        name: "second",
        ..Svc::default()
    };
    let router = Router::new(ThreadRuntime)
        .service(first.clone())
        .service(second.clone());
    assert_eq!(router.paths(), vec![STREAM.path, UNARY.path]);
    assert_eq!(router.lookup(UNARY.path), Some(UNARY));
    assert_eq!(router.lookup(MISSING.path), None);
    let outcome = call(&client(router, Protocol::Grpc), UNARY, "hi");
    assert_eq!(outcome.result.expect("served").domain, "second");
    assert_eq!(first.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn unknown_methods_are_unimplemented_in_each_protocol() {
    let router = Router::new(ThreadRuntime).service(Svc::default());
    for protocol in PROTOCOLS {
        let outcome = call(&client(router.clone(), protocol), MISSING, "hi");
        let status = outcome.result.expect_err("no such method");
        assert_eq!(status.code(), Code::UNIMPLEMENTED, "{protocol:?}");
        assert!(status.message().contains(MISSING.path), "{status:?}");
        // Connect answers 404; gRPC and gRPC-Web answer 200 with the status in the head.
        let http = if protocol == Protocol::Connect {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(outcome.http_status, Some(http), "{protocol:?}");
    }
    // A Connect GET of a path nobody serves: 404 with the error as JSON.
    let request = http::Request::get(format!("{}?encoding=proto&message=", MISSING.path))
        .body(RequestBody::full(Bytes::new()))
        .expect("request");
    let response = block_on(router.handle(request));
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (body, _) = block_on(collect_body(response.into_body())).expect("a body");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("\"unimplemented\""), "{text}");
}

fn preflight() -> http::Request<RequestBody> {
    http::Request::options(UNARY.path)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(RequestBody::full(Bytes::new()))
        .expect("request")
}

#[test]
fn a_cors_preflight_is_answered_without_a_call() {
    let svc = Svc::default();
    let router = Router::new(ThreadRuntime)
        .service(svc.clone())
        .cors(Cors::default());
    let response = block_on(router.handle(preflight()));
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    assert_eq!(
        svc.calls.load(Ordering::SeqCst),
        0,
        "a preflight reached the service"
    );
    // Calls themselves carry the CORS headers for the page to read them.
    let mut request = http::Request::post(UNARY.path)
        .header("origin", "https://app.example")
        .header("content-type", "application/proto")
        .body(RequestBody::full(Bytes::from_static(b"\x0a\x02hi")))
        .expect("request");
    *request.version_mut() = http::Version::HTTP_11;
    let response = block_on(router.handle(request));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    // Without a CORS policy an OPTIONS request is no RPC and gets no CORS answer.
    let plain = Router::new(ThreadRuntime).service(Svc::default());
    let response = block_on(plain.handle(preflight()));
    assert_ne!(response.status(), StatusCode::NO_CONTENT);
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

/// Records each phase it sees, under its name.
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn note(&self, phase: &str) {
        self.log
            .lock()
            .expect("log")
            .push(format!("{} {phase}", self.name));
    }
}

impl ServerInterceptor for Recorder {
    fn on_request_head(&self, _head: &mut ServerCallHead<'_>) -> Result<(), Status> {
        self.note("head");
        Ok(())
    }

    fn on_request_message(&self, _ctx: &Context, message: MessageRef<'_>) -> Result<(), Status> {
        let reason = message
            .downcast_ref::<RequestView<ErrorInfo>>()
            .expect("a view")
            .reason();
        self.note(&format!("request {reason}"));
        Ok(())
    }

    fn on_response_headers(&self, _ctx: &Context, _headers: &mut HeaderMap) {
        self.note("headers");
    }

    fn on_response_message(&self, _ctx: &Context, message: MessageRef<'_>) -> Result<(), Status> {
        let reason = &message
            .downcast_ref::<ErrorInfo>()
            .expect("a message")
            .reason;
        self.note(&format!("response {reason}"));
        Ok(())
    }

    fn on_finish(&self, _ctx: &Context, outcome: &mut Result<(), Status>, _: &mut HeaderMap) {
        self.note(&format!("finish {}", outcome.is_ok()));
    }
}

#[test]
fn interceptor_phases_run_in_order_outermost_first_on_the_way_in() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorder = |name| Recorder {
        name,
        log: log.clone(),
    };
    let router = Router::new(ThreadRuntime)
        .service(Svc::default())
        .intercept(recorder("outer"))
        .intercept(recorder("inner"));
    let outcome = call(&client(router, Protocol::Grpc), UNARY, "hi");
    assert_eq!(outcome.result.expect("served").reason, "hi");
    let log = log.lock().expect("log").clone();
    assert_eq!(
        log,
        [
            "outer head",
            "inner head",
            "outer request hi",
            "inner request hi",
            "inner response hi",
            "outer response hi",
            "inner headers",
            "outer headers",
            "inner finish true",
            "outer finish true",
        ]
    );
}

#[test]
fn a_head_rejection_never_calls_the_service() {
    let svc = Svc::default();
    let router = Router::new(ThreadRuntime)
        .service(svc.clone())
        .intercept(head_interceptor(|head| match head.headers.get("x-key") {
            Some(_) => Ok(()),
            None => Err(Status::new(Code::UNAUTHENTICATED, "no key")),
        }));
    for protocol in PROTOCOLS {
        let status = call(&client(router.clone(), protocol), UNARY, "hi")
            .result
            .expect_err("rejected");
        assert_eq!(status.code(), Code::UNAUTHENTICATED, "{protocol:?}");
        assert_eq!(status.message(), "no key");
    }
    assert_eq!(svc.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn dropping_the_response_body_drops_the_handler() {
    let svc = Svc::default();
    let router = Router::new(ThreadRuntime).service(svc.clone());
    let client = client(router, Protocol::Grpc);
    let mut stream = block_on(client.server_streaming::<_, ErrorInfo>(
        STREAM,
        &info("forever", ""),
        CallOptions::default(),
    ))
    .expect("the stream opens");
    let first = block_on(stream.next()).expect("a message").expect("ok");
    assert_eq!(first.reason, "0");
    assert!(!svc.dropped.load(Ordering::SeqCst));
    // The client's stream owns the in-memory response body: dropping it resets the call.
    drop(stream);
    assert!(
        svc.dropped.load(Ordering::SeqCst),
        "the handler outlived its call"
    );
}

/// A gRPC request for `method` with one message, as a client sends it over HTTP/2.
fn grpc_request(method: MethodInfo, message: &ErrorInfo) -> http::Request<RequestBody> {
    let payload = connect_typed::encode(Codec::Proto, message).expect("encodes");
    let (head, tail) = connect_proto::encode_envelope(0, payload);
    let body = [head, tail.unwrap_or_default()].concat();
    let mut request = http::Request::post(method.path)
        .header("content-type", "application/grpc")
        .header("grpc-timeout", "20m")
        .body(RequestBody::full(Bytes::from(body)))
        .expect("request");
    *request.version_mut() = http::Version::HTTP_2;
    request
}

#[test]
fn the_deadline_ends_the_call_and_drops_the_handler() {
    let svc = Svc::default();
    let router = Router::new(ThreadRuntime).service(svc.clone());
    // No client here: only the server's own timer can end the call.
    let response = block_on(router.handle(grpc_request(UNARY, &info("hang", ""))));
    // No message was sent: a trailers-only response, the status in its head.
    assert_eq!(response.headers()["grpc-status"], "4", "{response:?}");
    let (body, _) = block_on(collect_body(response.into_body())).expect("a body");
    assert!(body.is_empty());
    assert!(
        svc.dropped.load(Ordering::SeqCst),
        "the handler outlived its deadline"
    );
}

#[test]
fn a_panicking_handler_fails_only_its_call() {
    let router = Router::new(ThreadRuntime).service(Svc::default());
    let client = client(router, Protocol::Connect);
    let status = call(&client, UNARY, "panic")
        .result
        .expect_err("it panicked");
    assert_eq!(status.code(), Code::INTERNAL);
    assert_eq!(status.message(), "the handler panicked");
    assert_eq!(
        call(&client, UNARY, "fine").result.expect("served").reason,
        "fine"
    );
}

/// The messages a stream had ready before its handler panicked are sent (they were written as one
/// run, under one panic guard); then the call fails with `internal`, and only that call.
#[test]
fn a_stream_that_panics_mid_run_fails_after_its_sent_messages() {
    let router = Router::new(ThreadRuntime).service(Svc::default());
    for protocol in PROTOCOLS {
        let client = client(router.clone(), protocol);
        let mut stream = block_on(client.server_streaming::<_, ErrorInfo>(
            STREAM,
            &info("panic-at-3", ""),
            CallOptions::default(),
        ))
        .expect("the stream opens");
        let items: Vec<_> = block_on(stream.by_ref().collect());
        let reasons: Vec<_> = items.iter().flatten().map(|m| m.reason.as_str()).collect();
        assert_eq!(reasons, ["0", "1", "2"], "{protocol:?}: {items:?}");
        let status = items[3].as_ref().expect_err("the panic");
        assert_eq!(status.code(), Code::INTERNAL, "{protocol:?}");
        assert_eq!(status.message(), "the handler panicked");
        assert_eq!(items.len(), 4);
        let fine = call(&client, UNARY, "fine").result.expect("served");
        assert_eq!(fine.reason, "fine");
    }
}

#[test]
fn a_header_set_after_the_first_message_fails_the_call() {
    let router = Router::new(ThreadRuntime).service(Svc::default());
    for protocol in PROTOCOLS {
        let client = client(router.clone(), protocol);
        let mut stream = block_on(client.server_streaming::<_, ErrorInfo>(
            STREAM,
            &info("late-header", ""),
            CallOptions::default(),
        ))
        .expect("the stream opens");
        let items: Vec<_> = block_on(async {
            let mut items = Vec::new();
            while let Some(item) = stream.next().await {
                items.push(item);
            }
            items
        });
        assert_eq!(items.len(), 2, "{protocol:?}: {items:?}");
        assert_eq!(items[0].as_ref().expect("first").reason, "0");
        let status = items[1].as_ref().expect_err("the late header");
        assert_eq!(status.code(), Code::INTERNAL, "{protocol:?}");
        assert_eq!(status.message(), "the response headers were already sent");
        assert!(stream.headers().get("x-late").is_none());
    }
}
