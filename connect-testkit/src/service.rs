//! The service every end-to-end check calls: it echoes, streams, fails, waits and records its own
//! lifetime as the request asks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use connect_typed::{Code, ErrorDetail, Status};
use connect_typed::{Context, HandlerStream, RequestView, Response, Runtime, Streaming};
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue};

use crate::proto::testkit::v1::{EchoRequest, EchoResponse, EchoService};

/// Describes the peer of a call from the request's extensions (adapter-specific types).
pub type PeerDescriber = Arc<dyn Fn(&http::Extensions) -> Option<String> + Send + Sync>;

/// Which handlers started and which were dropped, by the requests' `tag`.
#[derive(Debug, Default)]
pub struct Tracker {
    calls: Mutex<HashMap<String, Lifetime>>,
}

/// What became of a tagged handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// The handler started.
    pub started: bool,
    /// The handler's state was dropped (it finished or was cancelled).
    pub dropped: bool,
}

impl Tracker {
    /// The lifetime of the handler tagged `tag`.
    pub fn get(&self, tag: &str) -> Lifetime {
        self.lock().get(tag).copied().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lifetime>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn guard(self: &Arc<Self>, tag: &str) -> Option<Guard> {
        if tag.is_empty() {
            return None;
        }
        self.lock().entry(tag.to_owned()).or_default().started = true;
        Some(Guard {
            tag: tag.to_owned(),
            tracker: self.clone(),
        })
    }
}

/// Lives as long as a tagged handler's state; marks it dropped.
#[derive(Debug)]
struct Guard {
    tag: String,
    tracker: Arc<Tracker>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.tracker
            .lock()
            .entry(self.tag.clone())
            .or_default()
            .dropped = true;
    }
}

/// The test implementation of `testkit.v1.EchoService`.
#[derive(Clone)]
pub struct Echo {
    runtime: Arc<dyn Runtime>,
    tracker: Arc<Tracker>,
    peer: Option<PeerDescriber>,
}

impl std::fmt::Debug for Echo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Echo").finish_non_exhaustive()
    }
}

impl Echo {
    /// A service that sleeps on `runtime` and records tagged handlers in `tracker`.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        tracker: Arc<Tracker>,
        peer: Option<PeerDescriber>,
    ) -> Self {
        Echo {
            runtime,
            tracker,
            peer,
        }
    }

    async fn sleep_ms(&self, ms: i32) {
        sleep(&*self.runtime, ms).await;
    }

    /// Echoes metadata: request headers into response headers and trailers, and what the server saw.
    fn echo_metadata(&self, ctx: &Context, text: &str) -> Result<(), Status> {
        let request = ctx.request_headers();
        if let Some(v) = request.get("x-echo") {
            ctx.set_response_header(HeaderName::from_static("x-echoed"), v.clone())?;
        }
        if let Some(v) = request.get("x-bin-bin") {
            ctx.set_response_header(HeaderName::from_static("x-bin-bin"), v.clone())?;
            ctx.set_response_trailer(HeaderName::from_static("x-tbin-bin"), v.clone())?;
        }
        let deadline = if ctx.deadline().is_some() {
            "some"
        } else {
            "none"
        };
        ctx.set_response_header(
            HeaderName::from_static("x-deadline"),
            HeaderValue::from_static(deadline),
        )?;
        let encoding = [
            "grpc-encoding",
            "connect-content-encoding",
            "content-encoding",
        ]
        .iter()
        .find_map(|name| request.get(*name))
        .cloned()
        .unwrap_or(HeaderValue::from_static("identity"));
        ctx.set_response_header(HeaderName::from_static("x-request-encoding"), encoding)?;
        let content_type = if request.contains_key("content-type") {
            "yes"
        } else {
            "no"
        };
        ctx.set_response_header(
            HeaderName::from_static("x-had-content-type"),
            HeaderValue::from_static(content_type),
        )?;
        if let Some(peer) = self.peer.as_ref().and_then(|p| p(ctx.extensions())) {
            if let Ok(v) = HeaderValue::from_str(&peer) {
                ctx.set_response_header(HeaderName::from_static("x-peer"), v)?;
            }
        }
        if let Ok(v) = HeaderValue::from_str(text) {
            ctx.set_response_trailer(HeaderName::from_static("x-trailer"), v)?;
        }
        Ok(())
    }
}

async fn sleep(runtime: &dyn Runtime, ms: i32) {
    if ms > 0 {
        let deadline = runtime.now() + Duration::from_millis(ms as u64);
        runtime.sleep_until(deadline).await;
    }
}

