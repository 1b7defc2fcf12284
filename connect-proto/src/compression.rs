//! Message compression: the algorithm trait, the built-in algorithms, the registry a call negotiates from.
//!
//! Decompression is always bounded: a message is refused as soon as its output passes the limit, so a
//! small compression bomb never costs more than about `limit` bytes of memory.

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;

/// The name of the no-op encoding, implied by every accept list and never registered.
pub(crate) const IDENTITY: &str = "identity";

/// A compression algorithm applied to one message at a time (no shared context between messages).
pub trait Compressor: Send + Sync + std::fmt::Debug + 'static {
    /// The name used in the encoding headers (`gzip`).
    fn name(&self) -> &'static str;
    /// Compresses a whole message.
    fn compress(&self, input: &[u8]) -> std::io::Result<Bytes>;
    /// Decompresses a whole message, failing with [`DecompressError::TooLarge`] as soon as the output
    /// would exceed `limit` bytes, without ever holding more than `limit` bytes of output.
    ///
    /// [`read_bounded`] does the bounded part for any decoder that implements [`Read`].
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
    /// The input asks the decoder for more working memory than we allow (a zstd window past the
    /// cap): refused before that memory is taken.
    TooMuchMemory(String),
    /// The input is not valid for the algorithm.
    Corrupt(std::io::Error),
}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecompressError::TooLarge { limit } => {
                write!(f, "decompressed message exceeds the limit of {limit} bytes")
            }
            DecompressError::TooMuchMemory(why) => {
                write!(
                    f,
                    "compressed message needs too much memory to decode: {why}"
                )
            }
            DecompressError::Corrupt(err) => write!(f, "invalid compressed message: {err}"),
        }
    }
}

impl std::error::Error for DecompressError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecompressError::TooLarge { .. } | DecompressError::TooMuchMemory(_) => None,
            DecompressError::Corrupt(err) => Some(err),
        }
    }
}

/// How much the output buffer of [`read_bounded`] grows by at first; it then doubles, capped by the limit.
const INITIAL_GROWTH: usize = 8 * 1024;

/// Reads a decompressing reader to its end, failing with [`DecompressError::TooLarge`] as soon as it
/// yields more than `limit` bytes.
///
/// The output buffer grows in steps and its capacity never exceeds `limit + 1`, so memory follows the
/// real output, not what a header or the input size claims. Any read error is
/// [`DecompressError::Corrupt`].
pub fn read_bounded(reader: impl Read, limit: usize) -> Result<Bytes, DecompressError> {
    // One byte past the limit is how we learn that the limit was passed.
    let cap = limit.saturating_add(1);
    let mut reader = reader.take(u64::try_from(cap).unwrap_or(u64::MAX));
    let mut out: Vec<u8> = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            let room = cap - filled;
            if room == 0 {
                break;
            }
            let grow = out.len().max(INITIAL_GROWTH).min(room);
            // `reserve_exact`: plain `resize` may double the capacity past the limit.
            out.reserve_exact(grow);
            out.resize(filled + grow, 0);
        }
        match reader.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(DecompressError::Corrupt(err)),
        }
    }
    if filled > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    out.truncate(filled);
    Ok(Bytes::from(out))
}

/// gzip (RFC 1952) via flate2.
///
/// Decompression accepts a body of several concatenated gzip members, as RFC 1952 and Go's reader do;
/// anything after the last member that is not another valid member (trailing garbage, a truncated
/// member) is [`DecompressError::Corrupt`]. An empty input is an empty message (PROTOCOL-TRAPS 11).
#[cfg(feature = "gzip")]
#[derive(Clone, Copy, Debug)]
pub struct Gzip {
    /// Compression level, 0..=9.
    pub level: u32,
}

#[cfg(feature = "gzip")]
impl Default for Gzip {
    /// Level 6, zlib's default trade-off.
    fn default() -> Self {
        Gzip { level: 6 }
    }
}

#[cfg(feature = "gzip")]
impl Compressor for Gzip {
    fn name(&self) -> &'static str {
        "gzip"
    }

    fn compress(&self, input: &[u8]) -> io::Result<Bytes> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(input.len() / 2 + 32),
            flate2::Compression::new(self.level.min(9)),
        );
        encoder.write_all(input)?;
        Ok(Bytes::from(encoder.finish()?))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        if input.is_empty() {
            return Ok(Bytes::new());
        }
        read_bounded(flate2::bufread::MultiGzDecoder::new(input), limit)
    }
}

