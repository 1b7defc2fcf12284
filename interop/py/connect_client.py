"""Calls an interop.v1.InteropService server with connect-python; one CHECK line per kind.

connect_client.py --target URL --protocol connect|grpc|grpcweb --http-version 1.1|2 --codec proto|json
"""

import argparse
import asyncio

from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.compression.gzip import GzipCompression
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from connectrpc.client import ResponseMetadata
from pyqwest import Client, HTTPTransport, HTTPVersion

import common  # noqa: F401
from common import (DETAIL_TYPE, FAIL_MESSAGE, Timer, emit, expect, failing, hard_exit, pb,
                    run_async)
from interop.v1.interop_connect import InteropServiceClient

PROTOCOLS = {"connect": ProtocolType.CONNECT, "grpc": ProtocolType.GRPC,
             "grpcweb": ProtocolType.GRPC_WEB}


def check_error(e, reason):
    expect(isinstance(e, ConnectError), f"not a ConnectError: {e!r}")
    expect(e.code == Code.FAILED_PRECONDITION, f"code {e.code}")
    expect(e.message == FAIL_MESSAGE, f"message {e.message!r}")
    details = [d for d in e.details if d.type_name == DETAIL_TYPE]
    expect(details, f"no {DETAIL_TYPE} in {[d.type_name for d in e.details]}")
    expect(pb.ErrorDetail.FromString(details[0].message_bytes).reason == reason, "detail reason")


async def items(requests):
    for r in requests:
        yield r


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument("--http-version", choices=["1.1", "2"], required=True)
    parser.add_argument("--codec", choices=["proto", "json"], required=True)
    args = parser.parse_args()
    version = HTTPVersion.HTTP2 if args.http_version == "2" else HTTPVersion.HTTP1
    http = Client(HTTPTransport(http_version=version))
    codec = google_protobuf_json_codec() if args.codec == "json" else google_protobuf_binary_codec()

    def client(send_compression=None):
        return InteropServiceClient(args.target, protocol=PROTOCOLS[args.protocol], codec=codec,
                                    send_compression=send_compression, http_client=http)

    c = client()

    async def unary():
        r = await c.unary(pb.Request(text="hello"), timeout_ms=10000)
        expect(r.text == "hello", f"text {r.text!r}")
        return "echoed"

    async def server_stream():
        got = [m.index async for m in c.server_stream(pb.Request(text="s", count=3))]
        expect(got == [0, 1, 2], f"indexes {got}")
        return "3 messages"

    async def client_stream():
        r = await c.client_stream(items([pb.Request(text=t) for t in "abc"]))
        expect(r.text == "a,b,c" and r.index == 3, f"got {r.text!r}/{r.index}")
        return "3 requests joined"

    async def bidi():
        q = asyncio.Queue()

        async def requests():
            while (item := await q.get()) is not None:
                yield item

        await q.put(pb.Request(text="0"))
        i = 0
        async for m in c.bidi_stream(requests()):
            expect(m.text == str(i) and m.index == i, f"response {i}: {m.text!r}/{m.index}")
            i += 1
            await q.put(pb.Request(text=str(i)) if i < 3 else None)
        expect(i == 3, f"{i} responses")
        return "3 ping-pongs, full duplex"

    async def error():
        try:
            await c.unary(failing("unary-boom"))
            raise AssertionError("unary call succeeded")
        except ConnectError as e:
            check_error(e, "unary-boom")
        got = 0
        try:
            async for _ in c.server_stream(failing("stream-boom", count=2)):
                got += 1
            raise AssertionError("stream ended without an error")
        except ConnectError as e:
            check_error(e, "stream-boom")
        expect(got == 2, f"{got} messages before the error")
        return "code, message and detail (unary, server stream)"

    async def metadata():
        with ResponseMetadata() as meta:
            await c.unary(pb.Request(text="m"), headers={"x-echo": "unary-value"})
        expect(meta.headers.get("x-echo-header") == "unary-value", f"unary headers {meta.headers}")
        expect(meta.trailers.get("x-echo-trailer") == "unary-value",
               f"unary trailers {meta.trailers}")
        with ResponseMetadata() as meta:
            async for _ in c.server_stream(pb.Request(text="m", count=1),
                                           headers={"x-echo": "stream-value"}):
                pass
        expect(meta.headers.get("x-echo-header") == "stream-value",
               f"stream headers {meta.headers}")
        expect(meta.trailers.get("x-echo-trailer") == "stream-value",
               f"stream trailers {meta.trailers}")
        return "headers and trailers (unary, server stream)"

    async def deadline():
        with Timer() as t:
            try:
                await c.unary(pb.Request(text="slow", sleep_ms=3000), timeout_ms=300)
                raise AssertionError("call succeeded")
            except ConnectError as e:
                code = e.code
        expect(code == Code.DEADLINE_EXCEEDED, f"{code} after {t.ms} ms")
        expect(t.ms < 2000, f"took {t.ms} ms")
        return f"deadline_exceeded after {t.ms} ms"

    async def gzip():
        z = client(GzipCompression())
        padding = b"z" * 65536
        r = await z.unary(pb.Request(text="z", padding=padding))
        expect(r.padding == padding, f"padding of {len(r.padding)} bytes")
        r = await z.client_stream(items([pb.Request(text="z", padding=padding)] * 2))
        expect(r.index == 2, "client stream")
        return "gzip requests (unary, client stream)"

    await run_async("unary", unary)
    await run_async("server_stream", server_stream)
    await run_async("client_stream", client_stream)
    if args.http_version == "2":
        await run_async("bidi", bidi)
    else:
        emit("bidi", "NA", "full-duplex bidi needs HTTP/2")
    await run_async("error", error)
    await run_async("metadata", metadata)
    await run_async("deadline", deadline)
    await run_async("gzip", gzip)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    finally:
        hard_exit(0)
