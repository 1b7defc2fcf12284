//! The service the examples serve: `demo.v1.GreetService`.

use connect_typed::google::rpc::{bad_request::FieldViolation, BadRequest};
use connect_typed::{
    Client, Context, HandlerStream, RequestView, Response, Runtime, Streaming, Transport,
};
use connect_typed::{ClientConfig, Codec, Protocol, Status, StatusDetails};
use futures_util::StreamExt;

pub mod interceptors;

/// Code generated from `proto/demo/v1/greet.proto` by connect-build.
#[allow(missing_docs, unreachable_pub)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/proto.rs"));
}

use proto::demo::v1::{GreetRequest, GreetResponse, GreetService, GreetServiceClient};

/// Greets everybody.
#[derive(Clone, Copy, Debug, Default)]
pub struct Greeter;

fn greeting(text: String) -> GreetResponse {
    GreetResponse {
        greeting: text,
        ..Default::default()
    }
}

impl GreetService for Greeter {
    async fn greet(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let name = request.name();
        if name.is_empty() {
            // A typed detail says which field was wrong, in the form every implementation reads.
            let violation = FieldViolation {
                field: "name".into(),
                description: "must not be empty".into(),
                ..Default::default()
            };
            let detail = BadRequest {
                field_violations: vec![violation],
                ..Default::default()
            };
            return Err(
                Status::invalid_argument("name must not be empty").with_message_detail(&detail)
            );
        }
        // The hyper servers (connect-tokio's, connect-smol's) put a `PeerAddr` in each request; axum's
        // `ConnectInfo` does the same job when the router is mounted in axum.
        let extensions = ctx.extensions();
        let peer = extensions
            .get::<connect_tokio::PeerAddr>()
            .map(|p| p.0)
            .or_else(|| {
                extensions
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0)
            })
            .map_or_else(|| "somewhere".to_owned(), |addr| addr.to_string());
        Ok(Response::new(greeting(format!(
            "Hello, {name}! ({:?} from {peer})",
            ctx.protocol()
        ))))
    }

    async fn hello(
        &self,
        _ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        Ok(Response::new(greeting(format!(
            "Hello, {}!",
            request.name()
        ))))
    }

    async fn greet_many(
        &self,
        _ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        let name = request.name().to_owned();
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            (1..=3).map(move |i| Ok(greeting(format!("Hello #{i}, {name}!")))),
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
        Ok(Response::new(greeting(format!(
            "Hello, {}!",
            names.join(" and ")
        ))))
    }

    async fn chat(
        &self,
        _ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        Ok(Response::new(Box::pin(requests.map(|request| {
            request.map(|r| greeting(format!("Nice to meet you, {}.", r.name())))
        }))))
    }
}

fn request(name: &str) -> GreetRequest {
    GreetRequest {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// The clients' side of the demos, the same on every runtime: all four kinds of RPC and an error, in
/// Connect over HTTP/1.1 (JSON), gRPC over h2c and gRPC-Web over HTTP/1.1 (proto), against the
/// server at `base`. `transport(http2)` makes the runtime's client transport.
pub async fn tour<T: Transport>(
    base: &http::Uri,
    runtime: impl Runtime + Clone,
    transport: impl Fn(bool) -> T,
) -> Result<(), Box<dyn std::error::Error>> {
    let clients = [
        (
            "Connect over HTTP/1.1, JSON",
            Protocol::Connect,
            Codec::Json,
            false,
        ),
        (
            "gRPC over HTTP/2 (h2c), proto",
            Protocol::Grpc,
            Codec::Proto,
            true,
        ),
        (
            "gRPC-Web over HTTP/1.1, proto",
            Protocol::GrpcWeb,
            Codec::Proto,
            false,
        ),
    ];
    for (label, protocol, codec, http2) in clients {
        println!("\n== {label}");
        let client = GreetServiceClient::new(Client::new(
            transport(http2),
            base.clone(),
            ClientConfig::new(protocol, codec),
            runtime.clone(),
        ));

        let response = client.greet(&request("Ada")).await?;
        println!(
            "unary         Greet(Ada)          -> {}",
            response.message().greeting
        );

        let mut stream = client.greet_many(&request("Grace")).await?;
        while let Some(message) = stream.next().await {
            println!("server stream GreetMany(Grace)    -> {}", message?.greeting);
        }

        let names = futures_util::stream::iter(["Alan", "Barbara", "Edsger"].map(request));
        let response = client.greet_all(names).await?;
        println!(
            "client stream GreetAll(3 names)   -> {}",
            response.message().greeting
        );

        let names = futures_util::stream::iter(["Ken", "Dennis"].map(request));
        let mut stream = client.chat(names).await?;
        while let Some(message) = stream.next().await {
            println!("bidi stream   Chat                -> {}", message?.greeting);
        }

        let error = client.greet(&request("")).await.unwrap_err();
        let field = error
            .find_detail::<BadRequest>()
            .and_then(|bad| bad.field_violations.first().map(|v| v.field.clone()))
            .unwrap_or_default();
        println!(
            "error         Greet(\"\")            -> {:?}: {} (field {field:?})",
            error.code(),
            error.message()
        );
    }
    Ok(())
}