/// zstd via the zstd crate.
///
/// Decompression accepts concatenated frames and rejects trailing garbage, like the `zstd` tool. The
/// decoder's window (its own working memory, which a frame header chooses) is capped at the next power
/// of two above the limit, but never below 8 MiB (what zstd's highest regular levels use when
/// compressing a stream of unknown size) nor above 128 MiB (zstd's default cap); frames that ask for
/// more are [`DecompressError::Corrupt`]. An empty input is an empty message (PROTOCOL-TRAPS 11).
#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
#[derive(Clone, Copy, Debug)]
pub struct Zstd {
    /// Compression level.
    pub level: i32,
}

#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
impl Default for Zstd {
    /// Level 3, zstd's default.
    fn default() -> Self {
        Zstd { level: 3 }
    }
}

#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
impl Compressor for Zstd {
    fn name(&self) -> &'static str {
        "zstd"
    }

    fn compress(&self, input: &[u8]) -> io::Result<Bytes> {
        // The bulk API records the content size in the frame, so a decoder sizes its window to the
        // message instead of to the level's default.
        zstd::bulk::compress(input, self.level).map(Bytes::from)
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        if input.is_empty() {
            return Ok(Bytes::new());
        }
        let mut decoder =
            zstd::stream::read::Decoder::with_buffer(input).map_err(DecompressError::Corrupt)?;
        let window_log = usize::BITS - limit.saturating_sub(1).leading_zeros();
        let window_log = window_log.clamp(23, 27);
        decoder
            .window_log_max(window_log)
            .map_err(DecompressError::Corrupt)?;
        read_bounded(decoder, limit).map_err(|err| match err {
            // zstd's own words for a frame whose window is past `window_log_max`.
            DecompressError::Corrupt(e) if e.to_string().contains("too much memory") => {
                DecompressError::TooMuchMemory(format!(
                    "the zstd frame's window is larger than {} MiB",
                    (1usize << window_log) >> 20
                ))
            }
            other => other,
        })
    }
}

/// Whether a zlib (RFC 1950) header starts `input`: deflate compression method, a window of at
/// most 32 KiB, and the header checksum.
#[cfg(feature = "deflate")]
fn is_zlib_header(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// `deflate` as HTTP means it: DEFLATE data in a zlib wrapper (RFC 1950), via flate2.
///
/// Decompression also accepts bare DEFLATE data (RFC 1951), which some peers send under this
/// name; a zlib header is recognised by its checksum. Anything after the end of the stream is
/// [`DecompressError::Corrupt`]. An empty input is an empty message (PROTOCOL-TRAPS 11).
#[cfg(feature = "deflate")]
#[derive(Clone, Copy, Debug)]
pub struct Deflate {
    /// Compression level, 0..=9.
    pub level: u32,
}

#[cfg(feature = "deflate")]
impl Default for Deflate {
    /// Level 6, zlib's default trade-off.
    fn default() -> Self {
        Deflate { level: 6 }
    }
}

#[cfg(feature = "deflate")]
impl Compressor for Deflate {
    fn name(&self) -> &'static str {
        "deflate"
    }

    fn compress(&self, input: &[u8]) -> io::Result<Bytes> {
        use std::io::Write;
        let mut encoder = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(input.len() / 2 + 16),
            flate2::Compression::new(self.level.min(9)),
        );
        encoder.write_all(input)?;
        Ok(Bytes::from(encoder.finish()?))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        if input.is_empty() {
            return Ok(Bytes::new());
        }
        let (output, rest) = if is_zlib_header(input) {
            let mut decoder = flate2::bufread::ZlibDecoder::new(input);
            (read_bounded(&mut decoder, limit)?, decoder.into_inner())
        } else {
            let mut decoder = flate2::bufread::DeflateDecoder::new(input);
            (read_bounded(&mut decoder, limit)?, decoder.into_inner())
        };
        if !rest.is_empty() {
            return Err(trailing_data("deflate", rest.len()));
        }
        Ok(output)
    }
}

