#!/usr/bin/env python3
"""Benchmark ``RateLimiter.Check`` through the gRPC door against its ceiling, measured in the same run.

The ceiling is a bare ``grpc.aio`` server (same server options, one process) whose Check handler
answers fixed bytes: what one Python gRPC process can do at all on this machine. Beside it the script
starts ``throttlekit-server`` on the memory store and on Redis, and drives all of them with the same
h2load load (Debian ``nghttp2-client``: ``apt-get install -y nghttp2-client``), a C HTTP/2 client sending
a prebuilt gRPC frame, so the generator costs the machine little and the server is what saturates.
Without h2load it falls back to several Python client processes (weaker: they share the cores).

Rounds interleave the servers (echo, memory, redis, echo, ...) so drifting background load hits them
alike; each row reports the median Check/s, the median ratio to the echo of the same round and the
spread (min-max) of that ratio over the rounds. A progress line per group goes to stderr.

Beside the Redis row runs a second ceiling, the echo plus one Redis round trip per Check: its handler
writes the very EVALSHA bytes the server sends for this policy (prebuilt once) on a bare asyncio protocol,
waits for the reply (parsed by hiredis) and answers fixed bytes. No Python gRPC process that asks Redis
once per Check can do better; the Redis row's last column is its ratio to that ceiling. Beside the
memory row runs its own second ceiling, the echo plus one call into Lua through lupa per Check (the
embedded benchmark's crossing floor: the limiter's call shape into a Lua function answering constants,
then the public ``Decision``): every decision of a memory server is made in Lua in process, so none can
do better than that (lupa releases the GIL on each call, which a bare echo never does). A third echo,
the echo plus the embedded decision itself (``Limiter(FixedWindow).check`` on a ``MemoryStore``, the
policy's own transform), splits the memory row's gap into what the Lua decision costs and what the
server adds around it (the door, parsing the request, observation, the response).

The policy is a fixed window with a huge limit, so every Check takes the ALLOW path on one hot key;
after the rounds the script Peeks the key and checks that the server counted exactly the requests the
load generator saw succeed (HTTP/2 200 alone would not prove a gRPC OK).

Usage: ``python scripts/bench_grpc.py [--rounds 5] [--seconds 3] [--redis URL] [--stores memory,redis]``;
``--instructions`` counts the instructions each server process executes per Check under callgrind instead
(independent of the machine's load: the ratio to the echo on a busy machine; needs valgrind, ~5 minutes);
``--stores memory,memory+tui`` measures the cost of the Lens dashboard (``--tui``) in the same run, and
``--stores memory,memory-monitor-off`` the cost of the Monitor's observation (the default server observes
every decision for the Lens snapshot; ``--monitor off`` without ``--metrics-port`` attaches no observer).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from throttlekit._proto import throttlekit_pb2 as pb
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
from throttlekit.stores._redisconn import RedisOptions

LIMIT = 10**15
#: The second ceiling's row: the echo plus one raw Redis round trip per Check.
ECHO_REDIS = "echo + Redis round trip (ceiling)"
#: The memory row's second ceiling: the echo plus one lupa crossing per Check.
ECHO_LUPA = "echo + lupa crossing (ceiling)"
#: A reference beside the memory row: the echo plus the embedded decision (the policy's transform).
ECHO_DECISION = "echo + embedded Limiter.check (reference)"
#: Which second ceilings (and references) each of our rows is measured against as well.
SECOND = {
    "Check, redis": (ECHO_REDIS,),
    "Check, memory": (ECHO_LUPA, ECHO_DECISION),
    "Check, memory+tui": (ECHO_LUPA, ECHO_DECISION),
    "Check, memory-monitor-off": (ECHO_LUPA, ECHO_DECISION),
}
CONFIG = f"limiters:\n  bench: {{ strategy: fixedWindow, limit: {LIMIT}, period: 1d }}\n"
METHOD = "/throttlekit.v1.RateLimiter/Check"
#: h2load's load: connections x concurrent streams per connection.
CLIENTS, STREAMS = 4, 16


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def _port_of(line: str) -> int:
    return int(line.split("listening on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])


#: The event loop of every server and echo the gRPC benchmarks start (``--loop``): uvloop where it is
#: installed, as ``throttlekit-server --loop auto`` picks, so the ceiling runs on the same loop as ours.
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def server_args(config: Path, *extra: str) -> list[str]:
    """The ``throttlekit-server`` command line every gRPC benchmark starts: ``config`` on a free port,
    warnings only, no drain on SIGTERM, then ``extra`` flags."""
    return [
        sys.executable,
        "-c",
        "import sys; from throttlekit.cli import server_main; sys.exit(server_main())",
        "--config",
        str(config),
        "--port",
        "0",
        "--log-level",
        "warning",
        "--drain-grace",
        "0",
        "--loop",
        LOOP,
        *extra,
    ]


def bench_files(directory: Path) -> tuple[Path, Path]:
    """``(frame, config)`` in ``directory``: the h2load request body (one gRPC-framed Check of key "hot" on
    policy "bench") and the policy file of every gRPC benchmark (:data:`CONFIG`)."""
    frame = directory / "check.bin"
    frame.write_bytes(grpc_frame(pb.CheckRequest(policy="bench", key="hot", cost=1).SerializeToString()))
    config = directory / "bench.yaml"
    config.write_text(CONFIG)
    return frame, config


def start_server(config: Path, store: str, redis_url: str) -> tuple[subprocess.Popen[str], int]:
    """``throttlekit-server`` on ``store`` on a free port: (process, port). ``memory+tui``: on the memory
    store with ``--tui`` on a pseudo-terminal, so the Lens dashboard repaints throughout the run."""
    args = server_args(config)
    if store == "redis":
        args += ["--redis", redis_url, "--redis-prefix", f"bench-{uuid.uuid4().hex[:8]}"]
    if store == "memory-monitor-off":
        args += ["--monitor", "off"]
    if store == "memory+tui":  # the same server with Lens repainting on a pseudo-terminal
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests._support.pty import OnPty

        term = OnPty([*args, "--tui"], cols=120, rows=40)
        port = int(term.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        term.wait_for(r"ThrottleKit · memory")  # the dashboard is up and repainting
        return term.proc, port  # type: ignore[return-value]
    return spawn(args)


def start_echo(redis_url: str | None = None, lupa: str = "") -> tuple[subprocess.Popen[str], int]:
    """The ceiling: a bare grpc.aio server answering Check with fixed bytes (this script, ``--echo``);
    with ``redis_url``, after one raw Redis round trip per Check (``--echo-redis``); with ``lupa``
    "crossing", after one lupa crossing per Check (``--echo-lupa``), "decision", after the embedded
    decision (``--echo-decision``)."""
    return spawn(echo_command(redis_url, lupa))


def echo_command(redis_url: str | None = None, lupa: str = "") -> list[str]:
    """The echo's command line, on the benchmarks' event loop (:data:`LOOP`)."""
    extra = ["--echo-redis", redis_url] if redis_url else []
    if lupa:
        extra.append({"crossing": "--echo-lupa", "decision": "--echo-decision"}[lupa])
    return [sys.executable, str(Path(__file__).resolve()), "--echo", "--loop", LOOP, *extra]


def _raw_redis_check(url: str) -> tuple[RedisOptions, bytes]:
    """(the URL's options, the EVALSHA bytes the server sends for one Check of key "hot" on :data:`CONFIG`'s
    policy, under a key prefix of its own): packed once, so the echo's handler only writes them."""
    from throttlekit import FixedWindow
    from throttlekit._loader import load_manifest
    from throttlekit.stores._redisconn import redis_options
    from throttlekit.stores._resp import SERVER_TIME, evalsha_packer

    opts = redis_options(url)
    strategy = FixedWindow(LIMIT, "1d")
    t = load_manifest()[strategy.check_transform]
    return opts, evalsha_packer(t, strategy.params())(
        f"bench-echo-{uuid.uuid4().hex[:8]}:hot", SERVER_TIME, 1
    )


