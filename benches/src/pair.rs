//! The two call machines in memory, with no HTTP stack (`connect_proto::testing`): what the
//! micro-benchmarks and the allocation counter measure.

use bytes::Bytes;
use connect_proto::testing;
use connect_proto::ServerTransmit;
use connect_typed::{
    ClientCall, ClientConfig, Codec, MethodInfo, Protocol, ServerConfig, StreamType,
};

/// The unary echo method.
pub const ECHO: MethodInfo = MethodInfo {
    path: "/bench.v1.BenchService/Echo",
    stream_type: StreamType::Unary,
    no_side_effects: false,
};

/// The server-streaming method.
pub const SERVER_STREAM: MethodInfo = MethodInfo {
    path: "/bench.v1.BenchService/ServerStream",
    stream_type: StreamType::ServerStreaming,
    no_side_effects: false,
};

/// The three protocols.
pub const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

/// Short protocol name for benchmark ids.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Connect => "connect",
        Protocol::Grpc => "grpc",
        Protocol::GrpcWeb => "grpc-web",
    }
}

pub use connect_proto::testing::CapturedRequest;

/// Runs a client machine for one request message and captures what it sends.
pub fn client_request(
    config: &ClientConfig,
    method: MethodInfo,
    payload: Bytes,
) -> (ClientCall, CapturedRequest) {
    testing::capture_request(config, method, [payload])
}

/// Runs a server machine for a captured request; the handler echoes each message `copies` times.
/// Returns what the server sends.
pub fn serve(
    config: &ServerConfig,
    method: MethodInfo,
    request: &CapturedRequest,
    copies: usize,
) -> Vec<ServerTransmit> {
    testing::serve_echo(config, method, request, copies)
}

/// Feeds a server's output to the client machine; returns the number of messages received.
pub fn client_response(client: &mut ClientCall, response: Vec<ServerTransmit>) -> usize {
    testing::deliver_response(client, response)
}

/// One unary call through both machines; returns the response message count (1).
pub fn unary_round_trip(
    client_config: &ClientConfig,
    server_config: &ServerConfig,
    payload: Bytes,
) -> usize {
    let (mut client, request) = client_request(client_config, ECHO, payload);
    let response = serve(server_config, ECHO, &request, 1);
    client_response(&mut client, response)
}

/// A copy of a canned server transmit (`ServerTransmit` is not `Clone`: heads are `http` types), so
/// that one recorded response can be replayed to many clients.
pub fn copy_transmit(transmit: &ServerTransmit) -> ServerTransmit {
    match transmit {
        ServerTransmit::Head(h) => {
            let mut head = http::Response::new(());
            *head.status_mut() = h.status();
            *head.headers_mut() = h.headers().clone();
            ServerTransmit::Head(head)
        }
        ServerTransmit::Data(d) => ServerTransmit::Data(d.clone()),
        ServerTransmit::Trailers(t) => ServerTransmit::Trailers(t.clone()),
        ServerTransmit::End => ServerTransmit::End,
        ServerTransmit::Reset => ServerTransmit::Reset,
    }
}

/// A client configuration for `protocol` with the proto codec.
pub fn client_config(protocol: Protocol) -> ClientConfig {
    ClientConfig::new(protocol, Codec::Proto)
}

/// The captured request as an `http::Request` with its body in one chunk, for
/// [`Router::handle`](connect_typed::Router::handle).
pub fn http_request(request: &CapturedRequest) -> http::Request<http_body_util::Full<Bytes>> {
    let body: Bytes = match request.body.as_slice() {
        [one] => one.clone(),
        chunks => chunks.iter().flat_map(|b| b.iter().copied()).collect(),
    };
    let mut http_request = http::Request::new(http_body_util::Full::new(body));
    *http_request.method_mut() = request.parts.method.clone();
    *http_request.version_mut() = request.parts.version;
    *http_request.uri_mut() = request.parts.uri.clone();
    *http_request.headers_mut() = request.parts.headers.clone();
    http_request
}

/// One call through the typed layer: `router` (our generated server behind it) answers `request`,
/// and the whole response body is read. Returns the body length.
pub fn rpc_call(
    router: &connect_typed::Router,
    request: http::Request<http_body_util::Full<Bytes>>,
) -> usize {
    use http_body_util::BodyExt;
    let response = futures_executor::block_on(router.handle(request));
    let body = futures_executor::block_on(response.into_body().collect()).expect("body");
    body.to_bytes().len()
}

/// A router serving the benchmark service on our stack.
pub fn rpc_router() -> connect_typed::Router {
    connect_typed::Router::new(connect_tokio::TokioRuntime).service(
        crate::ours::bench::v1::BenchServiceServer::new(crate::servers::OursBench),
    )
}

/// An interceptor that implements every phase and does nothing in any of them: the price of the
/// interceptor machinery itself.
#[derive(Debug)]
pub struct NoopInterceptor;

impl connect_typed::ServerInterceptor for NoopInterceptor {
    fn on_request_head(
        &self,
        head: &mut connect_typed::ServerCallHead<'_>,
    ) -> Result<(), connect_typed::Status> {
        std::hint::black_box(head);
        Ok(())
    }

    fn on_request_message(
        &self,
        _: &connect_typed::Context,
        message: connect_typed::MessageRef<'_>,
    ) -> Result<(), connect_typed::Status> {
        std::hint::black_box(message);
        Ok(())
    }

    fn on_response_message(
        &self,
        _: &connect_typed::Context,
        message: connect_typed::MessageRef<'_>,
    ) -> Result<(), connect_typed::Status> {
        std::hint::black_box(message);
        Ok(())
    }

    fn on_finish(
        &self,
        _: &connect_typed::Context,
        outcome: &mut Result<(), connect_typed::Status>,
        _: &mut http::HeaderMap,
    ) {
        std::hint::black_box(outcome);
    }
}

/// [`rpc_router`] with a [`NoopInterceptor`].
pub fn rpc_router_noop_interceptor() -> connect_typed::Router {
    rpc_router().intercept(NoopInterceptor)
}
