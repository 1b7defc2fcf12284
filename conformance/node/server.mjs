// A conformance server on connect-es (@connectrpc/connect-node): the server-under-test protocol of
// the ConnectRPC conformance suite (docs/testing_servers.md), used by conformance-runner as the
// third-party server our client calls.
//
// Reads one size-delimited ServerCompatRequest from stdin, listens on 127.0.0.1 (an ephemeral
// port), writes a ServerCompatResponse to stdout and serves ConformanceService until killed
// (it keeps serving after stdin closes).
//
// Like the suite's reference server, it serves the requested HTTP version only: `http.createServer`
// (HTTP/1.1) or `http2.createServer` (h2c, prior knowledge) in plain text, `https.createServer`
// (ALPN http/1.1) or `http2.createSecureServer` (ALPN h2) with TLS. A client that ignores the
// requested version over TLS (the docs allow it) then still negotiates the right one.
//
// Like the suite's reference server, each call that carries `X-Test-Case-Name` is checked against
// the `X-Expect-*` headers the runner adds (HTTP version and method, protocol, codec, compression,
// TLS and client certificate). A mismatch fails the call with an error that says what differed,
// and each problem is also written to stderr as `FEEDBACK<TAB>test name<TAB>problem`, which the
// runner attaches to the test case (that also covers problems seen after the response, such as
// request trailers). The timeout header of such calls is removed before connect-node sees it, so
// that the client, which is under test, has to enforce its deadline; the request info still
// echoes it.

import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import { X509Certificate } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import {
  BidiStreamRequestSchema,
  ClientStreamRequestSchema,
  ConformancePayload_RequestInfoSchema,
  ConformancePayload_ConnectGetInfoSchema,
  ConformanceService,
  HeaderSchema,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
} from "./gen/connectrpc/conformance/v1/service_pb.js";
import {
  ServerCompatRequestSchema,
  ServerCompatResponseSchema,
} from "./gen/connectrpc/conformance/v1/server_compat_pb.js";
import {
  Codec,
  Compression,
  HTTPVersion,
  Protocol,
} from "./gen/connectrpc/conformance/v1/config_pb.js";
import { allCompressions, compressionName } from "./lib/compression.mjs";
import { appendHeaders, jsonOptions, protoToError, sleep } from "./lib/common.mjs";
import { readMessages, writeMessage } from "./lib/wire.mjs";

// ---------------------------------------------------------------------------------------------
// What the request listener learns about a call, for the handlers.

/** @type {import("@connectrpc/connect").ContextKey<CallFacts | undefined>} */
const factsKey = createContextKey(undefined, { description: "conformance call facts" });

/**
 * @typedef {object} CallFacts
 * @property {{name: string, value: string[]}[]} headers request headers as received, in order
 * @property {number | undefined} timeoutMs the timeout removed from the request (reference mode)
 * @property {string[]} problems what differed from the X-Expect-* headers
 */

/** The request headers as received (duplicates kept apart), grouped by lower-case name. */
function rawHeaderList(req, skip) {
  const byName = new Map();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    if (name.startsWith(":") || skip.has(name)) {
      continue;
    }
    if (!byName.has(name)) {
      byName.set(name, []);
    }
    byName.get(name).push(req.rawHeaders[i + 1]);
  }
  return [...byName].map(([name, value]) => ({ name, value }));
}

function headerValues(req, name) {
  const values = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() === name) {
      values.push(req.rawHeaders[i + 1]);
    }
  }
  return values;
}

const callsPerTest = new Map();

function feedback(testName, problem) {
  process.stderr.write(`FEEDBACK\t${testName}\t${problem.replace(/[\t\n]/g, " ")}\n`);
}

/**
 * Checks a call against the X-Expect-* headers, as the suite's reference server does; removes
 * the timeout header. Returns undefined for calls without X-Test-Case-Name.
 */
