//! Conversions between the suite's messages and connect-proto types: headers, codes, `Any`, errors.

use buffa::Message;
use buffa_types::google::protobuf::Any;
use connect_typed::{Code, ErrorDetail, Status};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::proto::connectrpc::conformance::v1 as pb;

/// The prefix of type URLs in `Any`.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// Packs `message` into an `Any` with the given full type URL.
pub fn pack(message: &impl Message, type_url: &str) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: message.encode_to_vec().into(),
        ..Default::default()
    }
}

/// The message name of a type URL (the part after the last `/`).
pub fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

/// Unpacks an `Any` whose type must be `type_url`.
pub fn unpack<M: Message + Default>(any: &Any, type_url: &str) -> Result<M, String> {
    if type_name(&any.type_url) != type_name(type_url) {
        return Err(format!(
            "expected a {} message, got {}",
            type_name(type_url),
            any.type_url
        ));
    }
    M::decode(&mut &any.value[..]).map_err(|e| format!("decoding {}: {e}", any.type_url))
}

/// The content-coding name of a suite compression: `None` for identity, an error for one we do
/// not know.
pub fn compression_name(
    compression: &buffa::EnumValue<pb::Compression>,
) -> Result<Option<&'static str>, String> {
    match compression.as_known() {
        Some(pb::Compression::COMPRESSION_IDENTITY | pb::Compression::COMPRESSION_UNSPECIFIED) => {
            Ok(None)
        }
        Some(pb::Compression::COMPRESSION_GZIP) => Ok(Some("gzip")),
        Some(pb::Compression::COMPRESSION_ZSTD) => Ok(Some("zstd")),
        Some(pb::Compression::COMPRESSION_BR) => Ok(Some("br")),
        Some(pb::Compression::COMPRESSION_DEFLATE) => Ok(Some("deflate")),
        Some(pb::Compression::COMPRESSION_SNAPPY) => Ok(Some("snappy")),
        None => Err(format!("unknown compression {compression:?}")),
    }
}

/// Header maps as the suite's headers: one entry per name, values in order, names lower case.
pub fn headers_to_proto(map: &HeaderMap) -> Vec<pb::Header> {
    let mut out: Vec<pb::Header> = Vec::new();
    for name in map.keys() {
        let value = map
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.push(pb::Header {
            name: name.as_str().to_owned(),
            value,
            ..Default::default()
        });
    }
    out
}

/// Appends the suite's headers to a header map (invalid names and values are skipped).
pub fn append_headers(headers: &[pb::Header], map: &mut HeaderMap) {
    for header in headers {
        let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else {
            continue;
        };
        for value in &header.value {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(name.clone(), value);
            }
        }
    }
}

/// A connect-proto code from the suite's enum (same numbering).
pub fn code_from_proto(code: &buffa::EnumValue<pb::Code>) -> Code {
    Code::from_u32(code.to_i32().max(0) as u32)
}

/// The suite's code enum from a connect-proto code.
pub fn code_to_proto(code: Code) -> buffa::EnumValue<pb::Code> {
    buffa::EnumValue::from(code.as_u32() as i32)
}

/// An RPC status from the suite's `Error`, with `extra` details appended.
pub fn error_to_status(error: &pb::Error, extra: Option<Any>) -> Status {
    let mut status = Status::new(
        code_from_proto(&error.code),
        error.message.clone().unwrap_or_default(),
    );
    for detail in error.details.iter().chain(extra.as_ref()) {
        status = status.with_detail(ErrorDetail::new(
            type_name(&detail.type_url).to_owned(),
            detail.value.clone(),
        ));
    }
    status
}

/// The suite's `Error` from an RPC status.
pub fn status_to_error(status: &Status) -> pb::Error {
    pb::Error {
        code: code_to_proto(status.code()),
        message: Some(status.message().to_owned()),
        details: status
            .details()
            .iter()
            .map(|d| Any {
                type_url: d.type_url(),
                value: d.value.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
