//! RPC outcome: status codes, error details, and the error type every protocol maps onto.

use std::fmt;

use bytes::Bytes;

/// A status code, shared by Connect, gRPC and gRPC-Web.
///
/// A newtype rather than an enum so that a value we do not know (a newer peer's code) survives a
/// round-trip through us; the sixteen known codes are associated constants and can be matched on.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(u32);

macro_rules! codes {
    ($( $(#[$doc:meta])* $konst:ident = $num:literal, $name:literal, $http:literal; )*) => {
        impl Code {
            $( $(#[$doc])* pub const $konst: Code = Code($num); )*

            /// The snake_case name used by the Connect protocol (`"invalid_argument"`), or `None` for a
            /// code outside the known range.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $( $num => Some($name), )* _ => None }
            }

            /// Parses a Connect snake_case code name.
            pub fn from_name(name: &str) -> Option<Code> {
                match name { $( $name => Some(Code($num)), )* _ => None }
            }

            /// The HTTP status a Connect server answers a unary error with (PROTOCOL-TRAPS 2).
            pub fn http_status(self) -> http::StatusCode {
                let n: u16 = match self.0 { $( $num => $http, )* _ => 500 };
                http::StatusCode::from_u16(n).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    };
}

codes! {
    /// Not an error (gRPC's `grpc-status: 0`).
    OK = 0, "ok", 200;
    /// The call was cancelled, usually by the caller.
    CANCELED = 1, "canceled", 499;
    /// An error that fits no other code.
    UNKNOWN = 2, "unknown", 500;
    /// The client sent an invalid argument.
    INVALID_ARGUMENT = 3, "invalid_argument", 400;
    /// The deadline expired before the call completed.
    DEADLINE_EXCEEDED = 4, "deadline_exceeded", 504;
    /// A requested entity was not found.
    NOT_FOUND = 5, "not_found", 404;
    /// The entity the client tried to create already exists.
    ALREADY_EXISTS = 6, "already_exists", 409;
    /// The caller may not perform the operation.
    PERMISSION_DENIED = 7, "permission_denied", 403;
    /// A resource (quota, memory, message size) was exhausted.
    RESOURCE_EXHAUSTED = 8, "resource_exhausted", 429;
    /// The system is not in a state required for the operation.
    FAILED_PRECONDITION = 9, "failed_precondition", 400;
    /// The operation was aborted, typically by a concurrency conflict.
    ABORTED = 10, "aborted", 409;
    /// The operation went past the valid range.
    OUT_OF_RANGE = 11, "out_of_range", 400;
    /// The operation is not implemented or not supported.
    UNIMPLEMENTED = 12, "unimplemented", 501;
    /// An invariant the system relies on was broken.
    INTERNAL = 13, "internal", 500;
    /// The service is currently unavailable; retrying may help.
    UNAVAILABLE = 14, "unavailable", 503;
    /// Unrecoverable data loss or corruption.
    DATA_LOSS = 15, "data_loss", 500;
    /// The request lacks valid authentication credentials.
    UNAUTHENTICATED = 16, "unauthenticated", 401;
}

impl Code {
    /// A code from its numeric value; unknown values are kept as they are.
    pub const fn from_u32(n: u32) -> Code {
        Code(n)
    }

    /// The numeric value (gRPC's `grpc-status`).
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// Whether this is [`Code::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The code a client of any of the three protocols infers from an HTTP status when the response
    /// carries no valid error body or gRPC status (PROTOCOL-TRAPS 3; gRPC's HTTP-to-gRPC mapping
    /// table). `431` is `unknown` for gRPC and gRPC-Web too, as the conformance suite requires
    /// (`HTTP to RPC Code Mapping/request-header-fields-too-large`); grpc-java alone maps it to
    /// `internal`.
    pub fn from_http_status(status: u16) -> Code {
        match status {
            400 => Code::INTERNAL,
            401 => Code::UNAUTHENTICATED,
            403 => Code::PERMISSION_DENIED,
            404 => Code::UNIMPLEMENTED,
            429 | 502 | 503 | 504 => Code::UNAVAILABLE,
            _ => Code::UNKNOWN,
        }
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "code_{}", self.0),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One error detail: a protobuf message carried with an error, named by its fully qualified type name.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorDetail {
    /// Fully qualified message name without any `type.googleapis.com/` prefix (`google.rpc.RetryInfo`).
    pub type_name: String,
    /// The serialized message.
    pub value: Bytes,
    /// Connect's optional human-readable form of the detail, as JSON text (any JSON value); never
    /// needed to decode it. Text that is not JSON is sent as a JSON string.
    pub debug: Option<String>,
}

impl ErrorDetail {
    /// A detail from a type name and a serialized message.
    pub fn new(type_name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        let mut type_name = type_name.into();
        if let Some(rest) = type_name.strip_prefix("type.googleapis.com/") {
            type_name = rest.to_owned();
        }
        ErrorDetail {
            type_name,
            value: value.into(),
            debug: None,
        }
    }

    /// The `google.protobuf.Any` type URL of the detail.
    pub fn type_url(&self) -> String {
        format!("type.googleapis.com/{}", self.type_name)
    }
}

/// An RPC error: a code, a message for humans, and typed details.
///
/// This is the outcome of a call, produced by the server application or by either side's state machine
/// when the peer violated the protocol; it is never a panic and never mixed up with API misuse
/// ([`UsageError`]).
#[derive(Clone, PartialEq)]
pub struct Status(Box<StatusInner>);

/// Boxed so that `Result<T, Status>` stays one pointer wide on the hot paths.
#[derive(Clone, PartialEq)]
struct StatusInner {
    code: Code,
    message: String,
    details: Vec<ErrorDetail>,
    metadata: http::HeaderMap,
}

impl Status {
    /// An error with a code and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status(Box::new(StatusInner {
            code,
            message: message.into(),
            details: Vec::new(),
            metadata: http::HeaderMap::new(),
        }))
    }

    /// Adds a detail.
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.0.details.push(detail);
        self
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The message (may be empty).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The details, in order.
    pub fn details(&self) -> &[ErrorDetail] {
        &self.0.details
    }

    /// Metadata that came with the error: for an error a client received, the response headers followed
    /// by the trailers. The call machines never write it (trailers travel separately); connect-typed's
    /// router sends the metadata of an error a handler or interceptor returns as trailers, without
    /// the names any protocol owns ([`is_protocol_header`](crate::is_protocol_header)).
    pub fn metadata(&self) -> &http::HeaderMap {
        &self.0.metadata
    }

    /// Mutable access to the metadata.
    pub fn metadata_mut(&mut self) -> &mut http::HeaderMap {
        &mut self.0.metadata
    }

    /// Mutable access to the details.
    pub fn details_mut(&mut self) -> &mut Vec<ErrorDetail> {
        &mut self.0.details
    }

    /// `canceled`
    pub fn canceled(message: impl Into<String>) -> Self {
        Status::new(Code::CANCELED, message)
    }
    /// `unknown`
    pub fn unknown(message: impl Into<String>) -> Self {
        Status::new(Code::UNKNOWN, message)
    }
    /// `invalid_argument`
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Status::new(Code::INVALID_ARGUMENT, message)
    }
    /// `deadline_exceeded`
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Status::new(Code::DEADLINE_EXCEEDED, message)
    }
    /// `resource_exhausted`
    pub fn resource_exhausted(message: impl Into<String>) -> Self {
        Status::new(Code::RESOURCE_EXHAUSTED, message)
    }
    /// `unimplemented`
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Status::new(Code::UNIMPLEMENTED, message)
    }
    /// `internal`
    pub fn internal(message: impl Into<String>) -> Self {
        Status::new(Code::INTERNAL, message)
    }
    /// `unavailable`
    pub fn unavailable(message: impl Into<String>) -> Self {
        Status::new(Code::UNAVAILABLE, message)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.0.code)
            .field("message", &self.0.message);
        if !self.0.details.is_empty() {
            d.field("details", &self.0.details);
        }
        if !self.0.metadata.is_empty() {
            d.field("metadata", &self.0.metadata);
        }
        d.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.message.is_empty() {
            write!(f, "{}", self.0.code)
        } else {
            write!(f, "{}: {}", self.0.code, self.0.message)
        }
    }
}

