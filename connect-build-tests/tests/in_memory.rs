//! End-to-end through generated code without sockets: a generated client over an in-memory transport
//! that hands each `http::Request` to the router's server entry point, bodies streamed both ways.
//! Every RPC shape, errors with details, headers and trailers, deadlines, Connect GET — over Connect,
//! gRPC and gRPC-Web, with proto and JSON.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use connect_build_tests::proto::acme::greet::v1::{
    GreetRequest, GreetResponse, GreetService, GreetServiceClient, GreetServiceServer,
};
use connect_rpc::testing::{InMemory, ThreadRuntime};
use connect_rpc::{CallOptions, ClientConfig, Code, Codec, ErrorDetail, Instant, Protocol, Status};
use connect_rpc::{
    Client, Context, HandlerStream, RequestView, Response, Router, Runtime, Streaming,
};
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue};

struct Greeter;

impl GreetService for Greeter {
    async fn greet(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let name = request.name().to_owned();
        if name == "slow" {
            ThreadRuntime
                .sleep_until(Instant::now() + Duration::from_secs(5))
                .await;
        }
        let echoed = ctx
            .request_headers()
            .get("x-echo")
            .cloned()
            .unwrap_or(HeaderValue::from_static("none"));
        ctx.set_response_header(HeaderName::from_static("x-echoed"), echoed)?;
        ctx.set_response_trailer(
            HeaderName::from_static("x-trailer"),
            HeaderValue::from_static("done"),
        )?;
        Ok(Response::new(greeting(&name)))
    }

    async fn greet_idempotent(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let method = ctx.method().path;
        Ok(Response::new(greeting(&format!(
            "{} via {method}",
            request.name()
        ))))
    }

    async fn greet_many(
        &self,
        _ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        let name = request.name().to_owned();
        let count = request.count();
        if count < 0 {
            return Err(Status::invalid_argument("negative count"));
        }
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            (0..count).map(move |i| Ok(greeting(&format!("{name} #{i}")))),
        ))))
    }

    async fn greet_all(
        &self,
        _ctx: Context,
        mut requests: Streaming<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let mut names = Vec::new();
        while let Some(request) = requests.next().await {
            names.push(request?.name().to_owned());
        }
        Ok(Response::new(greeting(&names.join(", "))))
    }

    async fn chat(
        &self,
        _ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        Ok(Response::new(Box::pin(
            requests.map(|request| request.map(|r| greeting(r.name()))),
        )))
    }

    async fn fail(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<buffa_types::google::protobuf::Empty>, Status> {
        ctx.set_response_header(
            http::HeaderName::from_static("x-fail-header"),
            http::HeaderValue::from_static("h"),
        )?;
        ctx.set_response_trailer(
            http::HeaderName::from_static("x-fail-trailer"),
            http::HeaderValue::from_static("t"),
        )?;
        let code = Code::from_name(request.name()).unwrap_or(Code::UNKNOWN);
        Err(
            Status::new(code, "failed as asked").with_detail(ErrorDetail::new(
                "acme.greet.v1.GreetRequest",
                Bytes::from_static(b"\x10\x07"),
            )),
        )
    }
}

fn greeting(name: &str) -> GreetResponse {
    GreetResponse {
        greeting: format!("Hello, {name}!"),
        ..Default::default()
    }
}

fn request(name: &str, count: i32) -> GreetRequest {
    GreetRequest {
        name: name.to_owned(),
        count,
        ..Default::default()
    }
}

fn router() -> Router {
    Router::new(ThreadRuntime).service(GreetServiceServer::new(Greeter))
}

fn client(protocol: Protocol, codec: Codec) -> GreetServiceClient<InMemory> {
    client_with(ClientConfig::new(protocol, codec))
}

fn client_with(config: ClientConfig) -> GreetServiceClient<InMemory> {
    GreetServiceClient::new(Client::new(
        InMemory::new(router()),
        "http://in-memory".parse().unwrap(),
        config,
        ThreadRuntime,
    ))
}

const MATRIX: [(Protocol, Codec); 6] = [
    (Protocol::Connect, Codec::Proto),
    (Protocol::Connect, Codec::Json),
    (Protocol::Grpc, Codec::Proto),
    (Protocol::Grpc, Codec::Json),
    (Protocol::GrpcWeb, Codec::Proto),
    (Protocol::GrpcWeb, Codec::Json),
];

#[test]
fn router_lists_generated_paths() {
    let paths = router().paths();
    assert!(paths.contains(&"/acme.greet.v1.GreetService/Greet"));
    assert!(paths.contains(&"/acme.greet.v1.GreetService/Chat"));
    assert_eq!(paths.len(), 6);
}

