//! The two call machines in memory, with no HTTP stack: what the micro-benchmarks and the allocation
//! counter measure.

use bytes::Bytes;
use connect_proto::{
    CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit, Codec, Instant, MethodInfo,
    Protocol, ServerCall, ServerConfig, ServerEvent, ServerTransmit, StreamType,
};
use http::HeaderMap;

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

/// A request as the client machine emits it.
#[derive(Debug)]
pub struct CapturedRequest {
    /// The head.
    pub parts: http::request::Parts,
    /// The body chunks.
    pub body: Vec<Bytes>,
}

/// Runs a client machine for one request message and captures what it sends.
pub fn client_request(
    config: &ClientConfig,
    method: MethodInfo,
    payload: Bytes,
) -> (ClientCall, CapturedRequest) {
    let base: http::Uri = http::Uri::from_static("http://127.0.0.1:8080");
    let mut client = ClientCall::new(
        config,
        method,
        &base,
        CallOptions::default(),
        Instant::now(),
    );
    client.send_message(payload).expect("send");
    let mut head = None;
    let mut body = Vec::new();
    while let Some(t) = client.poll_transmit() {
        match t {
            ClientTransmit::Head(h) => head = Some(h),
            ClientTransmit::Data(d) => body.push(d),
            ClientTransmit::End => {}
            ClientTransmit::Abort => panic!("client aborted"),
        }
    }
    let (parts, ()) = head.expect("request head").into_parts();
    (client, CapturedRequest { parts, body })
}

/// Runs a server machine for a captured request; the handler echoes each message `copies` times.
/// Returns what the server sends.
pub fn serve(
    config: &ServerConfig,
    method: MethodInfo,
    request: &CapturedRequest,
    copies: usize,
) -> Vec<ServerTransmit> {
    let mut server = ServerCall::new(config, Some(method), &request.parts, Instant::now());
    for d in &request.body {
        server.recv_data(d.clone());
    }
    server.recv_end(None);
    let mut out = Vec::new();
    while let Some(event) = server.poll_event() {
        if let ServerEvent::Message(m) = event {
            for _ in 0..copies {
                server.send_message(m.clone()).expect("send");
                while let Some(t) = server.poll_transmit() {
                    out.push(t);
                }
            }
            server.finish(Ok(()), HeaderMap::new()).expect("finish");
        }
    }
    while let Some(t) = server.poll_transmit() {
        out.push(t);
    }
    out
}

/// Feeds a server's output to the client machine; returns the number of messages received.
pub fn client_response(client: &mut ClientCall, response: Vec<ServerTransmit>) -> usize {
    let mut messages = 0;
    for t in response {
        match t {
            ServerTransmit::Head(h) => client.recv_head(h),
            ServerTransmit::Data(d) => client.recv_data(d),
            ServerTransmit::Trailers(t) => client.recv_trailers(t),
            ServerTransmit::End => client.recv_end(),
        }
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Message(_) => messages += 1,
                ClientEvent::Finished { result, .. } => result.expect("call succeeded"),
                ClientEvent::Headers(_) => {}
            }
        }
    }
    messages
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

/// A client configuration for `protocol` with the proto codec.
pub fn client_config(protocol: Protocol) -> ClientConfig {
    ClientConfig::new(protocol, Codec::Proto)
}

/// The captured request as an `http::Request` with its body in one chunk, for
/// [`Router::handle`](connect_proto::rpc::Router::handle).
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
    router: &connect_proto::rpc::Router,
    request: http::Request<http_body_util::Full<Bytes>>,
) -> usize {
    use http_body_util::BodyExt;
    let response = futures_executor::block_on(router.handle(request));
    let body = futures_executor::block_on(response.into_body().collect()).expect("body");
    body.to_bytes().len()
}

/// A router serving the benchmark service on our stack.
pub fn rpc_router() -> connect_proto::rpc::Router {
    connect_proto::rpc::Router::new(connect_tokio::TokioRuntime).service(
        crate::ours::bench::v1::BenchServiceServer::new(crate::servers::OursBench),
    )
}
