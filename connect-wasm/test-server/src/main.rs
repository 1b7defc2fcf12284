//! The server of connect-wasm's browser tests and example page: the `GreetService` of
//! `connect-build-tests` on connect-tokio, with CORS (`connect_typed::cors::Cors`) so that pages from
//! other origins may call it.
//!
//!     connect-wasm-test-server [ADDR]      (default 127.0.0.1:8765; port 0: any free port;
//!                                           prints `listening on ADDR`)
//!
//! Test hooks, all through ordinary RPCs so that a browser can use them:
//! - `Greet` with name `slow` waits 5 s (deadlines); it echoes `x-echo` as `x-echoed`, reports the
//!   request's `*accept-encoding` and other `*-encoding` headers in `x-seen-accept-encoding` and
//!   `x-seen-encoding`, and sets the trailer `x-trailer: done`.
//! - `Greet` with name `stats` answers `aborted=N`: how many `GreetMany` streams were dropped before
//!   their last message (a client that aborts its fetch closes the connection, so hyper drops the
//!   response and with it the handler's stream).
//! - `GreetIdempotent` says whether it was called with GET or POST.
//! - `GreetMany` sends `count` greetings, `interval` apart, the first at once; it reports encodings
//!   like `Greet` and ends with the trailer `x-trailer: streamed`.
//! - `Fail` fails with the code named by `name`, with a detail, a header and a trailer.
//! - Any path under `/blackhole/` is never answered (preflights are): deadlines must then be
//!   enforced by the client alone.
//!
//! Why a service of its own rather than connect-testkit's `EchoService`, which the adapters' matrix
//! and connect-build-tests call: the browser checks need what only this server reports or does. It
//! tells what the browser actually sent (the HTTP method, so GET is seen to be used; the encodings
//! fetch added), counts the streams a browser abort dropped, spaces stream messages in time,
//! answers CORS for pages of other origins with the headers they read exposed, and black-holes
//! `/blackhole/` paths. The wasm tests' client is the `GreetService` client of connect-build-tests,
//! whose generated code builds for wasm32 with nothing else.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use connect_build_tests::proto::acme::greet::v1::{
    GreetRequest, GreetResponse, GreetService, GreetServiceServer,
};
use connect_tokio::ConnectService;
use connect_typed::cors::Cors;
use connect_typed::{Code, ErrorDetail, Status};
use connect_typed::{Context, HandlerStream, RequestView, Response, ResponseBody, Streaming};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

/// Response headers and trailers the tests read: custom headers, and Connect unary trailers, which
/// travel as `trailer-*` headers.
const EXPOSED: &[&str] = &[
    "x-echoed",
    "x-seen-accept-encoding",
    "x-seen-encoding",
    "x-fail-header",
    "x-fail-trailer",
    "x-trailer",
    "trailer-x-trailer",
    "trailer-x-fail-trailer",
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8765".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // Port 0 picks a free port: the line tells the test script which.
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;

    let mut cors = Cors::default();
    cors.allow_headers.push(HeaderName::from_static("x-echo"));
    cors.expose_headers
        .extend(EXPOSED.iter().map(|h| HeaderName::from_static(h)));
    let router = connect_tokio::router()
        .service(GreetServiceServer::new(Greeter::default()))
        .cors(cors);
    let service = TestRoutes {
        inner: ConnectService::new(router),
    };
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The request's HTTP method and full headers, for handlers that report what the client sent.
#[derive(Clone, Debug)]
struct RawRequest {
    method: Method,
    headers: HeaderMap,
}

/// The test-only behaviour around the router (which answers CORS itself): black-hole paths, and the
/// raw request recorded for handlers that report what the client sent.
#[derive(Clone, Debug)]
struct TestRoutes {
    inner: ConnectService,
}

type Reply = http::Response<ResponseBody>;

impl tower_service::Service<http::Request<hyper::body::Incoming>> for TestRoutes {
    type Response = Reply;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // Preflights still reach the router, so a black-hole call gets past CORS and then hangs.
        if parts.uri.path().starts_with("/blackhole/") && !Cors::is_preflight(&parts) {
            return Box::pin(std::future::pending());
        }
        parts.extensions.insert(RawRequest {
            method: parts.method.clone(),
            headers: parts.headers.clone(),
        });
        Box::pin(self.inner.call(http::Request::from_parts(parts, body)))
    }
}

#[derive(Debug, Default)]
struct Greeter {
    /// `GreetMany` streams dropped before their end.
    aborted: Arc<AtomicUsize>,
}

