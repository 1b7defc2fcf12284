//! The `fetch` transport.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use connect_typed::{BoxFuture, RequestBody, Transport, TransportError};
use connect_typed::{MethodInfo, Protocol, Status};
use http::{HeaderName, HeaderValue, Method};
use http_body::Body;
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, Headers, ReadableStreamDefaultReader, RequestCredentials, RequestInit,
    RequestMode,
};

use crate::body::{AbortOnDrop, FetchBody};
use crate::js;
use crate::support::{check_call, strip_decoded_encoding, Credentials};

/// Sends calls with the JavaScript `fetch` of the environment (browser window or worker, Node).
///
/// The request body is collected and sent in one piece (browsers cannot stream request bodies over
/// HTTP/1.1); the response body is read chunk by chunk. Cross-origin calls need a server that answers
/// CORS preflights and exposes the protocols' response headers (`connect_typed::cors::Cors`) plus any
/// custom headers and Connect unary trailers (`trailer-*`) the application reads.
#[derive(Clone, Debug, Default)]
pub struct FetchTransport {
    credentials: Credentials,
}

impl FetchTransport {
    /// A transport with the `fetch` defaults (credentials for the same origin only).
    pub fn new() -> Self {
        FetchTransport::default()
    }

    /// Sets whether cookies and HTTP authentication are sent.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }
}

impl Transport for FetchTransport {
    type ResponseBody = FetchBody;
    type Future = BoxFuture<'static, Result<http::Response<FetchBody>, TransportError>>;

    fn send(&self, request: http::Request<RequestBody>) -> Self::Future {
        Box::pin(send(self.credentials, request))
    }

    fn check_call(&self, protocol: Protocol, method: &MethodInfo) -> Result<(), Status> {
        check_call(protocol, method.stream_type)
    }
}

fn js_failure(context: &str, error: JsValue) -> TransportError {
    TransportError::connection(format!("{context}: {}", js::describe(&error)))
}

async fn send(
    credentials: Credentials,
    request: http::Request<RequestBody>,
) -> Result<http::Response<FetchBody>, TransportError> {
    let (parts, body) = request.into_parts();
    let body = collect(body).await?;

    let controller =
        AbortController::new().map_err(|e| js_failure("creating an AbortController", e))?;
    // From here on, dropping this future (a cancelled call, an expired deadline) aborts the fetch.
    let abort = AbortOnDrop::new(controller.clone());

    let headers = Headers::new().map_err(|e| js_failure("creating Headers", e))?;
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .append(name.as_str(), &value)
            .map_err(|e| js_failure(&format!("request header {name}"), e))?;
    }
    let init = RequestInit::new();
    init.set_method(parts.method.as_str());
    init.set_headers(&headers);
    init.set_signal(Some(&controller.signal()));
    init.set_mode(RequestMode::Cors);
    init.set_credentials(match credentials {
        Credentials::Omit => RequestCredentials::Omit,
        Credentials::SameOrigin => RequestCredentials::SameOrigin,
        Credentials::Include => RequestCredentials::Include,
    });
    if parts.method != Method::GET && parts.method != Method::HEAD {
        init.set_body(&Uint8Array::from(&body[..]));
    }
    let request = web_sys::Request::new_with_str_and_init(&parts.uri.to_string(), &init)
        .map_err(|e| js_failure("building the request", e))?;

    let promise = js::fetch(&request).map_err(|e| js_failure("fetch", e))?;
    let response: web_sys::Response = JsFuture::from(promise)
        .await
        .map_err(|e| js_failure("fetch", e))?
        .dyn_into()
        .map_err(|e| js_failure("fetch resolved to a non-Response", e))?;

    let mut head = http::Response::new(());
    *head.status_mut() = http::StatusCode::from_u16(response.status())
        .map_err(|e| TransportError::connection(format!("response status: {e}")))?;
    copy_headers(&response.headers(), head.headers_mut())?;
    strip_decoded_encoding(head.headers_mut());

    let reader = match response.body() {
        Some(stream) => Some(
            stream
                .get_reader()
                .dyn_into::<ReadableStreamDefaultReader>()
                .map_err(|e| js_failure("getting the body reader", e.into()))?,
        ),
        None => None,
    };
    let (parts, ()) = head.into_parts();
    Ok(http::Response::from_parts(
        parts,
        FetchBody::new(reader, abort),
    ))
}

/// The whole request body (one message, or all messages of a client stream).
async fn collect(mut body: RequestBody) -> Result<Bytes, TransportError> {
    let mut collected = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// The response headers a script may read (for cross-origin responses: the CORS-safelisted ones and
/// those the server exposes).
fn copy_headers(from: &Headers, to: &mut http::HeaderMap) -> Result<(), TransportError> {
    let entries = js_sys::try_iter(from)
        .map_err(|e| js_failure("iterating response headers", e))?
        .ok_or_else(|| TransportError::connection("response headers are not iterable"))?;
    for entry in entries {
        let entry = entry.map_err(|e| js_failure("iterating response headers", e))?;
        let entry: js_sys::Array = entry.unchecked_into();
        let (Some(name), Some(value)) = (entry.get(0).as_string(), entry.get(1).as_string()) else {
            continue;
        };
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| TransportError::connection(format!("response header name {name}: {e}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|e| TransportError::connection(format!("response header {name}: {e}")))?;
        to.append(name, value);
    }
    Ok(())
}
