//! What `fetch` can carry, and the response-head fixes it needs: pure, so it builds and is tested on
//! every target.

use connect_typed::{Protocol, Status, StreamType};
use http::{header, HeaderMap};

/// Whether a browser's `fetch` can carry a call: Connect and gRPC-Web for unary, server- and
/// client-streaming methods. Otherwise an `unimplemented` status that says why.
///
/// - gRPC ends every response with HTTP trailers, which `fetch` never exposes (gRPC-Web exists for
///   this reason).
/// - Bidi streaming needs the request body to stream while the response is read. Browsers stream
///   request bodies only over HTTP/2 and only half-duplex (`duplex: "half"`: the response is
///   readable once the request has ended), so a bidi call would hang as soon as its next request
///   waited for a response.
/// - Client streaming works: the request messages are sent together when the request stream ends,
///   and the response can only come after that anyway.
pub fn check_call(protocol: Protocol, stream_type: StreamType) -> Result<(), Status> {
    if protocol == Protocol::Grpc {
        return Err(Status::unimplemented(
            "browsers cannot speak gRPC: fetch does not expose HTTP trailers; use Connect or gRPC-Web",
        ));
    }
    if stream_type == StreamType::BidiStreaming {
        return Err(Status::unimplemented(
            "bidi streaming is unavailable over fetch: a browser cannot stream a request body while \
             reading the response",
        ));
    }
    Ok(())
}

/// Whether `fetch` sends cookies and HTTP authentication (the `credentials` option of `fetch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Never.
    Omit,
    /// Only to the page's own origin (the `fetch` default).
    #[default]
    SameOrigin,
    /// Also cross-origin (the server's CORS policy must allow credentials).
    Include,
}

/// Fixes a response head as `fetch` reports it: the body a `ReadableStream` yields is already decoded
/// from any HTTP `Content-Encoding` (Connect unary compression), so the header that announces it, and
/// the length of the encoded body, no longer describe it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn strip_decoded_encoding(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_typed::Code;

    #[test]
    fn fetch_carries_connect_and_grpc_web_but_not_grpc_nor_bidi() {
        for protocol in [Protocol::Connect, Protocol::GrpcWeb] {
            for stream_type in [
                StreamType::Unary,
                StreamType::ServerStreaming,
                StreamType::ClientStreaming,
            ] {
                assert!(check_call(protocol, stream_type).is_ok(), "{protocol:?}");
            }
            let bidi = check_call(protocol, StreamType::BidiStreaming).unwrap_err();
            assert_eq!(bidi.code(), Code::UNIMPLEMENTED);
            assert!(bidi.message().contains("bidi"), "{bidi}");
        }
        let grpc = check_call(Protocol::Grpc, StreamType::Unary).unwrap_err();
        assert_eq!(grpc.code(), Code::UNIMPLEMENTED);
        assert!(grpc.message().contains("trailers"), "{grpc}");
    }

    #[test]
    fn decoded_bodies_lose_their_encoding_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        headers.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        headers.insert("grpc-encoding", "gzip".parse().unwrap());
        strip_decoded_encoding(&mut headers);
        assert_eq!(
            headers.len(),
            1,
            "message-level encodings stay: {headers:?}"
        );
    }
}
