//! Message compression: the algorithm trait, the built-in algorithms, the registry a call negotiates from.

use std::sync::Arc;

use bytes::Bytes;

/// A compression algorithm applied to one message at a time (no shared context between messages).
pub trait Compressor: Send + Sync + std::fmt::Debug + 'static {
    /// The name used in the encoding headers (`gzip`).
    fn name(&self) -> &'static str;
    /// Compresses a whole message.
    fn compress(&self, input: &[u8]) -> std::io::Result<Bytes>;
    /// Decompresses a whole message, failing with [`DecompressError::TooLarge`] as soon as the output
    /// would exceed `limit` bytes, without ever holding more than `limit` bytes of output.
    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError>;
}

/// Why a message could not be decompressed.
#[derive(Debug)]
pub enum DecompressError {
    /// The output would exceed the limit (a compression bomb or just a big message).
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The input is not valid for the algorithm.
    Corrupt(std::io::Error),
}

/// gzip (RFC 1952) via flate2.
#[cfg(feature = "gzip")]
#[derive(Clone, Copy, Debug)]
pub struct Gzip {
    /// Compression level, 0..=9.
    pub level: u32,
}

/// zstd via the zstd crate.
#[cfg(feature = "zstd")]
#[derive(Clone, Copy, Debug)]
pub struct Zstd {
    /// Compression level.
    pub level: i32,
}

/// The algorithms a peer supports, in order of preference. `identity` is implied and never listed.
#[derive(Clone, Debug)]
pub struct CompressionRegistry {
    algorithms: Vec<Arc<dyn Compressor>>,
}

impl Default for CompressionRegistry {
    /// gzip and zstd, when their features are on.
    fn default() -> Self {
        todo!("helper A")
    }
}

impl CompressionRegistry {
    /// A registry that supports only identity.
    pub fn empty() -> Self {
        CompressionRegistry {
            algorithms: Vec::new(),
        }
    }

    /// Adds (or replaces, by name) an algorithm.
    pub fn register(&mut self, algorithm: Arc<dyn Compressor>) {
        todo!("helper A")
    }

    /// Looks up an algorithm; `identity` and unknown names give `None`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Compressor>> {
        todo!("helper A")
    }

    /// The names, in preference order, for an accept-encoding header (`"gzip,zstd"`); empty when only
    /// identity is supported.
    pub fn accept_header(&self) -> String {
        todo!("helper A")
    }

    /// Picks the response compression from a peer's accept list: the first name in the peer's order that
    /// we support, `None` for identity.
    pub fn negotiate(&self, accept: Option<&str>) -> Option<&Arc<dyn Compressor>> {
        todo!("helper A")
    }
}

/// Splits an accept-encoding list (`"gzip, br,zstd"`), trimmed, empty entries and q-values dropped.
pub fn parse_accept_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|s| s.split(';').next().unwrap_or("").trim())
        .filter(|s| !s.is_empty())
}