/// [`DecompressError::Corrupt`] for bytes after the end of a compressed stream.
#[cfg(any(feature = "deflate", feature = "br"))]
fn trailing_data(algorithm: &str, len: usize) -> DecompressError {
    DecompressError::Corrupt(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{len} bytes after the end of the {algorithm} stream"),
    ))
}

/// Brotli (RFC 7932) via the pure-Rust `brotli` crate.
///
/// Decompression keeps to the RFC's windows (at most 16 MiB; the large-window extension is
/// refused), and anything after the end of the stream is [`DecompressError::Corrupt`]. An empty
/// input is an empty message (PROTOCOL-TRAPS 11).
#[cfg(feature = "br")]
#[derive(Clone, Copy, Debug)]
pub struct Brotli {
    /// Quality, 0..=11: 11 is brotli's densest and slowest; the default, 5, is about as fast as
    /// gzip's default and denser.
    pub quality: u32,
}

#[cfg(feature = "br")]
impl Default for Brotli {
    fn default() -> Self {
        Brotli { quality: 5 }
    }
}

#[cfg(feature = "br")]
impl Compressor for Brotli {
    fn name(&self) -> &'static str {
        "br"
    }

    fn compress(&self, input: &[u8]) -> io::Result<Bytes> {
        use std::io::Write;
        // A 4 MiB window (lgwin 22): messages past it compress a little worse, decoders need less.
        let mut encoder = brotli::CompressorWriter::new(
            Vec::with_capacity(input.len() / 2 + 16),
            4096,
            self.quality.min(11),
            22,
        );
        encoder.write_all(input)?;
        encoder.flush()?;
        Ok(Bytes::from(encoder.into_inner()))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        use brotli::{BrotliDecompressStream, BrotliResult, BrotliState, HeapAlloc};
        if input.is_empty() {
            return Ok(Bytes::new());
        }
        let mut state = BrotliState::new_strict(
            HeapAlloc::<u8>::new(0),
            HeapAlloc::<u32>::new(0),
            HeapAlloc::<brotli::HuffmanCode>::new(brotli::HuffmanCode::default()),
        );
        // One byte past the limit is how we learn that the limit was passed.
        let cap = limit.saturating_add(1);
        let mut out: Vec<u8> = Vec::new();
        let (mut available_in, mut input_offset) = (input.len(), 0);
        let mut total_out = 0;
        loop {
            let filled = out.len();
            let room = cap - filled;
            if room == 0 {
                return Err(DecompressError::TooLarge { limit });
            }
            let grow = filled.max(INITIAL_GROWTH).min(room);
            out.reserve_exact(grow);
            out.resize(filled + grow, 0);
            let (mut available_out, mut output_offset) = (grow, filled);
            let result = BrotliDecompressStream(
                &mut available_in,
                &mut input_offset,
                input,
                &mut available_out,
                &mut output_offset,
                &mut out,
                &mut total_out,
                &mut state,
            );
            out.truncate(output_offset);
            match result {
                BrotliResult::ResultSuccess => break,
                BrotliResult::NeedsMoreOutput => continue,
                BrotliResult::NeedsMoreInput => {
                    return Err(DecompressError::Corrupt(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the brotli stream is truncated",
                    )))
                }
                BrotliResult::ResultFailure => {
                    return Err(DecompressError::Corrupt(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "invalid brotli stream",
                    )))
                }
            }
        }
        if out.len() > limit {
            return Err(DecompressError::TooLarge { limit });
        }
        if available_in > 0 {
            return Err(trailing_data("brotli", available_in));
        }
        Ok(Bytes::from(out))
    }
}

/// Snappy in its framing format (the `snappy` content coding of gRPC and Connect: stream
/// identifier, chunks of at most 64 KiB with CRC-32C checksums), via the `snap` crate.
///
/// Decompression accepts several concatenated streams; a chunk type the format reserves, a bad
/// checksum or a truncated chunk is [`DecompressError::Corrupt`]. An empty input is an empty
/// message (PROTOCOL-TRAPS 11).
#[cfg(feature = "snappy")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Snappy;

