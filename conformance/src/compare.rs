//! Comparing a call's result with the expected one, as the official runner does (its
//! `testResults.assert`):
//!
//! * Headers: every expected header must be there with the expected values; extra headers are
//!   fine. Values are compared after splitting each at commas (one space around a comma dropped),
//!   because HTTP libraries may join repeated headers into one (fetch `Headers` do).
//! * When no response message is expected, a trailers-only response may have merged headers and
//!   trailers: the expected metadata may then all be in the headers or all in the trailers.
//! * Request info: headers as above, the echoed timeout between the expected one less 100 ms and
//!   the expected one (and none when none was sent), query parameters of GET calls, and the echoed
//!   requests message by message.
//! * Errors: the code (or one of the codes the case also allows), the message when one is
//!   expected, and the details (request info as above, others as messages).
//!
//! Besides, and unlike the official runner: the HTTP status when the case expects one, and the
//! number of unsent requests when our client is under test.

use std::collections::BTreeMap;

use buffa::Message;
use buffa_types::google::protobuf::Any;

use crate::convert::{type_name, unpack};
use crate::proto::connectrpc::conformance::v1 as pb;
use pb::conformance_payload::RequestInfo;

/// Timeouts echoed by the server may be this much below the one sent.
const TIMEOUT_GRACE_MS: i64 = 100;

/// What to check besides what the official runner checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checks {
    /// Compare the number of unsent requests (our client is under test).
    pub unsent_requests: bool,
}

/// Header values split at commas, as the official runner canonicalizes them.
fn canonical_values(values: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for value in values {
        let parts: Vec<&str> = value.split(',').collect();
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            let mut part = *part;
            if i > 0 {
                part = part.strip_prefix(' ').unwrap_or(part);
            }
            if i < last {
                part = part.strip_suffix(' ').unwrap_or(part);
            }
            out.push(part.to_owned());
        }
    }
    out
}

fn header_map(headers: &[pb::Header]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in headers {
        map.entry(h.name.to_ascii_lowercase())
            .or_default()
            .extend(h.value.iter().cloned());
    }
    map
}

/// Every expected header is present with the expected values.
fn check_headers(what: &str, expected: &[pb::Header], actual: &[pb::Header]) -> Vec<String> {
    let actual = header_map(actual);
    let mut errors = Vec::new();
    for (name, values) in header_map(expected) {
        match actual.get(&name) {
            None => errors.push(format!("{what}: missing {name} (want {values:?})")),
            Some(got) if canonical_values(got) != canonical_values(&values) => {
                errors.push(format!("{what}: {name} is {got:?}, want {values:?}"))
            }
            Some(_) => {}
        }
    }
    errors
}

fn merged(a: &[pb::Header], b: &[pb::Header]) -> Vec<pb::Header> {
    let mut map = header_map(a);
    for (name, values) in header_map(b) {
        map.entry(name).or_default().extend(values);
    }
    map.into_iter()
        .map(|(name, value)| pb::Header {
            name,
            value,
            ..Default::default()
        })
        .collect()
}

fn check_info(
    what: &str,
    expected: &RequestInfo,
    actual: Option<&RequestInfo>,
    with_headers: bool,
    errors: &mut Vec<String>,
) {
    let default = RequestInfo::default();
    let actual = actual.unwrap_or(&default);
    if with_headers {
        errors.extend(check_headers(
            &format!("{what} request headers"),
            &expected.request_headers,
            &actual.request_headers,
        ));
        match (expected.timeout_ms, actual.timeout_ms) {
            (Some(_), None) => errors.push(format!("{what}: timeout not echoed")),
            (Some(want), Some(got)) if got > want || got < (want - TIMEOUT_GRACE_MS).max(0) => {
                errors.push(format!("{what}: timeout {got}ms echoed, want {want}ms"))
            }
            (None, Some(got)) => {
                errors.push(format!("{what}: timeout {got}ms echoed, but none was sent"))
            }
            _ => {}
        }
        let params = |info: &RequestInfo| {
            info.connect_get_info
                .as_option()
                .map(|get| get.query_params.clone())
                .unwrap_or_default()
        };
        let (want, got) = (params(expected), params(actual));
        if !want.is_empty() && !got.is_empty() {
            errors.extend(check_headers(
                &format!("{what} query parameters"),
                &want,
                &got,
            ));
        }
    }
    if expected.requests.len() != actual.requests.len() {
        errors.push(format!(
            "{what}: {} requests echoed, want {}",
            actual.requests.len(),
            expected.requests.len()
        ));
    }
    for (i, (want, got)) in expected.requests.iter().zip(&actual.requests).enumerate() {
        if !same_message(want, got) {
            errors.push(format!(
                "{what}: request {i} echoed differently ({} of {} bytes, want {} of {} bytes)",
                got.type_url,
                got.value.len(),
                want.type_url,
                want.value.len()
            ));
        }
    }
}

