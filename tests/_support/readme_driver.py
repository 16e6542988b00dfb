"""Run code examples against our package, our server on localhost:50051 (on the Redis store) and a
redis-server on localhost:6379, inside a network namespace of their own (so those fixed ports collide with nothing).

Started by :func:`tests._support.readme.run_examples` as ``unshare --net python readme_driver.py`` with a
JSON list on stdin; each item is ``{"code", "prelude", "probe"}``. It brings the namespace's loopback up,
starts both servers, runs each example's prelude (names the example takes as given), the example itself
unchanged (wrapped in a function only when it uses ``return`` or ``await`` at top level), then its probe,
which fills ``facts``. It prints one JSON list: ``{"ok", "error", "facts"}`` per example.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
import traceback
from typing import Any

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

POLICIES = {
    "api": {"strategy": "fixedWindow", "limit": 5, "period": "1m"},
    "llm": {"tokenBudget": {"budget": 1000, "windowMs": 60000}},
    "checkout": {"concurrency": {"minLimit": 2, "maxLimit": 2}},
    # the FleetBackend example leases from a federated policy (it needs the shared Redis below)
    "global-api": {"strategy": "fixedWindow", "limit": 1000, "period": "1m", "federated": {"batch": 16}},
}


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0))[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def start_redis() -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found")
    proc = subprocess.Popen(
        [binary, "--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:  # bounded wait for the port: start-up, not the behaviour under test
        try:
            socket.create_connection(("127.0.0.1", 6379), timeout=0.2).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)


def wrapped(code: str) -> str:
    """``code`` as the body of a function that publishes its names, when it cannot run at top level."""
    try:
        compile(code, "<example>", "exec")
        return code
    except SyntaxError:
        pass
    asynchronous = "await " in code or "async with" in code or "async for" in code
    body = textwrap.indent(code + "\nglobals().update(locals())", "    ")
    head = "async def __example__():\n" if asynchronous else "def __example__():\n"
    call = "\nimport asyncio\nasyncio.run(__example__())\n" if asynchronous else "\n__example__()\n"
    return head + body + call


def run_one(example: dict[str, Any]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_example", "facts": {}}
    try:
        exec(example.get("prelude", ""), namespace)
        exec(compile(wrapped(example["code"]), "<example>", "exec"), namespace)
        exec(example.get("probe", ""), namespace)
    except BaseException:
        return {"ok": False, "error": traceback.format_exc(limit=6)[-3000:], "facts": namespace["facts"]}
    return {"ok": True, "error": "", "facts": namespace["facts"]}


def main() -> None:
    examples = json.load(sys.stdin)
    loopback_up()
    redis_proc = start_redis()
    from throttlekit.config import load_config
    from throttlekit.server import RateLimiterService, serve

    # the server keeps its state in the same redis-server, under its own prefix (federated policies need
    # a shared store)
    service = RateLimiterService(
        load_config(json.dumps({"version": 1, "limiters": POLICIES})),
        store="redis://127.0.0.1:6379/0?prefix=server",
        close_store=True,
    )
    handle = serve(service, "127.0.0.1", 50051)
    try:
        results = [run_one(e) for e in examples]
    finally:
        handle.close(grace=0.5)
        redis_proc.kill()
        redis_proc.wait(timeout=10)
    asyncio.set_event_loop(None)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
