"""gRPC clients for a throttlekit-server: :class:`ServiceBackend` (blocking) and
:class:`AsyncServiceBackend` (grpc.aio).

``fail`` settles an unreachable service on the client: ``None`` raises
:class:`ServiceUnavailableError`, ``"open"`` admits and ``"closed"`` denies with a synthesized decision
(``limit``/``remaining`` 0, since the client does not know the policy). A forecast cannot be
synthesized and always raises. ``timeout`` (seconds) bounds each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import grpc

from .._errors import ThrottleKitError
from .._proto import throttlekit_pb2 as pb
from .._proto import throttlekit_pb2_grpc as pb_grpc
from .._types import Decision, Forecast
from ..admission import Admission, AsyncAdmission
from ._common import ClientFail, LeaseBeat, decision, forecast, synthesized, validate_fail
from ._errors import ServiceUnavailableError, map_rpc_error

__all__ = ["Admission", "AsyncAdmission", "AsyncServiceBackend", "ServiceBackend"]


def _admission(cls: type[Admission], backend: Any, msg: Any, heartbeat: bool) -> Any:
    return cls(
        backend,
        decision(msg.decision),
        msg.lease_id,
        msg.lease_expires_at,
        msg.binding_axis,
        msg.policy_denied,
        heartbeat=heartbeat,
    )


class _HeartbeatPump:
    """A daemon thread, started on the first ``admit(..., heartbeat=True)``, renewing every open lease in
    one Heartbeat per ``interval`` s; a lease the server reports reclaimed is marked on its admission."""

    def __init__(self, backend: ServiceBackend, interval: float) -> None:
        self.backend = backend
        self.interval = interval
        self.open: dict[str, Admission] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def register(self, adm: Admission) -> None:
        with self.lock:
            self.open[adm.lease_id] = adm
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="throttlekit-heartbeat", daemon=True)
                self.thread.start()

    def deregister(self, lease_id: str) -> None:
        with self.lock:
            self.open.pop(lease_id, None)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            with self.lock:
                ids = list(self.open)
            if not ids:
                continue
            try:
                beat = self.backend.heartbeat(ids)
            except ThrottleKitError:
                continue  # the next beat retries; the server reclaims the slot if beats stay lost
            with self.lock:
                for lease_id in beat.reclaimed_ids:
                    adm = self.open.pop(lease_id, None)
                    if adm is not None:
                        adm._mark_reclaimed()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)


class ServiceBackend:
    """A blocking client of ``throttlekit.v1.RateLimiter``.

    ``target`` is ``host:port``; ``credentials`` (``grpc.ssl_channel_credentials(...)``) enable TLS or
    mTLS, otherwise the channel is insecure (loopback only, please).
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        credentials: grpc.ChannelCredentials | None = None,
        fail: ClientFail = None,
        timeout: float | None = None,
        options: Sequence[tuple[str, Any]] = (),
        heartbeat_interval: float = 1.0,
    ) -> None:
        self.fail = validate_fail(fail)
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self._pump: _HeartbeatPump | None = None
        self._channel = (
            grpc.secure_channel(target, credentials, options=list(options))
            if credentials
            else grpc.insecure_channel(target, options=list(options))
        )
        self._stub = pb_grpc.RateLimiterStub(self._channel)  # type: ignore[no-untyped-call]

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise map_rpc_error(err) from err

    def _decide(self, method: Any, request: Any) -> Decision:
        try:
            return decision(self._call(method, request).decision)
        except ServiceUnavailableError as exc:
            return synthesized(self.fail, exc)

    def check(self, policy: str, key: str, cost: int = 1) -> Decision:
        """Consume ``cost`` units of ``policy`` for ``key``."""
        return self._decide(self._stub.Check, pb.CheckRequest(policy=policy, key=key, cost=cost))

    def check_many(self, policy: str, keys: Sequence[str], cost: int = 1) -> list[Decision]:
        """Decide every key at one instant; one decision per key, in order."""
        try:
            reply = self._call(
                self._stub.CheckMany, pb.CheckManyRequest(policy=policy, keys=list(keys), cost=cost)
            )
        except ServiceUnavailableError as exc:
            return [synthesized(self.fail, exc)] * len(keys)
        return [decision(d) for d in reply.decisions]

    def peek(self, policy: str, key: str) -> Decision:
        """What a cost-1 request would see now; consumes nothing."""
        return self._decide(self._stub.Peek, pb.PeekRequest(policy=policy, key=key))

    def forecast(self, policy: str, key: str, cost: int = 1) -> Forecast:
        """How many ``cost`` requests fit now and when capacity returns. Raises when unreachable."""
        return forecast(
            self._call(self._stub.Forecast, pb.ForecastRequest(policy=policy, key=key, cost=cost)).forecast
        )

    def debit(self, policy: str, key: str, tokens: int = 1) -> Decision:
        """Debit ``tokens`` spent against a token-budget policy."""
        return self._decide(self._stub.Debit, pb.DebitRequest(policy=policy, key=key, tokens=tokens))

    def admit(
        self, policy: str, key: str, cost: int = 1, *, hold: int = 0, value: int = 1, heartbeat: bool = False
    ) -> Admission:
        """Admit one unit of work against a concurrency or unified policy. The returned
        :class:`~throttlekit.admission.Admission` holds a slot when ``held``: release it (or use ``with``).
        ``heartbeat=True`` renews the lease from a background thread for holds longer than the server's
        lease TTL. An unreachable service under ``fail`` gives a synthesized admission holding nothing."""
        request = pb.AdmitRequest(policy=policy, key=key, cost=cost, hold=hold, value=value)
        try:
            msg = self._call(self._stub.Admit, request)
        except ServiceUnavailableError as exc:
            return Admission(self, synthesized(self.fail, exc), "", 0, "", False)
        adm: Admission = _admission(Admission, self, msg, heartbeat)
        if heartbeat and adm.lease_id:
            if self._pump is None:
                self._pump = _HeartbeatPump(self, self.heartbeat_interval)
            self._pump.register(adm)
        return adm

    def _release_lease(self, lease_id: str, dropped: bool, *, heartbeat: bool = False) -> None:
        if heartbeat and self._pump is not None:
            self._pump.deregister(lease_id)
        with contextlib.suppress(ThrottleKitError):  # best effort: the server reclaims on TTL
            self.release(lease_id, dropped=dropped)

    def release(self, lease_id: str, *, dropped: bool = False) -> None:
        """Give a lease back (idempotent on the server)."""
        self._call(self._stub.Release, pb.ReleaseRequest(lease_id=lease_id, dropped=dropped))

    def heartbeat(self, lease_ids: Sequence[str]) -> LeaseBeat:
        """Renew every listed lease in one call."""
        r = self._call(self._stub.Heartbeat, pb.HeartbeatRequest(lease_ids=list(lease_ids)))
        return LeaseBeat(list(r.live_ids), list(r.reclaimed_ids), r.next_deadline)

    def close(self) -> None:
        if self._pump is not None:
            self._pump.close()
        self._channel.close()

    def __enter__(self) -> ServiceBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncServiceBackend:
    """The grpc.aio twin of :class:`ServiceBackend` (same arguments, awaitable methods)."""

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        credentials: grpc.ChannelCredentials | None = None,
        fail: ClientFail = None,
        timeout: float | None = None,
        options: Sequence[tuple[str, Any]] = (),
        heartbeat_interval: float = 1.0,
    ) -> None:
        self.fail = validate_fail(fail)
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self._beats: dict[str, AsyncAdmission] = {}
        self._beat_task: asyncio.Task[None] | None = None
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=list(options))
            if credentials
            else grpc.aio.insecure_channel(target, options=list(options))
        )
        self._stub = pb_grpc.RateLimiterStub(self._channel)  # type: ignore[no-untyped-call]

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise map_rpc_error(err) from err

    async def _decide(self, method: Any, request: Any) -> Decision:
        try:
            return decision((await self._call(method, request)).decision)
        except ServiceUnavailableError as exc:
            return synthesized(self.fail, exc)

    async def check(self, policy: str, key: str, cost: int = 1) -> Decision:
        return await self._decide(self._stub.Check, pb.CheckRequest(policy=policy, key=key, cost=cost))

    async def check_many(self, policy: str, keys: Sequence[str], cost: int = 1) -> list[Decision]:
        try:
            reply = await self._call(
                self._stub.CheckMany, pb.CheckManyRequest(policy=policy, keys=list(keys), cost=cost)
            )
        except ServiceUnavailableError as exc:
            return [synthesized(self.fail, exc)] * len(keys)
        return [decision(d) for d in reply.decisions]

    async def peek(self, policy: str, key: str) -> Decision:
        return await self._decide(self._stub.Peek, pb.PeekRequest(policy=policy, key=key))

    async def forecast(self, policy: str, key: str, cost: int = 1) -> Forecast:
        reply = await self._call(self._stub.Forecast, pb.ForecastRequest(policy=policy, key=key, cost=cost))
        return forecast(reply.forecast)

    async def debit(self, policy: str, key: str, tokens: int = 1) -> Decision:
        return await self._decide(self._stub.Debit, pb.DebitRequest(policy=policy, key=key, tokens=tokens))

    async def admit(
        self, policy: str, key: str, cost: int = 1, *, hold: int = 0, value: int = 1, heartbeat: bool = False
    ) -> AsyncAdmission:
        """:meth:`ServiceBackend.admit` on grpc.aio; ``heartbeat=True`` renews from an asyncio task."""
        request = pb.AdmitRequest(policy=policy, key=key, cost=cost, hold=hold, value=value)
        try:
            msg = await self._call(self._stub.Admit, request)
        except ServiceUnavailableError as exc:
            return AsyncAdmission(self, synthesized(self.fail, exc), "", 0, "", False)
        adm: AsyncAdmission = _admission(AsyncAdmission, self, msg, heartbeat)
        if heartbeat and adm.lease_id:
            self._beats[adm.lease_id] = adm
            if self._beat_task is None:
                self._beat_task = asyncio.ensure_future(self._pump())
        return adm

    async def _pump(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            ids = list(self._beats)
            if not ids:
                continue
            try:
                beat = await self.heartbeat(ids)
            except ThrottleKitError:
                continue
            for lease_id in beat.reclaimed_ids:
                adm = self._beats.pop(lease_id, None)
                if adm is not None:
                    adm._mark_reclaimed()

    async def _release_lease(self, lease_id: str, dropped: bool, *, heartbeat: bool = False) -> None:
        self._beats.pop(lease_id, None)
        with contextlib.suppress(ThrottleKitError):
            await self.release(lease_id, dropped=dropped)

    async def release(self, lease_id: str, *, dropped: bool = False) -> None:
        await self._call(self._stub.Release, pb.ReleaseRequest(lease_id=lease_id, dropped=dropped))

    async def heartbeat(self, lease_ids: Sequence[str]) -> LeaseBeat:
        r = await self._call(self._stub.Heartbeat, pb.HeartbeatRequest(lease_ids=list(lease_ids)))
        return LeaseBeat(list(r.live_ids), list(r.reclaimed_ids), r.next_deadline)

    async def aclose(self) -> None:
        if self._beat_task is not None:
            self._beat_task.cancel()
            self._beat_task = None
        await self._channel.close()

    async def __aenter__(self) -> AsyncServiceBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
