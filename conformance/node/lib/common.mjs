// What the Node client and server share: the type registry (JSON needs it for the `Any` fields of
// RequestInfo), header conversions and error conversions.

import { create, createRegistry, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { file_connectrpc_conformance_v1_service, HeaderSchema, ErrorSchema } from "../gen/connectrpc/conformance/v1/service_pb.js";
import { file_connectrpc_conformance_v1_config } from "../gen/connectrpc/conformance/v1/config_pb.js";

/** Every message of the service's files: request types packed in `Any`, error details. */
export const registry = createRegistry(
  file_connectrpc_conformance_v1_service,
  file_connectrpc_conformance_v1_config,
);

/** The JSON options both peers use: `Any` values of the registry's types in JSON form. */
export const jsonOptions = { registry };

export const TYPE_URL_PREFIX = "type.googleapis.com/";

/** The message name of a type URL (after its last `/`). */
export function typeName(typeUrl) {
  return typeUrl.substring(typeUrl.lastIndexOf("/") + 1);
}

/** The suite's headers (one entry per name, its values in order) from a fetch `Headers`. */
export function headersToProto(headers) {
  const out = [];
  if (!headers) {
    return out;
  }
  headers.forEach((value, name) => {
    out.push(create(HeaderSchema, { name, value: [value] }));
  });
  return out;
}

/** Appends the suite's headers to a fetch `Headers`. */
export function appendHeaders(target, headers) {
  for (const h of headers) {
    for (const v of h.value) {
      target.append(h.name, v);
    }
  }
  return target;
}

/** A fetch `Headers` from the suite's headers. */
export function protoToHeaders(headers) {
  return appendHeaders(new Headers(), headers);
}

/** The suite's `Error` for whatever a call threw. */
export function errorToProto(reason) {
  const err = ConnectError.from(reason);
  return create(ErrorSchema, {
    code: err.code,
    message: err.rawMessage,
    details: err.details.map((d) =>
      "desc" in d
        ? create(AnySchema, {
            typeUrl: TYPE_URL_PREFIX + d.desc.typeName,
            value: toBinary(d.desc, create(d.desc, d.value)),
          })
        : create(AnySchema, { typeUrl: TYPE_URL_PREFIX + d.type, value: d.value }),
    ),
  });
}

/** A ConnectError for the suite's `Error`, with `extra` (an `Any`) appended to its details. */
export function protoToError(error, extra) {
  const err = new ConnectError(error.message ?? "", error.code === 0 ? Code.Unknown : error.code);
  for (const any of [...error.details, ...(extra ? [extra] : [])]) {
    err.details.push({ type: typeName(any.typeUrl), value: any.value });
  }
  return err;
}

export function sleep(ms, signal) {
  if (!ms) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
