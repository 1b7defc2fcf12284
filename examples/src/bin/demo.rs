//! The main example: a server and clients talking over Connect, gRPC and gRPC-Web on localhost, with
//! all four kinds of RPC. Run it with `cargo run -p examples --bin demo`.

use connect_proto::{ClientConfig, Codec, Protocol};
use connect_tokio::{HyperTransport, Server, TokioRuntime};
use examples::proto::demo::v1::{GreetRequest, GreetServiceClient, GreetServiceServer};
use examples::Greeter;
use futures_util::StreamExt;

fn request(name: &str) -> GreetRequest {
    GreetRequest {
        name: name.to_owned(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One port serves all three protocols, over HTTP/1.1 and HTTP/2 (h2c).
    let router = connect_tokio::router().service(GreetServiceServer::new(Greeter));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(router).spawn(listener)?;
    let base: http::Uri = format!("http://{}", server.local_addr()).parse()?;
    println!("server listening on {base}");

    let clients = [
        (
            "Connect over HTTP/1.1, JSON",
            Protocol::Connect,
            Codec::Json,
            HyperTransport::new(),
        ),
        (
            "gRPC over HTTP/2 (h2c), proto",
            Protocol::Grpc,
            Codec::Proto,
            HyperTransport::http2(),
        ),
        (
            "gRPC-Web over HTTP/1.1, proto",
            Protocol::GrpcWeb,
            Codec::Proto,
            HyperTransport::new(),
        ),
    ];
    for (label, protocol, codec, transport) in clients {
        println!("\n== {label}");
        let client = GreetServiceClient::new(connect_tokio::Client::new(
            transport,
            base.clone(),
            ClientConfig::new(protocol, codec),
            TokioRuntime,
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
        println!(
            "error         Greet(\"\")            -> {:?}: {}",
            error.code(),
            error.message()
        );
    }

    server.shutdown().await;
    println!("\nserver shut down; bye");
    Ok(())
}
