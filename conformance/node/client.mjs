// A conformance client on connect-es (@connectrpc/connect-node): the client-under-test protocol of
// the ConnectRPC conformance suite (docs/testing_clients.md), used by conformance-runner as the
// third-party client that calls our server.
//
// Reads size-delimited ClientCompatRequests from stdin until EOF and runs each as it arrives,
// concurrently; writes one size-delimited ClientCompatResponse per request to stdout as each call
// ends (in any order), then exits once every call has ended. SIGTERM ends it at once.
//
// Transports are cached per connection setting (protocol, HTTP version, codec, compression, TLS,
// receive limit, GET), so calls share connections. connect-node's gRPC transport is HTTP/2 only,
// which is all the suite asks of gRPC. Raw requests (`raw_request`) are not supported: the
// runner keeps those cases for its own client.

import { create } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { AsyncLocalStorage } from "node:async_hooks";
import { createClient } from "@connectrpc/connect";
import { validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport as createConnectTransport } from "@connectrpc/connect/protocol-connect";
import { createTransport as createGrpcTransport } from "@connectrpc/connect/protocol-grpc";
import { createTransport as createGrpcWebTransport } from "@connectrpc/connect/protocol-grpc-web";
import { createNodeHttpClient, Http2SessionManager } from "@connectrpc/connect-node";

import {
  ClientCompatRequestSchema,
  ClientCompatResponseSchema,
  ClientErrorResultSchema,
  ClientResponseResultSchema,
} from "./gen/connectrpc/conformance/v1/client_compat_pb.js";
import {
  Codec,
  HTTPVersion,
  Protocol,
  StreamType,
} from "./gen/connectrpc/conformance/v1/config_pb.js";
import {
  BidiStreamRequestSchema,
  ClientStreamRequestSchema,
  ConformancePayloadSchema,
  ConformanceService,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
  UnimplementedRequestSchema,
} from "./gen/connectrpc/conformance/v1/service_pb.js";
import { allCompressions, compressionFor } from "./lib/compression.mjs";
import { checkedBody } from "./lib/wire-checks.mjs";
import {
  errorToProto,
  headersToProto,
  jsonOptions,
  protoToHeaders,
  sleep,
  typeName,
} from "./lib/common.mjs";
import { readMessages, writeMessage } from "./lib/wire.mjs";

const SERVICE = ConformanceService.typeName;

/** A request that cannot be run at all (reported as the response's `error`). */
class SetupError extends Error {}

// ---------------------------------------------------------------------------------------------
// Transports.
//
// Built from connect-es's protocol transports over connect-node's HTTP clients, as connect-node's
// create*Transport functions build them, with one addition: the HTTP client records the HTTP
// status of each call's response, which the suite checks for some cases, and checks the response
// on the wire as the suite's reference client does (lib/wire-checks.mjs), reporting problems as
// the result's `feedback`. The call finds its record through an AsyncLocalStorage.

const callStatus = new AsyncLocalStorage();

const transports = new Map();

function httpClientFor(baseUrl, httpVersion, nodeOptions) {
  const base =
    httpVersion === "2"
      ? (() => {
          const sessions = new Http2SessionManager(baseUrl, {}, nodeOptions);
          return createNodeHttpClient({ httpVersion: "2", sessionProvider: () => sessions });
        })()
      : createNodeHttpClient({ httpVersion: "1.1", nodeOptions });
  return async (request) => {
    const response = await base(request);
    const slot = callStatus.getStore();
    if (!slot) {
      return response;
    }
    slot.status = response.status;
    return { ...response, body: checkedBody(response, slot.feedback) };
  };
}

