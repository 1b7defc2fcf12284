//! Typed error details: protobuf messages carried with a [`Status`], as every Connect and gRPC
//! implementation sends them (Connect's `details`, gRPC's `grpc-status-details-bin`).
//!
//! ```
//! use connect_typed::google::rpc::{BadRequest, bad_request::FieldViolation};
//! use connect_typed::{Code, Status, StatusDetails};
//!
//! let violation = FieldViolation {
//!     field: "name".into(),
//!     description: "must not be empty".into(),
//!     ..Default::default()
//! };
//! let status = Status::new(Code::INVALID_ARGUMENT, "bad request").with_message_detail(
//!     &BadRequest { field_violations: vec![violation], ..Default::default() },
//! );
//! // ... and on the other side:
//! let bad: BadRequest = status.find_detail().expect("a BadRequest detail");
//! assert_eq!(bad.field_violations[0].field, "name");
//! ```
//!
//! The `google.rpc` detail types (`ErrorInfo`, `RetryInfo`, `BadRequest`, ...) are in
//! [`google::rpc`](crate::google::rpc); any other generated message works the same way.

use buffa::{Message, MessageName};

use connect_proto::{ErrorDetail, Status};

/// [`ErrorDetail`]s from and to typed messages.
pub trait DetailMessage: Sized {
    /// The detail carrying `message`, named by its full protobuf name.
    fn from_message<M: Message + MessageName>(message: &M) -> Self;

    /// Whether the detail holds an `M`.
    fn is<M: MessageName>(&self) -> bool;

    /// The detail's message, if it is an `M` that decodes.
    fn to_message<M: Message + MessageName + Default>(&self) -> Option<M>;
}

impl DetailMessage for ErrorDetail {
    fn from_message<M: Message + MessageName>(message: &M) -> Self {
        ErrorDetail::new(M::FULL_NAME, message.encode_to_vec())
    }

    fn is<M: MessageName>(&self) -> bool {
        self.type_name == M::FULL_NAME
    }

    fn to_message<M: Message + MessageName + Default>(&self) -> Option<M> {
        if !self.is::<M>() {
            return None;
        }
        M::decode_from_slice(&self.value).ok()
    }
}

/// Typed details on a [`Status`].
pub trait StatusDetails: Sized {
    /// The status with `message` added as a detail.
    fn with_message_detail<M: Message + MessageName>(self, message: &M) -> Self;

    /// The first detail that is an `M` (and decodes).
    fn find_detail<M: Message + MessageName + Default>(&self) -> Option<M>;
}

impl StatusDetails for Status {
    fn with_message_detail<M: Message + MessageName>(self, message: &M) -> Self {
        self.with_detail(ErrorDetail::from_message(message))
    }

    fn find_detail<M: Message + MessageName + Default>(&self) -> Option<M> {
        self.details().iter().find_map(|d| d.to_message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::rpc::{ErrorInfo, RetryInfo};
    use connect_proto::Code;

    #[test]
    fn details_round_trip_by_type() {
        let info = ErrorInfo {
            reason: "QUOTA".into(),
            domain: "example.com".into(),
            ..Default::default()
        };
        let detail = ErrorDetail::from_message(&info);
        assert_eq!(detail.type_name, "google.rpc.ErrorInfo");
        assert!(detail.is::<ErrorInfo>() && !detail.is::<RetryInfo>());
        assert_eq!(detail.to_message::<ErrorInfo>(), Some(info.clone()));
        assert_eq!(detail.to_message::<RetryInfo>(), None);

        let status = Status::new(Code::RESOURCE_EXHAUSTED, "slow down")
            .with_message_detail(&RetryInfo::default())
            .with_message_detail(&info);
        assert_eq!(status.find_detail::<ErrorInfo>(), Some(info));
        assert!(status.find_detail::<RetryInfo>().is_some());
        let undecodable = ErrorDetail::new("google.rpc.ErrorInfo", &b"\xff"[..]);
        assert_eq!(undecodable.to_message::<ErrorInfo>(), None);
    }
}
