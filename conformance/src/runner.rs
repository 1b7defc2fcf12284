//! Our own runner of the conformance suite: expands each test case over the configured protocols,
//! codecs, compressions, HTTP versions and TLS settings, runs it with our client against our
//! server, computes the expected result the way the official runner does, and compares.
//!
//! Both sides are ours, so every suite runs once: `TEST_MODE_SERVER` cases test the server with our
//! client standing in for the reference client, `TEST_MODE_CLIENT` cases test the client with our
//! server standing in for the reference server. What only the reference implementations do is
//! emulated: our client sends a case's raw HTTP request in place of its own and reports the HTTP
//! status ([`crate::raw`]), and cases whose response definitions carry raw HTTP responses are served
//! by [`crate::reference`], which writes them byte for byte.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use buffa::{Message, MessageField};
use buffa_types::google::protobuf::Any;

use crate::client::{self, Transports};
use crate::convert::{pack, type_name, unpack};
use crate::proto::connectrpc::conformance::v1 as pb;
use crate::suite::{load_patterns, load_suites, load_yaml, Pattern};
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
    pub run: Vec<Pattern>,
    /// Only these protocols (empty: those of the config).
    pub protocols: Vec<pb::Protocol>,
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
    /// Whether the suite is in client mode (checks what only the client decides).
    pub client_mode: bool,
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
                if protocol == pb::Protocol::PROTOCOL_GRPC
                    && (version != pb::HTTPVersion::HTTP_VERSION_2 || !trailers)
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
                                };
                                let mut request = request.clone();
                                request.http_version = version.into();
                                request.protocol = protocol.into();
                                request.codec = codec.into();
                                request.compression = compression.into();
                                out.push(permutation(
                                    name,
                                    request,
                                    case,
                                    server,
                                    mode == TestMode::TEST_MODE_CLIENT,
                                ));
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
    client_mode: bool,
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
        client_mode,
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
// Comparing results.

fn header_map(headers: &[pb::Header]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in headers {
        map.entry(h.name.to_ascii_lowercase())
            .or_default()
            .extend(h.value.iter().cloned());
    }
    map
}

/// Every expected header is present with exactly the expected values.
fn check_headers(
    what: &str,
    expected: &[pb::Header],
    actual: &[pb::Header],
    errors: &mut Vec<String>,
) {
    let actual = header_map(actual);
    for (name, values) in header_map(expected) {
        match actual.get(&name) {
            None => errors.push(format!("{what}: missing {name} (want {values:?})")),
            Some(got) if *got != values => {
                errors.push(format!("{what}: {name} is {got:?}, want {values:?}"))
            }
            Some(_) => {}
        }
    }
}

fn check_info(
    what: &str,
    expected: &RequestInfo,
    actual: Option<&RequestInfo>,
    errors: &mut Vec<String>,
) {
    let Some(actual) = actual else {
        errors.push(format!("{what}: request info missing"));
        return;
    };
    check_headers(
        &format!("{what} request headers"),
        &expected.request_headers,
        &actual.request_headers,
        errors,
    );
    match (expected.timeout_ms, actual.timeout_ms) {
        (Some(_), None) => errors.push(format!("{what}: timeout not propagated")),
        (Some(want), Some(got)) if got > want || got <= 0 => {
            errors.push(format!("{what}: timeout {got}ms, want at most {want}ms"))
        }
        _ => {}
    }
    if expected.requests.len() != actual.requests.len() {
        errors.push(format!(
            "{what}: {} requests echoed, want {}",
            actual.requests.len(),
            expected.requests.len()
        ));
        return;
    }
    for (i, (want, got)) in expected.requests.iter().zip(&actual.requests).enumerate() {
        if type_name(&want.type_url) != type_name(&got.type_url) || !same_message(want, got) {
            errors.push(format!("{what}: request {i} echoed differently"));
        }
    }
}

/// Compares two packed messages by content (encodings of equal messages may differ in field order).
fn same_message(a: &Any, b: &Any) -> bool {
    if a.value == b.value {
        return true;
    }
    let decode = |any: &Any| -> Option<serde_json::Value> {
        let json = serde_json::to_value(any).ok()?;
        Some(json)
    };
    decode(a).is_some() && decode(a) == decode(b)
}

