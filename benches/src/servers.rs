//! The servers under test, all serving the same `bench.v1.BenchService` with handlers doing the same
//! work: this project on tokio and on smol, tonic, connectrpc, and a raw
//! hyper echo server as the floor of the HTTP stack.
//!
//! Adding a server is one [`ServerKind`] variant and one arm in [`serve`].

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};

use crate::workload::ECHO_MESSAGE;

/// Every HTTP/2 server gets the same stream limit.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// A server implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum ServerKind {
    /// connect-typed's router on connect-tokio.
    OursTokio,
    /// The same with an interceptor that implements every phase and does nothing
    /// (`pair::NoopInterceptor`): what the interceptor machinery costs. Not in [`ServerKind::ALL`];
    /// ask for it with `--servers ours-tokio,ours-tokio-noop-interceptor`.
    OursTokioNoopInterceptor,
    /// connect-typed's router on connect-smol.
    OursSmol,
    /// tonic 0.14 with prost.
    Tonic,
    /// connectrpc 0.9.
    Connectrpc,
    /// hyper's h2c server answering with pre-encoded bytes: no RPC framework at all.
    HyperFloor,
}

impl ServerKind {
    /// All servers, in table order.
    pub const ALL: [ServerKind; 5] = [
        ServerKind::OursTokio,
        ServerKind::OursSmol,
        ServerKind::Tonic,
        ServerKind::Connectrpc,
        ServerKind::HyperFloor,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::OursTokio => "ours-tokio",
            ServerKind::OursTokioNoopInterceptor => "ours-tokio-noop-interceptor",
            ServerKind::OursSmol => "ours-smol",
            ServerKind::Tonic => "tonic",
            ServerKind::Connectrpc => "connectrpc",
            ServerKind::HyperFloor => "hyper-floor",
        }
    }

    /// Servers measured only when asked for by name.
    pub const EXTRA: [ServerKind; 1] = [ServerKind::OursTokioNoopInterceptor];

    /// Parses [`ServerKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::EXTRA)
            .find(|k| k.name() == name)
    }

    /// Why the server cannot run in this build, if it cannot.
    pub fn unavailable(self) -> Option<&'static str> {
        let _ = self;
        None
    }

    /// Whether the server speaks the Connect protocol (tonic speaks gRPC only).
    pub fn speaks_connect(self) -> bool {
        self != ServerKind::Tonic
    }

    /// Whether this is one of our own servers.
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            ServerKind::OursTokio | ServerKind::OursTokioNoopInterceptor | ServerKind::OursSmol
        )
    }
}

