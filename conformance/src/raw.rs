//! Raw HTTP as the suite's reference implementations write it: the bodies of `RawHTTPRequest` and
//! `RawHTTPResponse`, and a client transport that sends a raw request in place of the call's own
//! request (what the reference client does for server-mode cases with `rawRequest`) and records the
//! HTTP status of every response (the reference client reports it as `http_status_code`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use connect_typed::{MethodInfo, Protocol, Status};
use connect_typed::{RequestBody, Transport, TransportError};
use http_body_util::BodyExt;

use crate::convert::{append_headers, compression_name};
use crate::proto::connectrpc::conformance::v1 as pb;
use pb::__buffa::oneof::message_contents::Data;
use pb::__buffa::oneof::raw_http_request::Body as RequestBodyDef;

/// The bytes of a `MessageContents`, compressed as it says.
pub fn message_bytes(contents: &pb::MessageContents) -> Result<Vec<u8>, String> {
    let plain: Vec<u8> = match &contents.data {
        Some(Data::Binary(bytes)) => bytes.clone(),
        Some(Data::Text(text)) => text.as_bytes().to_vec(),
        Some(Data::BinaryMessage(any)) => any.value.to_vec(),
        None => Vec::new(),
    };
    let Some(name) = compression_name(&contents.compression)? else {
        return Ok(plain);
    };
    let registry = connect_typed::CompressionRegistry::default();
    let algorithm = registry
        .get(name)
        .ok_or_else(|| format!("raw contents: {name} is not built in"))?;
    algorithm
        .compress(&plain)
        .map(|b| b.to_vec())
        .map_err(|e| format!("raw contents: {name}: {e}"))
}

/// The bytes of a `StreamContents`: each item behind its five-byte prefix (its flags, and its
/// length as given or the payload's own).
pub fn stream_bytes(contents: &pb::StreamContents) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    for item in &contents.items {
        let flags = u8::try_from(item.flags)
            .map_err(|_| format!("raw stream item flags {} out of range", item.flags))?;
        let payload = match item.payload.as_option() {
            Some(payload) => message_bytes(payload)?,
            None => Vec::new(),
        };
        out.put_u8(flags);
        out.put_u32(item.length.unwrap_or(payload.len() as u32));
        out.put_slice(&payload);
    }
    Ok(out.to_vec())
}

/// The HTTP request a `RawHTTPRequest` describes, sent to the authority of `base`.
pub fn raw_request(
    raw: &pb::RawHTTPRequest,
    base: &http::Uri,
) -> Result<http::Request<RequestBody>, String> {
    let mut query = Vec::new();
    for param in &raw.raw_query_params {
        for value in &param.value {
            query.push(format!("{}={}", encode(&param.name), encode(value)));
        }
    }
    for param in &raw.encoded_query_params {
        let bytes = match param.value.as_option() {
            Some(value) => message_bytes(value)?,
            None => Vec::new(),
        };
        let value = if param.base64_encode {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
        } else {
            String::from_utf8(bytes).map_err(|_| {
                format!(
                    "query parameter {} is not text; base64-encode it",
                    param.name
                )
            })?
        };
        query.push(format!("{}={}", encode(&param.name), encode(&value)));
    }
    let mut path_and_query = raw.uri.clone();
    if !query.is_empty() {
        path_and_query.push(if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        });
        path_and_query.push_str(&query.join("&"));
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|e| format!("raw request URI {path_and_query:?}: {e}"))?,
    );
    let uri = http::Uri::from_parts(parts).map_err(|e| format!("raw request URI: {e}"))?;
    let body = match &raw.body {
        Some(RequestBodyDef::Unary(contents)) => message_bytes(contents)?,
        Some(RequestBodyDef::Stream(contents)) => stream_bytes(contents)?,
        None => Vec::new(),
    };
    let method = http::Method::from_bytes(raw.verb.as_bytes())
        .map_err(|e| format!("raw request verb {:?}: {e}", raw.verb))?;
    let mut request = http::Request::new(RequestBody::full(Bytes::from(body)));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    append_headers(&raw.headers, request.headers_mut());
    Ok(request)
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The HTTP status of the last response a [`RawTransport`] received.
#[derive(Clone, Debug, Default)]
pub struct HttpStatus(Arc<AtomicU32>);

impl HttpStatus {
    /// The status, if a response came.
    pub fn get(&self) -> Option<i32> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            status => Some(status as i32),
        }
    }
}

/// A transport that records the HTTP status of the responses it receives and, given a raw request,
/// sends that instead of each call's own request (whose body it drains and drops).
#[derive(Clone, Debug)]
pub struct RawTransport<T> {
    inner: T,
    raw: Option<Arc<pb::RawHTTPRequest>>,
    status: HttpStatus,
}

