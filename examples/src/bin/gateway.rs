//! A gateway: a server whose handlers call a backend server with the generated client. It passes
//! the caller's deadline on (the backend gets what is left of it) and forwards chosen request
//! headers (`authorization`, `x-request-id`); it passes the backend's response headers, errors and
//! streams back. Run it with `cargo run -p examples --bin gateway`.

use std::time::Duration;

use connect_tokio::{HyperTransport, Server, TokioRuntime};
use connect_typed::{
    CallOptions, Client, ClientConfig, Codec, Context, HandlerStream, Instant, Protocol,
    RequestView, Response, Status, Streaming,
};
use examples::proto::demo::v1::{
    GreetRequest, GreetResponse, GreetService, GreetServiceClient, GreetServiceServer,
};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue};

/// The request headers the gateway passes to the backend.
const FORWARDED: [&str; 2] = ["authorization", "x-request-id"];

fn greeting(text: String) -> GreetResponse {
    GreetResponse {
        greeting: text,
        ..Default::default()
    }
}

/// What the backend saw of a call: the request id and how much time it was given.
fn seen(ctx: &Context) -> String {
    let id = ctx
        .request_headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    let budget = ctx.deadline().map_or("no deadline".to_owned(), |deadline| {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded to 100 ms: the exact figure depends on how long the hop took.
        format!("about {} ms left", (left.as_millis() + 50) / 100 * 100)
    });
    // The gateway forwards only the headers it names.
    let leaked = if ctx.request_headers().contains_key("x-internal-only") {
        ", and x-internal-only leaked through"
    } else {
        ""
    };
    format!("request id {id}, {budget}{leaked}")
}

/// The backend: greets, and says what it saw of the call.
struct Backend;

impl GreetService for Backend {
    async fn greet(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        println!("  backend: Greet({}) with {}", request.name(), seen(&ctx));
        if request.name() == "slow" {
            // Longer than any caller below waits: the deadline ends the call first.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Ok(
            Response::new(greeting(format!("Hello, {}!", request.name())))
                .with_header("x-served-by", HeaderValue::from_static("backend-1")),
        )
    }

    async fn hello(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        self.greet(ctx, request).await
    }

    async fn greet_many(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        println!(
            "  backend: GreetMany({}) with {}",
            request.name(),
            seen(&ctx)
        );
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

/// The gateway: every method calls the backend with the caller's deadline and headers.
struct Gateway {
    backend: GreetServiceClient<HyperTransport>,
}

/// The options of the backend call made for the call of `ctx`: what is left of its deadline, and
/// the forwarded headers.
fn forward(ctx: &Context) -> Result<CallOptions, Status> {
    let timeout = match ctx.deadline() {
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Status::deadline_exceeded(
                    "no time left to call the backend",
                ));
            }
            Some(left)
        }
        None => None,
    };
    let mut headers = HeaderMap::new();
    for name in FORWARDED {
        for value in ctx.request_headers().get_all(name) {
            headers.append(name, value.clone());
        }
    }
    Ok(CallOptions {
        timeout,
        headers,
        ..Default::default()
    })
}

/// The request messages of a client stream, owned, for the backend call. A message that failed to
/// decode ends the stream there.
fn owned(requests: Streaming<GreetRequest>) -> impl futures_util::Stream<Item = GreetRequest> {
    requests
        .take_while(|r| std::future::ready(r.is_ok()))
        .filter_map(|r| std::future::ready(r.ok().map(|view| view.to_owned_message())))
}

impl GreetService for Gateway {
    async fn greet(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let options = forward(&ctx)?;
        // An error from the backend (its code, message and details) goes back to the caller as is.
        let response = self
            .backend
            .greet_with_options(&request.to_owned_message(), options)
            .await?;
        // The backend's headers go back too; its trailers would, the same way.
        let (message, headers, trailers) = response.into_parts();
        Ok(Response::from_parts(message, headers, trailers))
    }

    async fn hello(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let options = forward(&ctx)?;
        self.backend
            .hello_with_options(&request.to_owned_message(), options)
            .await
    }

    async fn greet_many(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        let options = forward(&ctx)?;
        let stream = self
            .backend
            .greet_many_with_options(&request.to_owned_message(), options)
            .await?;
        // Each message is passed on as it arrives; dropping this stream cancels the backend call.
        Ok(Response::new(Box::pin(stream)))
    }

    async fn greet_all(
        &self,
        ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let options = forward(&ctx)?;
        self.backend
            .greet_all_with_options(owned(requests), options)
            .await
    }

    async fn chat(
        &self,
        ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        let options = forward(&ctx)?;
        let stream = self
            .backend
            .chat_with_options(owned(requests), options)
            .await?;
        Ok(Response::new(Box::pin(stream)))
    }
}

fn request(name: &str) -> GreetRequest {
    GreetRequest {
        name: name.to_owned(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let backend_server =
        Server::new(connect_tokio::router().service(GreetServiceServer::new(Backend)))
            .spawn(listener)?;
    let backend_base: http::Uri = format!("http://{}", backend_server.local_addr()).parse()?;
    println!("backend listening on {backend_base}");

    // The gateway talks gRPC over HTTP/2 to the backend, whatever its own callers speak.
    let backend = GreetServiceClient::new(Client::new(
        HyperTransport::http2(),
        backend_base,
        ClientConfig::new(Protocol::Grpc, Codec::Proto),
        TokioRuntime,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway_server =
        Server::new(connect_tokio::router().service(GreetServiceServer::new(Gateway { backend })))
            .spawn(listener)?;
    let gateway_base: http::Uri = format!("http://{}", gateway_server.local_addr()).parse()?;
    println!("gateway listening on {gateway_base}");

    // The caller speaks Connect with JSON to the gateway.
    let client = GreetServiceClient::new(connect_tokio::client(
        gateway_base,
        ClientConfig::new(Protocol::Connect, Codec::Json),
    ));
    let options = |timeout: Duration, id: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static(id));
        headers.insert("x-internal-only", HeaderValue::from_static("not forwarded"));
        CallOptions {
            timeout: Some(timeout),
            headers,
            ..Default::default()
        }
    };

    println!("\n== unary through the gateway, with a 2 s deadline");
    let response = client
        .greet_with_options(&request("Ada"), options(Duration::from_secs(2), "r-1"))
        .await?;
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    println!(
        "  client: {} (x-served-by: {served_by})",
        response.message().greeting
    );

    println!("\n== a server stream through the gateway");
    let mut stream = client
        .greet_many_with_options(&request("Grace"), options(Duration::from_secs(2), "r-2"))
        .await?;
    while let Some(message) = stream.next().await {
        println!("  client: {}", message?.greeting);
    }

    println!("\n== a client stream through the gateway");
    let names = futures_util::stream::iter(["Alan", "Barbara"].map(request));
    let response = client
        .greet_all_with_options(names, options(Duration::from_secs(2), "r-3"))
        .await?;
    println!("  client: {}", response.message().greeting);

    println!("\n== a slow backend call: the caller's 300 ms deadline reaches the backend");
    let started = Instant::now();
    let error = client
        .greet_with_options(&request("slow"), options(Duration::from_millis(300), "r-4"))
        .await
        .unwrap_err();
    println!(
        "  client: {:?} after about {} ms",
        error.code(),
        (started.elapsed().as_millis() + 50) / 100 * 100
    );

    gateway_server.shutdown().await;
    backend_server.shutdown().await;
    println!("\nservers shut down; bye");
    Ok(())
}