/// Serves `kind` on 127.0.0.1 with `threads` worker threads; calls `ready` with the bound address,
/// then serves until `stop` resolves. Blocks the calling thread.
pub fn serve(
    kind: ServerKind,
    threads: usize,
    ready: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(why) = kind.unavailable() {
        return Err(why.into());
    }
    if kind == ServerKind::OursSmol {
        return serve_smol(threads, ready, stop);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        match kind {
            ServerKind::OursTokio | ServerKind::OursTokioNoopInterceptor => {
                let mut router = connect_tokio::router()
                    .service(crate::ours::bench::v1::BenchServiceServer::new(ours::Bench));
                if kind == ServerKind::OursTokioNoopInterceptor {
                    router = router.intercept(crate::pair::NoopInterceptor);
                }
                let handle = connect_tokio::Server::new(router).spawn(listener)?;
                ready(addr);
                stop.await;
                drop(handle);
            }
            ServerKind::Tonic => {
                let service = crate::tonic_gen::bench_service_server::BenchServiceServer::new(
                    tonic_impl::Bench,
                );
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                ready(addr);
                tonic::transport::Server::builder()
                    .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, stop)
                    .await?;
            }
            ServerKind::Connectrpc => {
                use crate::connectrpc_gen::bench::v1::BenchServiceExt;
                let router =
                    std::sync::Arc::new(connectrpc_impl::Bench).register(connectrpc::Router::new());
                let server = connectrpc::Server::from_listener(listener)
                    .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                    // connectrpc turns on hyper's adaptive window by default; with it, concurrent
                    // client streams on one connection end in a closed connection (broken pipe).
                    // Off, it runs on the same h2 window settings as every other server here.
                    .with_http2_adaptive_window(false);
                ready(addr);
                server
                    .serve_with_graceful_shutdown(router, stop)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            ServerKind::HyperFloor => {
                ready(addr);
                floor::serve(listener, stop).await;
            }
            ServerKind::OursSmol => unreachable!("served by serve_smol"),
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// Our router on connect-smol: no tokio runtime in this process.
fn serve_smol(
    threads: usize,
    ready: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error>> {
    // connect-smol runs connections on smol's global executor, which sizes itself from SMOL_THREADS
    // on first use: give it the same number of workers as the tokio servers get.
    std::env::set_var("SMOL_THREADS", threads.max(1).to_string());
    smol::block_on(async move {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = connect_smol::router()
            .service(crate::ours::bench::v1::BenchServiceServer::new(ours::Bench));
        let handle = connect_smol::Server::new(router).spawn(listener)?;
        ready(addr);
        stop.await;
        drop(handle);
        Ok(())
    })
}

/// The benchmark service on our stack (also what the allocation counter and the rpc-layer
/// micro-benchmark call in memory).
pub use ours::Bench as OursBench;

mod ours {
    use connect_typed::Status;
    use connect_typed::{Context, HandlerStream, RequestView, Response, Streaming};
    use futures_util::StreamExt;

    use crate::ours::bench::v1::{
        BenchService, EchoRequest, EchoResponse, IngestRequest, IngestResponse, StreamRequest,
    };
    use crate::workload::mix_record;

    /// Our handlers: the same work as every other server's.
    #[derive(Debug)]
    pub struct Bench;

    impl BenchService for Bench {
        async fn echo(
            &self,
            _ctx: Context,
            request: RequestView<EchoRequest>,
        ) -> Result<Response<EchoResponse>, Status> {
            Ok(Response::new(EchoResponse {
                message: request.view().message.to_owned(),
                ..Default::default()
            }))
        }

        async fn ingest(
            &self,
            _ctx: Context,
            request: RequestView<IngestRequest>,
        ) -> Result<Response<IngestResponse>, Status> {
            let request = request.view();
            let mut checksum = 0;
            for r in request.records.iter() {
                checksum = mix_record(
                    checksum,
                    (r.timestamp_unix_nanos, r.severity),
                    [r.service, r.host, r.message, r.trace_id],
                    r.attributes.iter().map(|(k, v)| (*k, *v)),
                    r.tags.iter().copied(),
                );
            }
            Ok(Response::new(IngestResponse {
                accepted: request.records.len() as u64,
                checksum,
                ..Default::default()
            }))
        }

        async fn server_stream(
            &self,
            _ctx: Context,
            request: RequestView<StreamRequest>,
        ) -> Result<Response<HandlerStream<EchoResponse>>, Status> {
            let request = request.view();
            let message = request.message.to_owned();
            let count = request.count.max(0) as usize;
            Ok(Response::new(Box::pin(futures_util::stream::iter(
                (0..count).map(move |_| {
                    Ok(EchoResponse {
                        message: message.clone(),
                        ..Default::default()
                    })
                }),
            ))))
        }

        async fn client_stream(
            &self,
            _ctx: Context,
            mut requests: Streaming<EchoRequest>,
        ) -> Result<Response<IngestResponse>, Status> {
            let (mut accepted, mut checksum) = (0, 0);
            while let Some(request) = requests.next().await {
                let request = request?;
                accepted += 1;
                checksum += request.view().message.len() as u64;
            }
            Ok(Response::new(IngestResponse {
                accepted,
                checksum,
                ..Default::default()
            }))
        }
    }
}

mod tonic_impl {
    use futures_util::StreamExt;
    use tonic::{Request, Response, Status, Streaming};

    use crate::tonic_gen::bench_service_server::BenchService;
    use crate::tonic_gen::{
        EchoRequest, EchoResponse, IngestRequest, IngestResponse, StreamRequest,
    };
    use crate::workload::mix_record;

    pub(super) struct Bench;

    #[tonic::async_trait]
    impl BenchService for Bench {
        async fn echo(
            &self,
            request: Request<EchoRequest>,
        ) -> Result<Response<EchoResponse>, Status> {
            Ok(Response::new(EchoResponse {
                message: request.into_inner().message,
            }))
        }

        async fn ingest(
            &self,
            request: Request<IngestRequest>,
        ) -> Result<Response<IngestResponse>, Status> {
            let request = request.into_inner();
            let mut checksum = 0;
            for r in &request.records {
                checksum = mix_record(
                    checksum,
                    (r.timestamp_unix_nanos, r.severity),
                    [&r.service, &r.host, &r.message, &r.trace_id],
                    r.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    r.tags.iter().map(String::as_str),
                );
            }
            Ok(Response::new(IngestResponse {
                accepted: request.records.len() as u64,
                checksum,
            }))
        }

        type ServerStreamStream =
            futures_util::stream::BoxStream<'static, Result<EchoResponse, Status>>;

        async fn server_stream(
            &self,
            request: Request<StreamRequest>,
        ) -> Result<Response<Self::ServerStreamStream>, Status> {
            let request = request.into_inner();
            let count = request.count.max(0) as usize;
            let message = request.message;
            Ok(Response::new(
                futures_util::stream::iter((0..count).map(move |_| {
                    Ok(EchoResponse {
                        message: message.clone(),
                    })
                }))
                .boxed(),
            ))
        }

        async fn client_stream(
            &self,
            request: Request<Streaming<EchoRequest>>,
        ) -> Result<Response<IngestResponse>, Status> {
            let mut requests = request.into_inner();
            let (mut accepted, mut checksum) = (0, 0);
            while let Some(request) = requests.next().await {
                let request = request?;
                accepted += 1;
                checksum += request.message.len() as u64;
            }
            Ok(Response::new(IngestResponse { accepted, checksum }))
        }
    }
}

mod connectrpc_impl {
    use connectrpc::{
        Encodable, InboundStream, RequestContext, Response, ServiceRequest, ServiceResult,
        ServiceStream,
    };
    use futures_util::StreamExt;

    use crate::connectrpc_gen::bench::v1::{
        BenchService, EchoRequest, EchoResponse, IngestRequest, IngestResponse, StreamRequest,
    };
    use crate::workload::mix_record;

    pub(super) struct Bench;

    impl BenchService for Bench {
        async fn echo<'a>(
            &'a self,
            _ctx: RequestContext,
            request: ServiceRequest<'_, EchoRequest>,
        ) -> ServiceResult<impl Encodable<EchoResponse> + Send + use<'a>> {
            Response::ok(EchoResponse {
                message: request.message.to_owned(),
                ..Default::default()
            })
        }

        async fn ingest<'a>(
            &'a self,
            _ctx: RequestContext,
            request: ServiceRequest<'_, IngestRequest>,
        ) -> ServiceResult<impl Encodable<IngestResponse> + Send + use<'a>> {
            let mut checksum = 0;
            for r in request.records.iter() {
                checksum = mix_record(
                    checksum,
                    (r.timestamp_unix_nanos, r.severity),
                    [r.service, r.host, r.message, r.trace_id],
                    r.attributes.iter().map(|(k, v)| (*k, *v)),
                    r.tags.iter().copied(),
                );
            }
            Response::ok(IngestResponse {
                accepted: request.records.len() as u64,
                checksum,
                ..Default::default()
            })
        }

        async fn server_stream(
            &self,
            _ctx: RequestContext,
            request: ServiceRequest<'_, StreamRequest>,
        ) -> ServiceResult<ServiceStream<impl Encodable<EchoResponse> + Send + use<>>> {
            let message = request.message.to_owned();
            let count = request.count.max(0) as usize;
            let stream: ServiceStream<EchoResponse> =
                Box::pin(futures_util::stream::iter((0..count).map(move |_| {
                    Ok(EchoResponse {
                        message: message.clone(),
                        ..Default::default()
                    })
                })));
            Response::ok(stream)
        }

        async fn client_stream<'a>(
            &'a self,
            _ctx: RequestContext,
            mut requests: InboundStream<EchoRequest>,
        ) -> ServiceResult<impl Encodable<IngestResponse> + Send + use<'a>> {
            let (mut accepted, mut checksum) = (0, 0);
            while let Some(request) = requests.next().await {
                let request = request?;
                accepted += 1;
                checksum += request.view().message.len() as u64;
            }
            Response::ok(IngestResponse {
                accepted,
                checksum,
                ..Default::default()
            })
        }
    }
}