#[test]
fn unary_with_headers_and_trailers() {
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let mut options = CallOptions::default();
            options
                .headers
                .insert("x-echo", HeaderValue::from_static("ping"));
            let response = client(protocol, codec)
                .greet_with_options(&request("Ada", 0), options)
                .await
                .unwrap_or_else(|e| panic!("{protocol:?}/{codec:?}: {e}"));
            assert_eq!(response.message().greeting, "Hello, Ada!");
            assert_eq!(response.headers()["x-echoed"], "ping", "{protocol:?}");
            assert_eq!(response.trailers()["x-trailer"], "done", "{protocol:?}");
        });
    }
}

#[test]
fn server_streaming() {
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let stream = client(protocol, codec)
                .greet_many(&request("Bo", 3))
                .await
                .unwrap();
            let greetings: Vec<_> = stream.map(|r| r.unwrap().greeting).collect().await;
            assert_eq!(
                greetings,
                ["Hello, Bo #0!", "Hello, Bo #1!", "Hello, Bo #2!"],
                "{protocol:?}/{codec:?}"
            );
        });
    }
}

#[test]
fn server_streaming_error_before_first_message() {
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let result = client(protocol, codec).greet_many(&request("Bo", -1)).await;
            let status = match result {
                Err(status) => status,
                Ok(mut stream) => stream.next().await.unwrap().unwrap_err(),
            };
            assert_eq!(status.code(), Code::INVALID_ARGUMENT, "{protocol:?}");
        });
    }
}

#[test]
fn client_streaming() {
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let requests = futures_util::stream::iter(["a", "b", "c"].map(|n| request(n, 0)));
            let response = client(protocol, codec).greet_all(requests).await.unwrap();
            assert_eq!(
                response.message().greeting,
                "Hello, a, b, c!",
                "{protocol:?}"
            );
        });
    }
}

#[test]
fn bidi_streaming() {
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let requests = futures_util::stream::iter(["x", "y"].map(|n| request(n, 0)));
            let stream = client(protocol, codec).chat(requests).await.unwrap();
            let greetings: Vec<_> = stream.map(|r| r.unwrap().greeting).collect().await;
            assert_eq!(greetings, ["Hello, x!", "Hello, y!"], "{protocol:?}");
        });
    }
}

#[test]
fn errors_carry_code_message_and_details() {
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let status = client(protocol, codec)
                .fail(&request("not_found", 0))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::NOT_FOUND, "{protocol:?}/{codec:?}");
            assert_eq!(status.message(), "failed as asked");
            assert_eq!(status.details().len(), 1, "{protocol:?}");
            assert_eq!(status.details()[0].type_name, "acme.greet.v1.GreetRequest");
            assert_eq!(&status.details()[0].value[..], b"\x10\x07");
            assert_eq!(status.metadata()["x-fail-header"], "h", "{protocol:?}");
            assert_eq!(status.metadata()["x-fail-trailer"], "t", "{protocol:?}");
        });
    }
}

#[test]
fn deadline_exceeded() {
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let options = CallOptions {
                timeout: Some(Duration::from_millis(100)),
                ..Default::default()
            };
            let started = Instant::now();
            let status = client(protocol, codec)
                .greet_with_options(&request("slow", 0), options)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::DEADLINE_EXCEEDED, "{protocol:?}");
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "the handler was not cut off"
            );
        });
    }
}

#[test]
fn client_default_timeout_applies_and_call_options_override_it() {
    futures_executor::block_on(async {
        let mut config = ClientConfig::new(Protocol::Connect, Codec::Proto);
        config.timeout = Some(Duration::from_millis(50));
        let client = client_with(config);
        let status = client.greet(&request("slow", 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::DEADLINE_EXCEEDED);
        let ok = client
            .greet_with_options(
                &request("quick", 0),
                CallOptions {
                    timeout: Some(Duration::from_secs(10)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(ok.message().greeting, "Hello, quick!");
    });
}

#[test]
fn connect_get_for_no_side_effect_methods() {
    futures_executor::block_on(async {
        let mut config = ClientConfig::new(Protocol::Connect, Codec::Proto);
        config.use_get = true;
        let response = client_with(config)
            .greet_idempotent(&request("Get", 0))
            .await
            .unwrap();
        assert_eq!(
            response.message().greeting,
            "Hello, Get via /acme.greet.v1.GreetService/GreetIdempotent!"
        );
    });
}

#[test]
fn unknown_method_is_unimplemented() {
    futures_executor::block_on(async {
        let client = Client::new(
            InMemory::new(Router::new(ThreadRuntime)),
            "http://in-memory".parse().unwrap(),
            ClientConfig::new(Protocol::Grpc, Codec::Proto),
            ThreadRuntime,
        );
        let status = GreetServiceClient::new(client)
            .greet(&request("nobody", 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::UNIMPLEMENTED);
    });
}

#[test]
fn unary_outcome_keeps_headers_and_trailers_apart() {
    use connect_build_tests::proto::acme::greet::v1::greet_service_methods::FAIL;
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let client = client(protocol, codec);
            let outcome = client
                .inner()
                .unary_outcome::<_, buffa_types::google::protobuf::Empty>(
                    FAIL,
                    &request("aborted", 0),
                    CallOptions::default(),
                )
                .await;
            assert_eq!(outcome.result.unwrap_err().code(), Code::ABORTED);
            let (headers, trailers) = (&outcome.headers, &outcome.trailers);
            assert_eq!(headers["x-fail-header"], "h", "{protocol:?}");
            assert_eq!(trailers["x-fail-trailer"], "t", "{protocol:?}");
            assert!(headers.get("x-fail-trailer").is_none(), "{protocol:?}");
            assert!(outcome.http_status.is_some());
        });
    }
}

/// A request body that yields `first` and then fails, as a client that goes away mid-request.
struct FailingBody(Option<Bytes>);

impl http_body::Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.0.take() {
            Some(data) => Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
            None => Poll::Ready(Some(Err(std::io::Error::other("client went away")))),
        }
    }
}

