"""Shared helpers of the Python peer scripts: generated code on the path, check output, the rules of
interop.proto."""

import asyncio
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gen", "py"))

from interop.v1 import interop_pb2 as pb  # noqa: E402

DETAIL_TYPE = "interop.v1.ErrorDetail"
FAIL_CODE = "failed_precondition"
FAIL_MESSAGE = "interop failure"


def emit(kind, state, detail=""):
    print(f"CHECK {kind} {state} {str(detail).replace(chr(10), ' ')}", flush=True)


def failing(text, count=0):
    return pb.Request(text=text, count=count, fail_code=FAIL_CODE, fail_message=FAIL_MESSAGE)


def run_sync(kind, fn):
    """Runs one synchronous check; it returns a detail string or raises."""
    try:
        emit(kind, "PASS", fn())
    except Exception as e:  # noqa: BLE001 - any failure is a failed check
        emit(kind, "FAIL", f"{type(e).__name__}: {e}")


async def run_async(kind, coro_fn, timeout=15):
    try:
        emit(kind, "PASS", await asyncio.wait_for(coro_fn(), timeout))
    except asyncio.TimeoutError:
        emit(kind, "FAIL", f"timed out after {timeout} s")
    except Exception as e:  # noqa: BLE001
        emit(kind, "FAIL", f"{type(e).__name__}: {e}")


def expect(ok, what):
    if not ok:
        raise AssertionError(what)


def hard_exit(code=0):
    """connect-python's client may abort at interpreter exit after every call succeeded."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.ms = int((time.monotonic() - self.start) * 1000)
