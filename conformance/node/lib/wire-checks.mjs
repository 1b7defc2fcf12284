// What the suite's reference client checks on the wire of a server's responses, beyond what an RPC
// client library reports: the Connect error and end-stream JSON, gRPC-Web trailer blocks, the gRPC
// status trailers (grpc-status, grpc-message encoding, grpc-status-details-bin), and that only gRPC
// responses carry HTTP trailers. Problems go to the call's `feedback`, which fails the test case.
//
// The Node client's HTTP client hands each response body through `checkedBody`, which keeps a copy
// and runs the checks once the body has been read to its end.

import { base64Decode, BinaryReader, WireType } from "@bufbuild/protobuf/wire";

import { allCompressions } from "./compression.mjs";

const CODE_NAMES = [
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function validFieldValue(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 9 && (c < 32 || c === 127)) {
      return false;
    }
  }
  return true;
}

const UNPADDED_BASE64 = /^[A-Za-z0-9+/]*$/;
const PADDED_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

async function decompress(name, bytes) {
  if (!name || name === "identity") {
    return bytes;
  }
  const compression = allCompressions.find((c) => c.name === name);
  if (!compression) {
    throw new Error(`unknown encoding ${name}`);
  }
  return compression.decompress(bytes, 0xffffffff);
}

/** The enveloped messages of a body: {flags, data}; `rest` counts trailing bytes. */
function envelopes(bytes) {
  const out = [];
  let at = 0;
  while (at + 5 <= bytes.length) {
    const flags = bytes[at];
    const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    if (at + 5 + length > bytes.length) {
      break;
    }
    out.push({ flags, data: bytes.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return { messages: out, rest: bytes.length - at };
}

/** Parses JSON that must be an object without duplicate keys; feedback and undefined otherwise. */
function jsonObject(text, what, feedback) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    feedback.push(`${what}: ${e.message}`);
    return undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    feedback.push(`${what}: expecting an object but got ${JSON.stringify(value)}`);
    return undefined;
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    feedback.push(`${what}: contains duplicate key ${JSON.stringify(duplicate)}`);
    return undefined;
  }
  return value;
}

/** A key that appears twice in one JSON object of `text`, if any (a small tokenizer). */
function findDuplicateKey(text) {
  const stack = [];
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i];
    if (c === "{") {
      stack.push(new Set());
      expectKey = true;
      i++;
    } else if (c === "[") {
      stack.push(null);
      i++;
    } else if (c === "}" || c === "]") {
      stack.pop();
      i++;
    } else if (c === ",") {
      expectKey = stack.at(-1) instanceof Set;
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') {
        j += text[j] === "\\" ? 2 : 1;
      }
      const str = JSON.parse(text.slice(i, j + 1));
      if (expectKey) {
        const keys = stack.at(-1);
        if (keys.has(str)) {
          return str;
        }
        keys.add(str);
        expectKey = false;
      }
      i = j + 1;
    } else {
      i++;
    }
  }
  return undefined;
}

function checkConnectError(error, what, feedback) {
  if (error === null || typeof error !== "object" || Array.isArray(error)) {
    feedback.push(`${what}: expecting an object`);
    return;
  }
  for (const [key, value] of Object.entries(error)) {
    switch (key) {
      case "code":
        if (typeof value !== "string") {
          feedback.push(`${what}: value for key "code" is a ${typeof value} instead of a string`);
        } else if (!CODE_NAMES.includes(value)) {
          feedback.push(`${what}: value for key "code" is not a recognized error code name: ${JSON.stringify(value)}`);
        }
        break;
      case "message":
        if (typeof value !== "string") {
          feedback.push(`${what}: value for key "message" is a ${typeof value} instead of a string`);
        }
        break;
      case "details":
        if (!Array.isArray(value)) {
          feedback.push(`${what}: value for key "details" is not an array`);
        } else {
          value.forEach((detail, i) => checkConnectErrorDetail(detail, `${what}: details[${i}]`, feedback));
        }
        break;
      default:
        feedback.push(`${what}: invalid key ${JSON.stringify(key)}`);
    }
  }
  if (!("code" in error)) {
    feedback.push(`${what}: missing required key "code"`);
  }
}

