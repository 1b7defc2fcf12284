//! The main example: a server and clients talking over Connect, gRPC and gRPC-Web on localhost, with
//! all four kinds of RPC. Run it with `cargo run -p examples --bin demo`.
//!
//! The server also serves health checking (`grpc.health.v1.Health`, connect-health) and server
//! reflection (connect-reflection), one line each. `cargo run -p examples --bin demo -- --serve
//! 127.0.0.1:8080` only serves, until Ctrl-C, for tools such as
//! `buf curl --protocol grpc http://127.0.0.1:8080/demo.v1.GreetService/Greet -d '{"name":"Ada"}'`,
//! which find the method's schema through reflection.

use connect_health::proto::{HealthCheckRequest, HealthClient};
use connect_health::{Health, ServingStatus};
use connect_reflection::Reflection;
use connect_tokio::{HyperTransport, Server, TokioRuntime};
use connect_typed::{Client, ClientConfig, Codec, Protocol};
use examples::proto::demo::v1::{greet_service_methods, GreetServiceServer};
use examples::Greeter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let health = Health::new();
    health.set_status(greet_service_methods::SERVICE_NAME, ServingStatus::SERVING);
    let reflection = Reflection::new()
        .service(greet_service_methods::DESCRIPTORS)
        .service(connect_health::DESCRIPTORS);
    // One port serves all three protocols, over HTTP/1.1 and HTTP/2 (h2c).
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        .service(health.server())
        .service(reflection.server());

    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--serve") {
        let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("serving on http://{}", listener.local_addr()?);
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        // On Ctrl-C: health turns NOT_SERVING and its watches end, then the server drains.
        Server::new(router)
            .serve_with_shutdown(listener, health.shutdown_on(ctrl_c))
            .await?;
        return Ok(());
    }

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

    println!("\n== Health, over Connect");
    let client = HealthClient::new(Client::new(
        HyperTransport::new(),
        base.clone(),
        ClientConfig::new(Protocol::Connect, Codec::Json),
        TokioRuntime,
    ));
    for service in ["", greet_service_methods::SERVICE_NAME] {
        let request = HealthCheckRequest {
            service: service.to_owned(),
            ..Default::default()
        };
        let status = client.check(&request).await?.into_message().status;
        println!("health        Check({service:?}) -> {status:?}");
    }

    health.shutdown();
    server.shutdown().await;
    println!("\nserver shut down; bye");
    Ok(())
}
