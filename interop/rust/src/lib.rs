//! Our side of the interop matrix (`interop/run.sh`): the `interop.v1.InteropService` implementation
//! that `interop-server` serves to third-party clients, and the checks that `interop-client` runs
//! against third-party servers.

use std::time::Duration;

use bytes::Bytes;
use connect_typed::{Code, ErrorDetail as Detail, Status};
use connect_typed::{Context, HandlerStream, RequestView, Response as RpcResponse, Streaming};
use futures_util::StreamExt;
use http::HeaderName;

/// Code generated from `interop/proto/interop/v1/interop.proto` by connect-build.
#[allow(missing_docs, unreachable_pub)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/proto.rs"));
}

use proto::interop::v1::{ErrorDetail, InteropService, Response};

/// The fully qualified name of the error detail message.
pub const DETAIL_TYPE: &str = "interop.v1.ErrorDetail";

/// The service, following the rules written in `interop.proto`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Interop;

/// Copies the request header `x-echo` into the response header `x-echo-header` and the trailer
/// `x-echo-trailer`.
fn echo_metadata(ctx: &Context) -> Result<(), Status> {
    if let Some(v) = ctx.request_headers().get("x-echo") {
        ctx.set_response_header(HeaderName::from_static("x-echo-header"), v.clone())?;
        ctx.set_response_trailer(HeaderName::from_static("x-echo-trailer"), v.clone())?;
    }
    Ok(())
}

/// The error a request asks for: its code, message and one `ErrorDetail` with the text as reason.
pub fn requested_error(code: &str, message: &str, text: &str) -> Status {
    use buffa::Message;
    let code = Code::from_name(code).unwrap_or(Code::UNKNOWN);
    let detail = ErrorDetail {
        reason: text.to_owned(),
        ..Default::default()
    };
    Status::new(code, message).with_detail(Detail::new(
        DETAIL_TYPE,
        Bytes::from(detail.encode_to_vec()),
    ))
}

async fn sleep_ms(ms: i32) {
    if ms > 0 {
        // async-io's timer runs on its own reactor: the same handler serves on tokio and on smol.
        async_io::Timer::after(Duration::from_millis(ms as u64)).await;
    }
}

fn response(text: &str, index: i32, padding: &[u8]) -> Response {
    Response {
        text: text.to_owned(),
        index,
        padding: padding.to_vec(),
        ..Default::default()
    }
}

impl InteropService for Interop {
    async fn unary(
        &self,
        ctx: Context,
        request: RequestView<proto::interop::v1::Request>,
    ) -> Result<RpcResponse<Response>, Status> {
        echo_metadata(&ctx)?;
        let r = request.view();
        sleep_ms(r.sleep_ms).await;
        if !r.fail_code.is_empty() {
            return Err(requested_error(r.fail_code, r.fail_message, r.text));
        }
        Ok(RpcResponse::new(response(r.text, 0, r.padding)))
    }

    async fn server_stream(
        &self,
        ctx: Context,
        request: RequestView<proto::interop::v1::Request>,
    ) -> Result<RpcResponse<HandlerStream<Response>>, Status> {
        echo_metadata(&ctx)?;
        let r = request.view();
        sleep_ms(r.sleep_ms).await;
        let mut items: Vec<Result<Response, Status>> = (0..r.count.max(0))
            .map(|i| Ok(response(r.text, i, r.padding)))
            .collect();
        if !r.fail_code.is_empty() {
            items.push(Err(requested_error(r.fail_code, r.fail_message, r.text)));
        }
        Ok(RpcResponse::new(Box::pin(futures_util::stream::iter(
            items,
        ))))
    }

    async fn client_stream(
        &self,
        ctx: Context,
        mut requests: Streaming<proto::interop::v1::Request>,
    ) -> Result<RpcResponse<Response>, Status> {
        echo_metadata(&ctx)?;
        let mut texts = Vec::new();
        while let Some(request) = requests.next().await {
            let request = request?;
            let r = request.view();
            sleep_ms(r.sleep_ms).await;
            if !r.fail_code.is_empty() {
                return Err(requested_error(r.fail_code, r.fail_message, r.text));
            }
            texts.push(r.text.to_owned());
        }
        Ok(RpcResponse::new(response(
            &texts.join(","),
            texts.len() as i32,
            &[],
        )))
    }

    async fn bidi_stream(
        &self,
        ctx: Context,
        requests: Streaming<proto::interop::v1::Request>,
    ) -> Result<RpcResponse<HandlerStream<Response>>, Status> {
        echo_metadata(&ctx)?;
        let stream = futures_util::stream::unfold(
            (requests, 0, false),
            |(mut requests, index, ended)| async move {
                if ended {
                    return None;
                }
                let request = match requests.next().await? {
                    Ok(request) => request,
                    Err(status) => return Some((Err(status), (requests, index, true))),
                };
                let r = request.view();
                sleep_ms(r.sleep_ms).await;
                if !r.fail_code.is_empty() {
                    let status = requested_error(r.fail_code, r.fail_message, r.text);
                    return Some((Err(status), (requests, index, true)));
                }
                let item = response(r.text, index, r.padding);
                Some((Ok(item), (requests, index + 1, false)))
            },
        );
        Ok(RpcResponse::new(Box::pin(stream)))
    }
}
