//! What a handler knows about its call, and how it sets response metadata.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http::{HeaderMap, HeaderName, HeaderValue};

use connect_proto::Instant;
use connect_proto::{Codec, MethodInfo, Protocol};

/// The call a handler serves: protocol, codec, deadline, request headers, the request's
/// [`http::Extensions`] (where adapters put peer information such as the remote address), and setters
/// for response headers and trailers.
///
/// Cheap to clone; clones share the response metadata. Response headers set after the first response
/// message was sent (or after a unary handler returned) are not sent; trailers may be set until the
/// handler finishes.
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
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
}

#[derive(Debug, Default)]
struct ResponseMetadata {
    headers: HeaderMap,
    trailers: HeaderMap,
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
            }),
        }
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
    pub fn set_response_header(&self, name: HeaderName, value: HeaderValue) {
        self.lock().headers.insert(name, value);
    }

    /// Adds a response header value, keeping earlier values of the same name.
    pub fn append_response_header(&self, name: HeaderName, value: HeaderValue) {
        self.lock().headers.append(name, value);
    }

    /// Sets a response trailer, replacing any value of the same name.
    pub fn set_response_trailer(&self, name: HeaderName, value: HeaderValue) {
        self.lock().trailers.insert(name, value);
    }

    /// Adds a response trailer value, keeping earlier values of the same name.
    pub fn append_response_trailer(&self, name: HeaderName, value: HeaderValue) {
        self.lock().trailers.append(name, value);
    }

    /// Takes the response headers set so far (the driver sends them with the first message).
    pub(crate) fn take_response_headers(&self) -> HeaderMap {
        std::mem::take(&mut self.lock().headers)
    }

    /// Takes the response trailers set so far (the driver sends them when the call finishes).
    pub(crate) fn take_response_trailers(&self) -> HeaderMap {
        std::mem::take(&mut self.lock().trailers)
    }

    fn lock(&self) -> MutexGuard<'_, ResponseMetadata> {
        // A handler that panicked while holding the lock left plain header maps: still usable.
        self.inner
            .response
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