function transportFor(req) {
  const tls = req.serverTlsCert.length > 0;
  const creds = req.clientTlsCreds;
  const key = JSON.stringify([
    req.protocol,
    req.httpVersion,
    req.codec,
    req.compression,
    req.host,
    req.port,
    Buffer.from(req.serverTlsCert).toString("base64"),
    creds ? Buffer.from(creds.cert).toString("base64") : "",
    creds ? Buffer.from(creds.key).toString("base64") : "",
    req.messageReceiveLimit,
    req.useGetHttpMethod,
  ]);
  let transport = transports.get(key);
  if (transport) {
    return transport;
  }
  let nodeOptions;
  if (tls) {
    nodeOptions = { ca: Buffer.from(req.serverTlsCert) };
    if (creds) {
      nodeOptions.cert = Buffer.from(creds.cert);
      nodeOptions.key = Buffer.from(creds.key);
    }
  }
  const baseUrl = `${tls ? "https" : "http"}://${req.host}:${req.port}`;
  const httpVersion = req.httpVersion === HTTPVersion.HTTP_VERSION_1 ? "1.1" : "2";
  if (req.protocol === Protocol.GRPC) {
    if (httpVersion !== "2") {
      throw new SetupError("connect-node's gRPC transport speaks HTTP/2 only");
    }
  }
  const options = {
    ...validateReadWriteMaxBytes(
      req.messageReceiveLimit > 0 ? req.messageReceiveLimit : undefined,
      undefined,
      0,
    ),
    baseUrl,
    httpClient: httpClientFor(baseUrl, httpVersion, nodeOptions),
    useBinaryFormat: req.codec !== Codec.JSON,
    jsonOptions,
    interceptors: [],
    acceptCompression: allCompressions,
    sendCompression: compressionFor(req.compression),
    useHttpGet: req.useGetHttpMethod,
  };
  switch (req.protocol) {
    case Protocol.CONNECT:
      transport = createConnectTransport(options);
      break;
    case Protocol.GRPC:
      transport = createGrpcTransport(options);
      break;
    case Protocol.GRPC_WEB:
      transport = createGrpcWebTransport(options);
      break;
    default:
      throw new SetupError(`unsupported protocol ${req.protocol}`);
  }
  transports.set(key, transport);
  return transport;
}

// ---------------------------------------------------------------------------------------------
// One call.

/** What a call observed. */
class Outcome {
  constructor() {
    this.headers = undefined;
    this.trailers = undefined;
    this.payloads = [];
    this.error = undefined;
    this.unsent = 0;
  }

  callOptions(req, controller) {
    const options = {
      headers: protoToHeaders(req.requestHeaders),
      signal: controller.signal,
      onHeader: (h) => {
        this.headers = h;
      },
      onTrailer: (t) => {
        this.trailers = t;
      },
    };
    if (req.timeoutMs !== undefined) {
      options.timeoutMs = req.timeoutMs;
    }
    return options;
  }

  payload(response) {
    this.payloads.push(response.payload ?? create(ConformancePayloadSchema));
  }

  /** A failed call: its metadata stands for the trailers when they were not received. */
  fail(reason) {
    if (this.error === undefined) {
      this.error = reason;
      if (this.trailers === undefined && reason && typeof reason === "object" && "metadata" in reason) {
        this.trailers = reason.metadata;
      }
    }
  }

  result(httpStatus, feedback) {
    return create(ClientResponseResultSchema, {
      httpStatusCode: httpStatus,
      feedback,
      responseHeaders: headersToProto(this.headers),
      payloads: this.payloads,
      error: this.error === undefined ? undefined : errorToProto(this.error),
      responseTrailers: headersToProto(this.trailers),
      numUnsentRequests: this.unsent,
    });
  }
}

function unpackAll(req, schema) {
  return req.requestMessages.map((any) => {
    if (typeName(any.typeUrl) !== schema.typeName) {
      throw new SetupError(`expected a ${schema.typeName}, got ${any.typeUrl}`);
    }
    const message = anyUnpack(any, schema);
    if (message === undefined) {
      throw new SetupError(`cannot unpack ${any.typeUrl}`);
    }
    return message;
  });
}

function unpackOne(req, schema) {
  const all = unpackAll(req, schema);
  if (all.length !== 1) {
    throw new SetupError(`expected one request message, got ${all.length}`);
  }
  return all[0];
}

