//! The three wire protocols: what they share (stream types, codecs, content types, header names) here,
//! each protocol's own wire forms in its module.

pub mod connect;
pub mod grpc;
pub mod grpc_web;

use std::borrow::Cow;
use std::fmt;

/// One of the three protocols a call can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The Connect protocol (unary as plain HTTP, streams enveloped, errors as JSON).
    Connect,
    /// gRPC over HTTP/2 with trailers.
    Grpc,
    /// gRPC-Web: gRPC framing with the trailers in the body, usable from browsers and HTTP/1.1.
    GrpcWeb,
}

/// The message serialization of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Protobuf binary.
    Proto,
    /// Protobuf JSON mapping.
    Json,
}

impl Codec {
    /// The name used in content types and in Connect GET's `encoding` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Proto => "proto",
            Codec::Json => "json",
        }
    }

    /// Parses a codec name; `None` for codecs we do not speak.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "proto" => Some(Codec::Proto),
            "json" => Some(Codec::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The shape of an RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// One request, one response.
    Unary,
    /// Many requests, one response.
    ClientStreaming,
    /// One request, many responses.
    ServerStreaming,
    /// Many requests, many responses.
    BidiStreaming,
}

impl StreamType {
    /// Whether the client may send more than one message.
    pub fn client_streams(self) -> bool {
        matches!(
            self,
            StreamType::ClientStreaming | StreamType::BidiStreaming
        )
    }

    /// Whether the server may send more than one message.
    pub fn server_streams(self) -> bool {
        matches!(
            self,
            StreamType::ServerStreaming | StreamType::BidiStreaming
        )
    }

    /// The kind in words, for error messages: `unary`, `client-streaming`, ...
    pub fn name(self) -> &'static str {
        match self {
            StreamType::Unary => "unary",
            StreamType::ClientStreaming => "client-streaming",
            StreamType::ServerStreaming => "server-streaming",
            StreamType::BidiStreaming => "bidi-streaming",
        }
    }
}

/// The static description of one RPC method, as generated code declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MethodInfo {
    /// `/package.Service/Method`.
    pub path: &'static str,
    /// Unary or which side streams.
    pub stream_type: StreamType,
    /// The method is marked `idempotency_level = NO_SIDE_EFFECTS`, so Connect may call it with GET.
    pub no_side_effects: bool,
}

/// A request or response content type, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentType {
    /// The protocol the content type belongs to.
    pub protocol: Protocol,
    /// For Connect: whether it is the streaming form (`application/connect+…`).
    pub connect_streaming: bool,
    /// For gRPC-Web: the `-text` (base64) variant.
    pub grpc_web_text: bool,
    /// The codec, `None` when the codec name is one we do not speak.
    pub codec: Option<Codec>,
    /// The codec name as written (lower-cased).
    pub codec_name: Cow<'static, str>,
}

impl ContentType {
    /// Classifies a content type header value; `None` when it belongs to no protocol of ours.
    ///
    /// Parameters (`; charset=utf-8`) are ignored and the comparison is case-insensitive. Connect unary
    /// content types are only recognised for codecs we know, since `application/<anything>` would
    /// otherwise claim every content type on the web.
    pub fn parse(value: &str) -> Option<ContentType> {
        let essence = value.split(';').next().unwrap_or("").trim();
        let rest = strip_prefix_ignore_case(essence, "application/")?;
        let mut ct = ContentType {
            protocol: Protocol::Connect,
            connect_streaming: false,
            grpc_web_text: false,
            codec: None,
            codec_name: Cow::Borrowed(""),
        };
        // Connect unary content types name the codec alone, so only known codecs count as ours.
        let (codec_name, known_only) =
            if let Some(rest) = strip_prefix_ignore_case(rest, "grpc-web-text") {
                ct.protocol = Protocol::GrpcWeb;
                ct.grpc_web_text = true;
                (sub_codec(rest)?, false)
            } else if let Some(rest) = strip_prefix_ignore_case(rest, "grpc-web") {
                ct.protocol = Protocol::GrpcWeb;
                (sub_codec(rest)?, false)
            } else if let Some(rest) = strip_prefix_ignore_case(rest, "grpc") {
                ct.protocol = Protocol::Grpc;
                (sub_codec(rest)?, false)
            } else if let Some(rest) = strip_prefix_ignore_case(rest, "connect+") {
                ct.connect_streaming = true;
                (rest, false)
            } else {
                (rest, true)
            };
        if codec_name.is_empty() {
            return None;
        }
        // Lower-cased only when it is not already (never, for the peers we know): a known codec's
        // name is then a static string and parsing allocates nothing.
        let lowered = if codec_name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(codec_name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(codec_name)
        };
        ct.codec = Codec::from_name(&lowered);
        ct.codec_name = match ct.codec {
            Some(codec) => Cow::Borrowed(codec.name()),
            None if known_only => return None,
            None => Cow::Owned(lowered.into_owned()),
        };
        Some(ct)
    }

