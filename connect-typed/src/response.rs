//! One response message with its metadata: what a unary handler returns and what a unary call
//! resolves to.

use http::header::IntoHeaderName;
use http::{HeaderMap, HeaderValue};

/// A response message with its headers and trailers (custom metadata).
///
/// A handler returns one (`Ok(Response::new(reply).with_header("x-served-by", value))`); a
/// streaming handler returns one around its stream, whose headers go out before the first message.
/// A client's unary and client-streaming calls resolve to one. Metadata may also be set on the
/// handler's [`Context`](crate::Context); both are sent.
#[derive(Clone, Debug, Default)]
pub struct Response<T> {
    message: T,
    headers: HeaderMap,
    trailers: HeaderMap,
}

impl<T> From<T> for Response<T> {
    fn from(message: T) -> Self {
        Response::new(message)
    }
}

impl<T> Response<T> {
    /// A response without metadata.
    pub fn new(message: T) -> Self {
        Response {
            message,
            headers: HeaderMap::new(),
            trailers: HeaderMap::new(),
        }
    }

    /// A response from all its parts.
    pub fn from_parts(message: T, headers: HeaderMap, trailers: HeaderMap) -> Self {
        Response {
            message,
            headers,
            trailers,
        }
    }

    /// Adds a header value (earlier values of the name are kept).
    pub fn with_header(mut self, name: impl IntoHeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Adds a trailer value (earlier values of the name are kept).
    pub fn with_trailer(mut self, name: impl IntoHeaderName, value: HeaderValue) -> Self {
        self.trailers.append(name, value);
        self
    }

    /// The message.
    pub fn message(&self) -> &T {
        &self.message
    }

    /// The message, to change.
    pub fn message_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message.
    pub fn into_message(self) -> T {
        self.message
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The trailers.
    pub fn trailers(&self) -> &HeaderMap {
        &self.trailers
    }

    /// The trailers, to change.
    pub fn trailers_mut(&mut self) -> &mut HeaderMap {
        &mut self.trailers
    }

    /// Message, headers and trailers.
    pub fn into_parts(self) -> (T, HeaderMap, HeaderMap) {
        (self.message, self.headers, self.trailers)
    }

    /// The same metadata around another message.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            message: f(self.message),
            headers: self.headers,
            trailers: self.trailers,
        }
    }
}
