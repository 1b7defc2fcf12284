//! The benchmark payloads, built once and shared by every server and the load generator, and the
//! work each server's handler does on them (the same for all implementations).

use bytes::Bytes;

use crate::ours::bench::v1::{
    EchoRequest, IngestRequest, IngestResponse, LogRecord, StreamRequest,
};

/// The echo payload: a 64-byte string.
pub const ECHO_MESSAGE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Records per log-ingest request.
pub const LOG_RECORDS: usize = 50;

/// Folds one string field into a checksum: its length and its first and last bytes, so the handler
/// reads every field without turning the benchmark into a hashing benchmark.
pub fn mix_str(acc: u64, s: &str) -> u64 {
    let b = s.as_bytes();
    let edge =
        u64::from(b.first().copied().unwrap_or(0)) << 8 | u64::from(b.last().copied().unwrap_or(0));
    acc.wrapping_mul(31).wrapping_add(b.len() as u64 ^ edge)
}

/// Folds a scalar field into a checksum.
pub fn mix_int(acc: u64, v: i64) -> u64 {
    acc.wrapping_mul(31).wrapping_add(v as u64)
}

/// Folds a whole record into a checksum, in the order every handler uses. Map entries are folded
/// commutatively, since map iteration order differs between implementations.
pub fn mix_record<'a>(
    mut acc: u64,
    scalars: (i64, i32),
    strings: [&str; 4],
    attributes: impl Iterator<Item = (&'a str, &'a str)>,
    tags: impl Iterator<Item = &'a str>,
) -> u64 {
    acc = mix_int(acc, scalars.0);
    acc = mix_int(acc, i64::from(scalars.1));
    for s in strings {
        acc = mix_str(acc, s);
    }
    let mut map = 0u64;
    for (k, v) in attributes {
        map = map.wrapping_add(mix_str(mix_str(0, k), v));
    }
    acc = mix_int(acc, map as i64);
    for t in tags {
        acc = mix_str(acc, t);
    }
    acc
}

/// The log-ingest request: 50 records of about 300 bytes each (15 KB encoded, as the workload
/// says).
pub fn ingest_request() -> IngestRequest {
    let records = (0..LOG_RECORDS)
        .map(|i| {
            let attributes = [
                ("http.method", "POST".to_owned()),
                ("http.route", format!("/api/v1/orders/{}", 10_000 + i)),
                ("http.status_code", format!("{}", 200 + (i % 3) * 100)),
                ("user.id", format!("user-{:08}", i * 7919)),
                ("region", "eu-west-1".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            LogRecord {
                timestamp_unix_nanos: 1_700_000_000_000_000_000 + i as i64 * 1_000_003,
                severity: (i % 5) as i32,
                service: "checkout-service".to_owned(),
                host: format!("ip-10-0-{}-{}.ec2.internal", i % 7, i % 250),
                message: format!(
                    "order {} accepted: {} items, {}.{:02} EUR, paid in {} ms",
                    900_000 + i,
                    1 + i % 9,
                    10 + i * 3,
                    i % 100,
                    20 + i % 180,
                ),
                trace_id: format!("{:032x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15),
                attributes,
                tags: vec![
                    "prod".to_owned(),
                    "checkout".to_owned(),
                    format!("shard-{}", i % 16),
                ],
                ..Default::default()
            }
        })
        .collect();
    IngestRequest {
        records,
        ..Default::default()
    }
}

/// What a correct server answers to [`ingest_request`].
pub fn ingest_response(request: &IngestRequest) -> IngestResponse {
    let mut checksum = 0;
    for r in &request.records {
        checksum = mix_record(
            checksum,
            (r.timestamp_unix_nanos, r.severity),
            [&r.service, &r.host, &r.message, &r.trace_id],
            r.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            r.tags.iter().map(String::as_str),
        );
    }
    IngestResponse {
        accepted: request.records.len() as u64,
        checksum,
        ..Default::default()
    }
}

/// Protobuf encoding of a buffa message.
pub fn encode<M: buffa::Message>(message: &M) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// The encoded echo request.
pub fn echo_request_bytes() -> Bytes {
    encode(&EchoRequest {
        message: ECHO_MESSAGE.to_owned(),
        ..Default::default()
    })
}

/// The encoded server-streaming request for `count` messages.
pub fn stream_request_bytes(count: i32) -> Bytes {
    encode(&StreamRequest {
        message: ECHO_MESSAGE.to_owned(),
        count,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingest_request_is_about_15_kb_and_its_answer_checks_every_record() {
        let request = ingest_request();
        let size = encode(&request).len();
        assert!(
            (14_000..16_000).contains(&size),
            "ingest request is {size} bytes"
        );
        let response = ingest_response(&request);
        assert_eq!(response.accepted, LOG_RECORDS as u64);
        assert_ne!(response.checksum, 0);
    }
}
