"""``throttlekit-server --workers N``: N server processes sharing one port (SO_REUSEPORT), supervised.

The supervisor reserves the port (a bound, non-listening SO_REUSEPORT socket: port 0 becomes a concrete
port every worker shares), starts N workers (the same command line plus ``--workers 1 --worker-index i
--port P``), waits for each startup line, prints one startup line of its own, forwards SIGTERM/SIGINT
(drain and stop) and SIGHUP (reload) to every worker, and exits when they have stopped. A worker that dies
on its own stops the others and the supervisor exits 1, so the orchestrator restarts the whole group (a
group with a dead member would answer some connections and refuse others).

The kernel spreads new connections across the workers' listening sockets; each worker has its own
telemetry hub, and its Monitor snapshot's ``meta.nodeId`` and its metrics' ``throttlekit_server_info``
say which worker (``#w<i>``) answered. With ``--metrics-port`` the supervisor serves the combined view:
each worker's ``/metrics`` merged, every sample labelled ``worker``; ``/ready`` ready when every worker
is ready; ``/snapshot`` (loopback callers only) the workers' telemetry snapshots summed per policy.
Workers serve their own metrics and snapshot on a private loopback port.

The memory store is refused: each worker would keep its own counters, and a client would see N times
every limit depending on which worker accepted its connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["run_supervisor", "worker_argv"]

log = logging.getLogger("throttlekit.server")

#: Seconds a worker may take to print its startup line.
START_TIMEOUT_S = 60.0


def worker_argv(argv: Sequence[str], index: int, port: int, metrics: bool) -> list[str]:
    """The worker's command line: ``argv`` with the overrides appended (click keeps the last value of a
    repeated option)."""
    out = [*argv, "--workers", "1", "--worker-index", str(index), "--port", str(port)]
    if metrics:
        out += ["--metrics-port", "0", "--metrics-host", "127.0.0.1"]
    return out


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket holding ``host:port`` for the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


class _Combined:
    """A prometheus-client collector merging the workers' expositions, each sample labelled ``worker``."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.metrics_core import Metric
        from prometheus_client.parser import text_string_to_metric_families

        merged: dict[str, Any] = {}
        for index, port in enumerate(self.ports):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    text = resp.read().decode()
            except (OSError, urllib.error.URLError):
                continue  # a worker that does not answer contributes nothing to this scrape
            for family in text_string_to_metric_families(text):
                out = merged.get(family.name)
                if out is None:
                    out = merged[family.name] = Metric(family.name, family.documentation, family.type)
                for s in family.samples:
                    out.add_sample(s.name, {**s.labels, "worker": str(index)}, s.value)
        yield from merged.values()


def combined_snapshot(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """One view of the workers' telemetry snapshots: per policy the window and lifetime counts summed
    over the workers, the recent denials of all of them (oldest first, the last 200), and each worker's
    own snapshot under ``workers``."""
    policies: dict[str, dict[str, Any]] = {}
    denials: list[dict[str, Any]] = []
    for snap in snapshots:
        for p in [*snap.get("policies", []), *snap.get("meters", [])]:
            into = policies.setdefault(
                p["name"],
                {
                    "name": p["name"],
                    "kind": p["kind"],
                    "strategy": p.get("strategy", ""),
                    "allowed": 0,
                    "denied": 0,
                    "totals": {"allowed": 0, "denied": 0, "shadowDenied": 0, "synthesized": 0},
                },
            )
            into["allowed"] += p["analytics"]["allowed"]
            into["denied"] += p["analytics"]["denied"]
            for k, v in p.get("totals", {}).items():
                into["totals"][k] = into["totals"].get(k, 0) + v
        denials.extend(snap.get("recentDenials", []))
    denials.sort(key=lambda d: d.get("at", 0))
    first = snapshots[0]["meta"] if snapshots else {}
    return {
        "meta": {**first, "mode": "combined", "nodeId": "", "workers": len(snapshots)},
        "policies": list(policies.values()),
        "recentDenials": denials[-200:],
        "workers": snapshots,
    }


def _snapshots(ports: list[int]) -> list[dict[str, Any]]:
    out = []
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot", timeout=3) as resp:
                out.append(json.loads(resp.read()))
        except (OSError, ValueError):
            continue  # a worker that does not answer is missing from this view
    return out


def _ready(ports: list[int]) -> tuple[bool, dict[str, object]]:
    workers = []
    for index, port in enumerate(ports):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=3) as resp:
                workers.append({"worker": index, **json.loads(resp.read())})
        except urllib.error.HTTPError as exc:
            workers.append({"worker": index, **json.loads(exc.read() or b"{}")})
        except (OSError, ValueError) as exc:
            workers.append({"worker": index, "ready": False, "error": str(exc)[:200]})
    ok = all(w.get("ready") for w in workers)
    return ok, {"ready": ok, "workers": workers}