#[cfg(feature = "snappy")]
impl Compressor for Snappy {
    fn name(&self) -> &'static str {
        "snappy"
    }

    fn compress(&self, input: &[u8]) -> io::Result<Bytes> {
        use std::io::Write;
        let mut encoder = snap::write::FrameEncoder::new(Vec::with_capacity(input.len() + 32));
        encoder.write_all(input)?;
        encoder
            .into_inner()
            .map(Bytes::from)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
        if input.is_empty() {
            return Ok(Bytes::new());
        }
        read_bounded(snap::read::FrameDecoder::new(input), limit)
    }
}

/// The algorithms a peer supports, in order of preference. `identity` is implied and never listed.
#[derive(Clone, Debug)]
pub struct CompressionRegistry {
    // Shared, so that the per-call clone a client call takes is a reference-count bump.
    algorithms: Arc<Vec<Arc<dyn Compressor>>>,
    // The accept-encoding value, built once at registration rather than on every call.
    accept: Option<http::HeaderValue>,
}

impl Default for CompressionRegistry {
    /// Every built-in algorithm whose feature is on, in this order of preference: gzip, zstd, br,
    /// deflate, snappy (zstd never on wasm32: its C library does not build for
    /// `wasm32-unknown-unknown`).
    fn default() -> Self {
        #[allow(unused_mut)]
        let mut registry = CompressionRegistry::empty();
        #[cfg(feature = "gzip")]
        registry.register(Arc::new(Gzip::default()));
        #[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
        registry.register(Arc::new(Zstd::default()));
        #[cfg(feature = "br")]
        registry.register(Arc::new(Brotli::default()));
        #[cfg(feature = "deflate")]
        registry.register(Arc::new(Deflate::default()));
        #[cfg(feature = "snappy")]
        registry.register(Arc::new(Snappy));
        registry
    }
}

impl CompressionRegistry {
    /// A registry that supports only identity.
    pub fn empty() -> Self {
        CompressionRegistry {
            algorithms: Arc::new(Vec::new()),
            accept: None,
        }
    }

    /// Adds (or replaces, by name) an algorithm. A new name goes last in the preference order; a
    /// replacement keeps the place of the algorithm it replaces. An algorithm named `identity` is ignored:
    /// identity is always supported and means "no compression".
    pub fn register(&mut self, algorithm: Arc<dyn Compressor>) {
        let name = algorithm.name();
        if name.eq_ignore_ascii_case(IDENTITY) {
            return;
        }
        let algorithms = Arc::make_mut(&mut self.algorithms);
        match algorithms
            .iter_mut()
            .find(|known| known.name().eq_ignore_ascii_case(name))
        {
            Some(slot) => *slot = algorithm,
            None => algorithms.push(algorithm),
        }
        self.accept = http::HeaderValue::from_str(&self.accept_header())
            .ok()
            .filter(|v| !v.is_empty());
    }

