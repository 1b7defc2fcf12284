//! Timeout headers: Connect's `Connect-Timeout-Ms` and gRPC's `grpc-timeout`.

use std::time::Duration;

/// A timeout header value that does not follow its grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTimeout(pub(crate) String);

impl std::fmt::Display for InvalidTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid timeout {:?}", self.0)
    }
}

impl std::error::Error for InvalidTimeout {}

/// Parses `Connect-Timeout-Ms`: 1 to 10 ASCII digits, milliseconds.
pub fn parse_connect_timeout(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    todo!("helper B")
}

/// Formats `Connect-Timeout-Ms`, rounding up to whole milliseconds and clamping to 10 digits.
pub fn format_connect_timeout(timeout: Duration) -> String {
    todo!("helper B")
}

/// Parses `grpc-timeout`: 1 to 8 ASCII digits and a unit (`H M S m u n`), saturating instead of
/// overflowing on hours.
pub fn parse_grpc_timeout(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    todo!("helper B")
}

/// Formats `grpc-timeout` with the finest unit whose value fits in 8 digits, never rounding down to zero.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    todo!("helper B")
}
