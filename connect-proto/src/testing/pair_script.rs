//! One exchange between a [`ClientCall`] and a [`ServerCall`] on the in-memory [`Pair`], described
//! by a [`PairScript`]: the `call_pair` fuzz target and a property test in `tests/model.rs`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::format::{outcome, pick, Reader, Writer, CODECS, COMPRESSIONS, PROTOCOLS};
use super::{Observed, Pair, Replies, Script, METHODS};
use crate::compression::CompressionRegistry;
use crate::metadata;
use crate::{
    CallOptions, ClientConfig, ClientEvent, MethodInfo, ServerConfig, ServerEvent, Status,
};

/// One exchange between a [`ClientCall`](crate::ClientCall) and a [`ServerCall`](crate::ServerCall)
/// in memory, with an application that answers once the request stream closed, and body chunks cut
/// to the given sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct PairScript {
    /// Index into Connect, gRPC, gRPC-Web.
    pub protocol: u8,
    /// Index into proto, JSON.
    pub codec: u8,
    /// Index into the methods.
    pub method: u8,
    /// Index into none, gzip, zstd, an unknown name.
    pub send_compression: u8,
    /// Bit 0: Connect GET; bit 1: the client supports no compression; bit 2: a timeout.
    pub options: u8,
    /// Messages smaller than this are not compressed (both sides).
    pub compress_min: u16,
    /// Request messages (a unary request takes the first, or an empty one).
    pub requests: Vec<Vec<u8>>,
    /// Response headers: name index, value.
    pub headers: Vec<(u8, Vec<u8>)>,
    /// Response messages (a unary success takes the first, or an empty one; a unary error none).
    pub responses: Vec<Vec<u8>>,
    /// The outcome: 0 is Ok, anything else that code with `message` and `details`.
    pub code: u32,
    /// The error message.
    pub message: Vec<u8>,
    /// Error details: type name, value.
    pub details: Vec<(Vec<u8>, Vec<u8>)>,
    /// Trailers: name index, value.
    pub trailers: Vec<(u8, Vec<u8>)>,
    /// Request body chunk sizes, cycling (empty: as sent).
    pub request_chunks: Vec<u8>,
    /// Response body chunk sizes, cycling (empty: as sent).
    pub response_chunks: Vec<u8>,
}

const METADATA_NAMES: [&str; 3] = ["x-meta", "x-other", "x-trace-bin"];

impl PairScript {
    /// The script these bytes read as (any bytes read as one).
    pub fn from_bytes(data: &[u8]) -> Self {
        Self::read(&mut Reader::new(data))
    }

    fn read(u: &mut Reader<'_>) -> Self {
        let list = |u: &mut Reader<'_>, max: u8| (0..u.u8() % max).map(|_| u.bytes()).collect();
        let metadata = |u: &mut Reader<'_>| (0..u.u8() % 8).map(|_| (u.u8(), u.bytes())).collect();
        PairScript {
            protocol: u.u8(),
            codec: u.u8(),
            method: u.u8(),
            send_compression: u.u8(),
            options: u.u8(),
            compress_min: u.u16(),
            requests: list(u, 8),
            headers: metadata(u),
            responses: list(u, 8),
            code: u.u32(),
            message: u.bytes(),
            details: (0..u.u8() % 4).map(|_| (u.bytes(), u.bytes())).collect(),
            trailers: metadata(u),
            request_chunks: u.bytes(),
            response_chunks: u.bytes(),
        }
    }

    /// The script in its byte format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for b in [
            self.protocol,
            self.codec,
            self.method,
            self.send_compression,
            self.options,
        ] {
            w.u8(b);
        }
        w.u16(self.compress_min);
        let list = |w: &mut Writer, items: &[Vec<u8>]| {
            w.u8(items.len() as u8);
            items.iter().for_each(|i| w.bytes(i));
        };
        let metadata = |w: &mut Writer, items: &[(u8, Vec<u8>)]| {
            w.u8(items.len() as u8);
            for (n, v) in items {
                w.u8(*n);
                w.bytes(v);
            }
        };
        list(&mut w, &self.requests);
        metadata(&mut w, &self.headers);
        list(&mut w, &self.responses);
        w.u32(self.code);
        w.bytes(&self.message);
        w.u8(self.details.len() as u8);
        for (t, v) in &self.details {
            w.bytes(t);
            w.bytes(v);
        }
        metadata(&mut w, &self.trailers);
        w.bytes(&self.request_chunks);
        w.bytes(&self.response_chunks);
        w.0
    }

    /// The method called.
    pub fn method(&self) -> MethodInfo {
        pick(&mut Reader::new(&[self.method]), &METHODS)
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(
            pick(&mut Reader::new(&[self.protocol]), &PROTOCOLS),
            pick(&mut Reader::new(&[self.codec]), &CODECS),
        );
        if self.options & 2 != 0 {
            config.compression = CompressionRegistry::empty();
        }
        config.send_compression = pick(&mut Reader::new(&[self.send_compression]), &COMPRESSIONS)
            .and_then(|name| CompressionRegistry::default().get(name).map(|c| c.name()));
        config.use_get = self.options & 1 != 0;
        config.compress_min_bytes = usize::from(self.compress_min);
        config.timeout = (self.options & 4 != 0).then(|| Duration::from_secs(30));
        config
    }

    /// The request messages as a well-behaved client sends them.
    pub fn request_messages(&self) -> Vec<Bytes> {
        let all = self.requests.iter().map(|r| Bytes::copy_from_slice(r));
        if self.method().stream_type.client_streams() {
            all.collect()
        } else {
            vec![all.take(1).next().unwrap_or_default()]
        }
    }

    /// The outcome the application finishes with (detail type names made valid).
    pub fn outcome(&self) -> Result<(), Status> {
        let details: Vec<_> = self
            .details
            .iter()
            .map(|(name, value)| {
                // Type names as a registry writes them: a letter, then letters and dots.
                let mut name: Vec<u8> = name
                    .iter()
                    .map(|b| b"abcxyz."[usize::from(b % 7)])
                    .collect();
                name.insert(0, b'a');
                (name, value.clone())
            })
            .collect();
        outcome(self.code, &self.message, &details)
    }

    /// The response messages as a well-behaved application sends them.
    pub fn response_messages(&self) -> Vec<Bytes> {
        let all = self.responses.iter().map(|r| Bytes::copy_from_slice(r));
        match (self.method().stream_type.server_streams(), self.code) {
            (true, _) => all.collect(),
            (false, 0) => vec![all.take(1).next().unwrap_or_default()],
            (false, _) => Vec::new(),
        }
    }
}

