#!/usr/bin/env python3
"""Health checking and server reflection against real third-party clients. Starts the examples'
demo server (`demo --serve`, which serves demo.v1.GreetService, connect-health and
connect-reflection) and checks, one `CHECK <name> PASS|FAIL <detail>` line each:

- `buf curl` (the buf CLI from npm) calling the demo's methods of every stream type and the health
  service over Connect, gRPC and gRPC-Web with no local protos (it finds them by reflection, v1 and
  v1alpha), and listing services and methods;
- grpcio-reflection's descriptor database (v1alpha) feeding a protobuf DescriptorPool that must
  describe every method of every listed service, then a Greet call made with message classes built
  from that pool alone;
- grpcio-health-checking's stub: Check, List, Watch;
- a connect-node Health client (js/health_client.mjs) over the three protocols;
- graceful shutdown: a grpcio Watch open while the server gets SIGINT sees NOT_SERVING, then its
  stream ends with OK, and the server exits.

Ends with "health/reflection: N passed, M failed"; exits non-zero on any failure. Run by
health_reflection.sh (which builds the demo and generates the Node code)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
DEMO = os.path.join(TARGET, "debug", "demo")
BUF = os.path.join(HERE, "node_modules", ".bin", "buf")
LOGS = os.path.join(HERE, "logs")
GREET = "demo.v1.GreetService"
HEALTH = "grpc.health.v1.Health"
SERVICES = [GREET, HEALTH, "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"]

import grpc  # noqa: E402
from google.protobuf import descriptor_pool, message_factory  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (  # noqa: E402
    ProtoReflectionDescriptorDatabase,
)

results = []


def check(name, fn):
    try:
        detail = fn() or ""
        state = "PASS"
    except Exception as e:  # noqa: BLE001 - any failure is the check's
        detail = f"{type(e).__name__}: {e}"
        state = "FAIL"
    results.append(state == "PASS")
    print(f"CHECK {name} {state} {str(detail).replace(chr(10), ' ')}", flush=True)


def expect(ok, what):
    if not ok:
        raise AssertionError(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo():
    port = free_port()
    os.makedirs(LOGS, exist_ok=True)
    log = open(os.path.join(LOGS, "server-demo.log"), "wb")
    proc = subprocess.Popen([DEMO, "--serve", f"127.0.0.1:{port}"], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"demo exited with {proc.returncode} before it was ready")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("demo not accepting connections after 30 s")


def buf_curl(*args, data=None):
    argv = [BUF, "curl", *args]
    if data is not None:
        argv += ["-d", "@-"]
    done = subprocess.run(argv, input=(data or "").encode(), capture_output=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"buf curl exited {done.returncode}: {done.stderr.decode().strip()}")
    return done.stdout.decode()


def json_documents(text):
    """buf curl prints one pretty JSON document per response message."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        out.append(doc)
    return out


def buf_checks(base):
    names = {"connect": "Connect", "grpc": "Grpc", "grpcweb": "GrpcWeb"}
    for protocol, shown in names.items():
        url = f"{base}/{GREET}"
        flags = ["--protocol", protocol, "--http2-prior-knowledge"]

        def unary():
            out = json_documents(buf_curl(*flags, f"{url}/Greet", data='{"name": "Ada"}'))
            expect(len(out) == 1 and out[0]["greeting"].startswith(f"Hello, Ada! ({shown} "),
                   f"Greet: {out}")
            return out[0]["greeting"]

        def server_stream():
            out = json_documents(buf_curl(*flags, f"{url}/GreetMany", data='{"name": "Grace"}'))
            expect([o["greeting"] for o in out] == [f"Hello #{i}, Grace!" for i in (1, 2, 3)],
                   f"GreetMany: {out}")
            return f"{len(out)} messages"

        def client_stream():
            out = json_documents(buf_curl(*flags, f"{url}/GreetAll",
                                          data='{"name": "Alan"} {"name": "Barbara"}'))
            expect(out == [{"greeting": "Hello, Alan and Barbara!"}], f"GreetAll: {out}")
            return out[0]["greeting"]

        def bidi():
            out = json_documents(buf_curl(*flags, f"{url}/Chat",
                                          data='{"name": "Ken"} {"name": "Dennis"}'))
            expect([o["greeting"] for o in out]
                   == ["Nice to meet you, Ken.", "Nice to meet you, Dennis."], f"Chat: {out}")
            return f"{len(out)} messages"

        def health():
            out = json_documents(buf_curl(*flags, f"{base}/{HEALTH}/Check",
                                          data=json.dumps({"service": GREET})))
            expect(out == [{"status": "SERVING"}], f"Check: {out}")
            return "SERVING"

        def v1alpha():
            out = json_documents(buf_curl(*flags, "--reflect-protocol", "grpc-v1alpha",
                                          f"{url}/Greet", data='{"name": "Alpha"}'))
            expect(out[0]["greeting"].startswith("Hello, Alpha!"), f"{out}")
            return "reflection over grpc.reflection.v1alpha"

        for kind, fn in [("unary", unary), ("server_stream", server_stream),
                         ("client_stream", client_stream), ("bidi", bidi), ("health", health),
                         ("v1alpha", v1alpha)]:
            check(f"buf_curl_{protocol}_{kind}", fn)

    def list_services():
        listed = buf_curl("--list-services", base).split()
        expect(sorted(listed) == sorted(SERVICES), f"services {listed}")
        return " ".join(listed)

    def list_methods():
        listed = buf_curl("--list-methods", "--protocol", "grpcweb", base).split()
        for method in ["Greet", "GreetMany", "GreetAll", "Chat"]:
            expect(f"{GREET}/{method}" in listed, f"{method} not in {listed}")
        for method in ["Check", "List", "Watch"]:
            expect(f"{HEALTH}/{method}" in listed, f"{method} not in {listed}")
        return f"{len(listed)} methods"

    check("buf_curl_list_services", list_services)
    check("buf_curl_list_methods", list_methods)


