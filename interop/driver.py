#!/usr/bin/env python3
"""Runs the interop matrix: our server under third-party clients, our client against third-party
servers. Starts every server on a free port of 127.0.0.1, waits until it accepts connections, runs
each pair's client (one process per pair, judged by its `CHECK <kind> PASS|FAIL|NA <detail>` lines),
stops servers by PID and prints the table and "N passed, M failed". Exits non-zero on any unexpected
failure. Paths are relative to interop/ (run.sh builds and installs first)."""

import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RUST_SERVER = os.path.join(TARGET, "debug", "interop-server")
RUST_CLIENT = os.path.join(TARGET, "debug", "interop-client")
PY = os.path.join(HERE, ".venv", "bin", "python")
LOGS = os.path.join(HERE, "logs")
KINDS = ["unary", "server_stream", "client_stream", "bidi", "error", "metadata", "deadline", "gzip"]
CLIENT_TIMEOUT = 120
READY_TIMEOUT = 30

# Runtimes our server runs on (interop-server --runtime ...).
RUNTIMES = ["tokio", "smol"]
NOT_YET: dict = {}

# (pair, kind) -> reason: failures we understand, caused by us and not fixed yet. A listed case that
# fails counts as an expected failure; one that passes is reported, so the list can shrink.
KNOWN_FAILURES = {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    """A server process on 127.0.0.1:port with its log in logs/NAME.log."""

    def __init__(self, name, argv):
        self.name = name
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.log_path = os.path.join(LOGS, f"server-{name}.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=HERE, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode} before it was ready")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"not accepting connections after {READY_TIMEOUT} s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def print_log(self):
        print_file(f"log of server {self.name} ({' '.join(self.argv)})", self.log_path)


def print_file(title, path, limit=60):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = ["(no log)"]
    print(f"---- {title}, last {min(limit, len(lines))} lines ----")
    for line in lines[-limit:]:
        print("    " + line)


def servers():
    node_h1 = ["node", "js/connect_server.mjs", "--port", "{port}", "--http-version", "1.1"]
    node_h2 = ["node", "js/connect_server.mjs", "--port", "{port}", "--http-version", "2"]
    out = {f"rust-{rt}": [RUST_SERVER, "--runtime", rt, "--port", "{port}"] for rt in RUNTIMES}
    out.update({
        "connect-node-h1": node_h1,
        "connect-node-h2": node_h2,
        "grpcio": [PY, "py/grpcio_server.py", "--port", "{port}"],
        "connect-python": [PY, "py/connect_server.py", "--port", "{port}"],
    })
    return out


def connect_client(argv0):
    """A client command for clients that take --target URL --protocol --http-version --codec."""
    def build(port, protocol, version, codec):
        return argv0 + ["--target", f"http://127.0.0.1:{port}", "--protocol", protocol,
                        "--http-version", version, "--codec", codec]
    return build


NODE = connect_client(["node", "js/connect_client.mjs"])
CPY = connect_client([PY, "py/connect_client.py"])
RUST = connect_client([RUST_CLIENT])


def grpcio(port, *_):
    return [PY, "py/grpcio_client.py", "--target", f"127.0.0.1:{port}"]


def grpcjs(port, *_):
    return ["node", "js/grpcjs_client.mjs", "--target", f"127.0.0.1:{port}"]


def pairs():
    """(pair name, server name or None, client builder, protocol, http version, codec, n/a reason)."""
    rows = []
    for rt in RUNTIMES + list(NOT_YET):
        server = f"rust-{rt}"
        na = NOT_YET.get(rt)
        for protocol in ["connect", "grpcweb", "grpc"]:
            for version in ["1.1", "2"]:
                for codec in ["proto", "json"]:
                    name = f"connect-node → rust-{rt} {protocol} h{version} {codec}"
                    reason = na
                    if protocol == "grpc" and version == "1.1":
                        if codec == "json":
                            continue
                        name = f"connect-node → rust-{rt} grpc h1.1"
                        reason = "connect-node's gRPC transport is always HTTP/2"
                    rows.append((name, server, NODE, protocol, version, codec, reason))
        rows.append((f"grpcio → rust-{rt} grpc h2 proto", server, grpcio, "grpc", "2", "proto", na))
        rows.append((f"grpc-js → rust-{rt} grpc h2 proto", server, grpcjs, "grpc", "2", "proto", na))
        for protocol, version, codec in [("connect", "1.1", "proto"), ("connect", "1.1", "json"),
                                         ("connect", "2", "proto"), ("connect", "2", "json"),
                                         ("grpc", "2", "proto")]:
            rows.append((f"connect-python → rust-{rt} {protocol} h{version} {codec}", server, CPY,
                         protocol, version, codec, na))
    for protocol in ["connect", "grpcweb", "grpc"]:
        for version in ["1.1", "2"]:
            for codec in ["proto", "json"]:
                server = "connect-node-h1" if version == "1.1" else "connect-node-h2"
                name = f"rust → connect-node {protocol} h{version} {codec}"
                reason = None
                if protocol == "grpc" and version == "1.1":
                    if codec == "json":
                        continue
                    name = "rust → connect-node grpc h1.1"
                    reason = "gRPC needs HTTP/2 (our client refuses gRPC over HTTP/1.1)"
                rows.append((name, server, RUST, protocol, version, codec, reason))
    rows.append(("rust → grpcio grpc h2 proto", "grpcio", RUST, "grpc", "2", "proto", None))
    rows.append(("rust → grpcio grpc h2 json", None, RUST, "grpc", "2", "json",
                 "grpcio has no JSON codec"))
    for protocol, version, codec in [("connect", "1.1", "proto"), ("connect", "1.1", "json"),
                                     ("connect", "2", "proto"), ("connect", "2", "json"),
                                     ("grpc", "2", "proto"), ("grpcweb", "1.1", "proto")]:
        rows.append((f"rust → connect-python {protocol} h{version} {codec}", "connect-python", RUST,
                     protocol, version, codec, None))
    return rows


def run_client(argv, log_path):
    """Runs one client process; returns {kind: (state, detail)}."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=HERE, stdout=subprocess.PIPE, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    results = {}
    for line in out.decode(errors="replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[0] == "CHECK" and parts[1] in KINDS:
            results[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
    for kind in KINDS:
        results.setdefault(kind, ("FAIL", f"no result (client exit {proc.returncode})"))
    return results


def main():
    os.makedirs(LOGS, exist_ok=True)
    commands = servers()
    rows = pairs()
    table = []  # (pair, {kind: cell}), cell in pass / FAIL / xfail / n/a
    notes = []  # (pair, kind, text)
    passed = failed = expected = 0
    by_server = {}
    for row in rows:
        by_server.setdefault(row[1], []).append(row)
    for server_name, group in by_server.items():
        peer = None
        start_error = None
        if server_name is not None and any(r[6] is None for r in group):
            peer = Peer(server_name, commands[server_name])
            try:
                peer.start()
            except Exception as e:  # noqa: BLE001
                start_error = f"server {server_name} failed to start: {e}"
                peer.print_log()
        try:
            for name, _, build, protocol, version, codec, na in group:
                cells = {}
                if na is not None:
                    table.append((name, {k: "n/a" for k in KINDS}))
                    notes.append((name, "all", f"n/a: {na}"))
                    continue
                if start_error is not None:
                    results = {k: ("FAIL", start_error) for k in KINDS}
                else:
                    slug = "".join(c if c.isalnum() else "-" for c in name)
                    client_log = os.path.join(LOGS, f"client-{slug}.log")
                    started = time.monotonic()
                    results = run_client(build(peer.port, protocol, version, codec), client_log)
                    secs = time.monotonic() - started
                    print(f"ran {name} in {secs:.1f} s", flush=True)
                pair_failed = False
                for kind in KINDS:
                    state, detail = results[kind]
                    known = KNOWN_FAILURES.get((name, kind))
                    if state == "NA":
                        cells[kind] = "n/a"
                        notes.append((name, kind, f"n/a: {detail}"))
                    elif state == "PASS":
                        cells[kind] = "pass"
                        passed += 1
                        if known:
                            notes.append((name, kind, f"passes although listed as known: {known}"))
                    elif known:
                        cells[kind] = "xfail"
                        expected += 1
                        notes.append((name, kind, f"known failure: {known} (got: {detail})"))
                    else:
                        cells[kind] = "FAIL"
                        failed += 1
                        pair_failed = True
                        notes.append((name, kind, f"FAIL: {detail}"))
                table.append((name, cells))
                if pair_failed and start_error is None:
                    print_file(f"stderr of client for {name}", client_log)
                    if peer is not None:
                        peer.print_log()
                        if not peer.alive():
                            print(f"server {server_name} died; restarting it")
                            peer.stop()
                            peer = Peer(server_name, commands[server_name])
                            peer.start()
        finally:
            if peer is not None:
                peer.stop()

    width = max(len(name) for name, _ in table)
    print()
    print(f"| {'pair (client → server, protocol, HTTP, codec)':<{width}} | "
          + " | ".join(KINDS) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(k) + 2) for k in KINDS) + "|")
    for name, cells in table:
        print(f"| {name:<{width}} | "
              + " | ".join(f"{cells[k]:<{len(k)}}" for k in KINDS) + " |")
    print()
    print("pass: the check passed; FAIL: unexpected failure; xfail: known failure (reason below);")
    print("n/a: the pair cannot do it (reason below).")
    print()
    # One line per distinct note, with the pairs it applies to.
    grouped = {}
    for name, kind, text in notes:
        grouped.setdefault((kind, text), []).append(name)
    for (kind, text), names in grouped.items():
        where = names[0] if len(names) == 1 else f"{len(names)} pairs ({'; '.join(names)})"
        print(f"- [{kind}] {text}: {where}")
    print()
    suffix = f" ({expected} known failures)" if expected else ""
    print(f"{passed} passed, {failed} failed{suffix}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