impl std::error::Error for Status {}

/// Misuse of a call state machine by the application or adapter (sending after finishing, a second
/// response to a unary call, ...). This is a bug on our side of the wire, distinct from [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub(crate) &'static str);

impl UsageError {
    /// What was wrong.
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call API misused: {}", self.0)
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap02_code_to_http_status() {
        let table = [
            (Code::CANCELED, 499),
            (Code::UNKNOWN, 500),
            (Code::INVALID_ARGUMENT, 400),
            (Code::DEADLINE_EXCEEDED, 504),
            (Code::NOT_FOUND, 404),
            (Code::ALREADY_EXISTS, 409),
            (Code::PERMISSION_DENIED, 403),
            (Code::RESOURCE_EXHAUSTED, 429),
            (Code::FAILED_PRECONDITION, 400),
            (Code::ABORTED, 409),
            (Code::OUT_OF_RANGE, 400),
            (Code::UNIMPLEMENTED, 501),
            (Code::INTERNAL, 500),
            (Code::UNAVAILABLE, 503),
            (Code::DATA_LOSS, 500),
            (Code::UNAUTHENTICATED, 401),
        ];
        for (code, http) in table {
            assert_eq!(code.http_status().as_u16(), http, "{code}");
        }
    }

    #[test]
    fn trap03_http_status_to_code() {
        let table = [
            (400, Code::INTERNAL),
            (401, Code::UNAUTHENTICATED),
            (403, Code::PERMISSION_DENIED),
            (404, Code::UNIMPLEMENTED),
            (429, Code::UNAVAILABLE),
            (431, Code::UNKNOWN),
            (502, Code::UNAVAILABLE),
            (503, Code::UNAVAILABLE),
            (504, Code::UNAVAILABLE),
            (500, Code::UNKNOWN),
            (418, Code::UNKNOWN),
            (302, Code::UNKNOWN),
        ];
        for (http, code) in table {
            assert_eq!(Code::from_http_status(http), code, "{http}");
        }
    }

    #[test]
    fn code_names_round_trip_and_unknown_codes_survive() {
        for n in 0..=16 {
            let code = Code::from_u32(n);
            assert_eq!(Code::from_name(code.name().unwrap()), Some(code));
        }
        let odd = Code::from_u32(99);
        assert_eq!(odd.as_u32(), 99);
        assert_eq!(odd.name(), None);
        assert_eq!(format!("{odd}"), "code_99");
        assert_eq!(Code::from_name("bogus"), None);
    }

    #[test]
    fn detail_strips_type_url_prefix() {
        let d = ErrorDetail::new("type.googleapis.com/google.rpc.RetryInfo", Bytes::new());
        assert_eq!(d.type_name, "google.rpc.RetryInfo");
        assert_eq!(d.type_url(), "type.googleapis.com/google.rpc.RetryInfo");
    }
}
