"""HTTP/3 interop with a third-party peer, aioquic (PyPI): its HTTP/3 client calls our connect-h3
server, and our connect-h3 client calls a small aioquic HTTP/3 server.

- aioquic client -> our server (`interop-h3 serve`): Connect unary and server stream (JSON), gRPC
  unary (trailers in their own HEADERS frame after the DATA), a gRPC error, and gRPC-Web unary
  (trailers in the body), each request built and each response checked here, byte for byte;
- our client (`interop-h3 call`) -> an aioquic server that answers Connect unary calls (JSON), one
  success and one error.

Run by run.sh (with the pinned aioquic in .venv); prints one line per check and ends with
`h3: N passed, M failed`. Exits non-zero on any failure.
"""

import asyncio
import datetime
import ipaddress
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

from aioquic.asyncio import serve
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, StreamReset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BINARY = os.path.join(ROOT, TARGET, "debug", "interop-h3")
SERVICE = "/interop.v1.InteropService/"
TIMEOUT = 10


# ---------------------------------------------------------------------------------------------
# Certificates: a CA and a server certificate for localhost and 127.0.0.1 (rustls refuses a CA
# certificate as a server's own).


def make_certs(directory):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h3 interop CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: os.path.join(directory, f"{name}.pem") for name in ("ca", "cert", "key")}
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


# ---------------------------------------------------------------------------------------------
# aioquic's HTTP/3 client.


class Exchange:
    """One request's response as aioquic reports it: header blocks and body, or a reset."""

    def __init__(self):
        self.blocks = []  # each HEADERS frame, in order: the response head, then any trailers
        self.body = b""
        self.reset = None
        self.done = asyncio.get_running_loop().create_future()

    @property
    def headers(self):
        return dict(self.blocks[0]) if self.blocks else {}

    @property
    def trailers(self):
        return dict(self.blocks[1]) if len(self.blocks) > 1 else {}


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.exchanges = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamReset) and event.stream_id in self.exchanges:
            exchange = self.exchanges.pop(event.stream_id)
            exchange.reset = event.error_code
            exchange.done.set_result(None)
            return
        for h3_event in self.h3.handle_event(event):
            exchange = self.exchanges.get(getattr(h3_event, "stream_id", None))
            if exchange is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                exchange.blocks.append(
                    [(k.decode(), v.decode()) for k, v in h3_event.headers]
                )
            elif isinstance(h3_event, DataReceived):
                exchange.body += h3_event.data
            if getattr(h3_event, "stream_ended", False):
                del self.exchanges[h3_event.stream_id]
                exchange.done.set_result(None)

    async def post(self, authority, path, headers, body):
        stream_id = self._quic.get_next_available_stream_id()
        exchange = Exchange()
        self.exchanges[stream_id] = exchange
        self.h3.send_headers(
            stream_id,
            [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
            ]
            + [(k.encode(), v.encode()) for k, v in headers],
        )
        self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()
        await asyncio.wait_for(exchange.done, TIMEOUT)
        return exchange


def envelope(flags, payload):
    return struct.pack(">BI", flags, len(payload)) + payload


def envelopes(body):
    out = []
    while body:
        if len(body) < 5:
            raise ValueError(f"truncated envelope prefix: {body!r}")
        flags, length = struct.unpack(">BI", body[:5])
        if len(body) < 5 + length:
            raise ValueError("truncated envelope")
        out.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return out


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


async def connect_unary(client, authority):
    r = await client.post(
        authority,
        SERVICE + "Unary",
        [("content-type", "application/json"), ("connect-protocol-version", "1"), ("x-echo", "e1")],
        json.dumps({"text": "hi"}).encode(),
    )
    expect(r.reset is None, f"reset {r.reset}")
    expect(r.headers.get(":status") == "200", f"status {r.headers}")
    expect(r.headers.get("content-type") == "application/json", f"headers {r.headers}")
    expect(json.loads(r.body).get("text") == "hi", f"body {r.body!r}")
    expect(r.headers.get("x-echo-header") == "e1", f"headers {r.headers}")
    expect(r.headers.get("trailer-x-echo-trailer") == "e1", f"headers {r.headers}")
    return "200, JSON echoed, header and trailer-prefixed trailer"