fn greeting(text: String) -> GreetResponse {
    GreetResponse {
        greeting: text,
        ..Default::default()
    }
}

/// The request headers that `keep` selects, as `name=value;...`.
fn seen(ctx: &Context, keep: impl Fn(&str) -> bool) -> HeaderValue {
    let Some(raw) = ctx.extensions().get::<RawRequest>() else {
        return HeaderValue::from_static("?");
    };
    let values: Vec<String> = raw
        .headers
        .iter()
        .filter(|(name, _)| keep(name.as_str()))
        .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or("?")))
        .collect();
    HeaderValue::from_str(&values.join(";")).unwrap_or(HeaderValue::from_static("?"))
}

/// Reports the compression the client asked for and used, in response headers.
fn report_encodings(ctx: &Context) -> Result<(), Status> {
    ctx.set_response_header(
        HeaderName::from_static("x-seen-accept-encoding"),
        seen(ctx, |name| name.ends_with("accept-encoding")),
    )?;
    ctx.set_response_header(
        HeaderName::from_static("x-seen-encoding"),
        seen(ctx, |name| {
            name.ends_with("encoding") && !name.contains("accept")
        }),
    )?;
    Ok(())
}

/// Counts a stream as aborted unless it was disarmed by sending its last message.
struct AbortCounter {
    aborted: Arc<AtomicUsize>,
    armed: bool,
}

impl AbortCounter {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for AbortCounter {
    fn drop(&mut self) {
        if self.armed {
            self.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl GreetService for Greeter {
    async fn greet(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let name = request.name().to_owned();
        match name.as_str() {
            "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
            "stats" => {
                let aborted = self.aborted.load(Ordering::SeqCst);
                return Ok(Response::new(greeting(format!("aborted={aborted}"))));
            }
            _ => {}
        }
        if let Some(echo) = ctx.request_headers().get("x-echo") {
            ctx.set_response_header(HeaderName::from_static("x-echoed"), echo.clone())?;
        }
        report_encodings(&ctx)?;
        ctx.set_response_trailer(
            HeaderName::from_static("x-trailer"),
            HeaderValue::from_static("done"),
        )?;
        Ok(Response::new(greeting(format!("Hello, {name}!"))))
    }

    async fn greet_idempotent(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Status> {
        let method = ctx
            .extensions()
            .get::<RawRequest>()
            .map_or("?".to_owned(), |raw| raw.method.to_string());
        Ok(Response::new(greeting(format!(
            "Hello, {} via {method}!",
            request.name()
        ))))
    }

    async fn greet_many(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        report_encodings(&ctx)?;
        ctx.set_response_trailer(
            HeaderName::from_static("x-trailer"),
            HeaderValue::from_static("streamed"),
        )?;
        let request = request.view();
        let name = request.name.to_owned();
        let count = request.count;
        if count < 0 {
            return Err(Status::invalid_argument("negative count"));
        }
        let interval = request.interval.as_option().map_or(Duration::ZERO, |d| {
            Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
        });
        let counter = AbortCounter {
            aborted: self.aborted.clone(),
            armed: true,
        };
        let stream = futures_util::stream::unfold((0, counter), move |(i, mut counter)| {
            let name = name.clone();
            async move {
                if i == count {
                    counter.disarm();
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(interval).await;
                }
                Some((
                    Ok(greeting(format!("Hello, {name} #{i}!"))),
                    (i + 1, counter),
                ))
            }
        });
        Ok(Response::new(Box::pin(stream)))
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
            names.join(", ")
        ))))
    }

    async fn chat(
        &self,
        _ctx: Context,
        requests: Streaming<GreetRequest>,
    ) -> Result<Response<HandlerStream<GreetResponse>>, Status> {
        Ok(Response::new(Box::pin(requests.map(|request| {
            request.map(|r| greeting(format!("Hello, {}!", r.name())))
        }))))
    }

    async fn fail(
        &self,
        ctx: Context,
        request: RequestView<GreetRequest>,
    ) -> Result<Response<buffa_types::google::protobuf::Empty>, Status> {
        ctx.set_response_header(
            HeaderName::from_static("x-fail-header"),
            HeaderValue::from_static("h"),
        )?;
        ctx.set_response_trailer(
            HeaderName::from_static("x-fail-trailer"),
            HeaderValue::from_static("t"),
        )?;
        let code = Code::from_name(request.name()).unwrap_or(Code::UNKNOWN);
        Err(
            Status::new(code, "failed as asked").with_detail(ErrorDetail::new(
                "acme.greet.v1.GreetRequest",
                Bytes::from_static(b"\x10\x07"),
            )),
        )
    }
}