function checkConnectErrorDetail(detail, what, feedback) {
  if (detail === null || typeof detail !== "object" || Array.isArray(detail)) {
    feedback.push(`${what}: expecting an object`);
    return;
  }
  for (const [key, value] of Object.entries(detail)) {
    switch (key) {
      case "type":
        if (typeof value !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(value)) {
          feedback.push(`${what}: value for key "type", ${JSON.stringify(value)}, is not a valid type name`);
        }
        break;
      case "value":
        if (typeof value !== "string" || !UNPADDED_BASE64.test(value) || value.length % 4 === 1) {
          feedback.push(`${what}: value for key "value", ${JSON.stringify(value)}, is not valid unpadded base64`);
        }
        break;
      case "debug":
        break;
      default:
        feedback.push(`${what}: invalid key ${JSON.stringify(key)}`);
    }
  }
  if (!("type" in detail)) {
    feedback.push(`${what}: missing required key "type"`);
  }
  if (!("value" in detail)) {
    feedback.push(`${what}: missing required key "value"`);
  }
}

function checkConnectEndStream(endStream, feedback) {
  const what = "connect end stream JSON";
  for (const [key, value] of Object.entries(endStream)) {
    switch (key) {
      case "error":
        checkConnectError(value, "connect error JSON", feedback);
        break;
      case "metadata":
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          feedback.push(`${what}: value for key "metadata" is not an object`);
          break;
        }
        for (const [name, values] of Object.entries(value)) {
          if (!TOKEN.test(name)) {
            feedback.push(`${what}: metadata[${JSON.stringify(name)}]: entry key is not a valid HTTP field name`);
          }
          if (!Array.isArray(values)) {
            feedback.push(`${what}: metadata[${JSON.stringify(name)}]: value is not an array of strings`);
            continue;
          }
          values.forEach((v, i) => {
            if (typeof v !== "string") {
              feedback.push(`${what}: metadata[${JSON.stringify(name)}]: value #${i + 1} is not a string`);
            } else if (!validFieldValue(v)) {
              feedback.push(`${what}: metadata[${JSON.stringify(name)}]: value #${i + 1} is not a valid HTTP field value`);
            }
          });
        }
        break;
      default:
        feedback.push(`${what}: invalid key ${JSON.stringify(key)}`);
    }
  }
}

/** The trailer block of a gRPC-Web response, checked; as a map of lower-case name to values. */
function checkGrpcWebTrailers(text, feedback) {
  const trailers = new Map();
  const lines = text.split("\n");
  let withoutCr = 0;
  let blank = 0;
  let endsInCrlf = false;
  lines.forEach((line, i) => {
    if (i === lines.length - 1) {
      if (line === "") {
        endsInCrlf = true;
        return;
      }
    } else if (!line.endsWith("\r")) {
      withoutCr++;
    } else {
      line = line.slice(0, -1);
    }
    if (line === "") {
      blank++;
      return;
    }
    const colon = line.indexOf(":");
    if (colon < 0) {
      feedback.push(`grpc-web trailers include invalid field (missing colon): ${JSON.stringify(line)}`);
      return;
    }
    const key = line.slice(0, colon);
    if (!TOKEN.test(key)) {
      feedback.push(`grpc-web trailers include invalid field; name contains invalid characters: ${JSON.stringify(line)}`);
    }
    if (key !== key.toLowerCase()) {
      feedback.push(`grpc-web trailers include non-lower-case field key: ${JSON.stringify(key)}`);
    }
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (!validFieldValue(value)) {
      feedback.push(`grpc-web trailers include invalid field; value contains invalid characters: ${JSON.stringify(line)}`);
    }
    const name = key.toLowerCase();
    trailers.set(name, [...(trailers.get(name) ?? []), value]);
  });
  if (blank > 0) {
    feedback.push("grpc-web trailers include blank lines");
  }
  if (withoutCr > 0) {
    feedback.push("grpc-web trailers have lines with LF line ending instead of CRLF");
  }
  if (!endsInCrlf) {
    feedback.push("grpc-web trailers should end with CRLF but does not");
  }
  return trailers;
}