function referenceChecks(req) {
  const testName = headerValues(req, "x-test-case-name")[0];
  if (testName === undefined) {
    return undefined;
  }
  const problems = [];
  const one = (name) => {
    const values = headerValues(req, name);
    if (values.length > 1) {
      problems.push(`${name} header appears ${values.length} times; should appear just once`);
    }
    return values[0];
  };
  const calls = (callsPerTest.get(testName) ?? 0) + 1;
  callsPerTest.set(testName, calls);
  if (calls > 1) {
    problems.push(`client sent another request (#${calls}) for the same test case`);
  }
  const enumHeader = (name, values) => {
    const raw = one(name);
    const n = Number.parseInt(raw ?? "", 10);
    if (!Number.isInteger(n) || !(n in values)) {
      problems.push(`invalid value for ${name} header: ${JSON.stringify(raw)}`);
      return undefined;
    }
    return n;
  };

  const url = new URL(req.url ?? "/", "http://x");
  const isGet = req.method === "GET";
  const queryParam = (name) => {
    const values = url.searchParams.getAll(name);
    if (values.length > 1) {
      problems.push(`${name} query string param appears ${values.length} times; should appear just once`);
    }
    return values[0];
  };
  const contentType = one("content-type") ?? "";

  const version = enumHeader("x-expect-http-version", HTTPVersion);
  if (version !== undefined) {
    const want = { [HTTPVersion.HTTP_VERSION_1]: 1, [HTTPVersion.HTTP_VERSION_2]: 2, [HTTPVersion.HTTP_VERSION_3]: 3 }[version];
    if (want === undefined) {
      problems.push(`invalid expected HTTP version ${version}`);
    } else if (req.httpVersionMajor !== want) {
      problems.push(`expected HTTP version ${want}; instead got ${req.httpVersionMajor}`);
    }
  }

  let timeoutMs;
  const protocol = enumHeader("x-expect-protocol", Protocol);
  if (protocol !== undefined) {
    let actual;
    if (contentType === "application/grpc" || contentType.startsWith("application/grpc+")) {
      actual = Protocol.GRPC;
    } else if (contentType === "application/grpc-web" || contentType.startsWith("application/grpc-web+")) {
      actual = Protocol.GRPC_WEB;
    } else if (contentType.startsWith("application/") || isGet) {
      actual = Protocol.CONNECT;
    }
    if (actual === undefined) {
      problems.push(`could not determine protocol from content-type ${JSON.stringify(contentType)}`);
    } else if (actual !== protocol) {
      problems.push(`expected protocol ${Protocol[protocol]}; instead got ${Protocol[actual]}`);
    } else if (protocol === Protocol.GRPC && one("te") !== "trailers") {
      problems.push("gRPC protocol client should use 'te: trailers' header to indicate to proxies that it expects trailers");
    }
    timeoutMs = takeTimeout(req, protocol, problems, one);
  }

  const codec = enumHeader("x-expect-codec", Codec);
  if (codec !== undefined) {
    const want = { [Codec.PROTO]: "proto", [Codec.JSON]: "json" }[codec];
    let actual;
    if (isGet) {
      if (headerValues(req, "content-type").length > 0) {
        problems.push("content-type header should not appear with method GET");
      }
      actual = queryParam("encoding");
      if (actual === undefined) {
        problems.push("encoding query parameter is missing");
      }
    } else if (contentType === "application/grpc" || contentType === "application/grpc-web") {
      actual = "proto";
    } else {
      const match = /^application\/(?:grpc\+|grpc-web\+|connect\+)?(.*)$/.exec(contentType);
      actual = match?.[1];
    }
    if (want === undefined) {
      problems.push(`invalid expected codec ${codec}`);
    } else if (actual !== undefined && actual !== want) {
      problems.push(`expected codec ${want}; instead got ${actual}`);
    }
  }

  const compression = enumHeader("x-expect-compression", Compression);
  if (compression !== undefined) {
    const want = compressionName(compression);
    let actual;
    if (isGet) {
      actual = queryParam("compression");
    } else if (contentType.startsWith("application/grpc")) {
      actual = one("grpc-encoding");
    } else if (contentType.startsWith("application/connect+")) {
      actual = one("connect-content-encoding");
    } else if (contentType.startsWith("application/")) {
      actual = one("content-encoding");
    }
    actual ??= "identity";
    if (want !== actual) {
      problems.push(`expected compression ${want}; instead got ${actual}`);
    }
  }

  const tlsValue = one("x-expect-tls");
  if (tlsValue !== "true" && tlsValue !== "false") {
    problems.push(`invalid value for x-expect-tls header: ${JSON.stringify(tlsValue)}`);
  } else {
    const socket = req.socket;
    const encrypted = socket?.encrypted === true;
    if (tlsValue === "true" && !encrypted) {
      problems.push("expecting TLS request but instead was plain-text");
    } else if (tlsValue === "false" && encrypted) {
      problems.push("expecting plain-text request but instead was TLS");
    } else if (encrypted) {
      const wantCert = one("x-expect-client-cert") ?? "";
      const peer = socket.getPeerCertificate?.();
      const gotCert = peer?.subject?.CN ?? "";
      if (wantCert !== gotCert) {
        problems.push(`expecting client cert ${JSON.stringify(wantCert)}, instead was ${JSON.stringify(gotCert)}`);
      }
    }
  }

  const method = one("x-expect-http-method");
  if (req.method !== method) {
    problems.push(`expected HTTP method ${JSON.stringify(method)}, got ${JSON.stringify(req.method)}`);
  }

  for (const problem of problems) {
    feedback(testName, problem);
  }
  req.on("end", () => {
    const trailers = Object.keys(req.trailers ?? {}).filter((k) => !k.startsWith(":"));
    if (trailers.length > 0) {
      feedback(testName, `request should NOT include any HTTP trailers (${trailers.length} trailer keys found)`);
    }
  });
  return { testName, problems, timeoutMs };
}

