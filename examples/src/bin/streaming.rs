//! Streaming with real flow, over gRPC on HTTP/2 (h2c): a server stream whose messages leave 100 ms
//! apart and reach the client as they are sent, a client stream the server reads message by
//! message while the client is still sending, a bidi chat in which each answer arrives before the
//! next question is asked, and a server stream the client drops halfway (the server's stream is
//! dropped with it). Run it with `cargo run -p examples --bin streaming`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_tokio::{HyperTransport, Server, TokioRuntime};
use connect_typed::{
    ClientConfig, Codec, Context, HandlerStream, Protocol, RequestView, Response, Status, Streaming,
};
use examples::proto::demo::v1::{
    GreetRequest, GreetResponse, GreetService, GreetServiceClient, GreetServiceServer,
};
use futures_util::StreamExt;

/// Time since the example started, for the log lines of both sides.
fn since(start: Instant) -> String {
    format!("{:>4} ms", start.elapsed().as_millis())
}

fn greeting(text: String) -> GreetResponse {
    GreetResponse {
        greeting: text,
        ..Default::default()
    }
}

fn request(name: &str) -> GreetRequest {
    GreetRequest {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// Counts the messages a server stream produced; says so when the stream is dropped early (the
/// client went away) rather than ended.
struct StreamGuard {
    sent: Arc<AtomicUsize>,
    total: usize,
    start: Instant,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let sent = self.sent.load(Ordering::SeqCst);
        if sent < self.total {
            println!(
                "  [{}] server: stream dropped after {sent} of {} messages (the client left)",
                since(self.start),
                self.total
            );
        }
    }
}

#[derive(Clone, Copy)]
struct Flow {
    start: Instant,
}

impl GreetService for Flow {
    async fn greet(
        &self,
        _ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        Ok(Response::new(greeting(format!(
            "Hello, {}!",
            request.name()
        ))))
    }

    async fn hello(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        self.greet(ctx, request).await
    }

    /// Five greetings, 100 ms apart: each one is written to the wire as soon as it is produced.
    async fn greet_many(
        &self,
        _ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        let name = request.name().to_owned();
        let start = self.start;
        let guard = StreamGuard {
            sent: Arc::default(),
            total: 5,
            start,
        };
        let stream = futures_util::stream::unfold((1, guard), move |(i, guard)| {
            let name = name.clone();
            async move {
                if i > guard.total {
                    return None;
                }
                if i > 1 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                println!("  [{}] server: sends greeting #{i}", since(start));
                guard.sent.fetch_add(1, Ordering::SeqCst);
                Some((Ok(greeting(format!("#{i} for {name}"))), (i + 1, guard)))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    /// Reads each name as it arrives, while the client is still sending.
    async fn greet_all(
        &self,
        _ctx: Context,
        mut requests: Streaming<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let mut names = Vec::new();
        while let Some(request) = requests.next().await {
            let name = request?.name().to_owned();
            println!("  [{}] server: received {name}", since(self.start));
            names.push(name);
        }
        Ok(Response::new(greeting(format!(
            "Hello, {}!",
            names.join(" and ")
        ))))
    }

    /// Answers each message as it arrives.
    async fn chat(
        &self,
        _ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        let start = self.start;
        Ok(Response::new(Box::pin(requests.map(move |request| {
            let request = request?;
            println!("  [{}] server: heard {}", since(start), request.name());
            Ok(greeting(format!("Nice to meet you, {}.", request.name())))
        }))))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let router = connect_tokio::router().service(GreetServiceServer::new(Flow { start }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(router).spawn(listener)?;
    let base: http::Uri = format!("http://{}", server.local_addr()).parse()?;
    println!("server listening on {base}");

    // gRPC over HTTP/2: requests and responses stream at the same time on one connection.
    let client = GreetServiceClient::new(connect_typed::Client::new(
        HyperTransport::http2(),
        base,
        ClientConfig::new(Protocol::Grpc, Codec::Proto),
        TokioRuntime,
    ));

    println!("\n== server stream: GreetMany, one message every 100 ms");
    let mut stream = client.greet_many(&request("Ada")).await?;
    while let Some(message) = stream.next().await {
        println!("  [{}] client: got {}", since(start), message?.greeting);
    }

    println!("\n== client stream: GreetAll, one name every 100 ms");
    let names = futures_util::stream::unfold(0, move |i| async move {
        let name = ["Alan", "Barbara", "Edsger"].get(i)?;
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("  [{}] client: sends {name}", since(start));
        Some((request(name), i + 1))
    });
    let response = client.greet_all(names).await?;
    println!(
        "  [{}] client: got {}",
        since(start),
        response.message().greeting
    );

    println!("\n== bidi stream: Chat, each question after the previous answer");
    // The request stream is fed from a channel, so the client decides what to send next after
    // reading each answer.
    let (questions, receiver) = tokio::sync::mpsc::channel::<GreetRequest>(1);
    let requests = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|request| (request, receiver))
    });
    let mut names = ["Ken", "Dennis", "Brian"].into_iter();
    questions
        .send(request(names.next().unwrap_or_default()))
        .await?;
    let mut answers = client.chat(requests).await?;
    let mut questions = Some(questions);
    while let Some(answer) = answers.next().await {
        println!("  [{}] client: got {}", since(start), answer?.greeting);
        match (names.next(), &questions) {
            (Some(name), Some(sender)) => {
                println!("  [{}] client: says {name}", since(start));
                sender.send(request(name)).await?;
            }
            // Closing the request stream ends the call once the server has answered everything.
            _ => questions = None,
        }
    }
    println!("  [{}] client: chat over", since(start));

    println!("\n== cancellation: the client drops a server stream after two messages");
    let mut stream = client.greet_many(&request("Grace")).await?;
    for _ in 0..2 {
        if let Some(message) = stream.next().await {
            println!("  [{}] client: got {}", since(start), message?.greeting);
        }
    }
    drop(stream);
    // The server learns of it from the stream's reset; give it a moment to say so.
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.shutdown().await;
    println!("\nserver shut down; bye");
    Ok(())
}