function cancelTiming(req) {
  const timing = req.cancel?.cancelTiming;
  return {
    beforeCloseSend: timing?.case === "beforeCloseSend",
    afterCloseSendMs: timing?.case === "afterCloseSendMs" ? timing.value : undefined,
    afterNumResponses: timing?.case === "afterNumResponses" ? timing.value : undefined,
  };
}

/** Request messages for the streaming calls, with the request delay; counts what was taken. */
function requestStream(messages, delayMs, counter, onClose) {
  return (async function* () {
    for (const message of messages) {
      await sleep(delayMs);
      counter.sent++;
      yield message;
    }
    onClose();
  })();
}

/** An async iterable fed by push(), for full-duplex calls. */
function pushQueue() {
  const items = [];
  let waiting;
  let closed = false;
  return {
    push(value) {
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve({ value, done: false });
      } else {
        items.push(value);
      }
    },
    close() {
      closed = true;
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve({ value: undefined, done: true });
      }
    },
    [Symbol.asyncIterator]() {
      return {
        next() {
          if (items.length > 0) {
            return Promise.resolve({ value: items.shift(), done: false });
          }
          if (closed) {
            return Promise.resolve({ value: undefined, done: true });
          }
          return new Promise((resolve) => {
            waiting = resolve;
          });
        },
        return() {
          closed = true;
          return Promise.resolve({ value: undefined, done: true });
        },
        throw(e) {
          closed = true;
          return Promise.reject(e);
        },
      };
    },
  };
}

async function readResponses(responses, outcome, cancel, controller) {
  for await (const response of responses) {
    outcome.payload(response);
    if (cancel.afterNumResponses !== undefined && outcome.payloads.length === cancel.afterNumResponses) {
      controller.abort();
    }
  }
}

async function runCall(req) {
  if (req.rawRequest) {
    throw new Error("raw requests are not supported by the connect-es client");
  }
  if (req.service !== undefined && req.service !== SERVICE) {
    throw new Error(`unknown service ${req.service}`);
  }
  const client = createClient(ConformanceService, transportFor(req));
  const controller = new AbortController();
  const outcome = new Outcome();
  const options = outcome.callOptions(req, controller);
  const cancel = cancelTiming(req);
  const abortAfter = (ms) => {
    const timer = setTimeout(() => controller.abort(), ms);
    return () => clearTimeout(timer);
  };
  let stopTimer = () => {};
  const method = req.method ?? defaultMethod(req.streamType);
  const slot = { feedback: [] };
  try {
    await callStatus.run(slot, () => invoke());
  } catch (e) {
    if (e instanceof SetupError) {
      throw e;
    }
    outcome.fail(e);
  } finally {
    stopTimer();
  }
  if (outcome.error === undefined) {
    outcome.unsent = 0;
  }
  return outcome.result(slot.status, slot.feedback);

  async function invoke() {
    switch (method) {
      case "Unary":
      case "IdempotentUnary":
      case "Unimplemented": {
        const schema = {
          Unary: UnaryRequestSchema,
          IdempotentUnary: IdempotentUnaryRequestSchema,
          Unimplemented: UnimplementedRequestSchema,
        }[method];
        const message = unpackOne(req, schema);
        const call = { Unary: "unary", IdempotentUnary: "idempotentUnary", Unimplemented: "unimplemented" }[method];
        if (cancel.afterCloseSendMs !== undefined) {
          stopTimer = abortAfter(cancel.afterCloseSendMs);
        }
        const response = await client[call](message, options);
        outcome.payload(response);
        break;
      }
      case "ClientStream": {
        const messages = unpackAll(req, ClientStreamRequestSchema);
        const counter = { sent: 0 };
        const requests = requestStream(messages, req.requestDelayMs, counter, () => {
          if (cancel.beforeCloseSend) {
            controller.abort();
          } else if (cancel.afterCloseSendMs !== undefined) {
            stopTimer = abortAfter(cancel.afterCloseSendMs);
          }
        });
        try {
          outcome.payload(await client.clientStream(requests, options));
        } finally {
          outcome.unsent = messages.length - counter.sent;
        }
        break;
      }
      case "ServerStream": {
        const message = unpackOne(req, ServerStreamRequestSchema);
        const responses = client.serverStream(message, options);
        if (cancel.afterCloseSendMs !== undefined) {
          stopTimer = abortAfter(cancel.afterCloseSendMs);
        }
        await readResponses(responses, outcome, cancel, controller);
        break;
      }
      case "BidiStream": {
        const messages = unpackAll(req, BidiStreamRequestSchema);
        if (req.streamType === StreamType.FULL_DUPLEX_BIDI_STREAM) {
          await fullDuplex(client, messages, req, options, outcome, cancel, controller, (ms) => {
            stopTimer = abortAfter(ms);
          });
        } else {
          const counter = { sent: 0 };
          const requests = requestStream(messages, req.requestDelayMs, counter, () => {
            if (cancel.beforeCloseSend) {
              controller.abort();
            } else if (cancel.afterCloseSendMs !== undefined) {
              stopTimer = abortAfter(cancel.afterCloseSendMs);
            }
          });
          try {
            await readResponses(client.bidiStream(requests, options), outcome, cancel, controller);
          } finally {
            outcome.unsent = messages.length - counter.sent;
          }
        }
        break;
      }
      default:
        throw new SetupError(`unknown method ${method}`);
    }
  }
}

