//! Our own runner of the conformance suite: expands each test case over the configured protocols,
//! codecs, compressions, HTTP versions and TLS settings, computes the expected result the way the
//! official runner does, runs it and compares.
//!
//! Each case runs with a third-party implementation on one side where one can take that side
//! (see [`crate::arrangement`]): the connect-es client ([`crate::peer::NodeClient`]) calls our server
//! for cases that test servers, our client calls the connect-es server
//! ([`crate::peer::NodeServer`]) for cases that test clients, and cases that test both run both
//! ways. Calls to the connect-es server carry the `X-Test-Case-Name` and `X-Expect-*` headers the
//! official runner adds for its reference server, which checks the call against them.
//!
//! The rest runs with our client against our server, emulating what only the reference
//! implementations do: our client sends a case's raw HTTP request in place of its own and reports
//! the HTTP status ([`crate::raw`]), and cases whose response definitions carry raw HTTP responses
//! are served by [`crate::reference`], which writes them byte for byte. Without Node (or with
//! `node_dir` unset) everything runs that way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use buffa::{Message, MessageField};
use buffa_types::google::protobuf::Any;

use crate::arrangement::{load_case_patterns, Arrangement, CasePattern};
use crate::client::{self, Transports};
use crate::compare::{compare, Checks};
use crate::convert::{pack, type_name, unpack};
use crate::peer::{self, ClientProcess, NodePeers, OurBinaries};
use crate::proto::connectrpc::conformance::v1 as pb;
use crate::suite::{load_suites, load_yaml};
use pb::__buffa::oneof::client_compat_response::Result as CompatResult;
use pb::__buffa::oneof::unary_response_definition::Response as UnaryOutcome;
use pb::conformance_payload::RequestInfo;
use pb::test_suite::TestMode;

/// The receive limit of servers for suites that rely on one.
const MESSAGE_RECEIVE_LIMIT: u32 = 200 * 1024;

/// Where things are and what to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The suite's test case directory.
    pub suites_dir: PathBuf,
    /// The features config (`conformance/config/all.yaml`).
    pub config: PathBuf,
    /// The known-failing patterns file.
    pub known_failing: Option<PathBuf>,
    /// The known-flaky patterns file: such cases may pass or fail.
    pub known_flaky: Option<PathBuf>,
    /// Only cases matching one of these patterns (empty: all).
    pub run: Vec<CasePattern>,
    /// Only these protocols (empty: those of the config).
    pub protocols: Vec<pb::Protocol>,
    /// Only these arrangements (empty: all); cases whose peer cannot be used still fall back to
    /// ours.
    pub arrangements: Vec<Arrangement>,
    /// The connect-es peers (`conformance/node`); `None` runs everything with our client against
    /// our server.
    pub node_dir: Option<PathBuf>,
    /// Our `conformance-server` and `conformance-client` binaries, which the connect-es peers call
    /// and are called by (as the official runner runs them); needed with `node_dir`.
    pub our_binaries: Option<OurBinaries>,
    /// Concurrent cases.
    pub parallel: usize,
    /// Time limit of one case.
    pub case_timeout: Duration,
    /// Print every case, not only failures.
    pub verbose: bool,
}

/// One test case permutation.
#[derive(Clone, Debug)]
pub struct Permutation {
    /// The full name, as the official runner spells it.
    pub name: String,
    /// The request for the client.
    pub request: pb::ClientCompatRequest,
    /// The expected result.
    pub expected: pb::ClientResponseResult,
    /// Codes accepted besides the expected one.
    pub other_codes: Vec<i32>,
    /// The server it needs.
    pub server: ServerKind,
    /// Why it cannot run, if it cannot.
    pub unsupported: Option<String>,
    /// The suite's mode: what it tests.
    pub mode: TestMode,
}

/// The server settings a permutation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerKind {
    /// Serve TLS.
    pub tls: bool,
    /// Require client certificates.
    pub client_certs: bool,
    /// Enforce the receive limit.
    pub receive_limit: bool,
    /// The reference server's role: answer with the raw HTTP responses of response definitions
    /// (see [`crate::reference`]).
    pub reference: bool,
    /// Serve HTTP/3 (connect-h3, over QUIC: always TLS) instead of HTTP/1.1 and HTTP/2.
    pub http3: bool,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Summary {
    /// Cases that passed (including known failures that failed as expected).
    pub passed: usize,
    /// Cases that failed unexpectedly, and known failures that passed.
    pub failed: usize,
    /// Known failures that failed.
    pub known_failing: usize,
    /// Cases run per arrangement.
    pub per_arrangement: BTreeMap<Arrangement, usize>,
    /// Why cases ran with our client against our server, with their counts.
    pub ours_because: BTreeMap<String, usize>,
    /// Why the third-party peers were not used at all, if they were not.
    pub peers_skipped: Option<String>,
}

fn or<T>(list: Vec<T>, default: Vec<T>) -> Vec<T> {
    if list.is_empty() {
        default
    } else {
        list
    }
}

fn relevant<T: PartialEq>(list: &[T], value: T) -> bool {
    list.is_empty() || list.contains(&value)
}

fn enum_list<E: buffa::Enumeration + Copy>(values: &[buffa::EnumValue<E>]) -> Vec<E> {
    values.iter().filter_map(|v| v.as_known()).collect()
}