def run_supervisor(
    argv: Sequence[str],
    workers: int,
    host: str,
    port: int,
    metrics_port: int | None,
    metrics_host: str,
    drain_s: float,
) -> int:
    """Run ``workers`` worker processes of ``argv`` on ``host:port``; returns the exit code."""
    holder = reserve_port(host, port)
    port = holder.getsockname()[1]
    procs: list[subprocess.Popen[str]] = []
    lines: list[str] = []
    try:
        for i in range(workers):
            args = worker_argv(argv, i, port, metrics_port is not None)
            code = f"import sys; from throttlekit.cli import server_main; sys.exit(server_main({args!r}))"
            procs.append(
                subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=None, text=True)
            )
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if "listening on" not in line:
                raise RuntimeError(f"worker {procs.index(p)} did not start (exit code {p.poll()})")
            lines.append(line.strip())
        return asyncio.run(_supervise(procs, lines, workers, metrics_port, metrics_host, drain_s))
    except RuntimeError as exc:
        log.error("%s; stopping the other workers", exc)
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=drain_s + 15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        holder.close()


def _metrics_port(line: str) -> int:
    tag = line.split("metrics:", 1)[1]
    return int(tag.split("]", 1)[0].split(",", 1)[0])


async def _supervise(
    procs: list[subprocess.Popen[str]],
    lines: list[str],
    workers: int,
    metrics_port: int | None,
    metrics_host: str,
    drain_s: float,
) -> int:
    from ..server._metrics import MetricsServer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    metrics = None
    first = lines[0]
    head, rest = first.split(" [", 1)
    tags, names = rest.split("] ", 1)
    tags = ", ".join(t for t in tags.split(", ") if not t.startswith("metrics:"))
    if metrics_port is not None:
        from prometheus_client import CollectorRegistry

        ports = [_metrics_port(line) for line in lines]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Combined(ports))

        async def ready() -> tuple[bool, dict[str, object]]:
            return await asyncio.to_thread(_ready, ports)

        async def snapshot() -> dict[str, Any]:
            return combined_snapshot(await asyncio.to_thread(_snapshots, ports))

        metrics = MetricsServer(registry, ready, snapshot)
        await metrics.start(metrics_host, metrics_port)
        tags += f", metrics:{metrics.port}"
    print(f"{head} [{tags}, workers:{workers}] {names}", flush=True)

    def forward(sig: signal.Signals) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(sig)
        if sig != signal.SIGHUP:
            stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, forward, sig)
    exits = [asyncio.ensure_future(asyncio.to_thread(p.wait)) for p in procs]
    stopping = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait([*exits, stopping], return_when=asyncio.FIRST_COMPLETED)
    failed = stopping not in done
    if failed:
        dead = next(i for i, p in enumerate(procs) if p.poll() is not None)
        log.error(
            "worker %d exited on its own (code %s); stopping the other workers", dead, procs[dead].returncode
        )
        forward(signal.SIGTERM)
    await asyncio.wait(exits, timeout=drain_s + 15)
    stopping.cancel()
    if metrics is not None:
        await metrics.aclose()
    return 1 if failed or any(p.returncode not in (0, None) for p in procs) else 0