async def connect_server_stream(client, authority):
    r = await client.post(
        authority,
        SERVICE + "ServerStream",
        [("content-type", "application/connect+json"), ("connect-protocol-version", "1"), ("x-echo", "e2")],
        envelope(0, json.dumps({"text": "s", "count": 3}).encode()),
    )
    expect(r.reset is None, f"reset {r.reset}")
    expect(r.headers.get(":status") == "200", f"status {r.headers}")
    frames = envelopes(r.body)
    expect(len(frames) == 4, f"{len(frames)} envelopes")
    messages = [json.loads(p) for f, p in frames[:3]]
    expect([m.get("index", 0) for m in messages] == [0, 1, 2], f"messages {messages}")
    expect(all(f == 0 for f, _ in frames[:3]), "message flags")
    flags, end = frames[3]
    expect(flags == 2, f"end-of-stream flags {flags}")
    end = json.loads(end)
    expect("error" not in end, f"end of stream {end}")
    expect(end.get("metadata", {}).get("x-echo-trailer") == ["e2"], f"end of stream {end}")
    return "3 messages then EndStream with trailers"


async def grpc_unary(client, authority):
    r = await client.post(
        authority,
        SERVICE + "Unary",
        [("content-type", "application/grpc+json"), ("te", "trailers"), ("x-echo", "e3")],
        envelope(0, json.dumps({"text": "g"}).encode()),
    )
    expect(r.reset is None, f"reset {r.reset}")
    expect(r.headers.get(":status") == "200", f"status {r.headers}")
    expect(r.headers.get("content-type", "").startswith("application/grpc"), f"headers {r.headers}")
    frames = envelopes(r.body)
    expect(len(frames) == 1 and json.loads(frames[0][1]).get("text") == "g", f"body {r.body!r}")
    expect(len(r.blocks) == 2, f"{len(r.blocks)} header blocks (no HTTP/3 trailers?)")
    expect(r.trailers.get("grpc-status") == "0", f"trailers {r.trailers}")
    expect(r.trailers.get("x-echo-trailer") == "e3", f"trailers {r.trailers}")
    return "message, then grpc-status 0 in HTTP/3 trailers"


async def grpc_error(client, authority):
    request = {"text": "x", "failCode": "not_found", "failMessage": "gone away"}
    r = await client.post(
        authority,
        SERVICE + "Unary",
        [("content-type", "application/grpc+json"), ("te", "trailers")],
        envelope(0, json.dumps(request).encode()),
    )
    expect(r.reset is None, f"reset {r.reset}")
    status = r.trailers or r.headers
    expect(status.get("grpc-status") == "5", f"blocks {r.blocks}")
    expect(status.get("grpc-message") == "gone away", f"blocks {r.blocks}")
    expect("grpc-status-details-bin" in status, f"blocks {r.blocks}")
    shape = "trailers-only" if len(r.blocks) == 1 else "headers then trailers"
    return f"grpc-status 5, message and details ({shape})"


async def grpc_web_unary(client, authority):
    r = await client.post(
        authority,
        SERVICE + "Unary",
        [("content-type", "application/grpc-web+json"), ("x-grpc-web", "1")],
        envelope(0, json.dumps({"text": "w"}).encode()),
    )
    expect(r.reset is None, f"reset {r.reset}")
    expect(r.headers.get(":status") == "200", f"status {r.headers}")
    frames = envelopes(r.body)
    expect(len(frames) == 2, f"{len(frames)} frames")
    expect(json.loads(frames[0][1]).get("text") == "w", f"message {frames[0]}")
    flags, trailers = frames[1]
    expect(flags & 0x80, f"trailer frame flags {flags}")
    expect(re.search(rb"(?im)^grpc-status: ?0\r$", trailers), f"trailers {trailers!r}")
    return "message, then the trailer frame in the body"