/** A fetch `Headers` as a map of lower-case name to values (joined values count as one). */
function headerMap(headers) {
  const map = new Map();
  headers.forEach((value, name) => map.set(name, [value]));
  return map;
}

/** A google.rpc.Status in the binary format: its code, message and number of details. */
function decodeStatus(bytes) {
  const reader = new BinaryReader(bytes);
  const status = { code: 0, message: "", details: 0 };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) {
      status.code = reader.int32();
    } else if (field === 2 && wireType === WireType.LengthDelimited) {
      status.message = reader.string();
    } else if (field === 3 && wireType === WireType.LengthDelimited) {
      reader.bytes();
      status.details++;
    } else {
      reader.skip(wireType, field);
    }
  }
  return status;
}

function shouldEscape(c) {
  return c < 0x20 || c > 0x7e || c === 0x25;
}

function checkGrpcStatus(map, feedback) {
  const status = map.get("grpc-status") ?? [];
  let code;
  if (status.length > 1) {
    feedback.push(`trailers include multiple 'grpc-status' keys (${status.length})`);
  } else if (status.length === 0) {
    feedback.push("trailers did not include 'grpc-status' key");
  } else if (!/^[0-9]+$/.test(status[0])) {
    feedback.push(`trailers include invalid 'grpc-status' value ${JSON.stringify(status[0])}`);
  } else {
    code = Number(status[0]);
    if (code > 16) {
      feedback.push(`trailers include invalid 'grpc-status' value ${code}: should be >= 0 && <= 16`);
    }
  }
  const messages = map.get("grpc-message") ?? [];
  if (messages.length > 1) {
    feedback.push(`trailers include multiple 'grpc-message' keys (${messages.length})`);
  }
  let message;
  if (messages.length > 0) {
    const raw = messages[0];
    let ok = true;
    for (let i = 0; i < raw.length; i++) {
      const c = raw.charCodeAt(i);
      if (c === 0x25) {
        if (!/^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3))) {
          feedback.push(`trailers include incorrectly-encoded 'grpc-message' value ${JSON.stringify(raw)}: bad percent-encoding at position ${i}`);
          ok = false;
          break;
        }
        i += 2;
      } else if (shouldEscape(c)) {
        feedback.push(`trailers include incorrectly-encoded 'grpc-message' value ${JSON.stringify(raw)}: byte at position ${i} should be percent-encoded`);
        ok = false;
        break;
      }
    }
    if (code === 0 && raw !== "") {
      feedback.push("trailers include a non-empty 'grpc-message' value with zero/okay 'grpc-status'");
    }
    if (ok) {
      try {
        message = decodeURIComponent(raw);
      } catch {
        message = undefined;
      }
    }
  }
  const details = map.get("grpc-status-details-bin") ?? [];
  if (details.length > 1) {
    feedback.push(`trailers include multiple 'grpc-status-details-bin' keys (${details.length})`);
  }
  if (details.length === 0) {
    return;
  }
  const raw = details[0];
  if (!PADDED_BASE64.test(raw)) {
    feedback.push("trailers include incorrectly-encoded 'grpc-status-details-bin' value");
    return;
  }
  if (raw.includes("=")) {
    feedback.push(`trailers include 'grpc-status-details-bin' value with padding but servers should emit unpadded: ${raw}`);
  }
  let proto;
  try {
    proto = decodeStatus(base64Decode(raw));
  } catch (e) {
    feedback.push(`trailers include un-parseable 'grpc-status-details-bin' value: ${e.message}`);
    return;
  }
  if (code !== undefined && proto.code !== code) {
    feedback.push(`trailers include 'grpc-status-details-bin' value that disagrees with 'grpc-status' value: ${proto.code} != ${code}`);
  }
  if (proto.code === 0 && proto.details > 0) {
    feedback.push("trailers include 'grpc-status-details-bin' value with zero/okay 'grpc-status' and non-empty details");
  }
  if (message !== undefined && proto.message !== message) {
    feedback.push(`trailers include 'grpc-status-details-bin' value that disagrees with 'grpc-message' value: ${JSON.stringify(proto.message)} != ${JSON.stringify(message)}`);
  }
}