impl<T> RawTransport<T> {
    /// Wraps `inner`; `raw` replaces every request sent.
    pub fn new(inner: T, raw: Option<pb::RawHTTPRequest>) -> Self {
        RawTransport {
            inner,
            raw: raw.map(Arc::new),
            status: HttpStatus::default(),
        }
    }

    /// Where the HTTP status of responses is recorded.
    pub fn status(&self) -> HttpStatus {
        self.status.clone()
    }
}

type SendFuture<B> =
    Pin<Box<dyn Future<Output = Result<http::Response<B>, TransportError>> + Send>>;

impl<T> Transport for RawTransport<T>
where
    T: Transport,
{
    type ResponseBody = T::ResponseBody;
    type Future = SendFuture<T::ResponseBody>;

    fn send(&self, request: http::Request<RequestBody>) -> Self::Future {
        let request = match &self.raw {
            None => request,
            Some(raw) => {
                let raw = raw_request(raw, request.uri());
                // The call's own body is not sent; drain it so that its writer never waits.
                let mut body = request.into_body();
                tokio::spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
                match raw {
                    Ok(raw) => raw,
                    Err(e) => {
                        let error = TransportError::connection(e);
                        return Box::pin(async move { Err(error) });
                    }
                }
            }
        };
        let response = self.inner.send(request);
        let status = self.status.clone();
        Box::pin(async move {
            let response = response.await?;
            status
                .0
                .store(u32::from(response.status().as_u16()), Ordering::Release);
            Ok(response)
        })
    }

    fn check_call(&self, protocol: Protocol, method: &MethodInfo) -> Result<(), Status> {
        self.inner.check_call(protocol, method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::stream_contents::StreamItem;

    fn text(text: &str, compression: pb::Compression) -> pb::MessageContents {
        pb::MessageContents {
            data: Some(Data::Text(text.to_owned())),
            compression: compression.into(),
            ..Default::default()
        }
    }

    #[test]
    fn stream_items_keep_their_flags_and_stated_lengths() {
        let contents = pb::StreamContents {
            items: vec![
                StreamItem {
                    flags: 2,
                    payload: text("{}", pb::Compression::COMPRESSION_IDENTITY).into(),
                    ..Default::default()
                },
                StreamItem {
                    flags: 0,
                    length: Some(9),
                    payload: text("ab", pb::Compression::COMPRESSION_IDENTITY).into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            stream_bytes(&contents).unwrap(),
            b"\x02\x00\x00\x00\x02{}\x00\x00\x00\x00\x09ab"
        );
        let bad = pb::StreamContents {
            items: vec![StreamItem {
                flags: 256,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(stream_bytes(&bad).is_err());
    }

    #[test]
    fn contents_are_compressed_as_asked() {
        let gzip = message_bytes(&text("hello", pb::Compression::COMPRESSION_GZIP)).unwrap();
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut plain)
            .unwrap();
        assert_eq!(plain, "hello");
        let zstd = message_bytes(&text("hello", pb::Compression::COMPRESSION_ZSTD)).unwrap();
        assert_eq!(zstd::decode_all(&zstd[..]).unwrap(), b"hello");
    }

    #[test]
    fn raw_request_replaces_method_path_query_headers_and_body() {
        let raw = pb::RawHTTPRequest {
            verb: "DELETE".to_owned(),
            uri: "/svc/Method".to_owned(),
            headers: vec![pb::Header {
                name: "content-type".to_owned(),
                value: vec!["application/foo".to_owned()],
                ..Default::default()
            }],
            raw_query_params: vec![pb::Header {
                name: "a b".to_owned(),
                value: vec!["1&2".to_owned()],
                ..Default::default()
            }],
            encoded_query_params: vec![pb::raw_http_request::EncodedQueryParam {
                name: "message".to_owned(),
                value: text("\u{0}\u{1}", pb::Compression::COMPRESSION_IDENTITY).into(),
                base64_encode: true,
                ..Default::default()
            }],
            body: Some(RequestBodyDef::Unary(Box::new(text(
                "body",
                pb::Compression::COMPRESSION_IDENTITY,
            )))),
            ..Default::default()
        };
        let base: http::Uri = "http://127.0.0.1:9/ignored/Path?x=1".parse().unwrap();
        let request = raw_request(&raw, &base).unwrap();
        assert_eq!(request.method(), http::Method::DELETE);
        assert_eq!(
            request.uri().to_string(),
            "http://127.0.0.1:9/svc/Method?a%20b=1%262&message=AAE"
        );
        assert_eq!(request.headers()["content-type"], "application/foo");
    }
}
