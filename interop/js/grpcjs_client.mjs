// Calls an interop.v1.InteropService server with grpc-js (h2c); the .proto is loaded at run time.
// grpcjs_client.mjs --target 127.0.0.1:PORT
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { StatusSchema } from "../gen/js/google/rpc/status_pb.js";
import { DETAIL_TYPE, FAIL_CODE, FAIL_MESSAGE, expect, parseArgs, queue, run } from "./common.mjs";

const args = parseArgs();
const definition = protoLoader.loadSync("interop/v1/interop.proto", {
  includeDirs: [new URL("../proto", import.meta.url).pathname],
  longs: Number,
  defaults: true,
});
const pkg = grpc.loadPackageDefinition(definition);
const Service = pkg.interop.v1.InteropService;

const c = new Service(args.target, grpc.credentials.createInsecure());
const gz = new Service(args.target, grpc.credentials.createInsecure(), {
  "grpc.default_compression_algorithm": 2, // gzip
  "grpc.default_compression_level": 2,
});
const deadline = (ms = 10000) => ({ deadline: new Date(Date.now() + ms) });
const failing = (text, count = 0) => ({ text, count, failCode: FAIL_CODE, failMessage: FAIL_MESSAGE });

function unaryCall(client, method, request, metadata = new grpc.Metadata(), options = deadline()) {
  return new Promise((resolve, reject) => {
    let headers;
    const call = client[method](request, metadata, options, (err, response) => {
      if (err) reject(err);
      else resolve({ response, headers, call });
    });
    call.on("metadata", (m) => (headers = m));
    call.on("status", (s) => (call.finalStatus = s));
  });
}

function clientStream(client, requests) {
  return new Promise((resolve, reject) => {
    const call = client.ClientStream(new grpc.Metadata(), deadline(), (err, response) =>
      err ? reject(err) : resolve(response),
    );
    for (const r of requests) call.write(r);
    call.end();
  });
}

function readStream(call) {
  return new Promise((resolve, reject) => {
    const items = [];
    let headers;
    call.on("metadata", (m) => (headers = m));
    call.on("data", (m) => items.push(m));
    call.on("error", (e) => reject(Object.assign(e, { items })));
    call.on("status", (s) => {
      if (s.code === grpc.status.OK) resolve({ items, headers, status: s });
    });
  });
}

// Reads the ErrorDetail's `reason` (field 1, a string) from its serialized bytes.
function reasonOf(bytes) {
  expect(bytes[0] === 0x0a, "detail: unexpected field");
  return Buffer.from(bytes.subarray(2, 2 + bytes[1])).toString();
}

function checkError(e, reason) {
  expect(e.code === grpc.status.FAILED_PRECONDITION, `code ${e.code}: ${e.details}`);
  expect(e.details === FAIL_MESSAGE, `message ${JSON.stringify(e.details)}`);
  const raw = e.metadata?.get("grpc-status-details-bin")?.[0];
  expect(raw, "no grpc-status-details-bin");
  const status = fromBinary(StatusSchema, raw);
  expect(status.code === 9 && status.message === FAIL_MESSAGE, `status ${status.code} ${status.message}`);
  const detail = status.details.find((d) => d.typeUrl.endsWith("/" + DETAIL_TYPE));
  expect(detail, `no ${DETAIL_TYPE} in ${status.details.map((d) => d.typeUrl)}`);
  expect(reasonOf(detail.value) === reason, "detail reason");
}

await run("unary", async () => {
  const { response } = await unaryCall(c, "Unary", { text: "hello" });
  expect(response.text === "hello", `text ${response.text}`);
  return "echoed";
});

await run("server_stream", async () => {
  const { items } = await readStream(c.ServerStream({ text: "s", count: 3 }, deadline()));
  const got = items.map((m) => m.index);
  expect(JSON.stringify(got) === "[0,1,2]", `indexes ${got}`);
  return "3 messages";
});

await run("client_stream", async () => {
  const r = await clientStream(c, ["a", "b", "c"].map((text) => ({ text })));
  expect(r.text === "a,b,c" && r.index === 3, `got ${r.text}/${r.index}`);
  return "3 requests joined";
});

await run("bidi", async () => {
  const call = c.BidiStream(deadline());
  let i = 0;
  const done = new Promise((resolve, reject) => {
    call.on("data", (m) => {
      try {
        expect(m.text === String(i) && m.index === i, `response ${i}: ${m.text}/${m.index}`);
      } catch (e) {
        reject(e);
        return;
      }
      i++;
      if (i < 3) call.write({ text: String(i) });
      else call.end();
    });
    call.on("error", reject);
    call.on("status", (s) => s.code === grpc.status.OK && resolve());
  });
  call.write({ text: "0" });
  await done;
  expect(i === 3, `${i} responses`);
  return "3 ping-pongs, full duplex";
});

await run("error", async () => {
  try {
    await unaryCall(c, "Unary", failing("unary-boom"));
    throw new Error("unary call succeeded");
  } catch (e) {
    if (e.message === "unary call succeeded") throw e;
    checkError(e, "unary-boom");
  }
  try {
    await readStream(c.ServerStream(failing("stream-boom", 2), deadline()));
    throw new Error("stream ended without an error");
  } catch (e) {
    if (e.message === "stream ended without an error") throw e;
    checkError(e, "stream-boom");
    expect(e.items.length === 2, `${e.items.length} messages before the error`);
  }
  return "code, message and detail (unary, server stream)";
});

await run("metadata", async () => {
  const md = new grpc.Metadata();
  md.set("x-echo", "unary-value");
  const { headers, call } = await unaryCall(c, "Unary", { text: "m" }, md);
  await new Promise((r) => (call.finalStatus ? r() : call.on("status", r)));
  expect(headers?.get("x-echo-header")[0] === "unary-value", `unary headers ${JSON.stringify(headers?.getMap())}`);
  const trailers = call.finalStatus.metadata;
  expect(trailers.get("x-echo-trailer")[0] === "unary-value", `unary trailers ${JSON.stringify(trailers.getMap())}`);
  const md2 = new grpc.Metadata();
  md2.set("x-echo", "stream-value");
  const s = await readStream(c.ServerStream({ text: "m", count: 1 }, md2, deadline()));
  expect(s.headers?.get("x-echo-header")[0] === "stream-value", `stream headers ${JSON.stringify(s.headers?.getMap())}`);
  expect(s.status.metadata.get("x-echo-trailer")[0] === "stream-value", `stream trailers ${JSON.stringify(s.status.metadata.getMap())}`);
  return "headers and trailers (unary, server stream)";
});

await run("deadline", async () => {
  const start = Date.now();
  try {
    await unaryCall(c, "Unary", { text: "slow", sleepMs: 3000 }, new grpc.Metadata(), deadline(300));
  } catch (e) {
    const ms = Date.now() - start;
    expect(e.code === grpc.status.DEADLINE_EXCEEDED, `code ${e.code}: ${e.details} after ${ms} ms`);
    expect(ms < 2000, `took ${ms} ms`);
    return `deadline_exceeded after ${ms} ms`;
  }
  throw new Error("call succeeded");
});

await run("gzip", async () => {
  const padding = Buffer.alloc(65536, 122);
  const { response } = await unaryCall(gz, "Unary", { text: "z", padding });
  expect(Buffer.compare(response.padding, padding) === 0, `padding of ${response.padding.length} bytes`);
  const r = await clientStream(gz, [{ text: "z", padding }, { text: "z", padding }]);
  expect(r.index === 2, "client stream");
  return "gzip requests (unary, client stream)";
});

c.close();
gz.close();
process.exit(0);