def spawn(args: list[str]) -> tuple[subprocess.Popen[str], int]:
    """Start a server command line that prints ``... listening on host:port ...`` first: (process, port)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, _port_of(line)


def echo_main(redis_url: str | None = None, lupa: str = "") -> None:
    """Serve the echo on a free port; print the port like throttlekit-server does; stop on SIGTERM.
    With ``redis_url``, every Check first sends the server's EVALSHA bytes to Redis and awaits the reply;
    with ``lupa`` "crossing", every Check first crosses into Lua once (``throttlekit._bench.lupa_floor``);
    with "decision", it first runs the policy's decision embedded (``Limiter.check``, memory store)."""
    from throttlekit.server._app import _OPTIONS

    answer = pb.CheckResponse(
        decision=pb.Decision(allowed=True, limit=LIMIT, remaining=LIMIT - 1, reset_at=1, retry_after_ms=0)
    ).SerializeToString()

    async def check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return answer

    if lupa:
        from throttlekit._bench import lupa_floor

        floor = lupa_floor()
        if lupa == "decision":
            from throttlekit import FixedWindow, Limiter, MemoryStore

            floor = Limiter(FixedWindow(LIMIT, "1d"), store=MemoryStore()).check

        async def check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            floor("hot", 1)
            return answer

    async def run() -> None:
        nonlocal check
        if redis_url:
            check = await _redis_echo_handler(redis_url, answer)
        server = grpc.aio.server(options=_OPTIONS)
        handler = grpc.unary_unary_rpc_method_handler(check)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("throttlekit.v1.RateLimiter", {"Check": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(f"echo listening on 127.0.0.1:{port}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(0)

    if LOOP == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    else:
        asyncio.run(run())


async def _redis_echo_handler(url: str, answer: bytes) -> Any:
    """The echo's handler with one raw Redis round trip: a bare protocol, hiredis, one future per call."""
    import hiredis

    opts, command = _raw_redis_check(url)
    waiters: deque[asyncio.Future[Any]] = deque()
    reader = hiredis.Reader()

    class Raw(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                waiters.popleft().set_result(reply)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(Raw, opts.host, opts.port, ssl=opts.ssl_context())
    write, create_future = transport.write, loop.create_future
    for _name, setup in opts.handshake():  # AUTH, SELECT: once, as every store does on connect
        waiters.append(fut := create_future())
        write(setup)
        await fut

    async def check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        fut = create_future()
        waiters.append(fut)
        write(command)
        reply = await fut
        if isinstance(reply, hiredis.ReplyError):
            raise RuntimeError(f"redis: {reply}")
        return answer

    return check


def h2load(
    port: int, frame: Path, log: Path | None, *, n: int, clients: int, streams: int, rps: int | None
) -> tuple[int, float]:
    """Run h2load against Check; return (succeeded requests, requests per second)."""
    args = [
        "h2load",
        "-n",
        str(n),
        "-c",
        str(clients),
        "-m",
        str(streams),
        "-d",
        str(frame),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
    ]
    if log is not None:
        if log.exists():
            log.unlink()  # h2load appends
        args.append(f"--log-file={log}")
    if rps:
        args += ["--rps", str(rps)]
    out = subprocess.run(
        [*args, f"http://127.0.0.1:{port}{METHOD}"], capture_output=True, text=True, check=True
    ).stdout
    ok = rate = 0.0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rate = float(line.split(",")[1].split("req/s")[0])
        if line.startswith("requests:"):
            ok = int(line.split(",")[3].split()[0])
    return int(ok), rate


def _client_process(port: int, n: int, streams: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> int:
        request = pb.CheckRequest(policy="bench", key="hot", cost=1)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.RateLimiterStub(ch)
            left = n
            ok = 0

            async def worker() -> None:
                nonlocal left, ok
                while left > 0:
                    left -= 1
                    await stub.Check(request, timeout=10)
                    ok += 1

            await asyncio.gather(*(worker() for _ in range(streams)))
            return ok

    out.put(asyncio.run(run()))


def python_load(port: int, *, n: int, clients: int, streams: int) -> tuple[int, float]:
    """The fallback load generator: ``clients`` processes x ``streams`` concurrent calls each."""
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [
        multiprocessing.Process(target=_client_process, args=(port, n // clients, streams, queue))
        for _ in range(clients)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    ok = sum(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return ok, ok / (time.perf_counter() - t0)


@dataclass
class Target:
    name: str
    proc: subprocess.Popen[str]
    port: int
    counts: bool  # a throttlekit server: Peek tells how many Checks it decided
    sent: int = 0
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per RPC

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def instructions_per_check(command: list[str], frame: Path, small: int, large: int) -> tuple[float, float]:
    """Instructions the server process executes per Check, counted by ``valgrind --tool=callgrind`` (the
    count does not depend on what else the machine runs): the server serves ``small`` then, in a second
    process, ``large`` Checks, and the difference over ``large - small`` cancels startup and shutdown.
    Returns (instructions per Check, the larger run's total). Needs valgrind and h2load."""
    totals = []
    for n in (small, large):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "callgrind.out"
            proc = subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()  # the startup line, once valgrind has brought the server up
            if "listening on" not in line:
                proc.kill()
                raise SystemExit(f"server did not start under valgrind: {line!r}")
            ok, _ = h2load(_port_of(line), frame, None, n=n, clients=2, streams=4, rps=None)
            if ok != n:
                raise SystemExit(f"only {ok} of {n} Checks succeeded under valgrind")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=300)
            text = out.read_text(errors="replace")
            totals.append(sum(int(x.split()[1]) for x in text.splitlines() if x.startswith("summary:")))
    return (totals[1] - totals[0]) / (large - small), float(totals[1])


def run_instructions(stores: list[str], redis_url: str, small: int, large: int) -> None:
    """The ``--instructions`` table: instructions per Check of each server beside the echo's."""
    if shutil.which("valgrind") is None or shutil.which("h2load") is None:
        raise SystemExit(
            "--instructions needs valgrind and h2load (apt-get install -y valgrind nghttp2-client)"
        )
    with tempfile.TemporaryDirectory() as d:
        frame, config = bench_files(Path(d))
        commands = {"echo (ceiling)": echo_command()}
        if "redis" in stores:
            commands[ECHO_REDIS] = echo_command(redis_url)
        if {"memory", "memory-monitor-off"} & set(stores):
            commands[ECHO_LUPA] = echo_command(lupa="crossing")
            commands[ECHO_DECISION] = echo_command(lupa="decision")
        for store in stores:
            args = server_args(config)
            if store == "redis":
                args += ["--redis", redis_url, "--redis-prefix", f"bench-{uuid.uuid4().hex[:8]}"]
            elif store == "memory-monitor-off":
                args += ["--monitor", "off"]
            elif store != "memory":
                raise SystemExit(
                    f"--instructions measures memory, memory-monitor-off and redis, not {store!r}"
                )
            commands[f"Check, {store}"] = args
        per: dict[str, float] = {}
        for name, command in commands.items():
            print(f"{name}: {small} then {large} Checks under callgrind ...", file=sys.stderr, flush=True)
            per[name] = instructions_per_check(command, frame, small, large)[0]
    echo = per["echo (ceiling)"]
    print(
        f"\nInstructions per Check in the server process (callgrind; {large} - {small} Checks, h2load -c 2 -m 4, "
        f"event loop {LOOP})\n"
    )
    print("| server | instructions per Check | ratio (echo/ours) | ratio (second ceiling/ours) |")
    print("|---|--:|--:|--:|")
    for name, value in per.items():
        second = "; ".join(f"{per[c] / value:.2f}x of {c}" for c in SECOND.get(name, ()) if c in per)
        print(f"| {name} | {value:,.0f} | {echo / value:.2f}x | {second} |")


def counted(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        d = pb_grpc.RateLimiterStub(ch).Peek(pb.PeekRequest(policy="bench", key="hot"), timeout=5).decision
    return LIMIT - d.remaining


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--echo-redis", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--echo-lupa", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--echo-decision", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=5, help="rounds over all servers (default 5)")
    ap.add_argument("--seconds", type=float, default=3.0, help="rough length of one measured run")
    ap.add_argument(
        "--redis", default=os.environ.get("THROTTLEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    ap.add_argument(
        "--stores",
        default="memory,redis",
        help="comma-separated: memory, redis, memory+tui (Lens on a pty), memory-monitor-off",
    )
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per Check under callgrind instead of timing (load-independent; slow)",
    )
    ap.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop of the servers and the echo (auto: uvloop when installed, as throttlekit-server)",
    )
    args = ap.parse_args()
    global LOOP
    if args.loop != "auto":
        LOOP = args.loop
    if args.echo:
        echo_main(args.echo_redis, "decision" if args.echo_decision else "crossing" if args.echo_lupa else "")
        return 0
    if args.instructions:
        run_instructions(args.stores.split(","), args.redis, 300, 1300)
        return 0
    use_h2load = shutil.which("h2load") is not None
    if not use_h2load:
        print(
            "h2load not found (apt-get install -y nghttp2-client): falling back to Python client "
            "processes, which share the cores with the server and understate every row",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        frame, config = bench_files(tmp)
        targets: list[Target] = []
        try:
            proc, port = start_echo()
            targets.append(Target("echo (ceiling)", proc, port, counts=False))
            if "redis" in args.stores.split(","):
                proc, port = start_echo(args.redis)
                targets.append(Target(ECHO_REDIS, proc, port, counts=False))
            if {"memory", "memory+tui", "memory-monitor-off"} & set(args.stores.split(",")):
                proc, port = start_echo(lupa="crossing")
                targets.append(Target(ECHO_LUPA, proc, port, counts=False))
                proc, port = start_echo(lupa="decision")
                targets.append(Target(ECHO_DECISION, proc, port, counts=False))
            for store in args.stores.split(","):
                proc, port = start_server(config, store, args.redis)
                targets.append(Target(f"Check, {store}", proc, port, counts=True))

            def load(t: Target, n: int) -> tuple[int, float]:
                if use_h2load:
                    return h2load(t.port, frame, None, n=n, clients=CLIENTS, streams=STREAMS, rps=None)
                return python_load(t.port, n=n, clients=CLIENTS, streams=STREAMS)

            for t in targets:  # warm up, and size a run so the echo takes about --seconds
                ok, rate = load(t, 3000)
                t.sent += ok
            ok, rate = load(targets[0], 4000)
            n = max(2000, int(rate * args.seconds))
            for r in range(1, args.rounds + 1):
                line = []
                for t in targets:
                    cpu0 = t.cpu_s()
                    ok, rate = load(t, n)
                    t.cpu_us.append((t.cpu_s() - cpu0) / max(ok, 1) * 1e6)
                    t.sent += ok
                    t.rates.append(rate)
                    line.append(f"{t.name} {rate:,.0f}/s {t.cpu_us[-1]:.0f} us CPU/RPC")
                print(f"round {r}/{args.rounds}: " + ", ".join(line), file=sys.stderr, flush=True)
            for t in targets:
                if t.counts:
                    seen = counted(t.port)
                    if seen != t.sent:
                        raise SystemExit(f"{t.name}: the server decided {seen} Checks but {t.sent} succeeded")
        finally:
            for t in targets:
                t.proc.send_signal(signal.SIGTERM)
            for t in targets:
                t.proc.wait(timeout=30)
    echo = targets[0].rates
    gen = f"h2load -c {CLIENTS} -m {STREAMS}" if use_h2load else f"{CLIENTS} Python client processes"
    print(
        f"\nCheck over gRPC, one server process each, {os.cpu_count()} CPUs, {gen}, "
        f"{args.rounds} rounds of {n} requests, ALLOW path on one hot key, event loop {LOOP}\n"
    )
    echo_cpu = targets[0].cpu_us
    own = {t.name: t.rates for t in targets if t.name in (ECHO_REDIS, ECHO_LUPA, ECHO_DECISION)}
    print(
        "| server | Check/s (median) | ratio to echo (median) | spread | server CPU us/RPC "
        "| CPU ratio (echo/ours) | spread | ratio to the second ceiling [spread] |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for t in targets:
        ratios = [a / b for a, b in zip(t.rates, echo, strict=True)]
        cpu = [b / a for a, b in zip(t.cpu_us, echo_cpu, strict=True)]
        parts = []
        for ceiling in SECOND.get(t.name, ()):
            if ceiling in own:
                r2 = [a / b for a, b in zip(t.rates, own[ceiling], strict=True)]
                parts.append(f"{statistics.median(r2):.2f}x [{min(r2):.2f}-{max(r2):.2f}] of {ceiling}")
        second = "; ".join(parts)
        print(
            f"| {t.name} | {statistics.median(t.rates):,.0f} | {statistics.median(ratios):.2f}x "
            f"| {min(ratios):.2f}-{max(ratios):.2f}x | {statistics.median(t.cpu_us):.0f} "
            f"| {statistics.median(cpu):.2f}x | {min(cpu):.2f}-{max(cpu):.2f}x | {second} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
