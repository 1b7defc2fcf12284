//! The client under test: runs one `ClientCompatRequest` with the typed client and reports what it
//! saw as a `ClientCompatResponse`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use buffa::{Message, MessageField};
use buffa_types::google::protobuf::Any;
use connect_tokio::{HyperTransport, TokioRuntime};
use connect_typed::{CallOptions, ClientConfig, Codec, Protocol, Status};
use connect_typed::{Client, ResponseStream, Transport};
use futures_util::StreamExt;
use http::HeaderMap;
use tokio::sync::{mpsc, oneshot};

use crate::convert::{append_headers, headers_to_proto, status_to_error, unpack};
use crate::proto::connectrpc::conformance::v1 as pb;
use crate::raw::RawTransport;
use pb::__buffa::oneof::client_compat_request::cancel::CancelTiming;
use pb::__buffa::oneof::client_compat_response::Result as CompatResult;
use pb::conformance_service_methods as methods;

/// The service every conformance request targets.
pub const SERVICE: &str = "connectrpc.conformance.v1.ConformanceService";

/// HTTP transports shared between requests with the same connection settings, so that connections
/// are pooled across test cases.
#[derive(Clone, Debug, Default)]
pub struct Transports {
    pool: Arc<Mutex<HashMap<TransportKey, HyperTransport>>>,
    h3: Arc<Mutex<HashMap<TransportKey, connect_h3::H3Transport>>>,
}

type TransportKey = (bool, Vec<u8>, Vec<u8>, Vec<u8>);

impl Transports {
    /// The transport for a request's HTTP version and TLS settings.
    pub fn get(&self, request: &pb::ClientCompatRequest) -> Result<HyperTransport, String> {
        let http2 = request.http_version == pb::HTTPVersion::HTTP_VERSION_2;
        let creds = request.client_tls_creds.as_option();
        let key = (
            http2,
            request.server_tls_cert.clone(),
            creds.map(|c| c.cert.clone()).unwrap_or_default(),
            creds.map(|c| c.key.clone()).unwrap_or_default(),
        );
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(transport) = pool.get(&key) {
            return Ok(transport.clone());
        }
        let mut builder = HyperTransport::builder().http2_only(http2);
        if let Some(config) = client_tls(request)? {
            builder = builder.tls_config(config);
        }
        let transport = builder.build();
        pool.insert(key, transport.clone());
        Ok(transport)
    }

    /// The HTTP/3 transport for a request's TLS settings (QUIC is always TLS).
    pub fn get_h3(
        &self,
        request: &pb::ClientCompatRequest,
    ) -> Result<connect_h3::H3Transport, String> {
        let creds = request.client_tls_creds.as_option();
        let key = (
            true,
            request.server_tls_cert.clone(),
            creds.map(|c| c.cert.clone()).unwrap_or_default(),
            creds.map(|c| c.key.clone()).unwrap_or_default(),
        );
        let mut pool = self.h3.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(transport) = pool.get(&key) {
            return Ok(transport.clone());
        }
        let config = client_tls(request)?
            .ok_or("HTTP/3 needs TLS: the request has no server certificate to trust")?;
        let transport = connect_h3::H3Transport::new(config);
        pool.insert(key, transport.clone());
        Ok(transport)
    }
}