def grpcio_checks(port):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def reflection_pool():
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        expect(services == sorted(SERVICES), f"services {services}")
        pool = descriptor_pool.DescriptorPool(db)
        described = 0
        for name in services:
            service = pool.FindServiceByName(name)
            for method in service.methods:
                expect(method.input_type.full_name and method.output_type.full_name,
                       f"{method.full_name} has no types")
                described += 1
        greet = pool.FindServiceByName(GREET)
        names = [m.name for m in greet.methods]
        expect({"Greet", "GreetMany", "GreetAll", "Chat"} <= set(names), f"GreetService {names}")
        # A call made with message classes built from the reflected descriptors alone.
        method = greet.FindMethodByName("Greet")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(f"/{GREET}/Greet",
                                   request_serializer=request_class.SerializeToString,
                                   response_deserializer=response_class.FromString)
        response = call(request_class(name="Reflected"), timeout=10)
        expect(response.greeting.startswith("Hello, Reflected!"), f"{response}")
        return f"{described} methods of {len(services)} services described; {response.greeting!r}"

    def health():
        stub = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ["", GREET]:
            status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            expect(status == serving, f"Check({service!r}) = {status}")
        try:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
            raise AssertionError("Check of an unknown service succeeded")
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.NOT_FOUND, f"unknown service: {e.code()}")
        listed = stub.List(health_pb2.HealthListRequest(), timeout=10).statuses
        expect(set(listed) == {"", GREET}, f"List {dict(listed)}")
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=GREET), timeout=10)
        first = next(watch).status
        watch.cancel()
        expect(first == serving, f"Watch first {first}")
        return "Check, NOT_FOUND, List, Watch"

    check("grpcio_reflection_pool", reflection_pool)
    check("grpcio_health", health)
    channel.close()


def node_checks(base):
    done = subprocess.run(["node", "js/health_client.mjs", "--target", base, "--service", GREET],
                          cwd=HERE, capture_output=True, timeout=120)
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("CHECK ")]
    if not lines:
        check("connect_node_health", lambda: expect(False, done.stderr.decode()[-2000:]))
    for line in lines:
        _, name, state, *detail = line.split(" ", 3)
        print(f"CHECK connect_node_{name} {state} {' '.join(detail)}", flush=True)
        results.append(state == "PASS")


def shutdown_check(proc, port):
    """A Watch open across SIGINT: NOT_SERVING, then the end of the stream, then the server exits."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=20)
    seen = [health_pb2.HealthCheckResponse.ServingStatus.Name(next(watch).status)]
    # Let the watch settle, then ask the server to stop.
    threading.Timer(0.2, lambda: os.kill(proc.pid, signal.SIGINT)).start()
    for message in watch:
        seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(message.status))
    expect(watch.code() == grpc.StatusCode.OK, f"the watch ended with {watch.code()}")
    expect(seen == ["SERVING", "NOT_SERVING"], f"watched {seen}")
    proc.wait(10)
    expect(proc.returncode == 0, f"the server exited with {proc.returncode}")
    channel.close()
    return "SERVING, NOT_SERVING, end of stream (OK), server exited 0"


def main():
    proc, port = start_demo()
    base = f"http://127.0.0.1:{port}"
    try:
        buf_checks(base)
        grpcio_checks(port)
        node_checks(base)
        check("grpcio_watch_across_graceful_shutdown", lambda: shutdown_check(proc, port))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    passed = sum(results)
    failed = len(results) - passed
    print(f"health/reflection: {passed} passed, {failed} failed", flush=True)
    if failed:
        with open(os.path.join(LOGS, "server-demo.log"), "rb") as f:
            sys.stderr.write("demo server log:\n" + f.read().decode(errors="replace")[-4000:])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