    /// The content type a peer of `protocol` sends for `codec`. gRPC proto is the plain
    /// `application/grpc` (PROTOCOL-TRAPS 18).
    pub fn format(protocol: Protocol, streaming: bool, codec: Codec) -> &'static str {
        match (protocol, streaming, codec) {
            (Protocol::Connect, false, Codec::Proto) => "application/proto",
            (Protocol::Connect, false, Codec::Json) => "application/json",
            (Protocol::Connect, true, Codec::Proto) => "application/connect+proto",
            (Protocol::Connect, true, Codec::Json) => "application/connect+json",
            (Protocol::Grpc, _, Codec::Proto) => "application/grpc",
            (Protocol::Grpc, _, Codec::Json) => "application/grpc+json",
            (Protocol::GrpcWeb, _, Codec::Proto) => "application/grpc-web+proto",
            (Protocol::GrpcWeb, _, Codec::Json) => "application/grpc-web+json",
        }
    }
}

/// `""` or `"+codec"` after a gRPC prefix; an empty suffix means proto.
fn sub_codec(rest: &str) -> Option<&str> {
    if rest.is_empty() {
        return Some("proto");
    }
    let codec = rest.strip_prefix('+')?;
    (!codec.is_empty()).then_some(codec)
}

/// `s` without `prefix` (ASCII lower case), compared without regard to ASCII case.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Header names used across the protocols, lower-case as HTTP/2 requires. They are [`HeaderName`]s
/// (built at compile time) so that looking them up or inserting them parses nothing.
///
/// [`HeaderName`]: http::HeaderName
pub(crate) mod headers {
    use http::HeaderName;

    /// `connect-protocol-version`
    pub(crate) const CONNECT_PROTOCOL_VERSION: HeaderName =
        HeaderName::from_static("connect-protocol-version");
    /// `connect-timeout-ms`
    pub(crate) const CONNECT_TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
    /// `connect-content-encoding` (streaming)
    pub(crate) const CONNECT_CONTENT_ENCODING: HeaderName =
        HeaderName::from_static("connect-content-encoding");
    /// `connect-accept-encoding` (streaming)
    pub(crate) const CONNECT_ACCEPT_ENCODING: HeaderName =
        HeaderName::from_static("connect-accept-encoding");
    /// Prefix of Connect unary trailers sent as headers.
    pub(crate) const CONNECT_TRAILER_PREFIX: &str = "trailer-";
    /// `grpc-timeout`
    pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
    /// `grpc-encoding`
    pub(crate) const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
    /// `grpc-accept-encoding`
    pub(crate) const GRPC_ACCEPT_ENCODING: HeaderName =
        HeaderName::from_static("grpc-accept-encoding");
    /// `grpc-status`
    pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    /// `grpc-message`
    pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
    /// `grpc-status-details-bin`
    pub(crate) const GRPC_STATUS_DETAILS_BIN: HeaderName =
        HeaderName::from_static("grpc-status-details-bin");
    /// `te`
    pub(crate) const TE: HeaderName = HeaderName::from_static("te");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &str) -> Option<(Protocol, bool, Option<Codec>, String)> {
        ContentType::parse(v).map(|c| {
            (
                c.protocol,
                c.connect_streaming,
                c.codec,
                c.codec_name.into_owned(),
            )
        })
    }

    #[test]
    fn trap06_connect_content_types() {
        assert_eq!(
            ct("application/proto"),
            Some((Protocol::Connect, false, Some(Codec::Proto), "proto".into()))
        );
        assert_eq!(
            ct("application/json; charset=utf-8"),
            Some((Protocol::Connect, false, Some(Codec::Json), "json".into()))
        );
        assert_eq!(
            ct("application/connect+json"),
            Some((Protocol::Connect, true, Some(Codec::Json), "json".into()))
        );
        assert_eq!(
            ct("application/connect+thrift"),
            Some((Protocol::Connect, true, None, "thrift".into()))
        );
        // Media types are case-insensitive; an unknown codec's name is kept lower-cased.
        assert_eq!(
            ct("APPLICATION/Connect+Thrift"),
            Some((Protocol::Connect, true, None, "thrift".into()))
        );
        assert_eq!(
            ct("application/JSON"),
            Some((Protocol::Connect, false, Some(Codec::Json), "json".into()))
        );
        assert_eq!(ct("application/xml"), None);
        assert_eq!(ct("text/plain"), None);
        assert_eq!(ct("application/connect+"), None);
        assert_eq!(ct("applicatio"), None);
        assert_eq!(ct("application/é"), None);
    }

    #[test]
    fn trap18_grpc_content_types() {
        assert_eq!(
            ct("application/grpc"),
            Some((Protocol::Grpc, false, Some(Codec::Proto), "proto".into()))
        );
        assert_eq!(
            ct("Application/GRPC+proto"),
            Some((Protocol::Grpc, false, Some(Codec::Proto), "proto".into()))
        );
        assert_eq!(
            ct("application/grpc+json"),
            Some((Protocol::Grpc, false, Some(Codec::Json), "json".into()))
        );
        assert_eq!(ct("application/grpcfoo"), None);
        assert_eq!(
            ct("application/grpc-web"),
            Some((Protocol::GrpcWeb, false, Some(Codec::Proto), "proto".into()))
        );
        assert_eq!(
            ct("application/grpc-web+json"),
            Some((Protocol::GrpcWeb, false, Some(Codec::Json), "json".into()))
        );
        assert!(
            ContentType::parse("application/grpc-web-text+proto")
                .unwrap()
                .grpc_web_text
        );
        assert_eq!(
            ContentType::format(Protocol::Grpc, true, Codec::Proto),
            "application/grpc"
        );
    }
}
