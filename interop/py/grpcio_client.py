"""Calls an interop.v1.InteropService server with grpcio (C-core gRPC, h2c); one CHECK line per kind."""

import argparse
import queue

import grpc

import common  # noqa: F401
from common import DETAIL_TYPE, FAIL_MESSAGE, Timer, expect, failing, pb, run_sync
from google.rpc import status_pb2
from interop.v1 import interop_pb2_grpc as pbg


def check_error(e, reason):
    expect(isinstance(e, grpc.RpcError), f"not an RPC error: {e!r}")
    expect(e.code() == grpc.StatusCode.FAILED_PRECONDITION, f"code {e.code()}")
    expect(e.details() == FAIL_MESSAGE, f"message {e.details()!r}")
    raw = dict(e.trailing_metadata() or ()).get("grpc-status-details-bin")
    expect(raw is not None, f"no grpc-status-details-bin in {e.trailing_metadata()}")
    status = status_pb2.Status.FromString(raw)
    expect(status.code == 9 and status.message == FAIL_MESSAGE, f"status {status}")
    detail = [d for d in status.details if d.type_url.endswith("/" + DETAIL_TYPE)]
    expect(detail, f"no {DETAIL_TYPE} in {status.details}")
    expect(pb.ErrorDetail.FromString(detail[0].value).reason == reason, "detail reason")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="host:port")
    args = parser.parse_args()
    channel = grpc.insecure_channel(args.target)
    stub = pbg.InteropServiceStub(channel)
    grpc.channel_ready_future(channel).result(timeout=10)

    def unary():
        r = stub.Unary(pb.Request(text="hello"), timeout=10)
        expect(r.text == "hello", f"text {r.text!r}")
        return "echoed"

    def server_stream():
        got = [m.index for m in stub.ServerStream(pb.Request(text="s", count=3), timeout=10)]
        expect(got == [0, 1, 2], f"indexes {got}")
        return "3 messages"

    def client_stream():
        r = stub.ClientStream(iter([pb.Request(text=t) for t in "abc"]), timeout=10)
        expect(r.text == "a,b,c" and r.index == 3, f"got {r.text!r}/{r.index}")
        return "3 requests joined"

    def bidi():
        q = queue.Queue()

        def requests():
            while (item := q.get()) is not None:
                yield item

        q.put(pb.Request(text="0"))
        responses = stub.BidiStream(requests(), timeout=10)
        for i in range(3):
            m = next(responses)
            expect(m.text == str(i) and m.index == i, f"response {i}: {m.text!r}/{m.index}")
            q.put(pb.Request(text=str(i + 1)) if i < 2 else None)
        rest = list(responses)
        expect(not rest, f"extra responses {rest}")
        return "3 ping-pongs, full duplex"

    def error():
        try:
            stub.Unary(failing("unary-boom"), timeout=10)
            raise AssertionError("unary call succeeded")
        except grpc.RpcError as e:
            check_error(e, "unary-boom")
        got = 0
        try:
            for _ in stub.ServerStream(failing("stream-boom", count=2), timeout=10):
                got += 1
            raise AssertionError("stream ended without an error")
        except grpc.RpcError as e:
            check_error(e, "stream-boom")
        expect(got == 2, f"{got} messages before the error")
        return "code, message and detail (unary, server stream)"

    def metadata():
        _, call = stub.Unary.with_call(
            pb.Request(text="m"), metadata=[("x-echo", "unary-value")], timeout=10
        )
        expect(dict(call.initial_metadata()).get("x-echo-header") == "unary-value",
               f"unary headers {call.initial_metadata()}")
        expect(dict(call.trailing_metadata()).get("x-echo-trailer") == "unary-value",
               f"unary trailers {call.trailing_metadata()}")
        call = stub.ServerStream(pb.Request(text="m", count=1),
                                 metadata=[("x-echo", "stream-value")], timeout=10)
        expect(dict(call.initial_metadata()).get("x-echo-header") == "stream-value",
               f"stream headers {call.initial_metadata()}")
        list(call)
        expect(dict(call.trailing_metadata()).get("x-echo-trailer") == "stream-value",
               f"stream trailers {call.trailing_metadata()}")
        return "headers and trailers (unary, server stream)"

    def deadline():
        with Timer() as t:
            try:
                stub.Unary(pb.Request(text="slow", sleep_ms=3000), timeout=0.3)
                raise AssertionError("call succeeded")
            except grpc.RpcError as e:
                code = e.code()
        expect(code == grpc.StatusCode.DEADLINE_EXCEEDED, f"{code} after {t.ms} ms")
        expect(t.ms < 2000, f"took {t.ms} ms")
        return f"deadline_exceeded after {t.ms} ms"

    def gzip():
        padding = b"z" * 65536
        r = stub.Unary(pb.Request(text="z", padding=padding), timeout=10,
                       compression=grpc.Compression.Gzip)
        expect(r.padding == padding, f"padding of {len(r.padding)} bytes")
        r = stub.ClientStream(iter([pb.Request(text="z", padding=padding)] * 2), timeout=10,
                              compression=grpc.Compression.Gzip)
        expect(r.index == 2, "client stream")
        return "gzip requests (unary, client stream)"

    for kind, fn in [("unary", unary), ("server_stream", server_stream),
                     ("client_stream", client_stream), ("bidi", bidi), ("error", error),
                     ("metadata", metadata), ("deadline", deadline), ("gzip", gzip)]:
        run_sync(kind, fn)
    channel.close()


if __name__ == "__main__":
    main()