#[test]
fn a_request_body_that_fails_ends_the_call_instead_of_hanging() {
    use connect_build_tests::proto::acme::greet::v1::greet_service_methods::CHAT;
    let request = http::Request::builder()
        .method("POST")
        .uri(CHAT.path)
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(FailingBody(Some(Bytes::from_static(b"\x00\x00\x00"))))
        .unwrap();
    futures_executor::block_on(async {
        let response = router().handle(request).await;
        let mut body = response.into_body();
        let frame = futures_util::future::poll_fn(|cx| {
            http_body::Body::poll_frame(Pin::new(&mut body), cx)
        })
        .await;
        assert!(
            matches!(frame, Some(Err(connect_rpc::CallReset))),
            "{frame:?}"
        );
    });
}

#[test]
fn router_answers_cors_preflights_and_exposes_status_headers() {
    let router = router().cors(connect_rpc::cors::Cors::default());
    futures_executor::block_on(async {
        let preflight = http::Request::builder()
            .method("OPTIONS")
            .uri("/acme.greet.v1.GreetService/Greet")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,connect-protocol-version",
            )
            .body(FailingBody(None))
            .unwrap();
        let response = router.handle(preflight).await;
        assert_eq!(response.status(), http::StatusCode::NO_CONTENT);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.example"
        );

        let call = http::Request::builder()
            .method("POST")
            .uri("/acme.greet.v1.GreetService/Greet")
            .version(http::Version::HTTP_2)
            .header("origin", "https://app.example")
            .header("content-type", "application/grpc-web+proto")
            .body(EndedBody)
            .unwrap();
        let response = router.handle(call).await;
        let exposed = response.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap();
        assert!(exposed.contains("grpc-status"), "{exposed}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.example"
        );
    });
}

/// An empty request body.
struct EndedBody;

impl http_body::Body for EndedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(None)
    }
}

/// A service written by hand: `GreetMany` answered with payloads serialized elsewhere
/// (`ResponsePayloads::from_stream`), then an error.
struct RawGreetMany;

impl connect_rpc::Service for RawGreetMany {
    fn methods(&self) -> &'static [connect_rpc::MethodInfo] {
        &[connect_build_tests::proto::acme::greet::v1::greet_service_methods::GREET_MANY]
    }

    fn call(
        &self,
        method: usize,
        ctx: Context,
        _requests: connect_rpc::RequestPayloads,
    ) -> Option<connect_rpc::ResponsePayloads> {
        if method != 0 {
            return None;
        }
        let codec = ctx.codec();
        let payloads = ["raw one", "raw two"]
            .map(|greeting| connect_rpc::encode(codec, &greeting_message(greeting)));
        let end = Err(Status::new(Code::DATA_LOSS, "raw end"));
        let items = payloads.into_iter().chain(std::iter::once(end));
        Some(connect_rpc::ResponsePayloads::from_stream(
            futures_util::stream::iter(items),
        ))
    }
}

fn greeting_message(greeting: &str) -> GreetResponse {
    GreetResponse {
        greeting: greeting.to_owned(),
        ..Default::default()
    }
}

#[test]
fn hand_written_service_answers_with_raw_payloads() {
    for (protocol, codec) in MATRIX {
        futures_executor::block_on(async {
            let router = Router::new(ThreadRuntime).service(RawGreetMany);
            let client = GreetServiceClient::new(Client::new(
                InMemory::new(router),
                "http://in-memory".parse().unwrap(),
                ClientConfig::new(protocol, codec),
                ThreadRuntime,
            ));
            let stream = client.greet_many(&request("raw", 2)).await.unwrap();
            let items: Vec<_> = stream.collect().await;
            let label = format!("{protocol:?}/{codec:?}");
            assert_eq!(items.len(), 3, "{label}: {items:?}");
            assert_eq!(items[0].as_ref().unwrap().greeting, "raw one", "{label}");
            assert_eq!(items[1].as_ref().unwrap().greeting, "raw two", "{label}");
            let status = items[2].as_ref().unwrap_err();
            assert_eq!(status.code(), Code::DATA_LOSS, "{label}");
            assert_eq!(status.message(), "raw end", "{label}");
        });
    }
}
