//! Interceptors on both sides: the server wants a bearer token (checked from the request head,
//! before any body is read) and logs every call; a brief outage makes `Hello` fail with
//! `unavailable`, and the client's retry interceptor rides it out because `Hello` is idempotent.
//! Run it with `cargo run -p examples --bin interceptors`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use connect_tokio::{HyperTransport, Server, TokioRuntime};
use connect_typed::{head_interceptor, CallOptions, Client, ClientConfig, Codec, Protocol, Status};
use examples::interceptors::{bearer_token, require_bearer, RequestLog, RetryUnavailable};
use examples::proto::demo::v1::{GreetRequest, GreetServiceClient, GreetServiceServer};
use examples::Greeter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The first two calls of `Hello` meet an outage (as a restarting backend would answer).
    let outage = Arc::new(AtomicU32::new(2));
    let failing = outage.clone();
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        // Outermost first: the log sees every call, rejected ones too.
        .intercept(RequestLog::new(|line| println!("  server log: {line}")))
        .intercept(require_bearer("let-me-in"))
        .intercept(head_interceptor(move |head| {
            let down = head.method.path.ends_with("/Hello")
                && failing
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            if down {
                Err(Status::unavailable("restarting, try again"))
            } else {
                Ok(())
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(router).spawn(listener)?;
    let base: http::Uri = format!("http://{}", server.local_addr()).parse()?;
    println!("server listening on {base}");

    let config = ClientConfig::new(Protocol::Connect, Codec::Proto);
    let request = GreetRequest {
        name: "Ada".into(),
        ..Default::default()
    };

    println!("\n== without a token");
    let anonymous = GreetServiceClient::new(Client::new(
        HyperTransport::new(),
        base.clone(),
        config.clone(),
        TokioRuntime,
    ));
    let error = anonymous.greet(&request).await.unwrap_err();
    println!("Greet(Ada) -> {:?}: {}", error.code(), error.message());

    println!("\n== with a token and retries");
    let retry = RetryUnavailable::new(4, Duration::from_millis(50));
    let client = GreetServiceClient::new(
        Client::new(HyperTransport::new(), base, config, TokioRuntime)
            .intercept(bearer_token("let-me-in"))
            .intercept(retry.clone()),
    );
    let response = client.greet(&request).await?;
    println!("Greet(Ada) -> {}", response.message().greeting);
    let options = CallOptions {
        timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let response = client.hello_with_options(&request, options).await?;
    println!(
        "Hello(Ada) -> {} (after {} retries)",
        response.message().greeting,
        retry.retries()
    );

    server.shutdown().await;
    println!("\nserver shut down; bye");
    Ok(())
}