/** Removes the call's timeout header; returns the timeout in milliseconds. */
function takeTimeout(req, protocol, problems, one) {
  const name = protocol === Protocol.CONNECT ? "connect-timeout-ms" : "grpc-timeout";
  const value = one(name);
  if (value === undefined) {
    return undefined;
  }
  delete req.headers[name];
  if (protocol === Protocol.CONNECT) {
    if (!/^[0-9]{1,10}$/.test(value)) {
      problems.push(`invalid value for ${name} header: ${JSON.stringify(value)}`);
      return undefined;
    }
    return Number(value);
  }
  const match = /^([0-9]{1,8})([HMSmun])$/.exec(value);
  if (!match) {
    problems.push(`invalid value for ${name} header: ${JSON.stringify(value)}`);
    return undefined;
  }
  const n = Number(match[1]);
  const ms = { H: 3600000, M: 60000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[match[2]];
  return Math.floor(n * ms);
}

// ---------------------------------------------------------------------------------------------
// ConformanceService.

function checkFacts(ctx) {
  const facts = ctx.values.get(factsKey);
  if (facts && facts.problems.length > 0) {
    throw new ConnectError(
      `the call differs from what the test case expects: ${facts.problems.join("; ")}`,
      Code.FailedPrecondition,
    );
  }
  return facts;
}

function requestInfo(ctx, requests) {
  const facts = ctx.values.get(factsKey);
  const timeoutMs = facts && facts.timeoutMs !== undefined ? facts.timeoutMs : ctx.timeoutMs();
  const info = create(ConformancePayload_RequestInfoSchema, {
    requestHeaders: (facts?.headers ?? []).map((h) => create(HeaderSchema, h)),
    requests,
  });
  if (timeoutMs !== undefined) {
    info.timeoutMs = BigInt(Math.max(0, Math.floor(timeoutMs)));
  }
  if (ctx.requestMethod === "GET") {
    const params = new Map();
    for (const [name, value] of new URL(ctx.url, "http://x").searchParams) {
      if (!params.has(name)) {
        params.set(name, []);
      }
      params.get(name).push(value);
    }
    info.connectGetInfo = create(ConformancePayload_ConnectGetInfoSchema, {
      queryParams: [...params].map(([name, value]) => create(HeaderSchema, { name, value })),
    });
  }
  return info;
}

function infoAny(info) {
  return anyPack(ConformancePayload_RequestInfoSchema, info);
}

function setMetadata(ctx, definition) {
  appendHeaders(ctx.responseHeader, definition.responseHeaders);
  appendHeaders(ctx.responseTrailer, definition.responseTrailers);
}

function refuseRaw(definition) {
  if (definition?.rawResponse) {
    throw new ConnectError("this server does not write raw HTTP responses", Code.Unimplemented);
  }
}

/** The answer of the unary and client-streaming methods. */
async function unaryOutcome(ctx, definition, requests) {
  const info = requestInfo(ctx, requests);
  if (!definition) {
    return { payload: { requestInfo: info } };
  }
  refuseRaw(definition);
  setMetadata(ctx, definition);
  await sleep(definition.responseDelayMs);
  switch (definition.response.case) {
    case "error":
      throw protoToError(definition.response.value, infoAny(info));
    case "responseData":
      return { payload: { data: definition.response.value, requestInfo: info } };
    default:
      return { payload: { requestInfo: info } };
  }
}

/** Sends a stream definition's responses (server streams, half-duplex bidi), then its error. */
async function* streamOutcome(ctx, definition, info) {
  let first = true;
  for (const data of definition.responseData) {
    await sleep(definition.responseDelayMs);
    yield { payload: { data, requestInfo: first ? info : undefined } };
    first = false;
  }
  if (definition.error) {
    throw protoToError(definition.error, first ? infoAny(info) : undefined);
  }
}

const service = {
  async unary(request, ctx) {
    checkFacts(ctx);
    return unaryOutcome(ctx, request.responseDefinition, [anyPack(UnaryRequestSchema, request)]);
  },

  async idempotentUnary(request, ctx) {
    checkFacts(ctx);
    return unaryOutcome(ctx, request.responseDefinition, [
      anyPack(IdempotentUnaryRequestSchema, request),
    ]);
  },

  async clientStream(requests, ctx) {
    checkFacts(ctx);
    let definition;
    const received = [];
    for await (const request of requests) {
      if (received.length === 0) {
        definition = request.responseDefinition;
      }
      received.push(anyPack(ClientStreamRequestSchema, request));
    }
    return unaryOutcome(ctx, definition, received);
  },

  async *serverStream(request, ctx) {
    checkFacts(ctx);
    const info = requestInfo(ctx, [anyPack(ServerStreamRequestSchema, request)]);
    const definition = request.responseDefinition;
    if (!definition) {
      return;
    }
    refuseRaw(definition);
    setMetadata(ctx, definition);
    yield* streamOutcome(ctx, definition, info);
  },

  async *bidiStream(requests, ctx) {
    checkFacts(ctx);
    let definition;
    let fullDuplex = false;
    let first = true;
    let pending = [];
    let sent = 0;
    for await (const request of requests) {
      if (first) {
        first = false;
        fullDuplex = request.fullDuplex;
        definition = request.responseDefinition;
        if (definition) {
          refuseRaw(definition);
          setMetadata(ctx, definition);
        }
      }
      pending.push(anyPack(BidiStreamRequestSchema, request));
      if (!fullDuplex || !definition) {
        continue;
      }
      if (sent < definition.responseData.length) {
        const requestsSoFar = pending;
        pending = [];
        const info =
          sent === 0
            ? requestInfo(ctx, requestsSoFar)
            : create(ConformancePayload_RequestInfoSchema, { requests: requestsSoFar });
        await sleep(definition.responseDelayMs);
        yield { payload: { data: definition.responseData[sent], requestInfo: info } };
        sent++;
      } else if (definition.error) {
        throw protoToError(definition.error, sent === 0 ? infoAny(requestInfo(ctx, pending)) : undefined);
      }
    }
    if (!definition) {
      return;
    }
    if (!fullDuplex) {
      yield* streamOutcome(ctx, definition, requestInfo(ctx, pending));
      return;
    }
    // Full duplex, the requests are done: the responses beyond them, then the error.
    for (const data of definition.responseData.slice(sent)) {
      const requestsSoFar = pending;
      pending = [];
      await sleep(definition.responseDelayMs);
      yield {
        payload: {
          data,
          requestInfo: create(ConformancePayload_RequestInfoSchema, { requests: requestsSoFar }),
        },
      };
      sent++;
    }
    if (definition.error) {
      throw protoToError(definition.error, sent === 0 ? infoAny(requestInfo(ctx, pending)) : undefined);
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Starting.

async function main() {
  let request;
  for await (const message of readMessages(process.stdin, ServerCompatRequestSchema)) {
    request = message;
    break;
  }
  if (!request) {
    throw new Error("no ServerCompatRequest on stdin");
  }
  // Keep serving after stdin closes (the runner's protocol): stop reading it, and leave it be.
  process.stdin.pause();

  const factsSymbol = Symbol("conformance facts");
  const adapter = connectNodeAdapter({
    routes: (router) => router.service(ConformanceService, service),
    acceptCompression: allCompressions,
    compressMinBytes: 0,
    readMaxBytes: request.messageReceiveLimit > 0 ? request.messageReceiveLimit : undefined,
    jsonOptions,
    contextValues: (req) => {
      const values = createContextValues();
      const facts = req[factsSymbol];
      if (facts) {
        values.set(factsKey, facts);
      }
      return values;
    },
  });
  const onRequest = (req, res) => {
    const checks = referenceChecks(req);
    const skip = new Set();
    if (checks?.timeoutMs !== undefined) {
      skip.add("connect-timeout-ms").add("grpc-timeout");
    }
    req[factsSymbol] = {
      headers: rawHeaderList(req, skip),
      timeoutMs: checks?.timeoutMs,
      problems: checks?.problems ?? [],
    };
    adapter(req, res);
  };

  let server;
  let pemCert = new Uint8Array(0);
  const http2Wanted = request.httpVersion === HTTPVersion.HTTP_VERSION_2;
  if (request.useTls) {
    const creds = request.serverCreds;
    if (!creds) {
      throw new Error("use_tls without server_creds");
    }
    const options = {
      cert: Buffer.from(creds.cert),
      key: Buffer.from(creds.key),
    };
    if (request.clientTlsCert.length > 0) {
      // Fails early on a certificate Node cannot read, instead of at the first handshake.
      new X509Certificate(Buffer.from(request.clientTlsCert));
      options.ca = Buffer.from(request.clientTlsCert);
      options.requestCert = true;
      options.rejectUnauthorized = true;
    }
    server = http2Wanted
      ? http2.createSecureServer({ ...options, allowHTTP1: false }, onRequest)
      : https.createServer({ ...options, ALPNProtocols: ["http/1.1"] }, onRequest);
    pemCert = creds.cert;
  } else if (http2Wanted) {
    server = http2.createServer(onRequest);
  } else {
    server = http.createServer(onRequest);
  }
  if ("keepAliveTimeout" in server) {
    // Like Go's net/http of the reference server: idle HTTP/1.1 connections stay open (Node
    // closes them after 5 s, racing clients that reuse them).
    server.keepAliveTimeout = 0;
  }
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  server.on("error", (e) => process.stderr.write(`server error: ${e?.stack ?? e}\n`));
  const port = server.address().port;
  await writeMessage(
    process.stdout,
    ServerCompatResponseSchema,
    create(ServerCompatResponseSchema, { host: "127.0.0.1", port, pemCert }),
  );
}

process.on("SIGTERM", () => process.exit(0));
// Serving until killed: a runner that died without killing us leaves us to its parent.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) {
    process.exit(0);
  }
}, 1000).unref();
main().catch((e) => {
  process.stderr.write(`conformance server (node): ${e?.stack ?? e}\n`);
  process.exit(1);
});