fn version_label(v: pb::HTTPVersion) -> &'static str {
    match v {
        pb::HTTPVersion::HTTP_VERSION_1 => "1",
        pb::HTTPVersion::HTTP_VERSION_2 => "2",
        pb::HTTPVersion::HTTP_VERSION_3 => "3",
        _ => "0",
    }
}

fn enum_name<E: buffa::Enumeration>(e: E) -> String {
    format!("{}", buffa::EnumValue::from(e))
}

/// Expands every suite over the config's features.
pub fn expand(
    config: &pb::Config,
    suites: &[pb::TestSuite],
    only_protocols: &[pb::Protocol],
) -> Vec<Permutation> {
    let f = config.features.as_option().cloned().unwrap_or_default();
    let versions = or(
        enum_list(&f.versions),
        vec![
            pb::HTTPVersion::HTTP_VERSION_1,
            pb::HTTPVersion::HTTP_VERSION_2,
        ],
    );
    let mut protocols = or(
        enum_list(&f.protocols),
        vec![
            pb::Protocol::PROTOCOL_CONNECT,
            pb::Protocol::PROTOCOL_GRPC,
            pb::Protocol::PROTOCOL_GRPC_WEB,
        ],
    );
    if !only_protocols.is_empty() {
        protocols.retain(|p| only_protocols.contains(p));
    }
    let codecs = or(
        enum_list(&f.codecs),
        vec![pb::Codec::CODEC_PROTO, pb::Codec::CODEC_JSON],
    );
    let compressions = or(
        enum_list(&f.compressions),
        vec![
            pb::Compression::COMPRESSION_IDENTITY,
            pb::Compression::COMPRESSION_GZIP,
        ],
    );
    let stream_types = enum_list(&f.stream_types);
    let h2c = f.supports_h2c.unwrap_or(true);
    let tls = f.supports_tls.unwrap_or(true);
    let client_certs = f.supports_tls_client_certs.unwrap_or(false);
    let bidi_http1 = f.supports_half_duplex_bidi_over_http1.unwrap_or(false);
    let connect_get = f.supports_connect_get.unwrap_or(true);
    let receive_limit = f.supports_message_receive_limit.unwrap_or(true);
    let trailers = f.supports_trailers.unwrap_or(true);

    let mut out = Vec::new();
    for suite in suites {
        let mode = suite
            .mode
            .as_known()
            .unwrap_or(TestMode::TEST_MODE_UNSPECIFIED);
        if suite.relies_on_tls && !tls
            || suite.relies_on_tls_client_certs && !client_certs
            || suite.relies_on_connect_get && !connect_get
            || suite.relies_on_message_receive_limit && !receive_limit
        {
            continue;
        }
        let rel_protocols = enum_list(&suite.relevant_protocols);
        let rel_versions = enum_list(&suite.relevant_http_versions);
        let rel_codecs = enum_list(&suite.relevant_codecs);
        let rel_compressions = enum_list(&suite.relevant_compressions);
        let tls_modes: Vec<bool> = if suite.relies_on_tls {
            vec![true]
        } else if tls {
            vec![false, true]
        } else {
            vec![false]
        };
        for &version in &versions {
            for &protocol in &protocols {
                // gRPC needs trailers, which HTTP/2 and HTTP/3 have.
                if protocol == pb::Protocol::PROTOCOL_GRPC
                    && (version == pb::HTTPVersion::HTTP_VERSION_1 || !trailers)
                {
                    continue;
                }
                for &codec in &codecs {
                    for &compression in &compressions {
                        for &use_tls in &tls_modes {
                            if !(relevant(&rel_protocols, protocol)
                                && relevant(&rel_versions, version)
                                && relevant(&rel_codecs, codec)
                                && relevant(&rel_compressions, compression))
                            {
                                continue;
                            }
                            if version == pb::HTTPVersion::HTTP_VERSION_2 && !use_tls && !h2c {
                                continue;
                            }
                            // QUIC has no plain-text mode.
                            if version == pb::HTTPVersion::HTTP_VERSION_3 && !use_tls {
                                continue;
                            }
                            for case in &suite.test_cases {
                                let Some(request) = case.request.as_option() else {
                                    continue;
                                };
                                let stream_type = request
                                    .stream_type
                                    .as_known()
                                    .unwrap_or(pb::StreamType::STREAM_TYPE_UNARY);
                                if !stream_types.is_empty() && !stream_types.contains(&stream_type)
                                {
                                    continue;
                                }
                                let bidi = matches!(
                                    stream_type,
                                    pb::StreamType::STREAM_TYPE_HALF_DUPLEX_BIDI_STREAM
                                        | pb::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM
                                );
                                if version == pb::HTTPVersion::HTTP_VERSION_1
                                    && (stream_type
                                        == pb::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM
                                        || bidi && !bidi_http1)
                                {
                                    continue;
                                }
                                let name = format!(
                                    "{}/HTTPVersion:{}/Protocol:{}/Codec:{}/Compression:{}/TLS:{}/{}",
                                    suite.name,
                                    version_label(version),
                                    enum_name(protocol),
                                    enum_name(codec),
                                    enum_name(compression),
                                    use_tls,
                                    request.test_name
                                );
                                let server = ServerKind {
                                    tls: use_tls,
                                    client_certs: suite.relies_on_tls_client_certs,
                                    receive_limit: suite.relies_on_message_receive_limit,
                                    reference: false,
                                    http3: version == pb::HTTPVersion::HTTP_VERSION_3,
                                };
                                let mut request = request.clone();
                                request.http_version = version.into();
                                request.protocol = protocol.into();
                                request.codec = codec.into();
                                request.compression = compression.into();
                                out.push(permutation(name, request, case, server, mode));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn default_method(stream_type: Option<pb::StreamType>) -> &'static str {
    match stream_type {
        Some(pb::StreamType::STREAM_TYPE_CLIENT_STREAM) => "ClientStream",
        Some(pb::StreamType::STREAM_TYPE_SERVER_STREAM) => "ServerStream",
        Some(
            pb::StreamType::STREAM_TYPE_HALF_DUPLEX_BIDI_STREAM
            | pb::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM,
        ) => "BidiStream",
        _ => "Unary",
    }
}

fn permutation(
    name: String,
    mut request: pb::ClientCompatRequest,
    case: &pb::TestCase,
    mut server: ServerKind,
    mode: TestMode,
) -> Permutation {
    if request.method.is_none() {
        request.service = Some(client::SERVICE.to_owned());
        request.method = Some(default_method(request.stream_type.as_known()).to_owned());
    }
    let mut unsupported = None;
    if let Err(e) = expand_requests(&mut request, &case.expand_requests) {
        unsupported = Some(e);
    }
    server.reference = uses_raw_response(&request);
    if server.reference && server.http3 {
        unsupported = Some(REFERENCE_OVER_H3.to_owned());
    }
    let expected = match case.expected_response.as_option() {
        Some(expected) => expected.clone(),
        None => expected_response(&request).unwrap_or_else(|e| {
            unsupported = Some(e);
            Default::default()
        }),
    };
    Permutation {
        name,
        request,
        expected,
        other_codes: case
            .other_allowed_error_codes
            .iter()
            .map(|c| c.to_i32())
            .collect(),
        server,
        unsupported,
        mode,
    }
}

/// Pads request messages to sizes relative to the server's receive limit.
fn expand_requests(
    request: &mut pb::ClientCompatRequest,
    sizes: &[pb::test_case::ExpandedSize],
) -> Result<(), String> {
    for (any, size) in request.request_messages.iter_mut().zip(sizes) {
        let Some(relative) = size.size_relative_to_limit else {
            continue;
        };
        let target = (i64::from(MESSAGE_RECEIVE_LIMIT) + i64::from(relative)).max(0) as usize;
        let name = type_name(&any.type_url).to_owned();
        let padded = match name.rsplit('.').next() {
            Some("UnaryRequest") => pad::<pb::UnaryRequest>(any, target, |m| &mut m.request_data),
            Some("ClientStreamRequest") => {
                pad::<pb::ClientStreamRequest>(any, target, |m| &mut m.request_data)
            }
            Some("ServerStreamRequest") => {
                pad::<pb::ServerStreamRequest>(any, target, |m| &mut m.request_data)
            }
            Some("BidiStreamRequest") => {
                pad::<pb::BidiStreamRequest>(any, target, |m| &mut m.request_data)
            }
            _ => Err(format!("cannot expand a {name}")),
        }?;
        *any = padded;
    }
    Ok(())
}

fn pad<M: Message + Default>(
    any: &Any,
    target: usize,
    data: fn(&mut M) -> &mut Vec<u8>,
) -> Result<Any, String> {
    let mut message: M = unpack(any, &any.type_url)?;
    data(&mut message).clear();
    let base = message.encode_to_vec().len();
    let mut fill = target.saturating_sub(base);
    // The length prefix of the data field grows with it: shrink until the size is exact.
    loop {
        *data(&mut message) = vec![b'x'; fill];
        let size = message.encode_to_vec().len();
        if size <= target || fill == 0 {
            break;
        }
        fill -= (size - target).min(fill);
    }
    Ok(pack(&message, &any.type_url))
}

fn uses_raw_response(request: &pb::ClientCompatRequest) -> bool {
    request
        .request_messages
        .iter()
        .any(|any| match type_name(&any.type_url).rsplit('.').next() {
            Some("UnaryRequest") => unpack::<pb::UnaryRequest>(any, &any.type_url)
                .ok()
                .is_some_and(|m| m.response_definition.raw_response.is_set()),
            Some("IdempotentUnaryRequest") => {
                unpack::<pb::IdempotentUnaryRequest>(any, &any.type_url)
                    .ok()
                    .is_some_and(|m| m.response_definition.raw_response.is_set())
            }
            Some("ClientStreamRequest") => unpack::<pb::ClientStreamRequest>(any, &any.type_url)
                .ok()
                .is_some_and(|m| m.response_definition.raw_response.is_set()),
            Some("ServerStreamRequest") => unpack::<pb::ServerStreamRequest>(any, &any.type_url)
                .ok()
                .is_some_and(|m| m.response_definition.raw_response.is_set()),
            Some("BidiStreamRequest") => unpack::<pb::BidiStreamRequest>(any, &any.type_url)
                .ok()
                .is_some_and(|m| m.response_definition.raw_response.is_set()),
            _ => false,
        })
}

fn info(request: &pb::ClientCompatRequest, requests: Vec<Any>) -> RequestInfo {
    RequestInfo {
        request_headers: request.request_headers.clone(),
        timeout_ms: request.timeout_ms.map(i64::from),
        requests,
        ..Default::default()
    }
}

fn payload(data: Vec<u8>, info: Option<RequestInfo>) -> pb::ConformancePayload {
    pb::ConformancePayload {
        data,
        request_info: info.map(MessageField::some).unwrap_or_default(),
        ..Default::default()
    }
}

fn with_info(error: &pb::Error, info: Option<&RequestInfo>) -> pb::Error {
    let mut error = error.clone();
    if let Some(info) = info {
        error.details.push(pack(info, RequestInfo::TYPE_URL));
    }
    error
}

/// The result the reference implementations produce for `request`, as the official runner
/// computes it from the response definitions.
pub fn expected_response(
    request: &pb::ClientCompatRequest,
) -> Result<pb::ClientResponseResult, String> {
    let messages = &request.request_messages;
    let mut result = pb::ClientResponseResult::default();
    let unary = |result: &mut pb::ClientResponseResult,
                 definition: Option<&pb::UnaryResponseDefinition>,
                 info: RequestInfo| {
        let Some(definition) = definition else {
            result.payloads.push(payload(Vec::new(), Some(info)));
            return;
        };
        result.response_headers = definition.response_headers.clone();
        result.response_trailers = definition.response_trailers.clone();
        match &definition.response {
            Some(UnaryOutcome::Error(error)) => {
                result.error = MessageField::some(with_info(error, Some(&info)));
            }
            Some(UnaryOutcome::ResponseData(data)) => {
                result.payloads.push(payload(data.clone(), Some(info)))
            }
            None => result.payloads.push(payload(Vec::new(), Some(info))),
        }
    };
    let stream = |result: &mut pb::ClientResponseResult,
                  definition: Option<&pb::StreamResponseDefinition>,
                  info: RequestInfo| {
        let Some(definition) = definition else {
            return;
        };
        result.response_headers = definition.response_headers.clone();
        result.response_trailers = definition.response_trailers.clone();
        let mut info = Some(info);
        for data in &definition.response_data {
            result.payloads.push(payload(data.clone(), info.take()));
        }
        if let Some(error) = definition.error.as_option() {
            result.error = MessageField::some(with_info(error, info.as_ref()));
        }
    };
    match request.method.as_deref().unwrap_or("Unary") {
        "Unary" => {
            let m: pb::UnaryRequest = single(messages, pb::UnaryRequest::TYPE_URL)?;
            let i = info(request, messages.clone());
            unary(&mut result, m.response_definition.as_option(), i);
        }
        "IdempotentUnary" => {
            let m: pb::IdempotentUnaryRequest =
                single(messages, pb::IdempotentUnaryRequest::TYPE_URL)?;
            let i = info(request, messages.clone());
            unary(&mut result, m.response_definition.as_option(), i);
        }
        "ClientStream" => {
            let first: Option<pb::ClientStreamRequest> = messages
                .first()
                .map(|m| unpack(m, pb::ClientStreamRequest::TYPE_URL))
                .transpose()?;
            let i = info(request, messages.clone());
            unary(
                &mut result,
                first
                    .as_ref()
                    .and_then(|m| m.response_definition.as_option()),
                i,
            );
        }
        "ServerStream" => {
            let m: pb::ServerStreamRequest = single(messages, pb::ServerStreamRequest::TYPE_URL)?;
            let i = info(request, messages.clone());
            stream(&mut result, m.response_definition.as_option(), i);
        }
        "BidiStream" => {
            let first: Option<pb::BidiStreamRequest> = messages
                .first()
                .map(|m| unpack(m, pb::BidiStreamRequest::TYPE_URL))
                .transpose()?;
            let definition = first
                .as_ref()
                .and_then(|m| m.response_definition.as_option());
            if request.stream_type == pb::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM {
                if let Some(definition) = definition {
                    result.response_headers = definition.response_headers.clone();
                    result.response_trailers = definition.response_trailers.clone();
                    for (i, data) in definition.response_data.iter().enumerate() {
                        let requests = messages.get(i).cloned().into_iter().collect();
                        let info = if i == 0 {
                            info(request, requests)
                        } else {
                            RequestInfo {
                                requests,
                                ..Default::default()
                            }
                        };
                        result.payloads.push(payload(data.clone(), Some(info)));
                    }
                    if let Some(error) = definition.error.as_option() {
                        let info = definition
                            .response_data
                            .is_empty()
                            .then(|| info(request, messages.iter().take(1).cloned().collect()));
                        result.error = MessageField::some(with_info(error, info.as_ref()));
                    }
                }
            } else {
                let i = info(request, messages.clone());
                stream(&mut result, definition, i);
            }
        }
        other => return Err(format!("no expected response can be computed for {other}")),
    }
    Ok(result)
}

fn single<M: Message + Default>(messages: &[Any], type_url: &str) -> Result<M, String> {
    match messages {
        [only] => unpack(only, type_url),
        other => Err(format!("expected one request message, got {}", other.len())),
    }
}

// ---------------------------------------------------------------------------------------------
// Planning: the arrangements each permutation runs in.

/// Why a case runs with our client against our server.
const NO_PEERS: &str = "third-party peers not used";
const CANNOT_RUN: &str = "cannot be run";
const RAW_REQUEST: &str = "raw HTTP request (only our client sends one)";
const RAW_RESPONSE: &str = "raw HTTP response (written by our emulation of the reference server)";
const NODE_SERVER_BIDI_HTTP1: &str = "bidi stream over HTTP/1.1 (connect-node's server refuses it)";

fn is_bidi(p: &Permutation) -> bool {
    matches!(
        p.request.stream_type.as_known(),
        Some(
            pb::StreamType::STREAM_TYPE_HALF_DUPLEX_BIDI_STREAM
                | pb::StreamType::STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM
        )
    )
}

/// Why HTTP/3 cases run with ours on both sides.
const NODE_HTTP3: &str = "HTTP/3 (connect-es on Node 20 has none)";
/// Why raw-response cases over HTTP/3 cannot run.
const REFERENCE_OVER_H3: &str = "a raw HTTP response over HTTP/3: our emulation of the reference \
     server is a hyper service, over TCP only";

/// What keeps the connect-es client from making this call, if anything.
fn node_client_blocker(p: &Permutation) -> Option<&'static str> {
    if p.server.http3 {
        return Some(NODE_HTTP3);
    }
    p.request.raw_request.is_set().then_some(RAW_REQUEST)
}

/// What keeps the connect-es server from answering this call, if anything.
fn node_server_blocker(p: &Permutation) -> Option<&'static str> {
    if p.server.http3 {
        Some(NODE_HTTP3)
    } else if p.server.reference {
        Some(RAW_RESPONSE)
    } else if p.request.http_version == pb::HTTPVersion::HTTP_VERSION_1 && is_bidi(p) {
        Some(NODE_SERVER_BIDI_HTTP1)
    } else {
        None
    }
}

/// The arrangements `p` runs in; for [`Arrangement::Ours`], why. Cases testing servers get the
/// connect-es client, cases testing clients the connect-es server, cases testing both get both;
/// whatever a peer cannot do runs once with our client against our server.
pub fn plan(p: &Permutation, peers: bool) -> Vec<(Arrangement, Option<&'static str>)> {
    if p.unsupported.is_some() {
        return vec![(Arrangement::Ours, Some(CANNOT_RUN))];
    }
    if !peers {
        return vec![(Arrangement::Ours, Some(NO_PEERS))];
    }
    let mut runs = Vec::new();
    let mut ours = None;
    if p.mode != TestMode::TEST_MODE_CLIENT {
        match node_client_blocker(p) {
            None => runs.push((Arrangement::NodeClient, None)),
            Some(why) => ours = ours.or(Some(why)),
        }
    }
    if p.mode != TestMode::TEST_MODE_SERVER {
        match node_server_blocker(p) {
            None => runs.push((Arrangement::NodeServer, None)),
            Some(why) => ours = ours.or(Some(why)),
        }
    }
    if let Some(why) = ours {
        runs.push((Arrangement::Ours, Some(why)));
    }
    runs
}

// ---------------------------------------------------------------------------------------------
// Running.

/// The common name of the client certificate, which the connect-es server checks.
const CLIENT_CERT_NAME: &str = "conformance-client";

/// Test credentials made once per run.
struct Creds {
    server: pb::TLSCreds,
    client: pb::TLSCreds,
}

fn make_creds() -> Result<Creds, String> {
    let make = |names: Vec<String>, common_name: Option<&str>| -> Result<pb::TLSCreds, String> {
        let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
        if let Some(common_name) = common_name {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, common_name);
        }
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        Ok(pb::TLSCreds {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
            ..Default::default()
        })
    };
    Ok(Creds {
        server: make(vec!["localhost".to_owned(), "127.0.0.1".to_owned()], None)?,
        client: make(vec![CLIENT_CERT_NAME.to_owned()], Some(CLIENT_CERT_NAME))?,
    })
}

/// A server of ours the runner started.
enum OurServer {
    /// Ours, under test.
    UnderTest(crate::server::Handle),
    /// Ours in the reference server's role.
    Reference(crate::reference::ReferenceHandle),
}

/// The settings of a connect-es server. Like the reference server, it speaks one HTTP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct NodeServerKind {
    http2: bool,
    tls: bool,
    client_certs: bool,
    receive_limit: bool,
}

impl NodeServerKind {
    fn of(p: &Permutation) -> NodeServerKind {
        NodeServerKind {
            http2: p.request.http_version == pb::HTTPVersion::HTTP_VERSION_2,
            tls: p.server.tls,
            client_certs: p.server.client_certs,
            receive_limit: p.server.receive_limit,
        }
    }
}

fn server_request(
    tls: bool,
    client_certs: bool,
    receive_limit: bool,
    creds: &Creds,
) -> pb::ServerCompatRequest {
    pb::ServerCompatRequest {
        use_tls: tls,
        server_creds: if tls {
            MessageField::some(creds.server.clone())
        } else {
            MessageField::none()
        },
        client_tls_cert: if client_certs {
            creds.client.cert.clone()
        } else {
            Vec::new()
        },
        message_receive_limit: if receive_limit {
            MESSAGE_RECEIVE_LIMIT
        } else {
            0
        },
        ..Default::default()
    }
}

/// The headers the official runner adds to calls to its reference server, which checks the call
/// against them.
fn add_reference_headers(request: &mut pb::ClientCompatRequest, name: &str, client_cert: bool) {
    let number = |n: i32| n.to_string();
    let mut add = |header: &str, value: String| {
        request.request_headers.push(pb::Header {
            name: header.to_owned(),
            value: vec![value],
            ..Default::default()
        })
    };
    add("x-test-case-name", name.to_owned());
    add(
        "x-expect-http-version",
        number(request.http_version.to_i32()),
    );
    let method = if request.use_get_http_method {
        "GET"
    } else {
        "POST"
    };
    add("x-expect-http-method", method.to_owned());
    add("x-expect-protocol", number(request.protocol.to_i32()));
    add("x-expect-codec", number(request.codec.to_i32()));
    add("x-expect-compression", number(request.compression.to_i32()));
    add(
        "x-expect-tls",
        (!request.server_tls_cert.is_empty()).to_string(),
    );
    if client_cert {
        add("x-expect-client-cert", CLIENT_CERT_NAME.to_owned());
    }
}

/// One run of one permutation.
struct Run {
    p: Arc<Permutation>,
    arrangement: Arrangement,
    because: Option<&'static str>,
}

/// Whether the outcome of a case depends on timing: timeouts, cancellation timings and request
/// delays.
fn is_timed(p: &Permutation) -> bool {
    p.request.timeout_ms.is_some() || p.request.cancel.is_set() || p.request.request_delay_ms > 0
}

/// The result of a run.
struct Outcome {
    name: String,
    arrangement: Arrangement,
    errors: Vec<String>,
}

/// Where the calls of a run go.
struct Targets {
    /// Ours in the runner's process (our client against our server).
    in_process: BTreeMap<ServerKind, pb::ServerCompatResponse>,
    /// Our `conformance-server` binary (the connect-es client calls it).
    ours: BTreeMap<ServerKind, pb::ServerCompatResponse>,
    /// The connect-es server (our `conformance-client` binary calls it).
    node: BTreeMap<NodeServerKind, pb::ServerCompatResponse>,
    client_creds: pb::TLSCreds,
}

impl Targets {
    /// The request of a run, addressed to its server.
    fn request(&self, run: &Run) -> Result<pb::ClientCompatRequest, String> {
        let p = &run.p;
        let server = match run.arrangement {
            Arrangement::NodeServer => self.node.get(&NodeServerKind::of(p)),
            Arrangement::NodeClient => self.ours.get(&ServerKind {
                reference: false,
                ..p.server
            }),
            Arrangement::Ours => self.in_process.get(&p.server),
        }
        .ok_or_else(|| format!("no server for {}", run.arrangement.tag()))?;
        let mut request = p.request.clone();
        request.test_name = p.name.clone();
        request.host = server.host.clone();
        request.port = server.port;
        request.server_tls_cert = server.pem_cert.clone();
        if p.server.client_certs {
            request.client_tls_creds = MessageField::some(self.client_creds.clone());
        }
        if run.arrangement == Arrangement::NodeServer {
            add_reference_headers(&mut request, &p.name, p.server.client_certs);
        }
        Ok(request)
    }
}

/// The client programs of the third-party arrangements.
#[derive(Default)]
struct Clients {
    /// The connect-es client (calls our server).
    node: Option<ClientProcess>,
    /// Our `conformance-client` binary (calls the connect-es server).
    ours: Option<ClientProcess>,
}

async fn call(
    client: Option<&ClientProcess>,
    request: pb::ClientCompatRequest,
    timeout: Duration,
) -> Result<pb::ClientCompatResponse, String> {
    let client = client.ok_or("its client is not running")?;
    let name = request.test_name.clone();
    match tokio::time::timeout(timeout, client.call(request)).await {
        Ok(response) => response,
        Err(_) => {
            client.forget(&name);
            Err(format!("timed out after {timeout:?}"))
        }
    }
}

async fn run_one(
    run: &Run,
    targets: &Targets,
    transports: &Transports,
    clients: &Clients,
    timeout: Duration,
) -> Vec<String> {
    let p = &run.p;
    if let Some(reason) = &p.unsupported {
        return vec![format!("not run: {reason}")];
    }
    let request = match targets.request(run) {
        Ok(request) => request,
        Err(e) => return vec![e],
    };
    let response = match run.arrangement {
        Arrangement::NodeClient => call(clients.node.as_ref(), request, timeout).await,
        Arrangement::NodeServer => call(clients.ours.as_ref(), request, timeout).await,
        Arrangement::Ours => tokio::time::timeout(timeout, client::run(transports, request))
            .await
            .map_err(|_| format!("timed out after {timeout:?}")),
    };
    match response {
        Err(e) => vec![e],
        Ok(response) => match response.result {
            Some(CompatResult::Response(result)) => {
                let mut errors = compare(
                    &p.expected,
                    &result,
                    &p.other_codes,
                    Checks {
                        unsent_requests: p.mode == TestMode::TEST_MODE_CLIENT
                            && run.arrangement.our_client(),
                    },
                );
                // What the connect-es client saw wrong on the wire (as the reference client, it
                // checks more than its RPC results show).
                errors.extend(result.feedback.iter().map(|f| format!("node client: {f}")));
                errors
            }
            Some(CompatResult::Error(e)) => vec![format!("client error: {}", e.message)],
            None => vec!["client returned no result".to_owned()],
        },
    }
}

/// Sets up the connect-es peers if asked to; `Ok(None)` (and the reason in `summary`) when
/// they are not used.
fn peers(options: &Options, summary: &mut Summary) -> Result<Option<NodePeers>, String> {
    let Some(dir) = &options.node_dir else {
        summary.peers_skipped = Some("disabled".to_owned());
        return Ok(None);
    };
    match peer::setup(dir, &crate::shared_dir()) {
        Ok(Ok(_)) if options.our_binaries.is_none() => {
            Err("the third-party peers need our binaries (Options::our_binaries)".to_owned())
        }
        Ok(Ok(peers)) => Ok(Some(peers)),
        Ok(Err(peer::Skipped(reason))) => {
            println!("skipped third-party peers: {reason}");
            summary.peers_skipped = Some(reason);
            Ok(None)
        }
        Err(e) => Err(format!("setting up the third-party peers: {e}")),
    }
}

/// Runs the suite; prints FAILED lines and the arrangement counts, and returns the counts.
pub async fn run(options: Options) -> Result<Summary, String> {
    let config: pb::Config = load_yaml(&options.config)?;
    let suites = load_suites(&options.suites_dir)?;
    let load = |path: &Option<PathBuf>| match path {
        Some(path) => load_case_patterns(path),
        None => Ok(Vec::new()),
    };
    let known = load(&options.known_failing)?;
    let flaky = load(&options.known_flaky)?;
    let mut permutations = expand(&config, &suites, &options.protocols);
    let before = permutations.len();
    permutations.retain(|p| p.unsupported.as_deref() != Some(REFERENCE_OVER_H3));
    if permutations.len() < before {
        println!(
            "left out {} HTTP/3 cases of client behaviour against raw HTTP responses: {REFERENCE_OVER_H3}",
            before - permutations.len()
        );
    }
    let mut summary = Summary::default();
    let peers = peers(&options, &mut summary)?;

    let mut runs = Vec::new();
    for p in permutations {
        let p = Arc::new(p);
        for (arrangement, because) in plan(&p, peers.is_some()) {
            let selected = (options.run.is_empty()
                || options
                    .run
                    .iter()
                    .any(|pat| pat.matches(arrangement, &p.name)))
                && (options.arrangements.is_empty() || options.arrangements.contains(&arrangement));
            if selected {
                runs.push(Run {
                    p: p.clone(),
                    arrangement,
                    because,
                });
            }
        }
    }
    let cases: BTreeSet<&str> = runs.iter().map(|r| r.p.name.as_str()).collect();
    println!(
        "{} test suites, {} test case permutations in {} runs, {} known-failing patterns",
        suites.len(),
        cases.len(),
        runs.len(),
        known.len()
    );

    let creds = make_creds()?;
    let mut in_process = Vec::new();
    let mut processes = Vec::new();
    let mut targets = Targets {
        in_process: BTreeMap::new(),
        ours: BTreeMap::new(),
        node: BTreeMap::new(),
        client_creds: creds.client.clone(),
    };
    let in_process_kinds: BTreeSet<ServerKind> = runs
        .iter()
        .filter(|r| r.arrangement == Arrangement::Ours)
        .map(|r| r.p.server)
        .collect();
    for kind in in_process_kinds {
        let mut request = server_request(kind.tls, kind.client_certs, kind.receive_limit, &creds);
        if kind.http3 {
            request.http_version = pb::HTTPVersion::HTTP_VERSION_3.into();
        }
        let (server, response) = if kind.reference {
            crate::reference::start(&request)
                .await
                .map(|(handle, response)| (OurServer::Reference(handle), response))
        } else {
            crate::server::start(&request)
                .await
                .map(|(handle, response)| (OurServer::UnderTest(handle), response))
        }
        .map_err(|e| format!("starting a server: {e}"))?;
        in_process.push(server);
        targets.in_process.insert(kind, response);
    }
    let mut clients = Clients::default();
    if let (Some(peers), Some(binaries)) = (&peers, &options.our_binaries) {
        let our_kinds: BTreeSet<ServerKind> = runs
            .iter()
            .filter(|r| r.arrangement == Arrangement::NodeClient)
            .map(|r| ServerKind {
                reference: false,
                ..r.p.server
            })
            .collect();
        for kind in our_kinds {
            let request = server_request(kind.tls, kind.client_certs, kind.receive_limit, &creds);
            let binaries = binaries.clone();
            let server = tokio::task::spawn_blocking(move || binaries.server(&request))
                .await
                .map_err(|e| format!("starting conformance-server: {e}"))??;
            targets.ours.insert(kind, server.response().clone());
            processes.push(server);
        }
        let node_kinds: BTreeSet<NodeServerKind> = runs
            .iter()
            .filter(|r| r.arrangement == Arrangement::NodeServer)
            .map(|r| NodeServerKind::of(&r.p))
            .collect();
        for kind in node_kinds {
            let mut request =
                server_request(kind.tls, kind.client_certs, kind.receive_limit, &creds);
            request.http_version = if kind.http2 {
                pb::HTTPVersion::HTTP_VERSION_2
            } else {
                pb::HTTPVersion::HTTP_VERSION_1
            }
            .into();
            let peers = peers.clone();
            let server = tokio::task::spawn_blocking(move || peers.server(&request))
                .await
                .map_err(|e| format!("starting a node server: {e}"))??;
            targets.node.insert(kind, server.response().clone());
            processes.push(server);
        }
        if runs
            .iter()
            .any(|r| r.arrangement == Arrangement::NodeClient)
        {
            clients.node = Some(peers.client()?);
        }
        if runs
            .iter()
            .any(|r| r.arrangement == Arrangement::NodeServer)
        {
            clients.ours = Some(binaries.client()?);
        }
    }

    let targets = Arc::new(targets);
    let clients = Arc::new(clients);
    let transports = Transports::default();
    for run in &runs {
        *summary.per_arrangement.entry(run.arrangement).or_default() += 1;
        if let Some(because) = run.because {
            *summary.ours_because.entry(because.to_owned()).or_default() += 1;
        }
    }
    // Cases whose outcome depends on timing (timeouts, cancellations, request delays) run after
    // the rest, fewer at a time, so that a busy machine does not shift their clocks.
    let (timed, steady): (Vec<Run>, Vec<Run>) = runs.into_iter().partition(|r| is_timed(&r.p));
    println!(
        "{} runs at once, then {} runs with timeouts, cancellations or delays {} at once",
        options.parallel.max(1),
        timed.len(),
        options.parallel.div_ceil(4).max(1)
    );
    let mut outcomes = Vec::new();
    for (phase, parallel) in [
        (steady, options.parallel),
        (timed, options.parallel.div_ceil(4)),
    ] {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut tasks = Vec::with_capacity(phase.len());
        for run in phase {
            let (targets, transports, semaphore, clients) = (
                targets.clone(),
                transports.clone(),
                semaphore.clone(),
                clients.clone(),
            );
            let timeout = options.case_timeout;
            tasks.push(tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let errors = run_one(&run, &targets, &transports, &clients, timeout).await;
                Outcome {
                    name: run.p.name.clone(),
                    arrangement: run.arrangement,
                    errors,
                }
            }));
        }
        for task in tasks {
            outcomes.push(task.await.map_err(|e| format!("case task: {e}"))?);
        }
    }
    for client in clients.node.iter().chain(&clients.ours) {
        client.close();
    }

    // What the connect-es servers found wrong with our client's calls. Problems seen at the start
    // of a call are written before its response; give the readers a moment for the last ones.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut feedback: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for server in &processes {
        for (name, problems) in server.feedback() {
            feedback.entry(name).or_default().extend(problems);
        }
    }
    for outcome in &mut outcomes {
        if outcome.arrangement == Arrangement::NodeServer {
            if let Some(problems) = feedback.remove(&outcome.name) {
                outcome
                    .errors
                    .extend(problems.into_iter().map(|p| format!("node server: {p}")));
            }
        }
    }
    for (name, problems) in feedback {
        outcomes.push(Outcome {
            name,
            arrangement: Arrangement::NodeServer,
            errors: problems
                .into_iter()
                .map(|p| format!("node server, about a call of no run: {p}"))
                .collect(),
        });
    }

    outcomes.sort_by(|a, b| (&a.name, a.arrangement).cmp(&(&b.name, b.arrangement)));
    for Outcome {
        name,
        arrangement,
        errors,
    } in outcomes
    {
        let tag = arrangement.tag();
        let is_known = known.iter().any(|k| k.matches(arrangement, &name));
        if !errors.is_empty() && flaky.iter().any(|k| k.matches(arrangement, &name)) {
            summary.passed += 1;
            println!("FLAKY (allowed): [{tag}] {name}: {}", errors.join("; "));
            continue;
        }
        match (errors.is_empty(), is_known) {
            (true, false) => {
                summary.passed += 1;
                if options.verbose {
                    println!("PASSED: [{tag}] {name}");
                }
            }
            (false, true) => {
                summary.passed += 1;
                summary.known_failing += 1;
                if options.verbose {
                    println!("KNOWN FAILING: [{tag}] {name}: {}", errors.join("; "));
                }
            }
            (true, true) => {
                summary.failed += 1;
                println!("FAILED: [{tag}] {name}: passed, but is listed as known failing");
            }
            (false, false) => {
                summary.failed += 1;
                println!("FAILED: [{tag}] {name}: {}", errors.join("; "));
            }
        }
    }
    for client in clients.node.iter().chain(&clients.ours) {
        for line in client.log() {
            println!("{}: {line}", client.label());
        }
    }
    for server in &processes {
        for line in server.log() {
            println!("{}: {line}", server.label());
        }
    }
    print_arrangements(&summary);

    drop(clients);
    drop(processes);
    for server in in_process {
        match server {
            OurServer::UnderTest(handle) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), handle.shutdown()).await;
            }
            OurServer::Reference(handle) => handle.shutdown(),
        }
    }
    Ok(summary)
}

/// How many cases ran in each arrangement, and why cases ran with ours on both sides.
fn print_arrangements(summary: &Summary) {
    let count = |a: Arrangement| summary.per_arrangement.get(&a).copied().unwrap_or(0);
    println!(
        "third-party peer: {} runs ({} [{}] {}, {} [{}] {})",
        count(Arrangement::NodeClient) + count(Arrangement::NodeServer),
        count(Arrangement::NodeClient),
        Arrangement::NodeClient.tag(),
        Arrangement::NodeClient.describe(),
        count(Arrangement::NodeServer),
        Arrangement::NodeServer.tag(),
        Arrangement::NodeServer.describe(),
    );
    println!(
        "ours on both sides: {} runs [{}] {}",
        count(Arrangement::Ours),
        Arrangement::Ours.tag(),
        Arrangement::Ours.describe()
    );
    for (why, n) in &summary.ours_because {
        println!("  {n:>5}  {why}");
    }
}
