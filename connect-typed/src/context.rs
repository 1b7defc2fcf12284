//! What a handler knows about its call, and how it sets response metadata.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http::{HeaderMap, HeaderName, HeaderValue};

use connect_proto::Instant;
use connect_proto::{Codec, MethodInfo, Protocol};

use crate::interceptor::{CallState, ServerChain, ServerInterceptor};

/// The call a handler serves: protocol, codec, deadline, request headers, the request's
/// [`http::Extensions`] (where adapters put peer information such as the remote address), and setters
/// for response headers and trailers.
///
/// Cheap to clone; clones share the response metadata. Response headers may be set until they are
/// sent (with the first response message, or when a unary handler returns); trailers until the call
/// finishes. Setting either later is refused with [`MetadataSent`] rather than silently dropped.
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

/// Response metadata set after it was sent: headers after the first response message (or the end
/// of a unary call), trailers after the call finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataSent {
    /// `"headers"` or `"trailers"`.
    pub what: &'static str,
}

impl std::fmt::Display for MetadataSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the response {} were already sent", self.what)
    }
}

impl std::error::Error for MetadataSent {}

/// A handler that sets metadata too late fails its call with `internal` (`ctx.set_…(…)?`).
impl From<MetadataSent> for connect_proto::Status {
    fn from(late: MetadataSent) -> Self {
        connect_proto::Status::internal(late.to_string())
    }
}

struct Inner {
    method: MethodInfo,
    protocol: Protocol,
    codec: Codec,
    deadline: Option<Instant>,
    request_headers: HeaderMap,
    extensions: http::Extensions,
    uri: http::Uri,
    response: Mutex<ResponseMetadata>,
    flush_headers: AtomicBool,
    state: CallState,
    /// `None` without interceptors (no allocation for the common case).
    interceptors: Option<ServerChain>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("method", &self.method)
            .field("protocol", &self.protocol)
            .field("codec", &self.codec)
            .field("deadline", &self.deadline)
            .field("request_headers", &self.request_headers)
            .field(
                "interceptors",
                &self.interceptors.as_ref().map_or(0, |i| i.len()),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct ResponseMetadata {
    headers: HeaderMap,
    trailers: HeaderMap,
    headers_sent: bool,
    trailers_sent: bool,
}

impl Context {
    /// A context; the router builds one per call, tests may build their own.
    pub fn new(
        method: MethodInfo,
        protocol: Protocol,
        codec: Codec,
        deadline: Option<Instant>,
        request_headers: HeaderMap,
        extensions: http::Extensions,
    ) -> Self {
        Context {
            inner: Arc::new(Inner {
                method,
                protocol,
                codec,
                deadline,
                request_headers,
                extensions,
                uri: http::Uri::from_static("/"),
                response: Mutex::new(ResponseMetadata::default()),
                flush_headers: AtomicBool::new(false),
                state: CallState::default(),
                interceptors: None,
            }),
        }
    }

    /// Attaches the router's interceptors and the state their head phase left (the router does
    /// this). Only effective before the context is cloned.
    pub(crate) fn with_interceptors(mut self, interceptors: ServerChain, state: CallState) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.interceptors = (!interceptors.is_empty()).then_some(interceptors);
            inner.state = state;
        }
        self
    }

    /// The router's interceptors, outermost first.
    pub(crate) fn interceptors(&self) -> &[Arc<dyn ServerInterceptor>] {
        self.inner.interceptors.as_deref().unwrap_or(&[])
    }

    /// Typed per-call state interceptors left for the handler (an authenticated principal, ...).
    pub fn state(&self) -> &CallState {
        &self.inner.state
    }

