// The conformance runner's stdin/stdout framing: each message is a 4-byte big-endian length, then
// the message in the protobuf binary format.

import { fromBinary, toBinary } from "@bufbuild/protobuf";

/** Yields each size-delimited message of `input` (a Node readable) until its end. */
export async function* readMessages(input, schema) {
  let buffered = Buffer.alloc(0);
  for await (const chunk of input) {
    buffered = buffered.length == 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4) {
      const size = buffered.readUInt32BE(0);
      if (buffered.length < 4 + size) {
        break;
      }
      const bytes = buffered.subarray(4, 4 + size);
      buffered = buffered.subarray(4 + size);
      yield fromBinary(schema, bytes);
    }
  }
  if (buffered.length > 0) {
    throw new Error(`input ended inside a message (${buffered.length} bytes left over)`);
  }
}

/** Writes one size-delimited message in a single write, so concurrent writers never interleave. */
export function writeMessage(output, schema, message) {
  const bytes = toBinary(schema, message);
  const frame = Buffer.alloc(4 + bytes.length);
  frame.writeUInt32BE(bytes.length, 0);
  frame.set(bytes, 4);
  return new Promise((resolve, reject) => {
    output.write(frame, (err) => (err ? reject(err) : resolve()));
  });
}
