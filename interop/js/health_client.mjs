// A connect-node client of grpc.health.v1.Health (code generated from connect-health's own
// health.proto): Check, List and Watch over Connect, gRPC and gRPC-Web on HTTP/2, JSON and proto.
// health_client.mjs --target URL --service NAME; one CHECK line per protocol and codec.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../gen/js/grpc/health/v1/health_pb.js";
import { expect, parseArgs, run } from "./common.mjs";

const args = parseArgs();
const factories = { connect: createConnectTransport, grpc: createGrpcTransport, grpcweb: createGrpcWebTransport };

for (const protocol of ["connect", "grpc", "grpcweb"]) {
  for (const codec of ["proto", "json"]) {
    await run(`health_${protocol}_${codec}`, async () => {
      const options = { baseUrl: args.target, httpVersion: "2", useBinaryFormat: codec === "proto" };
      if (protocol === "grpc") delete options.httpVersion;
      const client = createClient(Health, factories[protocol](options));

      const server = await client.check({ service: "" });
      expect(server.status === Serving.SERVING, `server status ${Serving[server.status]}`);
      const named = await client.check({ service: args.service });
      expect(named.status === Serving.SERVING, `${args.service} status ${Serving[named.status]}`);
      try {
        await client.check({ service: "no.such.Service" });
        throw new Error("Check of an unknown service succeeded");
      } catch (e) {
        const err = ConnectError.from(e);
        expect(err.code === Code.NotFound, `unknown service: code ${Code[err.code]}: ${err.rawMessage}`);
      }
      const list = await client.list({});
      expect(list.statuses[args.service]?.status === Serving.SERVING, `List: ${JSON.stringify(Object.keys(list.statuses))}`);

      const abort = new AbortController();
      const watched = [];
      for await (const message of client.watch({ service: "no.such.Service" }, { signal: abort.signal })) {
        watched.push(Serving[message.status]);
        break;
      }
      abort.abort();
      expect(watched[0] === "SERVICE_UNKNOWN", `Watch of an unknown service: ${watched}`);
      return `Check, List, Watch (${watched[0]})`;
    });
  }
}