    /// Records the request URI (the router does this; a Connect GET carries its message in the query).
    /// Only effective before the context is cloned.
    pub fn with_uri(mut self, uri: http::Uri) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.uri = uri;
        }
        self
    }

    /// The request URI as received: path and, for Connect GET, the query.
    pub fn uri(&self) -> &http::Uri {
        &self.inner.uri
    }

    /// Asks for the response headers set so far to be sent now, before the first response message
    /// (a streaming handler that wants the client to see headers before a delay). Connect unary
    /// responses carry their headers with the message whatever this says.
    pub fn send_response_headers(&self) {
        self.inner.flush_headers.store(true, Ordering::Release);
    }

    /// Whether the handler asked for the headers to be sent early.
    pub(crate) fn response_headers_requested(&self) -> bool {
        self.inner.flush_headers.load(Ordering::Acquire)
    }

    /// The method being called.
    pub fn method(&self) -> &MethodInfo {
        &self.inner.method
    }

    /// The protocol the client speaks.
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// The message codec of the call.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// The deadline from the client's timeout header; the call is aborted with `deadline_exceeded`
    /// when it passes.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// The request headers (custom metadata; `-bin` values still base64).
    pub fn request_headers(&self) -> &HeaderMap {
        &self.inner.request_headers
    }

    /// The request's extensions, as the HTTP stack left them (peer address, TLS info, ...).
    pub fn extensions(&self) -> &http::Extensions {
        &self.inner.extensions
    }

    /// Sets a response header, replacing any value of the same name.
    pub fn set_response_header(
        &self,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), MetadataSent> {
        self.headers(|headers| {
            headers.insert(name, value);
        })
    }

    /// Adds a response header value, keeping earlier values of the same name.
    pub fn append_response_header(
        &self,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), MetadataSent> {
        self.headers(|headers| {
            headers.append(name, value);
        })
    }

    /// Sets a response trailer, replacing any value of the same name.
    pub fn set_response_trailer(
        &self,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), MetadataSent> {
        self.trailers(|trailers| {
            trailers.insert(name, value);
        })
    }

    /// Adds a response trailer value, keeping earlier values of the same name.
    pub fn append_response_trailer(
        &self,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), MetadataSent> {
        self.trailers(|trailers| {
            trailers.append(name, value);
        })
    }

    /// Adds the metadata of a handler's [`Response`](crate::Response) to what was set here.
    pub(crate) fn extend_response_metadata(
        &self,
        headers: HeaderMap,
        trailers: HeaderMap,
    ) -> Result<(), MetadataSent> {
        if !headers.is_empty() {
            self.headers(|all| append_all(all, headers))?;
        }
        if !trailers.is_empty() {
            self.trailers(|all| append_all(all, trailers))?;
        }
        Ok(())
    }

    fn headers(&self, change: impl FnOnce(&mut HeaderMap)) -> Result<(), MetadataSent> {
        let mut metadata = self.lock();
        if metadata.headers_sent {
            return Err(MetadataSent { what: "headers" });
        }
        change(&mut metadata.headers);
        Ok(())
    }

    fn trailers(&self, change: impl FnOnce(&mut HeaderMap)) -> Result<(), MetadataSent> {
        let mut metadata = self.lock();
        if metadata.trailers_sent {
            return Err(MetadataSent { what: "trailers" });
        }
        change(&mut metadata.trailers);
        Ok(())
    }

    /// Takes the response headers set so far, which are now sent (with the first message).
    pub(crate) fn take_response_headers(&self) -> HeaderMap {
        let mut metadata = self.lock();
        metadata.headers_sent = true;
        std::mem::take(&mut metadata.headers)
    }

    /// Takes the response trailers set so far, which are now sent (the call finishes).
    pub(crate) fn take_response_trailers(&self) -> HeaderMap {
        let mut metadata = self.lock();
        metadata.trailers_sent = true;
        std::mem::take(&mut metadata.trailers)
    }

    fn lock(&self) -> MutexGuard<'_, ResponseMetadata> {
        // A handler that panicked while holding the lock left plain header maps: still usable.
        self.inner
            .response
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Appends every entry of `from` to `to`, keeping duplicates.
fn append_all(to: &mut HeaderMap, from: HeaderMap) {
    let mut last = None;
    for (name, value) in from {
        if let Some(name) = name {
            last = Some(name);
        }
        if let Some(name) = &last {
            to.append(name.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_proto::{Code, Status, StreamType};

    fn context() -> Context {
        let method = MethodInfo {
            path: "/test.v1.Svc/Unary",
            stream_type: StreamType::Unary,
            no_side_effects: false,
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-request", HeaderValue::from_static("r"));
        Context::new(
            method,
            Protocol::Grpc,
            Codec::Json,
            None,
            headers,
            http::Extensions::new(),
        )
    }

    fn value(v: &'static str) -> HeaderValue {
        HeaderValue::from_static(v)
    }

    #[test]
    fn set_replaces_append_keeps_and_clones_share_the_metadata() {
        let ctx = context();
        let clone = ctx.clone();
        ctx.set_response_header(HeaderName::from_static("x-a"), value("1"))
            .unwrap();
        clone
            .set_response_header(HeaderName::from_static("x-a"), value("2"))
            .unwrap();
        clone
            .append_response_header(HeaderName::from_static("x-b"), value("1"))
            .unwrap();
        ctx.append_response_header(HeaderName::from_static("x-b"), value("2"))
            .unwrap();
        ctx.set_response_trailer(HeaderName::from_static("x-t"), value("t"))
            .unwrap();
        let headers = ctx.take_response_headers();
        assert_eq!(headers.get_all("x-a").iter().collect::<Vec<_>>(), ["2"]);
        assert_eq!(
            headers.get_all("x-b").iter().collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(clone.take_response_trailers()["x-t"], "t");
        assert_eq!(ctx.request_headers()["x-request"], "r");
        assert_eq!((ctx.protocol(), ctx.codec()), (Protocol::Grpc, Codec::Json));
    }

    #[test]
    fn metadata_set_after_it_was_sent_is_refused() {
        let ctx = context();
        let _ = ctx.take_response_headers();
        let late = ctx.set_response_header(HeaderName::from_static("x-a"), value("1"));
        assert_eq!(late, Err(MetadataSent { what: "headers" }));
        let late = ctx.append_response_header(HeaderName::from_static("x-a"), value("1"));
        assert_eq!(late, Err(MetadataSent { what: "headers" }));
        // Trailers are still open until the call finishes.
        ctx.append_response_trailer(HeaderName::from_static("x-t"), value("t"))
            .unwrap();
        let _ = ctx.take_response_trailers();
        let late = ctx.set_response_trailer(HeaderName::from_static("x-t"), value("u"));
        assert_eq!(late, Err(MetadataSent { what: "trailers" }));
        // A handler's `?` turns it into `internal`, saying what came too late.
        let status = Status::from(late.unwrap_err());
        assert_eq!(status.code(), Code::INTERNAL);
        assert_eq!(status.message(), "the response trailers were already sent");
    }

    #[test]
    fn a_response_s_metadata_joins_the_context_s_until_it_is_sent() {
        let ctx = context();
        ctx.set_response_header(HeaderName::from_static("x-a"), value("ctx"))
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.append("x-a", value("response"));
        let mut trailers = HeaderMap::new();
        trailers.append("x-t", value("response"));
        ctx.extend_response_metadata(headers.clone(), trailers.clone())
            .unwrap();
        let sent = ctx.take_response_headers();
        assert_eq!(
            sent.get_all("x-a").iter().collect::<Vec<_>>(),
            ["ctx", "response"]
        );
        assert_eq!(
            ctx.extend_response_metadata(headers, HeaderMap::new()),
            Err(MetadataSent { what: "headers" })
        );
        // Nothing to add is never late.
        assert_eq!(
            ctx.extend_response_metadata(HeaderMap::new(), HeaderMap::new()),
            Ok(())
        );
        assert_eq!(ctx.take_response_trailers()["x-t"], "response");
    }

    #[test]
    fn uri_and_interceptors_attach_only_before_the_context_is_shared() {
        let ctx = context().with_uri(http::Uri::from_static("/p?q=1"));
        assert_eq!(ctx.uri(), "/p?q=1");
        let clone = ctx.clone();
        let ctx = ctx.with_uri(http::Uri::from_static("/other"));
        assert_eq!(ctx.uri(), "/p?q=1", "changed a shared context");
        assert_eq!(clone.uri(), "/p?q=1");
        assert!(ctx.interceptors().is_empty());
        assert!(!ctx.response_headers_requested());
        clone.send_response_headers();
        assert!(ctx.response_headers_requested());
    }
}