async def aioquic_client_checks(report, ca, port):
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.load_verify_locations(ca)
    configuration.server_name = "localhost"
    authority = f"localhost:{port}"
    async with connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=H3Client
    ) as client:
        for name, check in [
            ("aioquic-client -> ours: connect unary", connect_unary),
            ("aioquic-client -> ours: connect server stream", connect_server_stream),
            ("aioquic-client -> ours: grpc unary", grpc_unary),
            ("aioquic-client -> ours: grpc error", grpc_error),
            ("aioquic-client -> ours: grpc-web unary", grpc_web_unary),
        ]:
            try:
                report(name, True, await check(client, authority))
            except Exception as e:  # noqa: BLE001 - every failure is reported
                report(name, False, f"{type(e).__name__}: {e}")


# ---------------------------------------------------------------------------------------------
# aioquic's HTTP/3 server, answering Connect unary calls in JSON.


class H3Server(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = None
        self.requests = {}

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                headers = {k.decode(): v.decode() for k, v in h3_event.headers}
                self.requests[h3_event.stream_id] = [headers, b""]
            elif isinstance(h3_event, DataReceived) and h3_event.stream_id in self.requests:
                self.requests[h3_event.stream_id][1] += h3_event.data
            if getattr(h3_event, "stream_ended", False) and h3_event.stream_id in self.requests:
                headers, body = self.requests.pop(h3_event.stream_id)
                self.answer(h3_event.stream_id, headers, body)

    def answer(self, stream_id, headers, body):
        status, response, extra = 200, None, []
        if headers.get(":method") != "POST" or headers.get(":path") != SERVICE + "Unary":
            status, response = 404, {"code": "unimplemented", "message": "no such method"}
        elif headers.get("content-type") != "application/json":
            status, response = 415, {"code": "internal", "message": "want application/json"}
        elif headers.get("connect-protocol-version") != "1":
            status, response = 400, {"code": "invalid_argument", "message": "no protocol version"}
        else:
            request = json.loads(body or b"{}")
            if request.get("failCode"):
                status = 404
                response = {"code": request["failCode"], "message": request.get("failMessage", "")}
            else:
                response = {"text": request.get("text", "")}
                if "x-echo" in headers:
                    extra.append((b"x-echo-header", headers["x-echo"].encode()))
        self.h3.send_headers(
            stream_id,
            [(b":status", str(status).encode()), (b"content-type", b"application/json")] + extra,
        )
        self.h3.send_data(stream_id, json.dumps(response).encode(), end_stream=True)
        self.transmit()


async def our_client_checks(report, paths):
    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    configuration.load_cert_chain(paths["cert"], paths["key"])
    server = await serve("127.0.0.1", 0, configuration=configuration, create_protocol=H3Server)
    port = server._transport.get_extra_info("sockname")[1]
    try:
        process = await asyncio.create_subprocess_exec(
            BINARY, "call", "--url", f"https://localhost:{port}", "--ca", paths["ca"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 3 * TIMEOUT)
    finally:
        server.close()
    seen = 0
    for line in output.decode().splitlines():
        m = re.match(r"CHECK (\S+) (PASS|FAIL) (.*)", line)
        if m:
            seen += 1
            report(f"ours -> aioquic-server: {m.group(1)}", m.group(2) == "PASS", m.group(3))
    if seen == 0:
        report("ours -> aioquic-server", False, output.decode().strip() or "no output")


async def main():
    results = []

    def report(name, ok, detail):
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)

    with tempfile.TemporaryDirectory() as directory:
        paths = make_certs(directory)
        server = subprocess.Popen(
            [BINARY, "serve", "--cert", paths["cert"], "--key", paths["key"]],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            line = server.stdout.readline()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if not m:
                report("our server starts", False, line.strip() or "no output")
            else:
                await aioquic_client_checks(report, paths["ca"], int(m.group(1)))
        finally:
            server.kill()
            server.wait()
        await our_client_checks(report, paths)
    passed = sum(results)
    print(f"h3: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
