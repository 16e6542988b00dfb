"""Prometheus ``/metrics``, ``/healthz`` and ``/ready`` over the telemetry hub (``--metrics-port``).

The exposition is built by ``prometheus-client`` (the ``metrics`` extra) from a collector that reads the hub
and the service at scrape time; nothing is added to the decision path. The upstream series keep their
names and labels (spec 7.2), with one fix: a ``_total`` series is a true monotonic counter (lifetime
counts, never reset per window); the per-window figures are gauges of their own
(``throttlekit_window_allowed``, ``throttlekit_window_denied``). Added for operators: shadow denials,
decisions synthesized by the fail mode, store errors, decision (store) latency as a summary, live-key
evictions of the in-process stores, config reloads, and an info series naming the node and worker.

The HTTP server is a small asyncio one on the server's loop: ``GET /metrics`` (200, text format 0.0.4),
``GET /healthz`` and ``/health`` (200 ``ok``), ``GET /ready`` (200 when the store answers its readiness
probe, else 503; a JSON body naming the store), another method 405, another path 404.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from ._telemetry import LANES, TelemetryHub

__all__ = ["CONTENT_TYPE", "MetricsServer", "collector_registry", "render_metrics"]

log = logging.getLogger("throttlekit.server")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Longest request head the metrics server reads (bytes); longer requests are answered 431 and closed.
MAX_HEAD = 8192
#: Seconds a metrics client may take to send its request head.
HEAD_TIMEOUT_S = 5.0


def _require_client() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - the extra is part of dev/test installs
        from .._errors import ConfigError

        raise ConfigError(
            "--metrics-port needs prometheus-client: pip install 'throttlekit-server[metrics]'"
        ) from exc
    return prometheus_client


class _Collector:
    """Reads the hub (and the service) at each scrape."""

    def __init__(self, hub: TelemetryHub, service: Any, info: dict[str, str]) -> None:
        self.hub = hub
        self.service = service
        self.info = info

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        hub = self.hub
        listed = hub.listed()
        stats = list(hub.policies.values())
        allowed = CounterMetricFamily(
            "throttlekit_allowed",
            "Requests admitted since the server started, per policy.",
            labels=["policy"],
        )
        denied = CounterMetricFamily(
            "throttlekit_denied", "Requests denied since the server started, per policy.", labels=["policy"]
        )
        by_axis = CounterMetricFamily(
            "throttlekit_denied_by_axis",
            "Denials partitioned by binding axis (admitters; the axes sum to denied), per policy.",
            labels=["policy", "axis"],
        )
        limit = GaugeMetricFamily(
            "throttlekit_limit", "Most-recent observed effective ceiling, per policy.", labels=["policy"]
        )
        p50 = GaugeMetricFamily(
            "throttlekit_latency_p50_ms", "Recent decision p50 latency (ms), per policy.", labels=["policy"]
        )
        p99 = GaugeMetricFamily(
            "throttlekit_latency_p99_ms", "Recent decision p99 latency (ms), per policy.", labels=["policy"]
        )
        for s in stats:
            allowed.add_metric([s.name], s.allowed_total)
            denied.add_metric([s.name], s.denied_total)
            if s.kind == "admitter":
                for lane in LANES:
                    by_axis.add_metric([s.name, lane], s.denied_by_lane_total[lane])
            if s.limit > 0:
                limit.add_metric([s.name], s.limit)
            if s.latencies:
                lat = s.latency()
                p50.add_metric([s.name], lat["p50Ms"])
                p99.add_metric([s.name], lat["p99Ms"])
        yield allowed
        yield denied
        yield by_axis
        yield limit
        yield p50
        yield p99
        guards = hub.snapshot_guards()
        inflight = GaugeMetricFamily(
            "throttlekit_guard_inflight", "In-flight concurrency permits, per guard.", labels=["guard"]
        )
        glimit = GaugeMetricFamily(
            "throttlekit_guard_limit", "Concurrency ceiling, per guard.", labels=["guard"]
        )
        fenced = GaugeMetricFamily(
            "throttlekit_guard_fenced",
            "1 if the guard is self-fenced (partitioned), else 0.",
            labels=["guard"],
        )
        for g in guards:
            inflight.add_metric([g["name"]], g.get("inflight", 0))
            glimit.add_metric([g["name"]], g.get("limit", 0))
            fenced.add_metric([g["name"]], 1 if g.get("fenced") else 0)
        yield inflight
        yield glimit
        yield fenced

        # -- beyond the upstream series ---------------------------------------------------------------
        w_allowed = GaugeMetricFamily(
            "throttlekit_window_allowed",
            "Requests admitted in the current epoch-aligned analytics window, per policy.",
            labels=["policy"],
        )
        w_denied = GaugeMetricFamily(
            "throttlekit_window_denied",
            "Requests denied in the current epoch-aligned analytics window, per policy.",
            labels=["policy"],
        )
        for s in listed:
            w_allowed.add_metric([s.name], s.allowed)
            w_denied.add_metric([s.name], s.denied)
        yield w_allowed
        yield w_denied
        shadow = CounterMetricFamily(
            "throttlekit_shadow_denied",
            "Denials of shadow policies (answered allowed), per policy.",
            labels=["policy"],
        )
        synthesized = CounterMetricFamily(
            "throttlekit_failmode_decisions",
            "Decisions synthesized by the fail mode because the store failed, per policy.",
            labels=["policy"],
        )
        latency = SummaryMetricFamily(
            "throttlekit_decision_latency_seconds",
            "Decision latency including the store round trip (seconds), per policy.",
            labels=["policy"],
        )
        for s in stats:
            shadow.add_metric([s.name], s.shadow_denied_total)
            synthesized.add_metric([s.name], s.synthesized_total)
            latency.add_metric([s.name], s.latency_count, s.latency_sum_ns / 1e9)
        yield shadow
        yield synthesized
        yield latency
        service = self.service
        outage = service.outage
        errors = CounterMetricFamily(
            "throttlekit_store_errors",
            "Store calls that failed (outages, timeouts), by store.",
            labels=["store"],
        )
        errors.add_metric([service.store_name], outage.failures_total)
        yield errors
        up = GaugeMetricFamily(
            "throttlekit_store_up", "1 while the store answers, 0 during an outage.", labels=["store"]
        )
        up.add_metric([service.store_name], 0 if outage.down else 1)
        yield up
        evictions = CounterMetricFamily(
            "throttlekit_memory_evictions",
            "Live keys evicted at an in-process store's key bound, per store.",
            labels=["store"],
        )
        for name, store in service.bounded_stores():
            evictions.add_metric([name], int(store.stats()["evictions"]))
        yield evictions
        reloads = CounterMetricFamily(
            "throttlekit_config_reloads", "Policy-file reloads, by result (ok, error).", labels=["result"]
        )
        counts = getattr(service, "reloads", {})
        for result in ("ok", "error"):
            reloads.add_metric([result], counts.get(result, 0))
        yield reloads
        info = GaugeMetricFamily(
            "throttlekit_server_info", "Always 1; labels name this server process.", labels=list(self.info)
        )
        info.add_metric(list(self.info.values()), 1)
        yield info


def collector_registry(hub: TelemetryHub, service: Any, info: dict[str, str] | None = None) -> Any:
    """A prometheus-client registry holding only the hub's collector."""
    prometheus_client = _require_client()
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(hub, service, info or {"node": hub.node_id}))
    return registry


