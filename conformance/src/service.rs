//! `connectrpc.conformance.v1.ConformanceService` as the server under test implements it: each
//! request's response definition says what to answer; request information is echoed back in the
//! payload, or in the error details when the definition asks for an error.

use std::time::Duration;

use buffa::MessageField;
use buffa_types::google::protobuf::Any;
use connect_typed::{Context, HandlerStream, RequestView, Response, Streaming};
use connect_typed::{Instant, Status};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::convert::{append_headers, error_to_status, headers_to_proto, pack};
use crate::proto::connectrpc::conformance::v1 as pb;
use crate::reference::RawSlot;
use pb::__buffa::oneof::unary_response_definition::Response as UnaryOutcome;
use pb::conformance_payload::RequestInfo;

/// The service implementation (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conformance;

/// What a handler knows about its call, as the suite echoes it.
fn request_info(ctx: &Context, requests: Vec<Any>) -> RequestInfo {
    let timeout_ms = ctx.deadline().map(|deadline| {
        deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as i64
    });
    RequestInfo {
        request_headers: headers_to_proto(ctx.request_headers()),
        timeout_ms,
        requests,
        ..Default::default()
    }
}

fn info_any(info: &RequestInfo) -> Any {
    pack(info, RequestInfo::TYPE_URL)
}

/// Sets the response definition's headers and trailers (before anything is sent).
fn set_metadata(
    ctx: &Context,
    headers: &[pb::Header],
    trailers: &[pb::Header],
) -> Result<(), Status> {
    let late = |e: connect_typed::MetadataSent| Status::internal(e.to_string());
    let mut map = http::HeaderMap::new();
    append_headers(headers, &mut map);
    for (name, value) in &map {
        ctx.append_response_header(name.clone(), value.clone())
            .map_err(late)?;
    }
    let mut map = http::HeaderMap::new();
    append_headers(trailers, &mut map);
    for (name, value) in &map {
        ctx.append_response_trailer(name.clone(), value.clone())
            .map_err(late)?;
    }
    Ok(())
}

async fn delay(ms: u32) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms.into())).await;
    }
}

fn payload(data: Vec<u8>, info: Option<RequestInfo>) -> pb::ConformancePayload {
    pb::ConformancePayload {
        data,
        request_info: info.map(MessageField::some).unwrap_or_default(),
        ..Default::default()
    }
}

/// A definition's raw HTTP response, handed to the reference server of our runner when it serves
/// the call (see [`crate::reference`]); the call then fails with the returned status, which that
/// server replaces with the raw response. The server under test has no slot and ignores raw
/// responses, as only the reference server writes them.
fn answer_raw(ctx: &Context, raw: Option<&pb::RawHTTPResponse>) -> Result<(), Status> {
    match (raw, ctx.extensions().get::<RawSlot>()) {
        (Some(raw), Some(slot)) => {
            slot.set(raw.clone());
            Err(Status::internal("answered with a raw HTTP response"))
        }
        _ => Ok(()),
    }
}

/// The answer of the unary and client-streaming methods.
async fn unary_outcome(
    ctx: &Context,
    definition: Option<&pb::UnaryResponseDefinition>,
    requests: Vec<Any>,
) -> Result<pb::ConformancePayload, Status> {
    let info = request_info(ctx, requests);
    let Some(definition) = definition else {
        return Ok(payload(Vec::new(), Some(info)));
    };
    answer_raw(ctx, definition.raw_response.as_option())?;
    set_metadata(
        ctx,
        &definition.response_headers,
        &definition.response_trailers,
    )?;
    delay(definition.response_delay_ms).await;
    match &definition.response {
        Some(UnaryOutcome::Error(error)) => Err(error_to_status(error, Some(info_any(&info)))),
        Some(UnaryOutcome::ResponseData(data)) => Ok(payload(data.clone(), Some(info))),
        None => Ok(payload(Vec::new(), Some(info))),
    }
}

/// A handler stream fed by a task: the task ends when the call is dropped.
fn spawn_stream<T, F, Fut>(body: F) -> HandlerStream<T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(body(tx));
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Sends the responses of a stream definition (server streams, half-duplex bidi): request info in
/// the first response only, or in the error when nothing was sent.
async fn send_stream<T>(
    tx: mpsc::Sender<Result<T, Status>>,
    definition: pb::StreamResponseDefinition,
    info: RequestInfo,
    wrap: fn(pb::ConformancePayload) -> T,
) {
    let mut info = Some(info);
    for data in definition.response_data {
        delay(definition.response_delay_ms).await;
        if tx.send(Ok(wrap(payload(data, info.take())))).await.is_err() {
            return;
        }
    }
    if let Some(error) = definition.error.as_option() {
        let _ = tx
            .send(Err(error_to_status(error, info.as_ref().map(info_any))))
            .await;
    }
}

impl pb::ConformanceService for Conformance {
    async fn unary(
        &self,
        ctx: Context,
        request: RequestView<pb::UnaryRequest>,
    ) -> Result<Response<pb::UnaryResponse>, Status> {
        let request = request.to_owned_message();
        let any = pack(&request, pb::UnaryRequest::TYPE_URL);
        let payload =
            unary_outcome(&ctx, request.response_definition.as_option(), vec![any]).await?;
        Ok(Response::new(pb::UnaryResponse {
            payload: MessageField::some(payload),
            ..Default::default()
        }))
    }