/// Compares a result with the expected one; returns the differences.
pub fn compare(p: &Permutation, actual: &pb::ClientResponseResult) -> Vec<String> {
    let expected = &p.expected;
    let mut errors = Vec::new();
    if let Some(want) = expected.http_status_code {
        if actual.http_status_code != Some(want) {
            errors.push(format!(
                "HTTP status {:?}, want {want}",
                actual.http_status_code
            ));
        }
    }
    check_headers(
        "response headers",
        &expected.response_headers,
        &actual.response_headers,
        &mut errors,
    );
    check_headers(
        "response trailers",
        &expected.response_trailers,
        &actual.response_trailers,
        &mut errors,
    );
    if expected.payloads.len() != actual.payloads.len() {
        errors.push(format!(
            "{} response messages, want {}{}",
            actual.payloads.len(),
            expected.payloads.len(),
            match actual
                .payloads
                .first()
                .and_then(|p| p.request_info.as_option())
            {
                Some(info) => format!(
                    " (the first echoes {} requests of {:?} bytes)",
                    info.requests.len(),
                    info.requests
                        .iter()
                        .map(|r| r.value.len())
                        .collect::<Vec<_>>()
                ),
                None => String::new(),
            }
        ));
    } else {
        for (i, (want, got)) in expected.payloads.iter().zip(&actual.payloads).enumerate() {
            if want.data != got.data {
                errors.push(format!("response {i}: data differs"));
            }
            if let Some(info) = want.request_info.as_option() {
                check_info(
                    &format!("response {i}"),
                    info,
                    got.request_info.as_option(),
                    &mut errors,
                );
            }
        }
    }
    match (expected.error.as_option(), actual.error.as_option()) {
        (None, None) => {}
        (None, Some(got)) => errors.push(format!(
            "unexpected error {}: {}",
            got.code,
            got.message.as_deref().unwrap_or("")
        )),
        (Some(want), None) => errors.push(format!("no error, want {}", want.code)),
        (Some(want), Some(got)) => {
            if want.code != got.code && !p.other_codes.contains(&got.code.to_i32()) {
                errors.push(format!(
                    "error code {}, want {} ({})",
                    got.code,
                    want.code,
                    got.message.as_deref().unwrap_or("")
                ));
            }
            if let Some(message) = &want.message {
                if got.message.as_deref() != Some(message) {
                    errors.push(format!("error message {:?}, want {message:?}", got.message));
                }
            }
            if !want.details.is_empty() {
                if want.details.len() != got.details.len() {
                    errors.push(format!(
                        "{} error details, want {}",
                        got.details.len(),
                        want.details.len()
                    ));
                } else {
                    for (i, (w, g)) in want.details.iter().zip(&got.details).enumerate() {
                        if type_name(&w.type_url) != type_name(&g.type_url) {
                            errors.push(format!(
                                "error detail {i}: {} want {}",
                                g.type_url, w.type_url
                            ));
                        } else if type_name(&w.type_url) == type_name(RequestInfo::TYPE_URL) {
                            let (w, g) = (
                                unpack::<RequestInfo>(w, RequestInfo::TYPE_URL).unwrap_or_default(),
                                unpack::<RequestInfo>(g, RequestInfo::TYPE_URL).ok(),
                            );
                            check_info(&format!("error detail {i}"), &w, g.as_ref(), &mut errors);
                        } else if !same_message(w, g) {
                            errors.push(format!("error detail {i} differs: {:?} vs {:?}", w, g));
                        }
                    }
                }
            }
        }
    }
    if p.client_mode && expected.num_unsent_requests != actual.num_unsent_requests {
        errors.push(format!(
            "{} unsent requests, want {}",
            actual.num_unsent_requests, expected.num_unsent_requests
        ));
    }
    errors
}

// ---------------------------------------------------------------------------------------------
// Running.

/// Test credentials made once per run.
struct Creds {
    server: pb::TLSCreds,
    client: pb::TLSCreds,
}

