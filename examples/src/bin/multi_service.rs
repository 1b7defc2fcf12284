//! Several services on one port: the greeter, a counter and health checking share one router and
//! one listener, and every client connects to the same address. Run it with
//! `cargo run -p examples --bin multi_service`.

use std::sync::atomic::{AtomicI64, Ordering};

use connect_health::proto::{HealthCheckRequest, HealthClient, HealthListRequest};
use connect_health::{Health, ServingStatus};
use connect_tokio::Server;
use connect_typed::{ClientConfig, Codec, Context, Protocol, RequestView, Response, Status};
use examples::proto::demo::v1::{
    counter_service_methods, greet_service_methods, Count, CounterService, CounterServiceClient,
    CounterServiceServer, GetCountRequest, GreetRequest, GreetServiceClient, GreetServiceServer,
    IncrementRequest,
};
use examples::Greeter;

/// A counter shared by every call.
#[derive(Debug, Default)]
struct Counter {
    value: AtomicI64,
}

impl CounterService for Counter {
    async fn increment(
        &self,
        _ctx: Context,
        request: RequestView<IncrementRequest>,
    ) -> Result<Response<Count>, Status> {
        let by = request.by();
        let value = self.value.fetch_add(by, Ordering::SeqCst) + by;
        Ok(Response::new(Count {
            value,
            ..Default::default()
        }))
    }

    async fn get(
        &self,
        _ctx: Context,
        _request: RequestView<GetCountRequest>,
    ) -> Result<Response<Count>, Status> {
        Ok(Response::new(Count {
            value: self.value.load(Ordering::SeqCst),
            ..Default::default()
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let health = Health::new();
    health.set_status(greet_service_methods::SERVICE_NAME, ServingStatus::SERVING);
    health.set_status(
        counter_service_methods::SERVICE_NAME,
        ServingStatus::SERVING,
    );

    // One router, three services: each call is dispatched by its path, `/package.Service/Method`.
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        .service(CounterServiceServer::new(Counter::default()))
        .service(health.server());
    println!("routes:");
    for path in router.paths() {
        println!("  {path}");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(router).spawn(listener)?;
    let base: http::Uri = format!("http://{}", server.local_addr()).parse()?;
    println!("server listening on {base}");

    // Clients of different services share one address and, cloned, one connection pool.
    let client = connect_tokio::client(
        base.clone(),
        ClientConfig::new(Protocol::Connect, Codec::Proto),
    );
    let greeter = GreetServiceClient::new(client.clone());
    let counter = CounterServiceClient::new(client.clone());
    let health_client = HealthClient::new(client);

    let request = GreetRequest {
        name: "Ada".to_owned(),
        ..Default::default()
    };
    println!(
        "\nGreetService.Hello(Ada)       -> {}",
        greeter.hello(&request).await?.message().greeting
    );
    for by in [1, 2, 39] {
        let increment = IncrementRequest {
            by,
            ..Default::default()
        };
        let count = counter.increment(&increment).await?.into_message().value;
        println!("CounterService.Increment({by:>2}) -> {count}");
    }
    let count = counter.get(&GetCountRequest::default()).await?;
    println!("CounterService.Get()          -> {}", count.message().value);

    // The counter goes into maintenance: health checks say so, the greeter is unaffected.
    health.set_status(
        counter_service_methods::SERVICE_NAME,
        ServingStatus::NOT_SERVING,
    );
    println!();
    for service in [
        "",
        greet_service_methods::SERVICE_NAME,
        counter_service_methods::SERVICE_NAME,
    ] {
        let request = HealthCheckRequest {
            service: service.to_owned(),
            ..Default::default()
        };
        let status = health_client.check(&request).await?.into_message().status;
        println!("Health.Check({service:?}) -> {status:?}");
    }
    let list = health_client
        .list(&HealthListRequest::default())
        .await?
        .into_message();
    let mut services: Vec<_> = list.statuses.keys().cloned().collect();
    services.sort();
    println!("Health.List() -> {} services: {services:?}", services.len());

    health.shutdown();
    server.shutdown().await;
    println!("\nserver shut down; bye");
    Ok(())
}
