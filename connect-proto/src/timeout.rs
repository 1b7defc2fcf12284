//! Timeout headers: Connect's `Connect-Timeout-Ms` and gRPC's `grpc-timeout`.
//!
//! Both grammars cap the number of digits (10 for Connect, 8 for gRPC), so formatters clamp or switch to a
//! coarser unit instead of emitting a value a strict peer would reject (PROTOCOL-TRAPS 12). Formatters
//! round up: a deadline sent a little late is harmless, one that reaches zero would expire a live call.

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

impl InvalidTimeout {
    fn new(value: &[u8]) -> Self {
        InvalidTimeout(String::from_utf8_lossy(value).into_owned())
    }
}

/// The largest `Connect-Timeout-Ms` value: 10 digits.
const CONNECT_MAX_MS: u64 = 9_999_999_999;
/// The largest `grpc-timeout` value: 8 digits.
const GRPC_MAX_VALUE: u64 = 99_999_999;

/// Parses 1 to `max_digits` ASCII digits; no sign, no whitespace. Never overflows, as 10 digits fit a `u64`.
fn parse_digits(digits: &[u8], max_digits: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max_digits || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// Parses `Connect-Timeout-Ms`: 1 to 10 ASCII digits, milliseconds. `0` is accepted and means the
/// deadline has already passed.
pub fn parse_connect_timeout(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    parse_digits(value, 10)
        .map(Duration::from_millis)
        .ok_or_else(|| InvalidTimeout::new(value))
}

/// Formats `Connect-Timeout-Ms`, rounding up to whole milliseconds and clamping to 10 digits
/// (about 115 days).
pub fn format_connect_timeout(timeout: Duration) -> String {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    let ms = u64::try_from(ms).unwrap_or(u64::MAX).min(CONNECT_MAX_MS);
    ms.to_string()
}

/// `grpc-timeout` units, finest first, with their length in nanoseconds.
const GRPC_UNITS: [(u8, u128); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60 * 1_000_000_000),
    (b'H', 3600 * 1_000_000_000),
];

/// Parses `grpc-timeout`: 1 to 8 ASCII digits and a unit (`H M S m u n`). The largest value,
/// `99999999H`, is about 11,400 years and fits a `Duration`; the multiplication saturates anyway so that
/// no input can overflow. Callers adding it to an `Instant` should use `checked_add`.
pub fn parse_grpc_timeout(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    let invalid = || InvalidTimeout::new(value);
    let (&unit, digits) = value.split_last().ok_or_else(invalid)?;
    let n = parse_digits(digits, 8).ok_or_else(invalid)?;
    Ok(match unit {
        b'H' => Duration::from_secs(n.saturating_mul(3600)),
        b'M' => Duration::from_secs(n.saturating_mul(60)),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(invalid()),
    })
}

/// Formats `grpc-timeout` with the finest unit whose value fits in 8 digits, rounding up so that a
/// non-zero duration never becomes zero. Durations beyond `99999999H` are clamped to it.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    for (unit, unit_nanos) in GRPC_UNITS {
        let n = nanos.div_ceil(unit_nanos);
        if n <= u128::from(GRPC_MAX_VALUE) {
            return format!("{n}{}", char::from(unit));
        }
    }
    format!("{GRPC_MAX_VALUE}H")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trap12_connect_timeout_digit_limits() {
        assert_eq!(parse_connect_timeout(b"0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_connect_timeout(b"1500"),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_connect_timeout(b"9999999999"),
            Ok(Duration::from_millis(9_999_999_999))
        );
        for bad in [
            &b""[..],
            b"10000000000",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"1.5",
            b"1s",
            b"\xff",
        ] {
            assert!(parse_connect_timeout(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_connect_timeout(Duration::from_millis(250)), "250");
        assert_eq!(format_connect_timeout(Duration::from_nanos(1)), "1");
        assert_eq!(format_connect_timeout(Duration::from_micros(1001)), "2");
        assert_eq!(format_connect_timeout(Duration::ZERO), "0");
        assert_eq!(
            format_connect_timeout(Duration::from_secs(100_000_000)),
            "9999999999"
        );
        assert_eq!(format_connect_timeout(Duration::MAX), "9999999999");
    }

    #[test]
    fn trap12_grpc_timeout_digit_limits() {
        assert_eq!(parse_grpc_timeout(b"1H"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"2M"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout(b"3S"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout(b"4m"), Ok(Duration::from_millis(4)));
        assert_eq!(parse_grpc_timeout(b"5u"), Ok(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout(b"6n"), Ok(Duration::from_nanos(6)));
        assert_eq!(
            parse_grpc_timeout(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
        for bad in [
            &b""[..],
            b"H",
            b"1",
            b"123456789S",
            b"1h",
            b"1s",
            b"-1S",
            b" 1S",
            b"1 S",
            b"1SS",
        ] {
            assert!(parse_grpc_timeout(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_grpc_timeout(Duration::ZERO), "0n");
        assert_eq!(
            format_grpc_timeout(Duration::from_nanos(99_999_999)),
            "99999999n"
        );
        assert_eq!(format_grpc_timeout(Duration::from_millis(100)), "100000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(1)), "1000000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(100)), "100000m");
        // Rounds up rather than down when a coarser unit is needed.
        assert_eq!(format_grpc_timeout(Duration::new(100, 1)), "100001m");
        assert_eq!(
            format_grpc_timeout(Duration::from_secs(86_400)),
            "86400000m"
        );
        assert_eq!(
            format_grpc_timeout(Duration::from_secs(1_000_000_000)),
            "16666667M"
        );
        assert_eq!(format_grpc_timeout(Duration::MAX), "99999999H");
    }

    /// The largest error the formatter may add: one unit of the coarsest unit it had to pick.
    fn grpc_precision(d: Duration) -> Duration {
        let nanos = d.as_nanos();
        let unit = GRPC_UNITS
            .iter()
            .map(|&(_, u)| u)
            .find(|&u| nanos.div_ceil(u) <= u128::from(GRPC_MAX_VALUE))
            .unwrap_or(3600 * 1_000_000_000);
        Duration::from_nanos(u64::try_from(unit).unwrap())
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = parse_connect_timeout(&bytes);
            let _ = parse_grpc_timeout(&bytes);
        }

        #[test]
        fn grpc_timeout_round_trips_within_precision(
            secs in 0u64..(99_999_999 * 3600),
            nanos in 0u32..1_000_000_000,
        ) {
            let d = Duration::new(secs, nanos);
            let s = format_grpc_timeout(d);
            prop_assert!(s.len() <= 9, "{s}");
            let back = parse_grpc_timeout(s.as_bytes()).unwrap();
            prop_assert!(back >= d);
            prop_assert!(back - d < grpc_precision(d), "{d:?} -> {s} -> {back:?}");
            prop_assert!(d.is_zero() || !back.is_zero());
        }

        #[test]
        fn connect_timeout_round_trips_within_a_millisecond(
            secs in 0u64..9_999_999,
            nanos in 0u32..1_000_000_000,
        ) {
            let d = Duration::new(secs, nanos);
            let s = format_connect_timeout(d);
            let back = parse_connect_timeout(s.as_bytes()).unwrap();
            prop_assert!(back >= d && back - d < Duration::from_millis(1));
        }

        #[test]
        fn parse_then_format_is_identity_for_canonical_connect(ms in 0u64..=CONNECT_MAX_MS) {
            let s = ms.to_string();
            let d = parse_connect_timeout(s.as_bytes()).unwrap();
            prop_assert_eq!(format_connect_timeout(d), s);
        }
    }
}
