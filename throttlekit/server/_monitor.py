"""The Monitor door ``throttlekit.v1.Monitor``: the telemetry hub's snapshot and a live denial stream.

``GetSnapshot`` projects :meth:`TelemetryHub.snapshot` onto the typed messages (spec 5.2) and carries the
whole snapshot as ``raw_json``. ``Watch`` streams denials as they happen (optionally one policy's): each
stream owns a bounded queue (:data:`WATCH_QUEUE` events) fed inline by the hub; at most
:data:`WATCH_RATE` events per second per stream are queued, and an event that finds the queue full (a reader
that stopped reading: grpc's flow-control window is full and the handler waits on it) is dropped and
counted, so a slow reader never grows server memory nor slows a decision.

Access (spec 6): with a secret configured every call must present it (``x-monitor-secret`` metadata or
``authorization: Bearer <secret>``, compared in constant time); without one only loopback peers are served.
Anything else is UNAUTHENTICATED.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from .._proto import throttlekit_pb2 as pb
from ._auth import DoorGuard, is_loopback_peer
from ._telemetry import DecisionEvent, TelemetryHub

__all__ = ["MONITOR", "WATCH_QUEUE", "WATCH_RATE", "MonitorDoor", "add_monitor", "is_loopback_peer"]

MONITOR = pb.DESCRIPTOR.services_by_name["Monitor"].full_name
#: Events one Watch stream may have queued; more are dropped (never buffered).
WATCH_QUEUE = 256
#: Events per second one Watch stream accepts (a fixed 1 s window); more are dropped.
WATCH_RATE = 500

_UNAUTH = grpc.StatusCode.UNAUTHENTICATED


class _Watcher:
    """One Watch stream's queue, filter and rate cap (called inline by the hub on every denial)."""

    def __init__(self, policy: str, loop: asyncio.AbstractEventLoop) -> None:
        self.policy = policy
        self.queue: asyncio.Queue[DecisionEvent] = asyncio.Queue(WATCH_QUEUE)
        self.loop = loop
        self.dropped = 0
        self.sent = 0
        self._window = time.monotonic()
        self._in_window = 0

    def __call__(self, event: DecisionEvent) -> None:
        if self.policy and event.policy != self.policy:
            return
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._in_window = now, 0
        if self._in_window >= WATCH_RATE:
            self.dropped += 1
            return
        self._in_window += 1
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1


def _denial(e: DecisionEvent) -> Any:
    return pb.DenialEvent(
        at=e.at_ms,
        policy=e.policy,
        key=e.key,
        axis=e.axis,
        limit=e.limit,
        remaining=e.remaining,
        retry_after_ms=e.retry_after_ms,
    )


def _keys(items: list[dict[str, Any]]) -> list[Any]:
    return [pb.KeyCount(key=i["key"], count=i["count"]) for i in items]


def snapshot_message(snap: dict[str, Any]) -> Any:
    """The typed ``Snapshot`` for a hub snapshot (spec 5.2), ``raw_json`` included."""
    meta = snap["meta"]
    policies = []
    for p in snap["policies"]:
        a, lat = p["analytics"], p["latency"]
        policies.append(
            pb.PolicySummary(
                name=p["name"],
                kind=p["kind"],
                strategy=p.get("strategy", ""),
                allowed=a["allowed"],
                denied=a["denied"],
                limit=p.get("limit", 0),
                latency=pb.LatencySummary(
                    avg_ms=lat["avgMs"],
                    p50_ms=lat["p50Ms"],
                    p99_ms=lat["p99Ms"],
                    max_ms=lat["maxMs"],
                    n=lat["n"],
                ),
                top_denied=_keys(a["topDenied"]),
                top_requested=_keys(a["topRequested"]),
            )
        )
    guards = [
        pb.GuardSummary(
            name=g["name"],
            limit=g.get("limit", 0),
            inflight=g.get("inflight", 0),
            share=float(g.get("share") or 0.0),
            l_global=int(g.get("lGlobal") or 0),
            nodes=int(g.get("nodes") or 0),
            fenced=bool(g.get("fenced", False)),
        )
        for g in snap["guards"]
    ]
    denials = [
        pb.DenialEvent(
            at=d["at"],
            policy=d["policy"],
            key=d["key"],
            axis=d.get("lane", ""),
            limit=d["decision"]["limit"],
            remaining=d["decision"]["remaining"],
            retry_after_ms=d["decision"]["retryAfterMs"],
        )
        for d in snap["recentDenials"]
    ]
    return pb.Snapshot(
        meta=pb.MonitorMeta(
            generated_at=meta["generatedAt"],
            window_ms=meta["windowMs"],
            mode=meta["mode"],
            lens_version=meta["lensVersion"],
            node_id=meta.get("nodeId", ""),
        ),
        policies=policies,
        guards=guards,
        recent_denials=denials,
        raw_json=json.dumps(snap, separators=(",", ":")),
    )


class MonitorDoor:
    """``throttlekit.v1.Monitor`` over a :class:`TelemetryHub`; ``secret`` None = loopback peers only.
    ``snapshot`` overrides where the snapshot comes from (the combined view under ``--workers``)."""

    def __init__(
        self,
        hub: TelemetryHub,
        secret: str | None = None,
        snapshot: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.hub = hub
        self.guard = DoorGuard("monitor", "x-monitor-secret", "--monitor-secret", secret)
        self._snapshot = snapshot or hub.snapshot
        self.watchers: list[_Watcher] = []

    def _denied(self, context: grpc.aio.ServicerContext) -> str | None:
        """The UNAUTHENTICATED message for this call, or None when it may proceed."""
        return self.guard.refusal(context.peer(), context.invocation_metadata())

    async def GetSnapshot(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        why = self._denied(context)
        if why is not None:
            await context.abort(_UNAUTH, why)
        return pb.GetSnapshotResponse(snapshot=snapshot_message(self._snapshot()))

    async def Watch(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        why = self._denied(context)
        if why is not None:
            await context.abort(_UNAUTH, why)
        watcher = _Watcher(request.policy, asyncio.get_running_loop())
        unsubscribe = self.hub.subscribe(watcher)
        self.watchers.append(watcher)
        try:
            while True:
                event = await watcher.queue.get()
                watcher.sent += 1
                yield pb.WatchResponse(denial=_denial(event))
        finally:
            unsubscribe()
            self.watchers.remove(watcher)


def add_monitor(door: MonitorDoor, server: grpc.aio.Server) -> None:
    """Register ``door`` for ``throttlekit.v1.Monitor``."""
    handlers = {
        "GetSnapshot": grpc.unary_unary_rpc_method_handler(
            door.GetSnapshot,
            request_deserializer=pb.GetSnapshotRequest.FromString,
            response_serializer=pb.GetSnapshotResponse.SerializeToString,
        ),
        "Watch": grpc.unary_stream_rpc_method_handler(
            door.Watch,
            request_deserializer=pb.WatchRequest.FromString,
            response_serializer=pb.WatchResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(MONITOR, handlers),))
