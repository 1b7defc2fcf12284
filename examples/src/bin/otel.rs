//! Client and server spans joined in one OpenTelemetry trace. The client's `ClientTracing`
//! interceptor opens a span per call and sends its context in the `traceparent` header; the
//! server's `ServerTracing` makes its span a child of it. Spans go to OpenTelemetry's stdout
//! exporter (as JSON-ish text), then the example prints the trace as a tree.
//! Run it with `cargo run -p examples --bin otel`.

use connect_tokio::{HyperTransport, Server, TokioRuntime};
use connect_typed::observe::{ClientTracing, ServerTracing};
use connect_typed::{Client, ClientConfig, Codec, Protocol};
use examples::proto::demo::v1::{GreetRequest, GreetServiceClient, GreetServiceServer};
use examples::Greeter;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // W3C trace context on the wire, spans to stdout and to memory (for the summary).
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let memory = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .with_simple_exporter(memory.clone())
        .build();
    // INFO and above: the calls' spans and the application's, not hyper's and h2's own.
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("examples"))
            .with_filter(LevelFilter::INFO),
    );
    tracing::subscriber::set_global_default(subscriber)?;

    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter))
        .intercept(ServerTracing::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(router).spawn(listener)?;
    let base: http::Uri = format!("http://{}", server.local_addr()).parse()?;

    for (protocol, http2) in [(Protocol::Connect, false), (Protocol::Grpc, true)] {
        let transport = if http2 {
            HyperTransport::http2()
        } else {
            HyperTransport::new()
        };
        let client = GreetServiceClient::new(
            Client::new(
                transport,
                base.clone(),
                ClientConfig::new(protocol, Codec::Proto),
                TokioRuntime,
            )
            .intercept(ClientTracing::new()),
        );
        // The application's own span: the client call's span is its child.
        let work = tracing::info_span!("greet someone", protocol = ?protocol);
        async {
            let request = GreetRequest {
                name: "Ada".into(),
                ..Default::default()
            };
            let mut stream = client.greet_many(&request).await?;
            while let Some(message) = futures_util::StreamExt::next(&mut stream).await {
                message?;
            }
            client.greet(&request).await?;
            Ok::<_, connect_typed::Status>(())
        }
        .instrument(work)
        .await?;
    }
    server.shutdown().await;
    provider.force_flush()?;

    println!("\n== the traces, as the spans link up");
    let spans = memory.get_finished_spans()?;
    let mut traces: Vec<(TraceId, Vec<&SpanData>)> = Vec::new();
    for span in &spans {
        let trace = span.span_context.trace_id();
        match traces.iter_mut().find(|(id, _)| *id == trace) {
            Some((_, members)) => members.push(span),
            None => traces.push((trace, vec![span])),
        }
    }
    for (trace, spans) in traces {
        println!("trace {trace}");
        print_children(&spans, SpanId::INVALID, 1);
    }
    provider.shutdown()?;
    Ok(())
}

/// Prints the spans whose parent is `parent`, then their children, indented.
fn print_children(spans: &[&SpanData], parent: SpanId, depth: usize) {
    for span in spans.iter().filter(|s| s.parent_span_id == parent) {
        let system = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "rpc.system")
            .map_or(String::new(), |kv| format!(" rpc.system={}", kv.value));
        println!(
            "{:indent$}{} ({:?}{system}) span {}",
            "",
            span.name,
            span.span_kind,
            span.span_context.span_id(),
            indent = depth * 2
        );
        print_children(spans, span.span_context.span_id(), depth + 1);
    }
}
