//! Per-call state machines: [`ServerCall`] and [`ClientCall`], and what both sides share.

mod client;
mod server;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

pub use client::{CallOptions, ClientCall, ClientConfig, ClientEvent, ClientTransmit};
pub use server::{ServerCall, ServerConfig, ServerEvent, ServerTransmit};

use crate::compression::{Compressor, DecompressError};
use crate::envelope::{self, flags};
use crate::status::Status;

/// The largest body or envelope accepted off the wire for a message limit of `max`. Limits apply to
/// the uncompressed message, and a compressor may expand incompressible data slightly, so a compressed
/// message just under the limit must still fit; raw messages are checked against `max` exactly.
fn wire_limit(max: usize) -> usize {
    max.saturating_add(max / 128 + 64)
}

/// `resource_exhausted` for a raw message over the limit.
fn check_raw_size(len: usize, max: usize, what: &str) -> Result<(), Status> {
    if len > max {
        return Err(Status::resource_exhausted(format!(
            "{what} message of {len} bytes exceeds the limit of {max}"
        )));
    }
    Ok(())
}

/// Compresses `payload` when an algorithm is in use and the payload is at least `min` bytes.
/// Returns the bytes to send and whether they are compressed.
fn compress(
    algorithm: Option<&Arc<dyn Compressor>>,
    min: usize,
    payload: Bytes,
) -> Result<(Bytes, bool), Status> {
    match algorithm {
        Some(c) if payload.len() >= min && !payload.is_empty() => {
            c.compress(&payload).map(|b| (b, true)).map_err(|e| {
                Status::internal(format!("failed to compress message with {}: {e}", c.name()))
            })
        }
        _ => Ok((payload, false)),
    }
}

/// Decompresses a received message, bounded by `limit` (PROTOCOL-TRAPS 11: a zero-length body is never
/// handed to the decompressor).
fn decompress(algorithm: &Arc<dyn Compressor>, data: &[u8], limit: usize) -> Result<Bytes, Status> {
    if data.is_empty() {
        return Ok(Bytes::new());
    }
    algorithm.decompress(data, limit).map_err(|e| match e {
        DecompressError::TooLarge { limit } => Status::resource_exhausted(format!(
            "message larger than {limit} bytes after decompression"
        )),
        DecompressError::Corrupt(e) => Status::internal(format!(
            "failed to decompress message with {}: {e}",
            algorithm.name()
        )),
    })
}

/// Frames one payload as an envelope and pushes it as one or two body chunks.
fn push_envelope<T>(
    out: &mut std::collections::VecDeque<T>,
    data: impl Fn(Bytes) -> T,
    flag: u8,
    payload: Bytes,
) {
    let (head, tail) = envelope::encode(flag, payload);
    out.push_back(data(head));
    if let Some(tail) = tail {
        out.push_back(data(tail));
    }
}

/// The flag for a message payload.
fn message_flag(compressed: bool) -> u8 {
    if compressed {
        flags::COMPRESSED
    } else {
        0
    }
}

/// Collects a non-enveloped body (Connect unary) under a size limit.
#[derive(Debug, Default)]
struct BodyCollector {
    chunks: Vec<Bytes>,
    len: usize,
}

impl BodyCollector {
    /// Adds a chunk; `false` once the body exceeds `limit`.
    fn push(&mut self, chunk: Bytes, limit: usize) -> bool {
        self.len = self.len.saturating_add(chunk.len());
        if self.len > limit {
            self.chunks.clear();
            return false;
        }
        if !chunk.is_empty() {
            self.chunks.push(chunk);
        }
        true
    }

    /// The whole body, without copying when it arrived in one chunk.
    fn take(&mut self) -> Bytes {
        self.len = 0;
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut buf = BytesMut::with_capacity(self.chunks.iter().map(Bytes::len).sum());
                for c in self.chunks.drain(..) {
                    buf.extend_from_slice(&c);
                }
                buf.freeze()
            }
        }
    }
}

/// Reads a header as a string, `None` when absent or not visible ASCII.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