function hasTrailers(trailer) {
  let any = false;
  trailer?.forEach(() => {
    any = true;
  });
  return any;
}

/** The flag of a body's end-stream message, for the protocols that send one in the body. */
function endStreamFlag(contentType) {
  if (contentType.startsWith("application/connect+")) {
    return 0x02;
  }
  if (contentType.startsWith("application/grpc-web")) {
    return 0x80;
  }
  return 0;
}

/** Checks a Connect or gRPC-Web end-stream message. */
async function examineEndStream(response, end, feedback) {
  const contentType = response.header.get("content-type") ?? "";
  if (contentType.startsWith("application/connect+")) {
    const data = end.flags & 0x01 ? await decompress(response.header.get("connect-content-encoding"), end.data) : end.data;
    const endStream = jsonObject(new TextDecoder().decode(data), "connect end stream JSON", feedback);
    if (endStream) {
      checkConnectEndStream(endStream, feedback);
    }
  } else {
    const data = end.flags & 0x01 ? await decompress(response.header.get("grpc-encoding"), end.data) : end.data;
    checkGrpcStatus(checkGrpcWebTrailers(new TextDecoder().decode(data), feedback), feedback);
  }
}

/** Checks a response whose body was read to its end (`sawEndStream`: its end-stream was checked). */
async function examineEnd(response, body, sawEndStream, feedback) {
  const contentType = response.header.get("content-type") ?? "";
  const grpc = contentType === "application/grpc" || contentType.startsWith("application/grpc+");
  if (contentType === "application/json" && response.status !== 200) {
    const text = new TextDecoder().decode(await decompress(response.header.get("content-encoding"), body));
    const error = jsonObject(text, "connect error JSON", feedback);
    if (error) {
      checkConnectError(error, "connect error JSON", feedback);
    }
  } else if (contentType.startsWith("application/grpc-web")) {
    if (!sawEndStream && body.length === 0 && !hasTrailers(response.trailer)) {
      checkGrpcStatus(headerMap(response.header), feedback);
    }
  } else if (grpc) {
    if (body.length === 0 && !hasTrailers(response.trailer)) {
      checkGrpcStatus(headerMap(response.header), feedback);
    } else if (hasTrailers(response.trailer)) {
      checkGrpcStatus(headerMap(response.trailer), feedback);
    }
  }
  if (!grpc && hasTrailers(response.trailer)) {
    let n = 0;
    response.trailer.forEach(() => n++);
    feedback.push(`response included ${n} HTTP trailers but should not have any`);
  }
}

async function guarded(feedback, check) {
  try {
    await check();
  } catch (e) {
    feedback.push(`examining the response: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * The response body, passed through. An end-stream message in the body is checked as soon as it
 * is complete, before the client library reads it (a library may stop reading at an error in
 * it); the rest once the body has been read to its end.
 */
export function checkedBody(response, feedback) {
  const body = response.body;
  const flag = endStreamFlag(response.header.get("content-type") ?? "");
  return (async function* () {
    const chunks = [];
    let sawEndStream = false;
    for await (const chunk of body) {
      chunks.push(chunk);
      if (flag !== 0 && !sawEndStream) {
        const end = envelopes(Buffer.concat(chunks)).messages.find((m) => (m.flags & flag) !== 0);
        if (end) {
          sawEndStream = true;
          await guarded(feedback, () => examineEndStream(response, end, feedback));
        }
      }
      yield chunk;
    }
    await guarded(feedback, () => examineEnd(response, Buffer.concat(chunks), sawEndStream, feedback));
  })();
}
