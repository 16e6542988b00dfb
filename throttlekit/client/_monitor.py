"""Read-only clients of the Monitor door (``throttlekit.v1.Monitor``): :class:`MonitorBackend` (blocking)
and :class:`AsyncMonitorBackend` (grpc.aio), with throttlekit-py 0.5.1's public shape plus ``watch``.

The snapshot holds traffic keys, so a server serves it to loopback callers only unless it has a monitor
secret; pass the secret (sent as ``x-monitor-secret``) and TLS ``credentials`` for a remote server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from .._proto import throttlekit_pb2 as pb
from .._proto import throttlekit_pb2_grpc as pb_grpc
from ._errors import map_rpc_error

__all__ = [
    "AsyncMonitorBackend",
    "MonitorBackend",
    "MonitorDenial",
    "MonitorPolicy",
    "MonitorSnapshot",
]


@dataclass(frozen=True)
class MonitorPolicy:
    """One listed policy's counters in the current analytics window, and its last observed limit."""

    name: str
    kind: str
    strategy: str
    allowed: int
    denied: int
    limit: int


@dataclass(frozen=True)
class MonitorSnapshot:
    """A snapshot of the server's telemetry: the typed envelope, and the whole snapshot as ``raw_json``
    (decode it with :meth:`parsed`)."""

    generated_at: int
    window_ms: int
    mode: str
    lens_version: str
    node_id: str
    policies: tuple[MonitorPolicy, ...]
    raw_json: str

    def parsed(self) -> dict[str, Any]:
        """``raw_json`` decoded (the ``LensSnapshot``: latency, top keys, recent denials, ...)."""
        data: dict[str, Any] = json.loads(self.raw_json)
        return data


@dataclass(frozen=True)
class MonitorDenial:
    """One denial from :meth:`MonitorBackend.watch`."""

    at: int
    policy: str
    key: str
    axis: str
    limit: int
    remaining: int
    retry_after_ms: int


def _snapshot(msg: Any) -> MonitorSnapshot:
    meta = msg.meta
    return MonitorSnapshot(
        generated_at=meta.generated_at,
        window_ms=meta.window_ms,
        mode=meta.mode,
        lens_version=meta.lens_version,
        node_id=meta.node_id,
        policies=tuple(
            MonitorPolicy(p.name, p.kind, p.strategy, p.allowed, p.denied, p.limit) for p in msg.policies
        ),
        raw_json=msg.raw_json,
    )


def _denial(msg: Any) -> MonitorDenial:
    d = msg.denial
    return MonitorDenial(d.at, d.policy, d.key, d.axis, d.limit, d.remaining, d.retry_after_ms)


def _metadata(secret: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("x-monitor-secret", secret),) if secret else None


class MonitorBackend:
    """A blocking client of the Monitor door::

    with MonitorBackend("127.0.0.1:50051") as mon:
        for p in mon.get_snapshot().policies:
            print(p.name, p.allowed, p.denied)
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        credentials: grpc.ChannelCredentials | None = None,
        secret: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self._channel = (
            grpc.secure_channel(target, credentials)
            if credentials is not None
            else grpc.insecure_channel(target)
        )
        self._stub = pb_grpc.MonitorStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = _metadata(secret)
        self.timeout = timeout

    def get_snapshot(self) -> MonitorSnapshot:
        """The server's current snapshot."""
        try:
            resp = self._stub.GetSnapshot(
                pb.GetSnapshotRequest(), metadata=self._metadata, timeout=self.timeout
            )
        except grpc.RpcError as err:
            raise map_rpc_error(err) from err
        return _snapshot(resp.snapshot)

    def watch(self, policy: str = "") -> Iterator[MonitorDenial]:
        """Denials as they happen (``policy`` = one policy, ``""`` = all); runs until the caller stops
        iterating (close the generator) or the server goes away. The server drops events for a reader
        that falls behind rather than buffering them."""
        call = self._stub.Watch(pb.WatchRequest(policy=policy), metadata=self._metadata)
        try:
            for msg in call:
                yield _denial(msg)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise map_rpc_error(err) from err
        finally:
            call.cancel()

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> MonitorBackend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncMonitorBackend:
    """The grpc.aio twin of :class:`MonitorBackend`."""

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        credentials: grpc.ChannelCredentials | None = None,
        secret: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self._channel = (
            grpc.aio.secure_channel(target, credentials)
            if credentials is not None
            else grpc.aio.insecure_channel(target)
        )
        self._stub = pb_grpc.MonitorStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = _metadata(secret)
        self.timeout = timeout

    async def get_snapshot(self) -> MonitorSnapshot:
        try:
            resp = await self._stub.GetSnapshot(
                pb.GetSnapshotRequest(), metadata=self._metadata, timeout=self.timeout
            )
        except grpc.RpcError as err:
            raise map_rpc_error(err) from err
        return _snapshot(resp.snapshot)

    async def watch(self, policy: str = "") -> AsyncIterator[MonitorDenial]:
        """See :meth:`MonitorBackend.watch`."""
        call = self._stub.Watch(pb.WatchRequest(policy=policy), metadata=self._metadata)
        try:
            async for msg in call:
                yield _denial(msg)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise map_rpc_error(err) from err
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncMonitorBackend:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
