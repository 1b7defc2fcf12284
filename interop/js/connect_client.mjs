// Calls an interop.v1.InteropService server with connect-node; one CHECK line per kind.
// connect_client.mjs --target URL --protocol connect|grpc|grpcweb --http-version 1.1|2 --codec proto|json
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { InteropService, RequestSchema, ErrorDetailSchema } from "../gen/js/interop/v1/interop_pb.js";
import { DETAIL_TYPE, FAIL_CODE, FAIL_MESSAGE, emit, expect, parseArgs, queue, run } from "./common.mjs";

const args = parseArgs();
const factories = { connect: createConnectTransport, grpc: createGrpcTransport, grpcweb: createGrpcWebTransport };
const http2 = args["http-version"] === "2";

function client(sendCompression) {
  const options = {
    baseUrl: args.target,
    httpVersion: http2 ? "2" : "1.1",
    useBinaryFormat: args.codec !== "json",
    acceptCompression: [compressionGzip],
    ...(sendCompression ? { sendCompression, compressMinBytes: 1 } : {}),
  };
  if (args.protocol === "grpc") delete options.httpVersion; // always HTTP/2
  return createClient(InteropService, factories[args.protocol](options));
}

const req = (init) => create(RequestSchema, init);
const failing = (text, count = 0) => req({ text, count, failCode: FAIL_CODE, failMessage: FAIL_MESSAGE });
async function* items(list) {
  for (const i of list) yield i;
}

function checkError(e, reason) {
  const err = ConnectError.from(e);
  expect(err.code === Code.FailedPrecondition, `code ${Code[err.code]}: ${err.rawMessage}`);
  expect(err.rawMessage === FAIL_MESSAGE, `message ${JSON.stringify(err.rawMessage)}`);
  const found = err.findDetails(ErrorDetailSchema);
  expect(found.length === 1, `no ${DETAIL_TYPE} detail in ${JSON.stringify(err.details)}`);
  expect(found[0].reason === reason, `detail reason ${found[0].reason}`);
}

const c = client();

await run("unary", async () => {
  const r = await c.unary(req({ text: "hello" }));
  expect(r.text === "hello", `text ${r.text}`);
  return "echoed";
});

await run("server_stream", async () => {
  const got = [];
  for await (const m of c.serverStream(req({ text: "s", count: 3 }))) got.push(m.index);
  expect(JSON.stringify(got) === "[0,1,2]", `indexes ${got}`);
  return "3 messages";
});

await run("client_stream", async () => {
  const r = await c.clientStream(items(["a", "b", "c"].map((text) => req({ text }))));
  expect(r.text === "a,b,c" && r.index === 3, `got ${r.text}/${r.index}`);
  return "3 requests joined";
});

if (http2) {
  await run("bidi", async () => {
    const q = queue();
    q.push(req({ text: "0" }));
    let i = 0;
    for await (const m of c.bidiStream(q)) {
      expect(m.text === String(i) && m.index === i, `response ${i}: ${m.text}/${m.index}`);
      i++;
      q.push(i < 3 ? req({ text: String(i) }) : null);
    }
    expect(i === 3, `${i} responses`);
    return "3 ping-pongs, full duplex";
  });
} else {
  emit("bidi", "NA", "full-duplex bidi needs HTTP/2 (connect-node refuses it over HTTP/1.1)");
}

await run("error", async () => {
  try {
    await c.unary(failing("unary-boom"));
    throw new Error("unary call succeeded");
  } catch (e) {
    if (e.message === "unary call succeeded") throw e;
    checkError(e, "unary-boom");
  }
  let got = 0;
  try {
    for await (const _ of c.serverStream(failing("stream-boom", 2))) got++;
    throw new Error("stream ended without an error");
  } catch (e) {
    if (e.message === "stream ended without an error") throw e;
    checkError(e, "stream-boom");
  }
  expect(got === 2, `${got} messages before the error`);
  return "code, message and detail (unary, server stream)";
});

await run("metadata", async () => {
  let headers, trailers;
  await c.unary(req({ text: "m" }), {
    headers: { "x-echo": "unary-value" },
    onHeader: (h) => (headers = h),
    onTrailer: (t) => (trailers = t),
  });
  expect(headers?.get("x-echo-header") === "unary-value", `unary headers ${JSON.stringify([...(headers ?? [])])}`);
  expect(trailers?.get("x-echo-trailer") === "unary-value", `unary trailers ${JSON.stringify([...(trailers ?? [])])}`);
  headers = trailers = undefined;
  const stream = c.serverStream(req({ text: "m", count: 1 }), {
    headers: { "x-echo": "stream-value" },
    onHeader: (h) => (headers = h),
    onTrailer: (t) => (trailers = t),
  });
  for await (const _ of stream);
  expect(headers?.get("x-echo-header") === "stream-value", `stream headers ${JSON.stringify([...(headers ?? [])])}`);
  expect(trailers?.get("x-echo-trailer") === "stream-value", `stream trailers ${JSON.stringify([...(trailers ?? [])])}`);
  return "headers and trailers (unary, server stream)";
});

await run("deadline", async () => {
  const start = Date.now();
  try {
    await c.unary(req({ text: "slow", sleepMs: 3000 }), { timeoutMs: 300 });
  } catch (e) {
    const err = ConnectError.from(e);
    const ms = Date.now() - start;
    expect(err.code === Code.DeadlineExceeded, `${Code[err.code]}: ${err.rawMessage} after ${ms} ms`);
    expect(ms < 2000, `took ${ms} ms`);
    return `deadline_exceeded after ${ms} ms`;
  }
  throw new Error("call succeeded");
});

await run("gzip", async () => {
  const z = client(compressionGzip);
  const padding = new Uint8Array(65536).fill(122);
  const r = await z.unary(req({ text: "z", padding }));
  expect(r.padding.length === padding.length && r.padding.every((b) => b === 122), `padding of ${r.padding.length} bytes`);
  const r2 = await z.clientStream(items([req({ text: "z", padding }), req({ text: "z", padding })]));
  expect(r2.index === 2, "client stream");
  return "gzip requests (unary, client stream)";
});

process.exit(0);