/// The floor: hyper's server (HTTP/1.1 + h2c, like connect-tokio) answering each path with the bytes
/// a correct server would send, with no RPC framework: echo returns the request body as is.
mod floor {
    use super::*;
    use hyper::body::{Frame, Incoming};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;

    type FloorBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

    pub(super) async fn serve(
        listener: tokio::net::TcpListener,
        stop: impl std::future::Future<Output = ()> + Send,
    ) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .max_concurrent_streams(super::MAX_CONCURRENT_STREAMS);
        let builder = std::sync::Arc::new(builder);
        let ingest = crate::workload::encode(&crate::workload::ingest_response(
            &crate::workload::ingest_request(),
        ));
        let mut stop = std::pin::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
                () = &mut stop => return,
            };
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            let ingest = ingest.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(req, ingest.clone()));
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn answer(
        request: http::Request<Incoming>,
        ingest_response: Bytes,
    ) -> Result<http::Response<FloorBody>, Infallible> {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let content_type = request.headers().get(http::header::CONTENT_TYPE).cloned();
        let path = request.uri().path().to_owned();
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let method = path.rsplit('/').next().unwrap_or("");
        // Request messages (enveloped unless Connect unary).
        let enveloped = grpc || method == "ServerStream" || method == "ClientStream";
        let messages: Vec<Bytes> = if enveloped {
            unframe(body.clone())
        } else {
            vec![body.clone()]
        };
        let responses: Vec<Bytes> = match method {
            "Echo" => messages,
            "Ingest" => vec![ingest_response],
            "ServerStream" => {
                let count = messages
                    .first()
                    .and_then(|m| {
                        <crate::tonic_gen::StreamRequest as prost::Message>::decode(m.clone()).ok()
                    })
                    .map_or(0, |r| r.count.max(0) as usize);
                let one = crate::workload::encode(&crate::ours::bench::v1::EchoResponse {
                    message: ECHO_MESSAGE.to_owned(),
                    ..Default::default()
                });
                vec![one; count]
            }
            "ClientStream" => {
                let checksum = messages.iter().map(|m| m.len() as u64 - 2).sum();
                vec![crate::workload::encode(
                    &crate::ours::bench::v1::IngestResponse {
                        accepted: messages.len() as u64,
                        checksum,
                        ..Default::default()
                    },
                )]
            }
            _ => Vec::new(),
        };
        let mut response = http::Response::builder();
        if let Some(ct) = content_type {
            response = response.header(http::header::CONTENT_TYPE, ct);
        }
        let body: FloorBody = if grpc {
            let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = responses
                .into_iter()
                .map(|m| Ok(Frame::data(frame(0, &m))))
                .collect();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            frames.push(Ok(Frame::trailers(trailers)));
            BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
        } else if enveloped {
            let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = responses
                .into_iter()
                .map(|m| Ok(Frame::data(frame(0, &m))))
                .collect();
            frames.push(Ok(Frame::data(frame(2, b"{}"))));
            BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
        } else {
            http_body_util::Full::new(responses.into_iter().next().unwrap_or_default()).boxed()
        };
        Ok(response.body(body).unwrap_or_default())
    }

    fn frame(flags: u8, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(5 + payload.len());
        out.extend_from_slice(&[flags]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out.freeze()
    }

    fn unframe(mut body: Bytes) -> Vec<Bytes> {
        let mut out = Vec::new();
        while body.len() >= 5 {
            let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
            body.advance(5);
            if body.len() < len {
                break;
            }
            out.push(body.split_to(len));
        }
        out
    }
}