/// The TLS client configuration a request asks for: trusting its server certificate, presenting its
/// client certificate; `None` without a server certificate (plain text).
fn client_tls(request: &pb::ClientCompatRequest) -> Result<Option<rustls::ClientConfig>, String> {
    if request.server_tls_cert.is_empty() {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::server::certs(&request.server_tls_cert).map_err(|e| e.to_string())? {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let identity = match request.client_tls_creds.as_option() {
        Some(creds) => Some((
            crate::server::certs(&creds.cert).map_err(|e| e.to_string())?,
            crate::server::key(&creds.key).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    connect_tokio::tls::client_config(roots, identity)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Runs one request over a pooled transport: hyper's, or connect-h3's for `HTTP_VERSION_3`.
pub async fn run(
    transports: &Transports,
    request: pb::ClientCompatRequest,
) -> pb::ClientCompatResponse {
    let test_name = request.test_name.clone();
    let result = if request.http_version == pb::HTTPVersion::HTTP_VERSION_3 {
        match transports.get_h3(&request) {
            Ok(transport) => run_with(transport, &request).await,
            Err(e) => Err(e),
        }
    } else {
        match transports.get(&request) {
            Ok(transport) => run_with(transport, &request).await,
            Err(e) => Err(e),
        }
    };
    compat_response(test_name, result)
}

/// The response message for a test outcome.
pub fn compat_response(
    test_name: String,
    result: Result<pb::ClientResponseResult, String>,
) -> pb::ClientCompatResponse {
    pb::ClientCompatResponse {
        test_name,
        result: Some(match result {
            Ok(result) => CompatResult::Response(Box::new(result)),
            Err(message) => CompatResult::Error(Box::new(pb::ClientErrorResult {
                message,
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

/// Runs one request over `transport`. `Err` is for requests that cannot be run at all.
pub async fn run_with<T: Transport>(
    transport: T,
    request: &pb::ClientCompatRequest,
) -> Result<pb::ClientResponseResult, String> {
    let protocol = match request.protocol.as_known() {
        Some(pb::Protocol::PROTOCOL_CONNECT) => Protocol::Connect,
        Some(pb::Protocol::PROTOCOL_GRPC) => Protocol::Grpc,
        Some(pb::Protocol::PROTOCOL_GRPC_WEB) => Protocol::GrpcWeb,
        _ => return Err(format!("unsupported protocol {:?}", request.protocol)),
    };
    let codec = match request.codec.as_known() {
        Some(pb::Codec::CODEC_PROTO) => Codec::Proto,
        Some(pb::Codec::CODEC_JSON) => Codec::Json,
        _ => return Err(format!("unsupported codec {:?}", request.codec)),
    };
    let mut config = ClientConfig::new(protocol, codec);
    config.send_compression = crate::convert::compression_name(&request.compression)?;
    config.compress_min_bytes = 0;
    if request.message_receive_limit > 0 {
        config.max_recv_message_size = request.message_receive_limit as usize;
    }
    config.use_get = request.use_get_http_method;
    // As the reference client: a raw request replaces the call's own, and its response is read as
    // the call's (the docs allow a client under test to do so or to refuse).
    let transport = RawTransport::new(transport, request.raw_request.as_option().cloned());
    let http_status = transport.status();
    if let Some(service) = &request.service {
        if service != SERVICE {
            return Err(format!("unknown service {service}"));
        }
    }
    let scheme = if request.server_tls_cert.is_empty() {
        "http"
    } else {
        "https"
    };
    let base: http::Uri = format!("{scheme}://{}:{}", request.host, request.port)
        .parse()
        .map_err(|e| format!("server address: {e}"))?;
    let client =
        pb::ConformanceServiceClient::new(Client::new(transport, base, config, TokioRuntime));

    let mut headers = HeaderMap::new();
    append_headers(&request.request_headers, &mut headers);
    let options = CallOptions {
        timeout: request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into())),
        headers,
        ..CallOptions::default()
    };
    let cancel = request
        .cancel
        .as_option()
        .and_then(|c| c.cancel_timing.clone());
    let call = Call {
        options,
        cancel,
        delay: Duration::from_millis(request.request_delay_ms.into()),
        messages: &request.request_messages,
    };
    let stream_type = request.stream_type.as_known();
    let method = request.method.clone().unwrap_or_else(|| {
        match stream_type {
            Some(pb::StreamType::STREAM_TYPE_CLIENT_STREAM) => "ClientStream",
            Some(pb::StreamType::STREAM_TYPE_SERVER_STREAM) => "ServerStream",
            Some(
                pb::StreamType::STREAM_TYPE_HALF_DUPLEX_BIDI_STREAM
                | pb::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM,
            ) => "BidiStream",
            _ => "Unary",
        }
        .to_owned()
    });
    let mut outcome = Outcome::default();
    match method.as_str() {
        "Unary" => {
            let message: pb::UnaryRequest = call.single(pb::UnaryRequest::TYPE_URL)?;
            let c = client.clone();
            call.unary(
                &mut outcome,
                move |o| async move { c.inner().unary_outcome(methods::UNARY, &message, o).await },
                |r: &pb::UnaryResponse| r.payload.as_option().cloned(),
            )
            .await;
        }
        "IdempotentUnary" => {
            let message: pb::IdempotentUnaryRequest =
                call.single(pb::IdempotentUnaryRequest::TYPE_URL)?;
            let c = client.clone();
            call.unary(
                &mut outcome,
                move |o| async move {
                    c.inner()
                        .unary_outcome(methods::IDEMPOTENT_UNARY, &message, o)
                        .await
                },
                |r: &pb::IdempotentUnaryResponse| r.payload.as_option().cloned(),
            )
            .await;
        }
        "Unimplemented" => {
            let message: pb::UnimplementedRequest =
                call.single(pb::UnimplementedRequest::TYPE_URL)?;
            let c = client.clone();
            call.unary(
                &mut outcome,
                move |o| async move {
                    c.inner()
                        .unary_outcome(methods::UNIMPLEMENTED, &message, o)
                        .await
                },
                |_: &pb::UnimplementedResponse| None,
            )
            .await;
        }
        "ClientStream" => {
            let messages: Vec<pb::ClientStreamRequest> =
                call.all(pb::ClientStreamRequest::TYPE_URL)?;
            call.client_stream(&client, messages, &mut outcome).await;
        }
        "ServerStream" => {
            let message: pb::ServerStreamRequest =
                call.single(pb::ServerStreamRequest::TYPE_URL)?;
            call.server_stream(&client, message, &mut outcome).await;
        }
        "BidiStream" => {
            let messages: Vec<pb::BidiStreamRequest> = call.all(pb::BidiStreamRequest::TYPE_URL)?;
            if stream_type == Some(pb::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM) {
                call.full_duplex(&client, messages, &mut outcome).await;
            } else {
                call.half_duplex(&client, messages, &mut outcome).await;
            }
        }
        other => return Err(format!("unknown method {other}")),
    }
    let mut result = outcome.into_result();
    result.http_status_code = http_status.get();
    Ok(result)
}

/// What the client observed.
#[derive(Default)]
struct Outcome {
    headers: HeaderMap,
    trailers: HeaderMap,
    payloads: Vec<pb::ConformancePayload>,
    error: Option<Status>,
    unsent: usize,
}

impl Outcome {
    fn into_result(self) -> pb::ClientResponseResult {
        pb::ClientResponseResult {
            response_headers: headers_to_proto(&self.headers),
            payloads: self.payloads,
            error: self
                .error
                .as_ref()
                .map(status_to_error)
                .map(MessageField::some)
                .unwrap_or_default(),
            response_trailers: headers_to_proto(&self.trailers),
            num_unsent_requests: self.unsent as i32,
            ..Default::default()
        }
    }

    fn fail(&mut self, status: Status) {
        if self.error.is_none() {
            self.error = Some(status);
        }
    }

    /// An error that ended a stream before its headers: its metadata (the trailers) is reported as
    /// trailers.
    fn fail_unary(&mut self, status: Status) {
        self.trailers = status.metadata().clone();
        self.fail(status);
    }
}

fn canceled() -> Status {
    Status::canceled("canceled by the client")
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// Runs `work` until `cancel` fires first; returns whether it was cancelled.
async fn race(work: impl Future<Output = ()>, cancel: impl Future<Output = ()>) -> bool {
    tokio::select! {
        () = work => false,
        () = cancel => true,
    }
}

type PayloadOf<R> = fn(&R) -> Option<pb::ConformancePayload>;

struct Call<'a> {
    options: CallOptions,
    cancel: Option<CancelTiming>,
    delay: Duration,
    messages: &'a [Any],
}

impl Call<'_> {
    fn single<M: Message + Default>(&self, type_url: &str) -> Result<M, String> {
        match self.messages {
            [only] => unpack(only, type_url),
            other => Err(format!("expected one request message, got {}", other.len())),
        }
    }

    fn all<M: Message + Default>(&self, type_url: &str) -> Result<Vec<M>, String> {
        self.messages.iter().map(|m| unpack(m, type_url)).collect()
    }

    fn after_close_send(&self) -> Option<Duration> {
        match self.cancel {
            Some(CancelTiming::AfterCloseSendMs(ms)) => Some(Duration::from_millis(ms.into())),
            _ => None,
        }
    }

    fn after_responses(&self) -> Option<usize> {
        match self.cancel {
            Some(CancelTiming::AfterNumResponses(n)) => Some(n as usize),
            _ => None,
        }
    }

    fn before_close_send(&self) -> bool {
        matches!(self.cancel, Some(CancelTiming::BeforeCloseSend(_)))
    }

    async fn unary<R, F, Fut>(&self, outcome: &mut Outcome, invoke: F, payload: PayloadOf<R>)
    where
        F: FnOnce(CallOptions) -> Fut,
        Fut: Future<Output = connect_typed::Outcome<R>>,
    {
        let work = async {
            let result = invoke(self.options.clone()).await;
            outcome.headers = result.headers;
            outcome.trailers = result.trailers;
            match result.result {
                Ok(message) => outcome
                    .payloads
                    .extend(Some(payload(&message).unwrap_or_default())),
                Err(status) => outcome.fail(status),
            }
        };
        let cancelled = match self.after_close_send() {
            Some(after) => race(work, sleep(after)).await,
            None => {
                work.await;
                false
            }
        };
        if cancelled {
            outcome.fail(canceled());
        }
    }

    /// A stream of request messages sent with the request delay; `sent` counts them and `closed`
    /// fires after the last one. With cancel-before-close-send the stream then never ends.
    fn request_stream<M: Send + 'static>(
        &self,
        messages: Vec<M>,
        sent: Arc<Mutex<usize>>,
    ) -> (
        Pin<Box<dyn futures_core::Stream<Item = M> + Send>>,
        oneshot::Receiver<()>,
    ) {
        let (closed_tx, closed_rx) = oneshot::channel();
        let delay = self.delay;
        let hold_open = self.before_close_send();
        let stream = futures_util::stream::unfold(
            (messages.into_iter(), Some(closed_tx)),
            move |(mut messages, mut closed)| {
                let sent = sent.clone();
                async move {
                    match messages.next() {
                        Some(message) => {
                            sleep(delay).await;
                            *sent.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                            Some((message, (messages, closed)))
                        }
                        None => {
                            if let Some(closed) = closed.take() {
                                let _ = closed.send(());
                            }
                            if hold_open {
                                futures_util::future::pending::<()>().await;
                            }
                            None
                        }
                    }
                }
            },
        );
        (Box::pin(stream), closed_rx)
    }

    /// Waits for the close-send signal, then for the cancellation timing.
    async fn cancel_after_close(&self, closed: oneshot::Receiver<()>) {
        if closed.await.is_err() {
            return futures_util::future::pending().await;
        }
        match (self.before_close_send(), self.after_close_send()) {
            (true, _) => {}
            (false, Some(after)) => sleep(after).await,
            (false, None) => futures_util::future::pending().await,
        }
    }

    async fn client_stream<T: Transport>(
        &self,
        client: &pb::ConformanceServiceClient<T>,
        messages: Vec<pb::ClientStreamRequest>,
        outcome: &mut Outcome,
    ) {
        let total = messages.len();
        let sent = Arc::new(Mutex::new(0));
        let (requests, closed) = self.request_stream(messages, sent.clone());
        let work = async {
            let result = client
                .inner()
                .client_streaming_outcome::<_, pb::ClientStreamResponse, _>(
                    methods::CLIENT_STREAM,
                    requests,
                    self.options.clone(),
                )
                .await;
            outcome.headers = result.headers;
            outcome.trailers = result.trailers;
            match result.result {
                Ok(response) => outcome
                    .payloads
                    .push(response.payload.as_option().cloned().unwrap_or_default()),
                Err(status) => outcome.fail(status),
            }
        };
        if race(work, self.cancel_after_close(closed)).await {
            outcome.fail(canceled());
        }
        if outcome.error.is_some() {
            outcome.unsent = total - *sent.lock().unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Reads responses into `outcome` until the end, an error or the cancel-after-N point.
    async fn read_responses<R>(
        &self,
        stream: &mut ResponseStream<R>,
        outcome: &mut Outcome,
        payload: PayloadOf<R>,
        limit: Option<usize>,
    ) -> bool
    where
        R: connect_typed::Message + serde::de::DeserializeOwned,
    {
        loop {
            if let Some(n) = self.after_responses() {
                if outcome.payloads.len() >= n {
                    outcome.fail(canceled());
                    return false;
                }
            }
            if limit.is_some_and(|l| outcome.payloads.len() >= l) {
                return true;
            }
            match stream.next().await {
                Some(Ok(message)) => outcome.payloads.push(payload(&message).unwrap_or_default()),
                Some(Err(status)) => {
                    outcome.fail(status);
                    break;
                }
                None => break,
            }
        }
        if let Some(trailers) = stream.trailers() {
            outcome.trailers = trailers.clone();
        }
        false
    }

    async fn server_stream<T: Transport>(
        &self,
        client: &pb::ConformanceServiceClient<T>,
        message: pb::ServerStreamRequest,
        outcome: &mut Outcome,
    ) {
        let work = async {
            match client
                .server_stream_with_options(&message, self.options.clone())
                .await
            {
                Ok(mut stream) => {
                    outcome.headers = stream.headers().clone();
                    self.read_responses(
                        &mut stream,
                        outcome,
                        |r: &pb::ServerStreamResponse| r.payload.as_option().cloned(),
                        None,
                    )
                    .await;
                }
                Err(status) => outcome.fail_unary(status),
            }
        };
        let cancelled = match self.after_close_send() {
            Some(after) => race(work, sleep(after)).await,
            None => {
                work.await;
                false
            }
        };
        if cancelled {
            outcome.fail(canceled());
        }
    }

    async fn half_duplex<T: Transport>(
        &self,
        client: &pb::ConformanceServiceClient<T>,
        messages: Vec<pb::BidiStreamRequest>,
        outcome: &mut Outcome,
    ) {
        let total = messages.len();
        let sent = Arc::new(Mutex::new(0));
        let (requests, closed) = self.request_stream(messages, sent.clone());
        let work = async {
            match client
                .bidi_stream_with_options(requests, self.options.clone())
                .await
            {
                Ok(mut stream) => {
                    outcome.headers = stream.headers().clone();
                    self.read_responses(
                        &mut stream,
                        outcome,
                        |r: &pb::BidiStreamResponse| r.payload.as_option().cloned(),
                        None,
                    )
                    .await;
                }
                Err(status) => outcome.fail_unary(status),
            }
        };
        if race(work, self.cancel_after_close(closed)).await {
            outcome.fail(canceled());
        }
        if outcome.error.is_some() {
            outcome.unsent = total - *sent.lock().unwrap_or_else(|p| p.into_inner());
        }
    }

    async fn full_duplex<T: Transport>(
        &self,
        client: &pb::ConformanceServiceClient<T>,
        messages: Vec<pb::BidiStreamRequest>,
        outcome: &mut Outcome,
    ) {
        let total = messages.len();
        let (tx, rx) = mpsc::unbounded_channel::<pb::BidiStreamRequest>();
        let requests =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
            );
        let payload_of: PayloadOf<pb::BidiStreamResponse> = |r| r.payload.as_option().cloned();
        let mut tx = Some(tx);
        let mut sent = 0usize;
        let mut stream: Option<ResponseStream<pb::BidiStreamResponse>> = None;
        let mut call = Some(Box::pin(
            client.bidi_stream_with_options(requests, self.options.clone()),
        ));
        let mut done = false;
        for message in messages {
            sleep(self.delay).await;
            if let Some(tx) = &tx {
                if tx.send(message).is_err() {
                    break;
                }
            }
            sent += 1;
            if let Some(call) = call.take() {
                match call.await {
                    Ok(s) => {
                        outcome.headers = s.headers().clone();
                        stream = Some(s);
                    }
                    Err(status) => {
                        outcome.fail_unary(status);
                        done = true;
                        break;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { break };
            let limit = outcome.payloads.len() + 1;
            if !self
                .read_responses(s, outcome, payload_of, Some(limit))
                .await
            {
                done = true;
                break;
            }
        }
        if !done {
            if self.before_close_send() {
                stream = None;
                call = None;
                outcome.fail(canceled());
            } else {
                tx = None;
                let work = async {
                    if let Some(call) = call.take() {
                        match call.await {
                            Ok(s) => {
                                outcome.headers = s.headers().clone();
                                stream = Some(s);
                            }
                            Err(status) => {
                                outcome.fail_unary(status);
                                return;
                            }
                        }
                    }
                    if let Some(s) = stream.as_mut() {
                        self.read_responses(s, outcome, payload_of, None).await;
                    }
                };
                let cancelled = match self.after_close_send() {
                    Some(after) => race(work, sleep(after)).await,
                    None => {
                        work.await;
                        false
                    }
                };
                if cancelled {
                    outcome.fail(canceled());
                }
            }
        }
        drop((tx, stream, call));
        // After a cancellation at the N-th response, the pseudocode goes on "sending" the remaining
        // requests into the cancelled call; they count as sent.
        let cancelled_after_responses = self
            .after_responses()
            .is_some_and(|n| outcome.payloads.len() >= n);
        if outcome.error.is_some() && !cancelled_after_responses {
            outcome.unsent = total - sent;
        }
    }
}