fn decoded_equal<M: Message + Default + PartialEq>(a: &Any, b: &Any) -> bool {
    match (unpack::<M>(a, &a.type_url), unpack::<M>(b, &b.type_url)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether two packed messages are of the same type and equal (their encodings may differ, in
/// field order for one).
fn same_message(a: &Any, b: &Any) -> bool {
    if type_name(&a.type_url) != type_name(&b.type_url) {
        return false;
    }
    if a.value == b.value {
        return true;
    }
    match type_name(&a.type_url).rsplit('.').next() {
        Some("UnaryRequest") => decoded_equal::<pb::UnaryRequest>(a, b),
        Some("IdempotentUnaryRequest") => decoded_equal::<pb::IdempotentUnaryRequest>(a, b),
        Some("ClientStreamRequest") => decoded_equal::<pb::ClientStreamRequest>(a, b),
        Some("ServerStreamRequest") => decoded_equal::<pb::ServerStreamRequest>(a, b),
        Some("BidiStreamRequest") => decoded_equal::<pb::BidiStreamRequest>(a, b),
        Some("UnimplementedRequest") => decoded_equal::<pb::UnimplementedRequest>(a, b),
        Some("RequestInfo") => decoded_equal::<RequestInfo>(a, b),
        Some("Header") => decoded_equal::<pb::Header>(a, b),
        Some("Error") => decoded_equal::<pb::Error>(a, b),
        _ => false,
    }
}

fn check_error(
    expected: Option<&pb::Error>,
    actual: Option<&pb::Error>,
    other_codes: &[i32],
    errors: &mut Vec<String>,
) {
    let (want, got) = match (expected, actual) {
        (None, None) => return,
        (None, Some(got)) => {
            errors.push(format!(
                "unexpected error {}: {}",
                got.code,
                got.message.as_deref().unwrap_or("")
            ));
            return;
        }
        (Some(want), None) => {
            errors.push(format!("no error, want {}", want.code));
            return;
        }
        (Some(want), Some(got)) => (want, got),
    };
    if want.code != got.code && !other_codes.contains(&got.code.to_i32()) {
        errors.push(format!(
            "error code {}, want {} ({})",
            got.code,
            want.code,
            got.message.as_deref().unwrap_or("")
        ));
    }
    if let Some(message) = &want.message {
        if got.message.as_deref().unwrap_or("") != message {
            errors.push(format!("error message {:?}, want {message:?}", got.message));
        }
    }
    if want.details.len() != got.details.len() {
        errors.push(format!(
            "{} error details, want {}",
            got.details.len(),
            want.details.len()
        ));
    }
    for (i, (w, g)) in want.details.iter().zip(&got.details).enumerate() {
        let info = type_name(RequestInfo::TYPE_URL);
        if type_name(&w.type_url) == info && type_name(&g.type_url) == info {
            match (
                unpack::<RequestInfo>(w, RequestInfo::TYPE_URL),
                unpack::<RequestInfo>(g, RequestInfo::TYPE_URL),
            ) {
                (Ok(w), Ok(g)) => {
                    check_info(&format!("error detail {i}"), &w, Some(&g), true, errors)
                }
                (_, Err(e)) | (Err(e), _) => errors.push(format!("error detail {i}: {e}")),
            }
        } else if !same_message(w, g) {
            errors.push(format!(
                "error detail {i} differs: {} of {} bytes, want {} of {} bytes",
                g.type_url,
                g.value.len(),
                w.type_url,
                w.value.len()
            ));
        }
    }
}

/// Compares a result with the expected one; returns the differences.
pub fn compare(
    expected: &pb::ClientResponseResult,
    actual: &pb::ClientResponseResult,
    other_codes: &[i32],
    checks: Checks,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(want) = expected.http_status_code {
        if actual.http_status_code != Some(want) {
            errors.push(format!(
                "HTTP status {:?}, want {want}",
                actual.http_status_code
            ));
        }
    }
    let mut metadata = check_headers(
        "response headers",
        &expected.response_headers,
        &actual.response_headers,
    );
    metadata.extend(check_headers(
        "response trailers",
        &expected.response_trailers,
        &actual.response_trailers,
    ));
    if !metadata.is_empty() && expected.payloads.is_empty() {
        // A trailers-only response: the client may see all metadata as headers or as trailers.
        let all = merged(&expected.response_headers, &expected.response_trailers);
        if check_headers("", &all, &actual.response_headers).is_empty()
            || check_headers("", &all, &actual.response_trailers).is_empty()
        {
            metadata.clear();
        }
    }
    errors.extend(metadata);
    if expected.payloads.len() != actual.payloads.len() {
        errors.push(format!(
            "{} response messages, want {}",
            actual.payloads.len(),
            expected.payloads.len(),
        ));
    }
    for (i, (want, got)) in expected.payloads.iter().zip(&actual.payloads).enumerate() {
        if want.data != got.data {
            errors.push(format!(
                "response {i}: {} bytes of data, want {}",
                got.data.len(),
                want.data.len()
            ));
        }
        let default = RequestInfo::default();
        check_info(
            &format!("response {i}"),
            want.request_info.as_option().unwrap_or(&default),
            got.request_info.as_option(),
            i == 0,
            &mut errors,
        );
    }
    check_error(
        expected.error.as_option(),
        actual.error.as_option(),
        other_codes,
        &mut errors,
    );
    if checks.unsent_requests && expected.num_unsent_requests != actual.num_unsent_requests {
        errors.push(format!(
            "{} unsent requests, want {}",
            actual.num_unsent_requests, expected.num_unsent_requests
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, values: &[&str]) -> pb::Header {
        pb::Header {
            name: name.to_owned(),
            value: values.iter().map(|v| (*v).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn joined_header_values_match_separate_ones() {
        let want = [header("x-a", &["foo", "bar"])];
        assert!(check_headers("h", &want, &[header("X-A", &["foo, bar"])]).is_empty());
        assert!(check_headers("h", &want, &[header("x-a", &["foo", "bar"])]).is_empty());
        assert!(!check_headers("h", &want, &[header("x-a", &["bar, foo"])]).is_empty());
        assert!(!check_headers("h", &want, &[header("x-b", &["foo"])]).is_empty());
    }

    #[test]
    fn trailers_only_metadata_may_be_merged() {
        let expected = pb::ClientResponseResult {
            response_headers: vec![header("x-h", &["1"])],
            response_trailers: vec![header("x-t", &["2"])],
            ..Default::default()
        };
        let all_trailers = pb::ClientResponseResult {
            response_trailers: vec![header("x-h", &["1"]), header("x-t", &["2"])],
            ..Default::default()
        };
        assert!(compare(&expected, &all_trailers, &[], Checks::default()).is_empty());
        let missing = pb::ClientResponseResult {
            response_trailers: vec![header("x-t", &["2"])],
            ..Default::default()
        };
        assert!(!compare(&expected, &missing, &[], Checks::default()).is_empty());
    }

    #[test]
    fn echoed_timeouts_have_a_grace_period() {
        let want = RequestInfo {
            timeout_ms: Some(1000),
            ..Default::default()
        };
        let got = |ms| RequestInfo {
            timeout_ms: ms,
            ..Default::default()
        };
        let errors = |actual: RequestInfo| {
            let mut errors = Vec::new();
            check_info("i", &want, Some(&actual), true, &mut errors);
            errors
        };
        assert!(errors(got(Some(950))).is_empty());
        assert!(!errors(got(Some(850))).is_empty());
        assert!(!errors(got(Some(1001))).is_empty());
        assert!(!errors(got(None)).is_empty());
    }
}
