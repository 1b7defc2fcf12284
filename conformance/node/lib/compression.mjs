// The six compressions of the conformance suite as connect-es `Compression` values, for the Node
// client and server. gzip and br are connect-node's own. The others are built here:
//   deflate: node:zlib's zlib-format deflate/inflate (HTTP's "deflate", RFC 9110 8.4.1.2)
//   zstd:    compression with @bokuweb/zstd-wasm, decompression with fzstd (any frame, also those
//            without a content size, which zstd-wasm's one-shot decoder cannot size)
//   snappy:  the snappy framing format (stream identifier, CRC-32C checked chunks) around
//            snappyjs's raw blocks, as the suite's reference implementations use it

import * as zlib from "node:zlib";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import zstdWasm from "@bokuweb/zstd-wasm";
import * as fzstd from "fzstd";
import snappy from "snappyjs";

import { Compression } from "../gen/connectrpc/conformance/v1/config_pb.js";

const deflate = promisify(zlib.deflate);
const inflate = promisify(zlib.inflate);

/** A decompressed message over the limit (the uncompressed size counts). */
function tooLarge(readMaxBytes) {
  return new ConnectError(
    `message is larger than configured readMaxBytes ${readMaxBytes} after decompression`,
    Code.ResourceExhausted,
  );
}

function corrupt(name, cause) {
  return new ConnectError(
    `${name} decompression failed: ${cause instanceof Error ? cause.message : String(cause)}`,
    Code.InvalidArgument,
  );
}

const compressionDeflate = {
  name: "deflate",
  async compress(bytes) {
    return new Uint8Array(await deflate(bytes));
  },
  async decompress(bytes, readMaxBytes) {
    if (bytes.length == 0) {
      return new Uint8Array(0);
    }
    try {
      return new Uint8Array(await inflate(bytes, { maxOutputLength: readMaxBytes }));
    } catch (e) {
      if (e && e.code === "ERR_BUFFER_TOO_LARGE") {
        throw tooLarge(readMaxBytes);
      }
      throw corrupt("deflate", e);
    }
  },
};

// Compiling the module takes a while: once, before the first call (a stall inside a timed call
// would shift the timeouts it echoes).
await zstdWasm.init();

const compressionZstd = {
  name: "zstd",
  async compress(bytes) {
    return new Uint8Array(zstdWasm.compress(bytes, 3));
  },
  async decompress(bytes, readMaxBytes) {
    if (bytes.length == 0) {
      return new Uint8Array(0);
    }
    let out;
    try {
      out = fzstd.decompress(bytes);
    } catch (e) {
      throw corrupt("zstd", e);
    }
    if (out.length > readMaxBytes) {
      throw tooLarge(readMaxBytes);
    }
    return out;
  },
};

// CRC-32C (Castagnoli), reflected, as the snappy framing format checks each chunk with.
const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) {
      c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    }
    table[n] = c >>> 0;
  }
  return table;
})();

function maskedCrc32c(bytes) {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  }
  crc = (crc ^ 0xffffffff) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

const SNAPPY_STREAM_ID = Uint8Array.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
const SNAPPY_MAX_BLOCK = 65536;

function snappyChunk(type, crc, data) {
  const length = data.length + 4;
  const chunk = new Uint8Array(8 + data.length);
  chunk[0] = type;
  chunk[1] = length & 0xff;
  chunk[2] = (length >>> 8) & 0xff;
  chunk[3] = (length >>> 16) & 0xff;
  new DataView(chunk.buffer).setUint32(4, crc, true);
  chunk.set(data, 8);
  return chunk;
}

function snappyFrame(bytes) {
  const parts = [SNAPPY_STREAM_ID];
  for (let at = 0; at < bytes.length; at += SNAPPY_MAX_BLOCK) {
    const block = bytes.subarray(at, at + SNAPPY_MAX_BLOCK);
    const crc = maskedCrc32c(block);
    const compressed = snappy.compress(block);
    parts.push(
      compressed.length < block.length
        ? snappyChunk(0x00, crc, compressed)
        : snappyChunk(0x01, crc, block),
    );
  }
  return Buffer.concat(parts);
}

function snappyUnframe(bytes, readMaxBytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = [];
  let total = 0;
  let at = 0;
  let sawStreamId = false;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) {
      throw new Error("truncated chunk header");
    }
    const type = bytes[at];
    const length = bytes[at + 1] | (bytes[at + 2] << 8) | (bytes[at + 3] << 16);
    const body = at + 4;
    if (body + length > bytes.length) {
      throw new Error("truncated chunk");
    }
    if (type === 0xff) {
      const id = bytes.subarray(body, body + length);
      if (length !== 6 || Buffer.compare(Buffer.from(id), Buffer.from(SNAPPY_STREAM_ID.subarray(4))) !== 0) {
        throw new Error("bad stream identifier");
      }
      sawStreamId = true;
    } else if (!sawStreamId) {
      throw new Error("missing stream identifier");
    } else if (type === 0x00 || type === 0x01) {
      if (length < 4) {
        throw new Error("chunk too short");
      }
      const crc = view.getUint32(body, true);
      const payload = bytes.subarray(body + 4, body + length);
      const data = type === 0x00 ? snappy.uncompress(payload, SNAPPY_MAX_BLOCK) : payload;
      if (maskedCrc32c(data) !== crc) {
        throw new Error("checksum mismatch");
      }
      total += data.length;
      if (total > readMaxBytes) {
        throw tooLarge(readMaxBytes);
      }
      out.push(data);
    } else if (type >= 0x02 && type <= 0x7f) {
      throw new Error(`reserved unskippable chunk type ${type}`);
    }
    // 0x80-0xfe: padding and reserved skippable chunks.
    at = body + length;
  }
  return new Uint8Array(Buffer.concat(out));
}

const compressionSnappy = {
  name: "snappy",
  async compress(bytes) {
    return new Uint8Array(snappyFrame(bytes));
  },
  async decompress(bytes, readMaxBytes) {
    if (bytes.length == 0) {
      return new Uint8Array(0);
    }
    try {
      return snappyUnframe(bytes, readMaxBytes);
    } catch (e) {
      if (e instanceof ConnectError) {
        throw e;
      }
      throw corrupt("snappy", e);
    }
  },
};

/** Every compression the peers accept, by preference. */
export const allCompressions = [
  compressionGzip,
  compressionBrotli,
  compressionZstd,
  compressionDeflate,
  compressionSnappy,
];

/** The compression for a suite `Compression` value; `null` for identity. */
export function compressionFor(value) {
  switch (value) {
    case Compression.UNSPECIFIED:
    case Compression.IDENTITY:
      return null;
    case Compression.GZIP:
      return compressionGzip;
    case Compression.BR:
      return compressionBrotli;
    case Compression.ZSTD:
      return compressionZstd;
    case Compression.DEFLATE:
      return compressionDeflate;
    case Compression.SNAPPY:
      return compressionSnappy;
    default:
      throw new Error(`unknown compression ${value}`);
  }
}

/** The encoding name the suite's `Compression` value stands for. */
export function compressionName(value) {
  return compressionFor(value)?.name ?? "identity";
}
