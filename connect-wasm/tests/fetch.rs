//! The fetch transport and the browser runtime against the real test server
//! (`connect-wasm-test-server`: connect-tokio with CORS), through the generated `GreetService`
//! client, in Node and in headless Chromium. `run-tests.sh` starts the server; its address reaches
//! the tests at build time in `CONNECT_WASM_TEST_SERVER`.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use connect_build_tests::proto::acme::greet::v1::{
    GreetRequest, GreetResponse, GreetServiceClient,
};
use connect_typed::{
    CallOptions, ClientConfig, Code, Codec, Instant, Protocol, Runtime, Status, UnaryCall,
    UnaryRequest,
};
use connect_typed::{ClientCallHead, ClientCallInfo, ClientInterceptor, MessageRef};
use connect_wasm::{BrowserRuntime, FetchTransport};
use futures_util::StreamExt;
use http::HeaderValue;
use wasm_bindgen_test::wasm_bindgen_test;

const SERVER: &str = match option_env!("CONNECT_WASM_TEST_SERVER") {
    Some(server) => server,
    None => "http://127.0.0.1:8765",
};

/// Every protocol and codec a browser speaks.
const MATRIX: [(Protocol, Codec); 4] = [
    (Protocol::Connect, Codec::Proto),
    (Protocol::Connect, Codec::Json),
    (Protocol::GrpcWeb, Codec::Proto),
    (Protocol::GrpcWeb, Codec::Json),
];

fn client_with(config: ClientConfig) -> GreetServiceClient<FetchTransport> {
    GreetServiceClient::new(connect_wasm::client(SERVER.parse().unwrap(), config))
}

fn client(protocol: Protocol, codec: Codec) -> GreetServiceClient<FetchTransport> {
    client_with(ClientConfig::new(protocol, codec))
}

fn request(name: &str, count: i32, interval: Duration) -> GreetRequest {
    let mut request = GreetRequest {
        name: name.to_owned(),
        count,
        ..Default::default()
    };
    if !interval.is_zero() {
        request.interval = buffa_types::google::protobuf::Duration {
            seconds: interval.as_secs() as i64,
            nanos: interval.subsec_nanos() as i32,
            ..Default::default()
        }
        .into();
    }
    request
}

fn greet(name: &str) -> GreetRequest {
    request(name, 0, Duration::ZERO)
}

async fn sleep(duration: Duration) {
    BrowserRuntime
        .sleep_until(BrowserRuntime.now() + duration)
        .await;
}