async function fullDuplex(client, messages, req, options, outcome, cancel, controller, abortAfter) {
  const queue = pushQueue();
  const responses = client.bidiStream(queue, options)[Symbol.asyncIterator]();
  let sent = 0;
  try {
    for (const message of messages) {
      await sleep(req.requestDelayMs);
      queue.push(message);
      sent++;
      const next = await responses.next();
      if (next.done) {
        break;
      }
      outcome.payload(next.value);
      if (cancel.afterNumResponses !== undefined && outcome.payloads.length === cancel.afterNumResponses) {
        controller.abort();
      }
    }
    if (cancel.beforeCloseSend) {
      controller.abort();
    }
    queue.close();
    if (cancel.afterCloseSendMs !== undefined) {
      abortAfter(cancel.afterCloseSendMs);
    }
    for (;;) {
      const next = await responses.next();
      if (next.done) {
        break;
      }
      outcome.payload(next.value);
      if (cancel.afterNumResponses !== undefined && outcome.payloads.length === cancel.afterNumResponses) {
        controller.abort();
      }
    }
  } finally {
    outcome.unsent = messages.length - sent;
    queue.close();
  }
}

function defaultMethod(streamType) {
  switch (streamType) {
    case StreamType.CLIENT_STREAM:
      return "ClientStream";
    case StreamType.SERVER_STREAM:
      return "ServerStream";
    case StreamType.HALF_DUPLEX_BIDI_STREAM:
    case StreamType.FULL_DUPLEX_BIDI_STREAM:
      return "BidiStream";
    default:
      return "Unary";
  }
}

// ---------------------------------------------------------------------------------------------
// The loop.

async function respond(req) {
  let result;
  try {
    result = { case: "response", value: await runCall(req) };
  } catch (e) {
    result = {
      case: "error",
      value: create(ClientErrorResultSchema, { message: e instanceof Error ? e.message : String(e) }),
    };
  }
  await writeMessage(
    process.stdout,
    ClientCompatResponseSchema,
    create(ClientCompatResponseSchema, { testName: req.testName, result }),
  );
}

async function main() {
  const running = [];
  for await (const req of readMessages(process.stdin, ClientCompatRequestSchema)) {
    running.push(respond(req));
  }
  await Promise.all(running);
}

process.on("SIGTERM", () => process.exit(0));
// connect-node leaves some promises of a failed HTTP/2 connection without a handler (the calls on
// it fail on their own); Node would end the process on them, failing every other call as well.
process.on("unhandledRejection", (reason) => {
  process.stderr.write(`unhandled rejection (the process goes on): ${reason?.stack ?? reason}\n`);
});
main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`conformance client (node): ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
