//! The main example: a server and clients talking over Connect, gRPC and gRPC-Web on localhost, with
//! all four kinds of RPC. Run it with `cargo run -p examples --bin demo`.

use connect_tokio::{HyperTransport, Server, TokioRuntime};
use examples::proto::demo::v1::GreetServiceServer;
use examples::Greeter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One port serves all three protocols, over HTTP/1.1 and HTTP/2 (h2c).
    let router = connect_tokio::router().service(GreetServiceServer::new(Greeter));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(router).spawn(listener)?;
    let base: http::Uri = format!("http://{}", server.local_addr()).parse()?;
    println!("server listening on {base}");

    examples::tour(&base, TokioRuntime, |http2| {
        if http2 {
            HyperTransport::http2()
        } else {
            HyperTransport::new()
        }
    })
    .await?;

    server.shutdown().await;
    println!("\nserver shut down; bye");
    Ok(())
}