    async fn idempotent_unary(
        &self,
        ctx: Context,
        request: RequestView<pb::IdempotentUnaryRequest>,
    ) -> Result<Response<pb::IdempotentUnaryResponse>, Status> {
        let request = request.to_owned_message();
        let any = pack(&request, pb::IdempotentUnaryRequest::TYPE_URL);
        let payload =
            unary_outcome(&ctx, request.response_definition.as_option(), vec![any]).await?;
        Ok(Response::new(pb::IdempotentUnaryResponse {
            payload: MessageField::some(payload),
            ..Default::default()
        }))
    }

    async fn unimplemented(
        &self,
        _ctx: Context,
        _request: RequestView<pb::UnimplementedRequest>,
    ) -> Result<Response<pb::UnimplementedResponse>, Status> {
        Err(Status::unimplemented(
            "connectrpc.conformance.v1.ConformanceService.Unimplemented is not implemented",
        ))
    }

    async fn client_stream(
        &self,
        ctx: Context,
        mut requests: Streaming<pb::ClientStreamRequest>,
    ) -> Result<Response<pb::ClientStreamResponse>, Status> {
        let mut definition = None;
        let mut received = Vec::new();
        while let Some(request) = requests.next().await {
            let request = request?.to_owned_message();
            if received.is_empty() {
                definition = request.response_definition.as_option().cloned();
            }
            received.push(pack(&request, pb::ClientStreamRequest::TYPE_URL));
        }
        let payload = unary_outcome(&ctx, definition.as_ref(), received).await?;
        Ok(Response::new(pb::ClientStreamResponse {
            payload: MessageField::some(payload),
            ..Default::default()
        }))
    }

    async fn server_stream(
        &self,
        ctx: Context,
        request: RequestView<pb::ServerStreamRequest>,
    ) -> Result<Response<HandlerStream<pb::ServerStreamResponse>>, Status> {
        let request = request.to_owned_message();
        let info = request_info(
            &ctx,
            vec![pack(&request, pb::ServerStreamRequest::TYPE_URL)],
        );
        let definition = request.response_definition.as_option().cloned();
        if let Some(definition) = &definition {
            answer_raw(&ctx, definition.raw_response.as_option())?;
            set_metadata(
                &ctx,
                &definition.response_headers,
                &definition.response_trailers,
            )?;
        }
        Ok(Response::new(spawn_stream(move |tx| async move {
            if let Some(definition) = definition {
                send_stream(tx, definition, info, |payload| pb::ServerStreamResponse {
                    payload: MessageField::some(payload),
                    ..Default::default()
                })
                .await;
            }
        })))
    }

    async fn bidi_stream(
        &self,
        ctx: Context,
        mut requests: Streaming<pb::BidiStreamRequest>,
    ) -> Result<Response<HandlerStream<pb::BidiStreamResponse>>, Status> {
        let wrap = |payload| pb::BidiStreamResponse {
            payload: MessageField::some(payload),
            ..Default::default()
        };
        Ok(Response::new(spawn_stream(move |tx| async move {
            let mut definition = None;
            let mut full_duplex = false;
            let mut pending = Vec::new();
            let mut sent = 0usize;
            let mut first = true;
            while let Some(request) = requests.next().await {
                let request = match request {
                    Ok(request) => request.to_owned_message(),
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                if first {
                    first = false;
                    full_duplex = request.full_duplex;
                    definition = request.response_definition.as_option().cloned();
                    if let Some(definition) = &definition {
                        if let Err(status) = answer_raw(&ctx, definition.raw_response.as_option()) {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                        if let Err(status) = set_metadata(
                            &ctx,
                            &definition.response_headers,
                            &definition.response_trailers,
                        ) {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    }
                }
                pending.push(pack(&request, pb::BidiStreamRequest::TYPE_URL));
                if !full_duplex {
                    continue;
                }
                let Some(definition) = &definition else {
                    continue;
                };
                let Some(data) = definition.response_data.get(sent) else {
                    if let Some(error) = definition.error.as_option() {
                        let info = (sent == 0)
                            .then(|| info_any(&request_info(&ctx, std::mem::take(&mut pending))));
                        let _ = tx.send(Err(error_to_status(error, info))).await;
                        return;
                    }
                    continue;
                };
                let info = if sent == 0 {
                    request_info(&ctx, std::mem::take(&mut pending))
                } else {
                    RequestInfo {
                        requests: std::mem::take(&mut pending),
                        ..Default::default()
                    }
                };
                delay(definition.response_delay_ms).await;
                if tx
                    .send(Ok(wrap(payload(data.clone(), Some(info)))))
                    .await
                    .is_err()
                {
                    return;
                }
                sent += 1;
            }
            let Some(mut definition) = definition else {
                return;
            };
            if full_duplex {
                // Responses beyond the requests, then the error.
                definition
                    .response_data
                    .drain(..sent.min(definition.response_data.len()));
                for data in std::mem::take(&mut definition.response_data) {
                    delay(definition.response_delay_ms).await;
                    let info = RequestInfo {
                        requests: std::mem::take(&mut pending),
                        ..Default::default()
                    };
                    if tx.send(Ok(wrap(payload(data, Some(info))))).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                if let Some(error) = definition.error.as_option() {
                    let info = (sent == 0)
                        .then(|| info_any(&request_info(&ctx, std::mem::take(&mut pending))));
                    let _ = tx.send(Err(error_to_status(error, info))).await;
                }
                return;
            }
            let info = request_info(&ctx, pending);
            send_stream(tx, definition, info, wrap).await;
        })))
    }
}
