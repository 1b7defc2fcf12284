//! The greet service mounted in an axum app next to a plain route. Without arguments it starts, calls
//! itself once over each route and exits; with `--serve ADDR` it keeps serving on ADDR.
//!
//! ```text
//! cargo run -p examples --bin axum
//! cargo run -p examples --bin axum -- --serve 127.0.0.1:8080
//! curl -H 'content-type: application/json' -d '{"name":"curl"}' \
//!     http://127.0.0.1:8080/demo.v1.GreetService/Greet
//! ```

use connect_typed::{ClientConfig, Codec, Protocol};
use examples::proto::demo::v1::{GreetRequest, GreetServiceClient, GreetServiceServer};
use examples::Greeter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve_forever = args.first().map(String::as_str) == Some("--serve");
    let addr = match (serve_forever, args.get(1)) {
        (true, Some(addr)) => addr.clone(),
        _ => "127.0.0.1:0".to_owned(),
    };

    let rpc = connect_tokio::router().service(GreetServiceServer::new(Greeter));
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .merge(connect_tokio::axum_router(&rpc));

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    println!("axum app listening on http://{local}");
    // With connect info, handlers see the peer address (as axum's `ConnectInfo`).
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    );
    if serve_forever {
        serve.await?;
        return Ok(());
    }
    let server = tokio::spawn(async move { serve.await });

    let client = GreetServiceClient::new(connect_tokio::client(
        format!("http://{local}").parse()?,
        ClientConfig::new(Protocol::Connect, Codec::Json),
    ));
    let response = client
        .greet(&GreetRequest {
            name: "axum".to_owned(),
            ..Default::default()
        })
        .await?;
    println!("Greet(axum) -> {}", response.message().greeting);
    server.abort();
    Ok(())
}