    /// Looks up an algorithm, ignoring ASCII case as HTTP content codings do; `identity` and unknown
    /// names give `None`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Compressor>> {
        self.algorithms
            .iter()
            .find(|known| known.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The names, in preference order, for an accept-encoding header (`"gzip,zstd"`); empty when only
    /// identity is supported.
    pub fn accept_header(&self) -> String {
        let names: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
        names.join(",")
    }

    /// [`accept_header`](Self::accept_header) as a ready header value, `None` when only identity is
    /// supported (kept from registration: no per-call formatting).
    pub fn accept_header_value(&self) -> Option<&http::HeaderValue> {
        self.accept.as_ref()
    }

    /// Picks the response compression from a peer's accept list: the first name in the peer's order that
    /// we support, `None` for identity.
    ///
    /// The peer's order wins over ours because accept lists carry no q-values (PROTOCOL-TRAPS 9): order
    /// is the only way a peer can state a preference. Any q-value present is ignored.
    pub fn negotiate(&self, accept: Option<&str>) -> Option<&Arc<dyn Compressor>> {
        parse_accept_list(accept?)
            .filter(|name| !name.eq_ignore_ascii_case(IDENTITY))
            .find_map(|name| self.get(name))
    }
}

/// Splits an accept-encoding list (`"gzip, br,zstd"`), trimmed, empty entries and q-values dropped.
pub(crate) fn parse_accept_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|s| s.split(';').next().unwrap_or("").trim())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// Every built-in algorithm whose feature is on.
    fn algorithms() -> Vec<Arc<dyn Compressor>> {
        CompressionRegistry::default().algorithms.to_vec()
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect()
    }

    #[test]
    fn round_trip() {
        for algorithm in algorithms() {
            for len in [1, 100, 70_000] {
                let input = sample(len);
                let compressed = algorithm.compress(&input).unwrap();
                let output = algorithm.decompress(&compressed, len).unwrap();
                assert_eq!(output, input, "{}", algorithm.name());
            }
        }
    }

    #[test]
    fn exactly_the_limit_passes_one_more_fails() {
        for algorithm in algorithms() {
            let limit = 10_000;
            let at_limit = algorithm.compress(&sample(limit)).unwrap();
            assert_eq!(algorithm.decompress(&at_limit, limit).unwrap().len(), limit);

            let over = algorithm.compress(&sample(limit + 1)).unwrap();
            assert!(matches!(
                algorithm.decompress(&over, limit),
                Err(DecompressError::TooLarge { limit: 10_000 })
            ));
        }
    }

    #[test]
    fn limit_zero_admits_only_empty_messages() {
        for algorithm in algorithms() {
            let empty = algorithm.compress(b"").unwrap();
            assert!(algorithm.decompress(&empty, 0).unwrap().is_empty());
            let one = algorithm.compress(b"x").unwrap();
            assert!(matches!(
                algorithm.decompress(&one, 0),
                Err(DecompressError::TooLarge { limit: 0 })
            ));
        }
    }

    /// A gzip member that inflates to `mib` MiB of zeros.
    ///
    /// Pushing 1 GiB through the compressor takes tens of seconds in a debug build, so one MiB is
    /// deflated with a full flush (byte-aligned, no references outside itself) and that block is
    /// repeated; the CRC of the whole is combined from the CRC of one MiB.
    #[cfg(feature = "gzip")]
    fn gzip_zeros(mib: u32) -> Vec<u8> {
        use flate2::{Compress, Compression, Crc, FlushCompress};

        let zeros = vec![0u8; MIB];
        let mut deflate = Compress::new(Compression::default(), false);
        let mut block = Vec::with_capacity(64 * 1024);
        deflate
            .compress_vec(&zeros, &mut block, FlushCompress::Full)
            .unwrap();
        assert_eq!(deflate.total_in(), MIB as u64);
        let mut last_block = Vec::with_capacity(64);
        deflate
            .compress_vec(&[], &mut last_block, FlushCompress::Finish)
            .unwrap();

        let mut one_mib = Crc::new();
        one_mib.update(&zeros);
        let mut crc = Crc::new();
        let mut member = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        for _ in 0..mib {
            crc.combine(&one_mib);
            member.extend_from_slice(&block);
        }
        member.extend_from_slice(&last_block);
        member.extend_from_slice(&crc.sum().to_le_bytes());
        member.extend_from_slice(&(mib << 20).to_le_bytes());
        member
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_zeros_is_valid_gzip() {
        let inflated = Gzip::default().decompress(&gzip_zeros(4), 4 * MIB).unwrap();
        assert_eq!(inflated.len(), 4 * MIB);
        assert!(inflated.iter().all(|&b| b == 0));
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_bomb_is_refused() {
        let compressed = gzip_zeros(1024);
        assert!(compressed.len() < 2 * MIB);
        assert!(matches!(
            Gzip::default().decompress(&compressed, 4 * MIB),
            Err(DecompressError::TooLarge { limit }) if limit == 4 * MIB
        ));
    }

    #[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
    #[test]
    fn zstd_bomb_is_refused() {
        // 1 GiB of zeros, compressed while streaming so the test never holds the plain text.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        let zeros = vec![0u8; 64 * 1024];
        for _ in 0..(1 << 30) / zeros.len() {
            io::Write::write_all(&mut encoder, &zeros).unwrap();
        }
        let compressed = encoder.finish().unwrap();
        assert!(compressed.len() < 2 * MIB);
        assert!(matches!(
            Zstd::default().decompress(&compressed, 4 * MIB),
            Err(DecompressError::TooLarge { limit }) if limit == 4 * MIB
        ));
    }

    #[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
    #[test]
    fn zstd_window_beyond_the_cap_is_refused() {
        // A tiny frame may still demand a big window, which the decoder would have to allocate.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(24).unwrap();
        io::Write::write_all(&mut encoder, b"small").unwrap();
        let frame = encoder.finish().unwrap();
        assert_eq!(zstd::stream::decode_all(&frame[..]).unwrap(), b"small");
        assert!(matches!(
            Zstd::default().decompress(&frame, MIB),
            Err(DecompressError::TooMuchMemory(_))
        ));

        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(23).unwrap();
        io::Write::write_all(&mut encoder, b"small").unwrap();
        let frame = encoder.finish().unwrap();
        assert_eq!(
            Zstd::default().decompress(&frame, MIB).unwrap(),
            &b"small"[..]
        );
    }

    /// Found by the `decompress_zstd` fuzz target: a 10-byte zstd v0.6 frame made the legacy decoder,
    /// which ignores `window_log_max`, allocate 128 MiB. Legacy support is compiled out.
    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_legacy_frames_are_refused() {
        let frame = [0x26, 0xb5, 0x2f, 0xfd, 0x1f, 0xa1, 0xea, 0x01, 0x00, 0x00];
        assert!(matches!(
            Zstd::default().decompress(&frame, 3),
            Err(DecompressError::Corrupt(_))
        ));
    }

    #[test]
    fn corrupt_input_is_corrupt() {
        for algorithm in algorithms() {
            let name = algorithm.name();
            let garbage = b"definitely not compressed data";
            assert!(
                matches!(
                    algorithm.decompress(garbage, MIB),
                    Err(DecompressError::Corrupt(_))
                ),
                "{name}: garbage"
            );

            let compressed = algorithm.compress(&sample(5000)).unwrap();
            let truncated = &compressed[..compressed.len() - 4];
            assert!(
                matches!(
                    algorithm.decompress(truncated, MIB),
                    Err(DecompressError::Corrupt(_))
                ),
                "{name}: truncated"
            );

            let mut trailing = compressed.to_vec();
            trailing.extend_from_slice(b"junk after the end");
            assert!(
                matches!(
                    algorithm.decompress(&trailing, MIB),
                    Err(DecompressError::Corrupt(_))
                ),
                "{name}: trailing garbage"
            );
        }
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_flipped_payload_byte_fails_the_crc() {
        let mut compressed = Gzip { level: 0 }
            .compress(b"stored, not deflated")
            .unwrap()
            .to_vec();
        // Level 0 stores the text verbatim, so this flips a plain-text byte and only the CRC can tell.
        let at = compressed.len() - 10;
        compressed[at] ^= 0xff;
        assert!(matches!(
            Gzip::default().decompress(&compressed, MIB),
            Err(DecompressError::Corrupt(_))
        ));
    }

    #[test]
    fn concatenated_members_are_one_message() {
        // Formats whose streams may follow one another; deflate and brotli streams cannot.
        for algorithm in algorithms()
            .into_iter()
            .filter(|a| matches!(a.name(), "gzip" | "zstd" | "snappy"))
        {
            let mut body = algorithm.compress(b"hello ").unwrap().to_vec();
            body.extend_from_slice(&algorithm.compress(b"world").unwrap());
            assert_eq!(
                algorithm.decompress(&body, MIB).unwrap(),
                &b"hello world"[..]
            );
        }
    }

    #[test]
    fn trap11_zero_length_body_is_not_decompressed() {
        for algorithm in algorithms() {
            assert!(algorithm.decompress(b"", 0).unwrap().is_empty());
        }
    }

    #[cfg(all(
        feature = "gzip",
        feature = "zstd",
        feature = "br",
        feature = "deflate",
        feature = "snappy"
    ))]
    #[test]
    fn default_registry_has_all_six_in_order() {
        let registry = CompressionRegistry::default();
        assert_eq!(registry.accept_header(), "gzip,zstd,br,deflate,snappy");
        assert_eq!(registry.get("gzip").unwrap().name(), "gzip");
        assert_eq!(registry.get("GZIP").unwrap().name(), "gzip");
        assert_eq!(registry.get("br").unwrap().name(), "br");
        assert!(registry.get("identity").is_none());
        assert!(registry.get("lz4").is_none());
        assert_eq!(CompressionRegistry::empty().accept_header(), "");
    }

    #[cfg(all(feature = "gzip", feature = "zstd", feature = "br"))]
    #[test]
    fn register_replaces_by_name_in_place() {
        let mut registry = CompressionRegistry::default();
        registry.register(Arc::new(Gzip { level: 1 }));
        assert!(registry.accept_header().starts_with("gzip,zstd,br"));
        let gzip = registry.get("gzip").unwrap();
        assert_eq!(format!("{gzip:?}"), "Gzip { level: 1 }");
    }

    #[derive(Debug)]
    struct Identity;

    impl Compressor for Identity {
        fn name(&self) -> &'static str {
            "identity"
        }
        fn compress(&self, input: &[u8]) -> io::Result<Bytes> {
            Ok(Bytes::copy_from_slice(input))
        }
        fn decompress(&self, input: &[u8], limit: usize) -> Result<Bytes, DecompressError> {
            read_bounded(input, limit)
        }
    }

    #[test]
    fn identity_cannot_be_registered() {
        let mut registry = CompressionRegistry::empty();
        registry.register(Arc::new(Identity));
        assert_eq!(registry.accept_header(), "");
        assert!(registry.negotiate(Some("identity")).is_none());
    }

    #[test]
    fn read_bounded_on_a_plain_reader() {
        assert_eq!(read_bounded(&b"abc"[..], 3).unwrap(), &b"abc"[..]);
        assert!(matches!(
            read_bounded(&b"abcd"[..], 3),
            Err(DecompressError::TooLarge { limit: 3 })
        ));
        let big = sample(100_000);
        assert_eq!(read_bounded(&big[..], usize::MAX).unwrap(), big);
    }

    #[cfg(all(feature = "gzip", feature = "zstd", feature = "br", feature = "snappy"))]
    #[test]
    fn trap09_accept_list_order_no_qvalues() {
        let registry = CompressionRegistry::default();
        let pick = |accept| registry.negotiate(accept).map(|c| c.name());
        // The peer's order decides, not ours.
        assert_eq!(pick(Some("lz4, zstd, gzip")), Some("zstd"));
        assert_eq!(pick(Some("snappy, br")), Some("snappy"));
        assert_eq!(pick(Some("gzip,zstd")), Some("gzip"));
        assert_eq!(pick(Some(" , identity ,zstd")), Some("zstd"));
        assert_eq!(pick(Some("zstd;q=0.5, gzip;q=1")), Some("zstd"));
        assert_eq!(pick(Some("identity")), None);
        assert_eq!(pick(Some("lz4, xz")), None);
        assert_eq!(pick(Some("")), None);
        assert_eq!(pick(None), None);
        assert_eq!(
            CompressionRegistry::empty()
                .negotiate(Some("gzip"))
                .map(|c| c.name()),
            None
        );
    }

    #[test]
    fn trap09_accept_list_parsing() {
        let names: Vec<&str> = parse_accept_list(" gzip ,, br;q=0.1,zstd ,").collect();
        assert_eq!(names, ["gzip", "br", "zstd"]);
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn deflate_reads_zlib_and_bare_deflate() {
        use std::io::Write;
        let text = sample(3000);
        let zlib = Deflate::default().compress(&text).unwrap();
        assert!(is_zlib_header(&zlib));
        let mut bare =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        bare.write_all(&text).unwrap();
        let bare = bare.finish().unwrap();
        assert!(!is_zlib_header(&bare));
        for body in [&zlib[..], &bare[..]] {
            assert_eq!(Deflate::default().decompress(body, MIB).unwrap(), text);
        }
    }

    #[cfg(feature = "br")]
    #[test]
    fn brotli_bomb_is_refused() {
        // 64 MiB of zeros compress to a few hundred bytes.
        let zeros = vec![0u8; 64 * MIB];
        let compressed = Brotli { quality: 1 }.compress(&zeros).unwrap();
        assert!(compressed.len() < 64 * 1024, "{}", compressed.len());
        assert!(matches!(
            Brotli::default().decompress(&compressed, 4 * MIB),
            Err(DecompressError::TooLarge { limit }) if limit == 4 * MIB
        ));
    }

    #[cfg(feature = "snappy")]
    #[test]
    fn snappy_uses_the_framing_format() {
        let framed = Snappy.compress(b"hello").unwrap();
        // The stream identifier chunk: type 0xff, length 6, "sNaPpY".
        assert_eq!(&framed[..10], b"\xff\x06\x00\x00sNaPpY");
    }
}
