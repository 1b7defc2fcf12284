"""interop.v1.InteropService on connect-python (ASGI) under hypercorn: Connect, gRPC and gRPC-Web over
HTTP/1.1 and h2c on 127.0.0.1:PORT."""

import argparse
import asyncio

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from hypercorn.asyncio import serve
from protobuf.wkt import Any
from hypercorn.config import Config

import common  # noqa: F401
from common import DETAIL_TYPE, pb
from interop.v1.interop_connect import InteropServiceASGIApplication


def echo(ctx):
    value = ctx.request_headers.get("x-echo")
    if value is not None:
        ctx.response_headers["x-echo-header"] = value
        ctx.response_trailers["x-echo-trailer"] = value


def error(request):
    # connect-python's details are messages of its own protobuf runtime: pass an Any built by hand.
    detail = Any(type_url="type.googleapis.com/" + DETAIL_TYPE,
                 value=pb.ErrorDetail(reason=request.text).SerializeToString())
    return ConnectError(Code(request.fail_code), request.fail_message, [detail])


async def sleep_ms(ms):
    if ms > 0:
        await asyncio.sleep(ms / 1000)


class Service:
    async def unary(self, request, ctx):
        echo(ctx)
        await sleep_ms(request.sleep_ms)
        if request.fail_code:
            raise error(request)
        return pb.Response(text=request.text, padding=request.padding)

    async def server_stream(self, request, ctx):
        echo(ctx)
        await sleep_ms(request.sleep_ms)
        for i in range(request.count):
            yield pb.Response(text=request.text, index=i, padding=request.padding)
        if request.fail_code:
            raise error(request)

    async def client_stream(self, requests, ctx):
        echo(ctx)
        texts = []
        async for request in requests:
            await sleep_ms(request.sleep_ms)
            if request.fail_code:
                raise error(request)
            texts.append(request.text)
        return pb.Response(text=",".join(texts), index=len(texts))

    async def bidi_stream(self, requests, ctx):
        echo(ctx)
        i = 0
        async for request in requests:
            await sleep_ms(request.sleep_ms)
            if request.fail_code:
                raise error(request)
            yield pb.Response(text=request.text, index=i, padding=request.padding)
            i += 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    print(f"connect-python server listening on 127.0.0.1:{args.port}", flush=True)
    asyncio.run(serve(InteropServiceASGIApplication(Service()), config))


if __name__ == "__main__":
    main()