fn metadata_map(items: &[(u8, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in items {
        let name = METADATA_NAMES[usize::from(*n) % METADATA_NAMES.len()];
        let value = if name.ends_with("-bin") {
            metadata::encode_binary(v)
        } else {
            let text: Vec<u8> = v.iter().map(|b| b'a' + b % 26).collect();
            HeaderValue::from_bytes(&text).expect("letters")
        };
        map.append(name, value);
    }
    map
}

impl PairScript {
    /// Runs the exchange on the in-memory pair, recording its trace: what each side saw.
    ///
    /// # Panics
    ///
    /// When the client resets the well-behaved call.
    pub fn exchange(&self) -> Observed {
        let script = self;
        let server_config = ServerConfig {
            compress_min_bytes: usize::from(script.compress_min),
            ..ServerConfig::default()
        };
        let mut pair = Pair::new(
            &script.client_config(),
            server_config,
            script.method(),
            CallOptions::default(),
        );
        pair.record = true;
        pair.request_chunks = script.request_chunks.iter().map(|&n| n.into()).collect();
        pair.response_chunks = script.response_chunks.iter().map(|&n| n.into()).collect();
        pair.script = Script {
            headers: metadata_map(&script.headers),
            trailers: metadata_map(&script.trailers),
            outcome: script.outcome(),
            replies: Replies::Fixed(script.response_messages()),
            hang: false,
            in_place: false,
        };
        for message in script.request_messages() {
            pair.client
                .send_message(message)
                .expect("well-behaved client");
        }
        pair.client.close_send().expect("well-behaved client");
        while pair.step() {}
        assert!(
            !pair.observed.client_reset,
            "the client reset a well-behaved call"
        );
        pair.observed
    }
}

/// A client↔server exchange delivers what each application sent, whatever the chunking: the request
/// messages, the response headers, messages and trailers, and the outcome with its code, message and
/// details.
pub fn call_pair(script: PairScript) {
    let Observed {
        client_events,
        server_events,
        ..
    } = script.exchange();
    let requests: Vec<_> = server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message(m) => Some(m.clone()),
            ServerEvent::Finished(outcome) => {
                assert_eq!(outcome, &script.outcome(), "the server's outcome");
                None
            }
            ServerEvent::InputClosed => None,
        })
        .collect();
    assert_eq!(requests, script.request_messages(), "request messages");
    assert!(
        matches!(server_events.last(), Some(ServerEvent::Finished(_))),
        "the server's last event is Finished: {server_events:?}"
    );

    let mut messages = Vec::new();
    let mut headers = HeaderMap::new();
    let mut finished = None;
    for event in client_events {
        assert!(finished.is_none(), "event after Finished");
        match event {
            ClientEvent::Headers(h) => headers = h,
            ClientEvent::Message(m) => messages.push(m),
            ClientEvent::Finished { result, trailers } => finished = Some((result, trailers)),
        }
    }
    let (result, trailers) = finished.expect("the client finished");
    assert_eq!(result, script.outcome(), "outcome");
    assert_eq!(messages, script.response_messages(), "response messages");
    // Each name's values, in order, somewhere in what the client saw (a trailers-only response merges
    // headers and trailers).
    let contains = |map: &HeaderMap, expected: &HeaderMap| {
        expected.keys().all(|name| {
            let got: Vec<_> = map.get_all(name).iter().collect();
            let want: Vec<_> = expected.get_all(name).iter().collect();
            got.windows(want.len()).any(|w| w == want)
        })
    };
    let expected_headers = metadata_map(&script.headers);
    assert!(
        contains(&headers, &expected_headers) || contains(&trailers, &expected_headers),
        "response headers: got {headers:?} and trailers {trailers:?}"
    );
    assert!(
        contains(&trailers, &metadata_map(&script.trailers)),
        "trailers: got {trailers:?}"
    );
}