#[wasm_bindgen_test]
async fn unary_with_headers_and_trailers() {
    for (protocol, codec) in MATRIX {
        let mut options = CallOptions::default();
        options
            .headers
            .insert("x-echo", HeaderValue::from_static("ping"));
        let response = client(protocol, codec)
            .greet_with_options(&greet("Ada"), options)
            .await
            .unwrap_or_else(|e| panic!("{protocol:?}/{codec:?}: {e}"));
        assert_eq!(response.message().greeting, "Hello, Ada!");
        assert_eq!(
            response.headers()["x-echoed"],
            "ping",
            "{protocol:?}/{codec:?}"
        );
        assert_eq!(
            response.trailers()["x-trailer"],
            "done",
            "{protocol:?}/{codec:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn server_streaming_with_trailers() {
    for (protocol, codec) in MATRIX {
        let mut stream = client(protocol, codec)
            .greet_many(&request("Bo", 3, Duration::ZERO))
            .await
            .unwrap_or_else(|e| panic!("{protocol:?}/{codec:?}: {e}"));
        let mut greetings = Vec::new();
        while let Some(message) = stream.next().await {
            greetings.push(message.unwrap().greeting);
        }
        assert_eq!(
            greetings,
            ["Hello, Bo #0!", "Hello, Bo #1!", "Hello, Bo #2!"],
            "{protocol:?}/{codec:?}"
        );
        // Connect: the EndStream message's metadata; gRPC-Web: the trailer frame.
        let trailers = stream.trailers().expect("trailers after the end");
        assert_eq!(trailers["x-trailer"], "streamed", "{protocol:?}/{codec:?}");
    }
}

/// The first message is yielded when it arrives, not when the body is complete.
#[wasm_bindgen_test]
async fn server_stream_yields_each_message_as_it_arrives() {
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        let interval = Duration::from_millis(700);
        let started = Instant::now();
        let mut stream = client(protocol, Codec::Proto)
            .greet_many(&request("Cy", 3, interval))
            .await
            .unwrap();
        let mut arrivals = Vec::new();
        while let Some(message) = stream.next().await {
            message.unwrap();
            arrivals.push(started.elapsed());
        }
        assert_eq!(arrivals.len(), 3, "{protocol:?}");
        let (first, last) = (arrivals[0], arrivals[2]);
        assert!(
            first + Duration::from_millis(1200) <= last,
            "{protocol:?}: the first message came at {first:?}, the last at {last:?}"
        );
        assert!(
            arrivals[1] >= first + Duration::from_millis(500),
            "{protocol:?}: {arrivals:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn errors_carry_code_message_details_and_metadata() {
    for (protocol, codec) in MATRIX {
        let status = client(protocol, codec)
            .fail(&greet("not_found"))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::NOT_FOUND,
            "{protocol:?}/{codec:?}: {status}"
        );
        assert_eq!(status.message(), "failed as asked");
        assert_eq!(status.details().len(), 1, "{protocol:?}/{codec:?}");
        assert_eq!(status.details()[0].type_name, "acme.greet.v1.GreetRequest");
        assert_eq!(&status.details()[0].value[..], b"\x10\x07");
        assert_eq!(status.metadata()["x-fail-header"], "h", "{protocol:?}");
        assert_eq!(status.metadata()["x-fail-trailer"], "t", "{protocol:?}");
    }
}

#[wasm_bindgen_test]
async fn server_stream_error_before_the_first_message() {
    for (protocol, codec) in MATRIX {
        let result = client(protocol, codec)
            .greet_many(&request("Bo", -1, Duration::ZERO))
            .await;
        let status = match result {
            Err(status) => status,
            Ok(mut stream) => stream.next().await.unwrap().unwrap_err(),
        };
        assert_eq!(
            status.code(),
            Code::INVALID_ARGUMENT,
            "{protocol:?}/{codec:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn connect_get_for_idempotent_methods() {
    for codec in [Codec::Proto, Codec::Json] {
        let mut config = ClientConfig::new(Protocol::Connect, codec);
        config.use_get = true;
        let response = client_with(config)
            .greet_idempotent(&greet("Get"))
            .await
            .unwrap();
        assert_eq!(
            response.message().greeting,
            "Hello, Get via GET!",
            "{codec:?}"
        );
    }
    let response = client(Protocol::Connect, Codec::Proto)
        .greet_idempotent(&greet("Post"))
        .await
        .unwrap();
    assert_eq!(response.message().greeting, "Hello, Post via POST!");
}

#[wasm_bindgen_test]
async fn gzip_both_ways() {
    let long = "x".repeat(4000);
    for (protocol, codec) in MATRIX {
        let mut config = ClientConfig::new(protocol, codec);
        config.send_compression = Some("gzip");
        config.compress_min_bytes = 0;
        let client = client_with(config);

        let response = client.greet(&greet(&long)).await.unwrap();
        assert_eq!(response.message().greeting, format!("Hello, {long}!"));
        let sent = response.headers()["x-seen-encoding"].to_str().unwrap();
        assert!(sent.contains("gzip"), "{protocol:?}/{codec:?}: sent {sent}");

        // Streamed responses are compressed per message by the server (the client accepts gzip) and
        // decompressed here by the core, with flate2.
        let mut stream = client
            .greet_many(&request(&long, 2, Duration::ZERO))
            .await
            .unwrap();
        let accepted = stream.headers()["x-seen-accept-encoding"].to_str().unwrap();
        assert!(
            accepted.contains("gzip"),
            "{protocol:?}/{codec:?}: accepted {accepted}"
        );
        let mut count = 0;
        while let Some(message) = stream.next().await {
            assert!(message.unwrap().greeting.len() > 4000);
            count += 1;
        }
        assert_eq!(count, 2, "{protocol:?}/{codec:?}");
    }
}

#[wasm_bindgen_test]
async fn deadline_through_the_browser_timer() {
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        let options = CallOptions {
            timeout: Some(Duration::from_millis(300)),
            ..Default::default()
        };
        let started = Instant::now();
        let status = client(protocol, Codec::Proto)
            .greet_with_options(&greet("slow"), options)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::DEADLINE_EXCEEDED,
            "{protocol:?}: {status}"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(3),
            "{protocol:?}: took {elapsed:?}"
        );
    }
}

/// A server that never answers: the deadline is the client's own, from the core's timer on
/// `setTimeout`, and it aborts the fetch.
#[wasm_bindgen_test]
async fn deadline_without_help_from_the_server() {
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        let mut config = ClientConfig::new(protocol, Codec::Proto);
        config.timeout = Some(Duration::from_millis(300));
        let client = GreetServiceClient::new(connect_wasm::client(
            format!("{SERVER}/blackhole").parse().unwrap(),
            config,
        ));
        let started = Instant::now();
        let status = client.greet(&greet("Ada")).await.unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(
            status.code(),
            Code::DEADLINE_EXCEEDED,
            "{protocol:?}: {status}"
        );
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
            "{protocol:?}: {elapsed:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn runtime_sleeps_until_the_deadline_and_spawns() {
    let started = Instant::now();
    sleep(Duration::from_millis(120)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(120) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    let (tx, rx) = futures_channel::oneshot::channel();
    BrowserRuntime.spawn(Box::pin(async move {
        sleep(Duration::from_millis(10)).await;
        let _ = tx.send(42);
    }));
    assert_eq!(rx.await, Ok(42));
}

async fn aborted_streams() -> usize {
    let stats = client(Protocol::Connect, Codec::Proto)
        .greet(&greet("stats"))
        .await
        .unwrap();
    stats
        .message()
        .greeting
        .strip_prefix("aborted=")
        .and_then(|n| n.parse().ok())
        .expect("stats")
}

/// Polls `aborted_streams` until it passes `before` (the server notices the closed connection
/// asynchronously).
async fn wait_for_abort(before: usize, what: &str) {
    let started = Instant::now();
    while aborted_streams().await <= before {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: the server never saw the fetch aborted"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

#[wasm_bindgen_test]
async fn dropping_a_stream_aborts_the_fetch() {
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        let before = aborted_streams().await;
        let mut stream = client(protocol, Codec::Proto)
            .greet_many(&request("Dee", 100, Duration::from_millis(100)))
            .await
            .unwrap();
        assert_eq!(
            stream.next().await.unwrap().unwrap().greeting,
            "Hello, Dee #0!"
        );
        drop(stream);
        wait_for_abort(before, &format!("{protocol:?}")).await;
    }
}

#[wasm_bindgen_test]
async fn a_deadline_in_the_middle_of_a_stream_aborts_it() {
    let before = aborted_streams().await;
    let options = CallOptions {
        timeout: Some(Duration::from_millis(450)),
        ..Default::default()
    };
    let mut stream = client(Protocol::GrpcWeb, Codec::Proto)
        .greet_many_with_options(&request("Eve", 100, Duration::from_millis(100)), options)
        .await
        .unwrap();
    let mut received = 0;
    let status = loop {
        match stream.next().await.expect("the stream ends with an error") {
            Ok(_) => received += 1,
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DEADLINE_EXCEEDED, "{status}");
    assert!((2..=6).contains(&received), "received {received}");
    wait_for_abort(before, "deadline").await;
}

#[wasm_bindgen_test]
async fn dropping_a_pending_unary_call_aborts_it() {
    let started = Instant::now();
    let (client, slow) = (client(Protocol::Connect, Codec::Proto), greet("slow"));
    let call = client.greet(&slow);
    let timer = sleep(Duration::from_millis(200));
    futures_util::pin_mut!(call, timer);
    match futures_util::future::select(call, timer).await {
        futures_util::future::Either::Left((result, _)) => panic!("finished early: {result:?}"),
        futures_util::future::Either::Right(((), call)) => drop(call),
    }
    // The transport is free at once: a next call is not queued behind the aborted one.
    let response = client.greet(&greet("next")).await.unwrap();
    assert_eq!(response.message().greeting, "Hello, next!");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[wasm_bindgen_test]
async fn client_streaming_sends_the_messages_together() {
    for (protocol, codec) in MATRIX {
        let requests = futures_util::stream::iter(["a", "b", "c"].map(greet));
        let response = client(protocol, codec)
            .greet_all(requests)
            .await
            .unwrap_or_else(|e| panic!("{protocol:?}/{codec:?}: {e}"));
        assert_eq!(response.message().greeting, "Hello, a, b, c!");
    }
}

#[wasm_bindgen_test]
async fn bidi_is_unimplemented_at_call_time() {
    for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
        // A request stream that never ends: a transport that tried would hang.
        let requests = futures_util::stream::pending::<GreetRequest>();
        let status = client(protocol, Codec::Proto)
            .chat(requests)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::UNIMPLEMENTED, "{status}");
        assert!(status.message().contains("bidi"), "{status}");
    }
}

#[wasm_bindgen_test]
async fn grpc_is_unimplemented_at_call_time() {
    let status = client(Protocol::Grpc, Codec::Proto)
        .greet(&greet("Ada"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::UNIMPLEMENTED, "{status}");
}

#[wasm_bindgen_test]
async fn unreachable_server_is_unavailable() {
    let client = GreetServiceClient::new(connect_wasm::client(
        "http://127.0.0.1:9".parse().unwrap(),
        ClientConfig::new(Protocol::Connect, Codec::Proto),
    ));
    let status = client.greet(&greet("Ada")).await.unwrap_err();
    assert_eq!(status.code(), Code::UNAVAILABLE, "{status}");
}

/// Records every phase of the calls it sees, and adds `x-echo: intercepted` to each request.
#[derive(Clone, Default)]
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Recorder {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl ClientInterceptor for Recorder {
    fn on_request_head(&self, head: &mut ClientCallHead<'_>) -> Result<(), Status> {
        head.options
            .headers
            .insert("x-echo", HeaderValue::from_static("intercepted"));
        self.push(format!("head {}", head.method.path));
        Ok(())
    }

    fn on_request_message(
        &self,
        _: &ClientCallInfo,
        message: MessageRef<'_>,
    ) -> Result<(), Status> {
        let name = message.downcast_ref::<GreetRequest>().unwrap().name.clone();
        self.push(format!("request {name}"));
        Ok(())
    }

    fn on_response_headers(&self, _: &ClientCallInfo, headers: &mut http::HeaderMap) {
        let echoed = headers
            .get("x-echoed")
            .map(|v| v.to_str().unwrap().to_owned());
        self.push(format!("headers {echoed:?}"));
    }

    fn on_response_message(
        &self,
        _: &ClientCallInfo,
        message: MessageRef<'_>,
    ) -> Result<(), Status> {
        let greeting = &message.downcast_ref::<GreetResponse>().unwrap().greeting;
        self.push(format!("response {greeting}"));
        Ok(())
    }

    fn on_finish(
        &self,
        _: &ClientCallInfo,
        outcome: &mut Result<(), Status>,
        trailers: &mut http::HeaderMap,
    ) {
        let trailer = trailers
            .get("x-trailer")
            .map(|v| v.to_str().unwrap().to_owned());
        let code = outcome.as_ref().err().map(|s| s.code());
        self.push(format!("finish {code:?} {trailer:?}"));
    }

    fn wrap_unary(&self, next: UnaryCall) -> UnaryCall {
        let this = self.clone();
        std::sync::Arc::new(move |request: UnaryRequest| {
            this.push(format!("unary {} bytes", request.payload.len()));
            next(request)
        })
    }
}

#[wasm_bindgen_test]
async fn client_interceptors_see_every_phase_in_the_browser() {
    for (protocol, codec) in MATRIX {
        let recorder = Recorder::default();
        let config = ClientConfig::new(protocol, codec);
        let client = GreetServiceClient::new(
            connect_wasm::client(SERVER.parse().unwrap(), config).intercept(recorder.clone()),
        );
        let case = format!("{protocol:?}/{codec:?}");

        let response = client.greet(&greet("Ada")).await.unwrap();
        // The interceptor's header reached the server, which echoed it.
        assert_eq!(response.headers()["x-echoed"], "intercepted", "{case}");
        let log = recorder.take();
        assert_eq!(log[0], "head /acme.greet.v1.GreetService/Greet", "{case}");
        assert_eq!(log[1], "request Ada", "{case}");
        assert!(log[2].starts_with("unary "), "{case}: {log:?}");
        assert_eq!(
            log[3..],
            [
                "headers Some(\"intercepted\")",
                "response Hello, Ada!",
                "finish None Some(\"done\")",
            ],
            "{case}"
        );

        let mut stream = client
            .greet_many(&request("Grace", 2, Duration::ZERO))
            .await
            .unwrap();
        while let Some(message) = stream.next().await {
            message.unwrap();
        }
        let log = recorder.take();
        assert_eq!(
            log[1..],
            [
                "request Grace",
                "headers None",
                "response Hello, Grace #0!",
                "response Hello, Grace #1!",
                "finish None Some(\"streamed\")",
            ],
            "{case}"
        );

        let error = client.fail(&greet("unavailable")).await.unwrap_err();
        assert_eq!(error.code(), Code::UNAVAILABLE, "{case}");
        let log = recorder.take();
        assert_eq!(
            log.last().unwrap(),
            "finish Some(unavailable) None",
            "{case}: {log:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn a_client_interceptor_can_fail_a_call_before_the_fetch() {
    let client = GreetServiceClient::new(
        connect_wasm::client(
            SERVER.parse().unwrap(),
            ClientConfig::new(Protocol::Connect, Codec::Proto),
        )
        .intercept(connect_typed::client_head_interceptor(|_| {
            Err(Status::new(Code::UNAUTHENTICATED, "log in first"))
        })),
    );
    let error = client.greet(&greet("Ada")).await.unwrap_err();
    assert_eq!(error.code(), Code::UNAUTHENTICATED);
    assert_eq!(error.message(), "log in first");
}