def render_metrics(registry: Any) -> bytes:
    """The text exposition (format 0.0.4) of ``registry``."""
    from prometheus_client import generate_latest

    return generate_latest(registry)


class MetricsServer:
    """``/metrics``, ``/healthz``, ``/health`` and ``/ready`` on ``host:port`` (asyncio, the server's loop).

    ``ready``: an async callable answering (ready?, detail dict) for ``/ready``. ``snapshot``: an async
    callable answering the telemetry snapshot as a dict for ``GET /snapshot``, which holds client keys and
    is therefore served to loopback peers only (403 otherwise), whatever the bind host."""

    def __init__(
        self,
        registry: Any,
        ready: Callable[[], Any],
        snapshot: Callable[[], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.ready = ready
        self.snapshot = snapshot
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            except asyncio.LimitOverrunError:
                await self._reply(writer, 431, b"request head too large\n")
                return
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                return
            if len(head) > MAX_HEAD:
                await self._reply(writer, 431, b"request head too large\n")
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            if len(parts) != 3:
                await self._reply(writer, 400, b"bad request\n")
                return
            method, target = parts[0], parts[1]
            path = target.split("?", 1)[0]
            if method != "GET":
                await self._reply(writer, 405, b"method not allowed\n", extra=b"Allow: GET\r\n")
            elif path == "/metrics":
                body = render_metrics(self.registry)  # on the loop: the hub is only touched from it
                await self._reply(writer, 200, body, CONTENT_TYPE)
            elif path in ("/healthz", "/health"):
                await self._reply(writer, 200, b"ok\n")
            elif path == "/ready":
                ok, detail = await self.ready()
                await self._reply(
                    writer, 200 if ok else 503, json.dumps(detail).encode() + b"\n", "application/json"
                )
            elif path == "/snapshot" and self.snapshot is not None:
                peer = writer.get_extra_info("peername")
                host = str(peer[0]) if peer else ""
                if not (
                    host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")
                ):
                    await self._reply(
                        writer, 403, b"forbidden: /snapshot is served to loopback callers only\n"
                    )
                else:
                    body = json.dumps(await self.snapshot(), separators=(",", ":")).encode()
                    await self._reply(writer, 200, body + b"\n", "application/json")
            else:
                await self._reply(writer, 404, b"not found (try /metrics or /healthz)\n")
        except Exception as exc:  # a scrape never takes the server down
            log.warning("metrics request failed: %s: %s", type(exc).__name__, str(exc)[:200])
        finally:
            writer.close()

    @staticmethod
    async def _reply(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        extra: bytes = b"",
    ) -> None:
        reason = {
            200: "OK",
            400: "Bad Request",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
            431: "Request Header Fields Too Large",
            503: "Service Unavailable",
        }[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n".encode()
            + extra
            + b"\r\n"
            + body
        )
        try:
            await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            pass
