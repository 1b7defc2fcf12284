"""interop.v1.InteropService on grpcio (C-core gRPC), h2c on 127.0.0.1:PORT."""

import argparse
import time
from concurrent import futures

import grpc
from google.protobuf import any_pb2

import common  # noqa: F401 - puts the generated code on the path
from common import pb
from google.rpc import status_pb2
from interop.v1 import interop_pb2_grpc as pbg


def abort(context, request, trailers):
    code = grpc.StatusCode[request.fail_code.upper()]
    detail = any_pb2.Any()
    detail.Pack(pb.ErrorDetail(reason=request.text))
    status = status_pb2.Status(code=code.value[0], message=request.fail_message, details=[detail])
    context.set_trailing_metadata(
        trailers + [("grpc-status-details-bin", status.SerializeToString())]
    )
    context.abort(code, request.fail_message)


def echo(context):
    """Returns the trailers to send; sends the echo header now."""
    value = dict(context.invocation_metadata()).get("x-echo")
    if value is None:
        return []
    context.send_initial_metadata([("x-echo-header", value)])
    return [("x-echo-trailer", value)]


def sleep_ms(ms):
    if ms > 0:
        time.sleep(ms / 1000)


class Service(pbg.InteropServiceServicer):
    def Unary(self, request, context):
        trailers = echo(context)
        sleep_ms(request.sleep_ms)
        if request.fail_code:
            abort(context, request, trailers)
        context.set_trailing_metadata(trailers)
        return pb.Response(text=request.text, padding=request.padding)

    def ServerStream(self, request, context):
        trailers = echo(context)
        sleep_ms(request.sleep_ms)
        for i in range(request.count):
            yield pb.Response(text=request.text, index=i, padding=request.padding)
        if request.fail_code:
            abort(context, request, trailers)
        context.set_trailing_metadata(trailers)

    def ClientStream(self, request_iterator, context):
        trailers = echo(context)
        texts = []
        for request in request_iterator:
            sleep_ms(request.sleep_ms)
            if request.fail_code:
                abort(context, request, trailers)
            texts.append(request.text)
        context.set_trailing_metadata(trailers)
        return pb.Response(text=",".join(texts), index=len(texts))

    def BidiStream(self, request_iterator, context):
        trailers = echo(context)
        for i, request in enumerate(request_iterator):
            sleep_ms(request.sleep_ms)
            if request.fail_code:
                abort(context, request, trailers)
            yield pb.Response(text=request.text, index=i, padding=request.padding)
        context.set_trailing_metadata(trailers)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16), compression=grpc.Compression.Gzip
    )
    pbg.add_InteropServiceServicer_to_server(Service(), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"grpcio server listening on 127.0.0.1:{args.port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
