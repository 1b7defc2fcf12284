// interop.v1.InteropService on connect-node: Connect, gRPC and gRPC-Web on 127.0.0.1:PORT, over
// HTTP/1.1 (`--http-version 1.1`, node:http) or h2c (`--http-version 2`, node:http2, prior knowledge).
import * as http from "node:http";
import * as http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { InteropService, ResponseSchema, ErrorDetailSchema } from "../gen/js/interop/v1/interop_pb.js";
import { parseArgs } from "./common.mjs";

function echo(ctx) {
  const value = ctx.requestHeader.get("x-echo");
  if (value !== null) {
    ctx.responseHeader.set("x-echo-header", value);
    ctx.responseTrailer.set("x-echo-trailer", value);
  }
}

function codeOf(name) {
  const key = name.replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
  return Code[key] ?? Code.Unknown;
}

function error(req) {
  return new ConnectError(req.failMessage, codeOf(req.failCode), undefined, [
    { desc: ErrorDetailSchema, value: { reason: req.text } },
  ]);
}

const response = (text, index, padding) => create(ResponseSchema, { text, index, padding });

const routes = (router) =>
  router.service(InteropService, {
    async unary(req, ctx) {
      echo(ctx);
      if (req.sleepMs > 0) await sleep(req.sleepMs, undefined, { signal: ctx.signal });
      if (req.failCode) throw error(req);
      return response(req.text, 0, req.padding);
    },
    async *serverStream(req, ctx) {
      echo(ctx);
      if (req.sleepMs > 0) await sleep(req.sleepMs, undefined, { signal: ctx.signal });
      for (let i = 0; i < req.count; i++) yield response(req.text, i, req.padding);
      if (req.failCode) throw error(req);
    },
    async clientStream(reqs, ctx) {
      echo(ctx);
      const texts = [];
      for await (const req of reqs) {
        if (req.failCode) throw error(req);
        texts.push(req.text);
      }
      return response(texts.join(","), texts.length, new Uint8Array());
    },
    async *bidiStream(reqs, ctx) {
      echo(ctx);
      let i = 0;
      for await (const req of reqs) {
        if (req.failCode) throw error(req);
        yield response(req.text, i++, req.padding);
      }
    },
  });

const args = parseArgs();
const handler = connectNodeAdapter({ routes });
const server = args["http-version"] === "2" ? http2.createServer(handler) : http.createServer(handler);
server.listen(Number(args.port), "127.0.0.1", () => {
  console.log(`connect-node server (HTTP/${args["http-version"]}) listening on 127.0.0.1:${args.port}`);
});