/// The error a request with `fail_code` asks for: that code, a message, one detail, and metadata:
/// `x-error-meta: <text>`, which the client must receive, and two names protocols own (`grpc-status`,
/// `connect-protocol-version`), which must not be sent as metadata.
pub fn requested_error(code_name: &str, text: &str) -> Status {
    let code = Code::from_name(code_name).unwrap_or(Code::UNKNOWN);
    let mut status =
        Status::new(code, format!("failed as asked: {text}")).with_detail(ErrorDetail::new(
            "testkit.v1.EchoResponse",
            Bytes::from_static(b"\x0a\x06detail"),
        ));
    let metadata = status.metadata_mut();
    if let Ok(value) = http::HeaderValue::from_str(text) {
        metadata.insert("x-error-meta", value);
    }
    metadata.insert("grpc-status", http::HeaderValue::from_static("0"));
    metadata.insert(
        "connect-protocol-version",
        http::HeaderValue::from_static("9"),
    );
    status
}

fn response(text: &str, index: i32, padding: i32) -> EchoResponse {
    EchoResponse {
        text: text.to_owned(),
        index,
        padding: vec![b'p'; padding.max(0) as usize],
        ..Default::default()
    }
}

impl EchoService for Echo {
    async fn unary(
        &self,
        ctx: Context,
        request: RequestView<EchoRequest>,
    ) -> Result<Response<EchoResponse>, Status> {
        let r = request.view();
        let _guard = self.tracker.guard(r.tag);
        self.echo_metadata(&ctx, r.text)?;
        if r.panic {
            panic!("the request asked the handler to panic");
        }
        let (text, fail, padding, delay) = (
            r.text.to_owned(),
            r.fail_code.to_owned(),
            r.response_padding,
            r.delay_ms,
        );
        self.sleep_ms(delay).await;
        if !fail.is_empty() {
            return Err(requested_error(&fail, &text));
        }
        Ok(Response::new(response(&text, 0, padding)))
    }

    async fn lookup(
        &self,
        ctx: Context,
        request: RequestView<EchoRequest>,
    ) -> Result<Response<EchoResponse>, Status> {
        self.unary(ctx, request).await
    }

    async fn server_stream(
        &self,
        ctx: Context,
        request: RequestView<EchoRequest>,
    ) -> Result<Response<HandlerStream<EchoResponse>>, Status> {
        let r = request.view();
        let guard = self.tracker.guard(r.tag);
        self.echo_metadata(&ctx, r.text)?;
        let text = r.text.to_owned();
        let fail = r.fail_code.to_owned();
        let (count, delay, padding) = (r.count, r.delay_ms, r.response_padding);
        let runtime = self.runtime.clone();
        // State: next index; the guard lives as long as the stream.
        let stream =
            futures_util::stream::unfold((0, false, guard), move |(index, ended, guard)| {
                let (text, fail, runtime) = (text.clone(), fail.clone(), runtime.clone());
                async move {
                    if ended {
                        return None;
                    }
                    if count >= 0 && index >= count {
                        if fail.is_empty() {
                            return None;
                        }
                        return Some((Err(requested_error(&fail, &text)), (index, true, guard)));
                    }
                    sleep(&*runtime, delay).await;
                    Some((
                        Ok(response(&text, index, padding)),
                        (index + 1, false, guard),
                    ))
                }
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn client_stream(
        &self,
        ctx: Context,
        mut requests: Streaming<EchoRequest>,
    ) -> Result<Response<EchoResponse>, Status> {
        let mut texts = Vec::new();
        let mut guards = Vec::new();
        let mut padding = 0;
        while let Some(request) = requests.next().await {
            let request = request?;
            let r = request.view();
            guards.push(self.tracker.guard(r.tag));
            if texts.is_empty() {
                self.echo_metadata(&ctx, r.text)?;
            }
            texts.push(r.text.to_owned());
            padding = r.response_padding;
            self.sleep_ms(r.delay_ms).await;
            if !r.fail_code.is_empty() {
                return Err(requested_error(r.fail_code, r.text));
            }
        }
        Ok(Response::new(response(
            &texts.join(","),
            texts.len() as i32,
            padding,
        )))
    }

    async fn bidi(
        &self,
        ctx: Context,
        requests: Streaming<EchoRequest>,
    ) -> Result<Response<HandlerStream<EchoResponse>>, Status> {
        let echo = self.clone();
        let stream = futures_util::stream::unfold(
            (requests, 0, Vec::new(), false),
            move |(mut requests, index, mut guards, ended)| {
                let (echo, ctx) = (echo.clone(), ctx.clone());
                async move {
                    if ended {
                        return None;
                    }
                    let request = match requests.next().await? {
                        Ok(request) => request,
                        Err(status) => return Some((Err(status), (requests, index, guards, true))),
                    };
                    let r = request.view();
                    guards.push(echo.tracker.guard(r.tag));
                    if index == 0 {
                        if let Err(status) = echo.echo_metadata(&ctx, r.text) {
                            return Some((Err(status), (requests, index, guards, true)));
                        }
                    }
                    echo.sleep_ms(r.delay_ms).await;
                    if !r.fail_code.is_empty() {
                        let status = requested_error(r.fail_code, r.text);
                        return Some((Err(status), (requests, index, guards, true)));
                    }
                    let item = response(r.text, index, r.response_padding);
                    Some((Ok(item), (requests, index + 1, guards, false)))
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