fn make_creds() -> Result<Creds, String> {
    let make = |names: Vec<String>| -> Result<pb::TLSCreds, String> {
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
        Ok(pb::TLSCreds {
            cert: certified.cert.pem().into_bytes(),
            key: certified.key_pair.serialize_pem().into_bytes(),
            ..Default::default()
        })
    };
    Ok(Creds {
        server: make(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?,
        client: make(vec!["conformance-client".to_owned()])?,
    })
}

/// A server the runner started.
enum Running {
    /// Ours, under test.
    UnderTest(connect_tokio::ServerHandle),
    /// Ours in the reference server's role.
    Reference(crate::reference::ReferenceHandle),
}

/// Runs the suite; prints FAILED lines and returns the counts.
pub async fn run(options: Options) -> Result<Summary, String> {
    let config: pb::Config = load_yaml(&options.config)?;
    let suites = load_suites(&options.suites_dir)?;
    let known: Vec<Pattern> = match &options.known_failing {
        Some(path) => load_patterns(path)?,
        None => Vec::new(),
    };
    let flaky: Vec<Pattern> = match &options.known_flaky {
        Some(path) => load_patterns(path)?,
        None => Vec::new(),
    };
    let mut permutations = expand(&config, &suites, &options.protocols);
    if !options.run.is_empty() {
        permutations.retain(|p| options.run.iter().any(|pat| pat.matches(&p.name)));
    }
    println!(
        "{} test suites, {} test case permutations, {} known-failing patterns",
        suites.len(),
        permutations.len(),
        known.len()
    );
    let creds = make_creds()?;
    let mut servers = BTreeMap::new();
    for kind in permutations
        .iter()
        .map(|p| p.server)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let request = pb::ServerCompatRequest {
            use_tls: kind.tls,
            server_creds: if kind.tls {
                MessageField::some(creds.server.clone())
            } else {
                MessageField::none()
            },
            client_tls_cert: if kind.client_certs {
                creds.client.cert.clone()
            } else {
                Vec::new()
            },
            message_receive_limit: if kind.receive_limit {
                MESSAGE_RECEIVE_LIMIT
            } else {
                0
            },
            ..Default::default()
        };
        let started = if kind.reference {
            crate::reference::start(&request)
                .await
                .map(|(handle, response)| (Running::Reference(handle), response))
        } else {
            crate::server::start(&request)
                .await
                .map(|(handle, response)| (Running::UnderTest(handle), response))
        };
        let (handle, response) = started.map_err(|e| format!("starting a server: {e}"))?;
        servers.insert(kind, (handle, response));
    }

    let transports = Transports::default();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(options.parallel.max(1)));
    let mut tasks = Vec::new();
    for mut p in permutations {
        let (_, server) = &servers[&p.server];
        p.request.host = server.host.clone();
        p.request.port = server.port;
        p.request.server_tls_cert = server.pem_cert.clone();
        if p.server.client_certs {
            p.request.client_tls_creds = MessageField::some(creds.client.clone());
        }
        let (transports, semaphore) = (transports.clone(), semaphore.clone());
        let timeout = options.case_timeout;
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let errors = match &p.unsupported {
                Some(reason) => vec![format!("not run: {reason}")],
                None => {
                    match tokio::time::timeout(timeout, client::run(&transports, p.request.clone()))
                        .await
                    {
                        Err(_) => vec![format!("timed out after {timeout:?}")],
                        Ok(response) => match response.result {
                            Some(CompatResult::Response(result)) => compare(&p, &result),
                            Some(CompatResult::Error(e)) => {
                                vec![format!("client error: {}", e.message)]
                            }
                            None => vec!["client returned no result".to_owned()],
                        },
                    }
                }
            };
            (p.name, errors)
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.map_err(|e| format!("case task: {e}"))?);
    }
    results.sort();
    let mut summary = Summary::default();
    for (name, errors) in results {
        let is_known = known.iter().any(|k| k.matches(&name));
        if !errors.is_empty() && flaky.iter().any(|k| k.matches(&name)) {
            summary.passed += 1;
            println!("FLAKY (allowed): {name}: {}", errors.join("; "));
            continue;
        }
        match (errors.is_empty(), is_known) {
            (true, false) => {
                summary.passed += 1;
                if options.verbose {
                    println!("PASSED: {name}");
                }
            }
            (false, true) => {
                summary.passed += 1;
                summary.known_failing += 1;
                if options.verbose {
                    println!("KNOWN FAILING: {name}: {}", errors.join("; "));
                }
            }
            (true, true) => {
                summary.failed += 1;
                println!("FAILED: {name}: passed, but is listed as known failing");
            }
            (false, false) => {
                summary.failed += 1;
                println!("FAILED: {name}: {}", errors.join("; "));
            }
        }
    }
    for (_, (handle, _)) in servers {
        match handle {
            Running::UnderTest(handle) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), handle.shutdown()).await;
            }
            Running::Reference(handle) => handle.shutdown(),
        }
    }
    Ok(summary)
}
