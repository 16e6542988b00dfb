"""gRPC clients for a throttlekit-server: :class:`ServiceBackend` (blocking) and
:class:`AsyncServiceBackend` (grpc.aio).

``fail`` settles an unreachable service on the client: ``None`` raises
:class:`ServiceUnavailableError`, ``"open"`` admits and ``"closed"`` denies with a synthesized decision
(``limit``/``remaining`` 0, since the client does not know the policy). A forecast cannot be
synthesized and always raises. ``timeout`` (seconds) bounds each call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from .._proto import throttlekit_pb2 as pb
from .._proto import throttlekit_pb2_grpc as pb_grpc
from .._types import Decision, Forecast
from ._common import ClientFail, LeaseBeat, decision, forecast, synthesized, validate_fail
from ._errors import ServiceUnavailableError, map_rpc_error

__all__ = ["Admission", "AsyncAdmission", "AsyncServiceBackend", "ServiceBackend"]


class Admission:
    """The answer of :meth:`ServiceBackend.admit`. Holds a lease when ``lease_id`` is not empty; give it
    back with :meth:`release` (idempotent) or use the admission as a context manager."""

    def __init__(self, backend: Any, msg: Any | None, fallback: Decision | None = None) -> None:
        self._backend = backend
        self.decision = decision(msg.decision) if msg is not None else fallback
        self.lease_id: str = msg.lease_id if msg is not None else ""
        self.lease_expires_at: int = msg.lease_expires_at if msg is not None else 0
        self.binding_axis: str = msg.binding_axis if msg is not None else ""
        self.policy_denied: bool = msg.policy_denied if msg is not None else False
        self._released = False

    @property
    def allowed(self) -> bool:
        return bool(self.decision and self.decision.allowed)

    def release(self, *, dropped: bool = False) -> None:
        """Return the lease (``dropped=True`` when the work failed). A no-op without a lease."""
        if not self._released and self.lease_id:
            self._released = True
            self._backend.release(self.lease_id, dropped=dropped)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.release(dropped=exc_type is not None)


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
    ) -> None:
        self.fail = validate_fail(fail)
        self.timeout = timeout
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

    def admit(self, policy: str, key: str, cost: int = 1, *, hold: int = 0, value: int = 1) -> Admission:
        """Admit one unit of work against a concurrency policy; release the returned admission."""
        request = pb.AdmitRequest(policy=policy, key=key, cost=cost, hold=hold, value=value)
        try:
            return Admission(self, self._call(self._stub.Admit, request))
        except ServiceUnavailableError as exc:
            return Admission(self, None, synthesized(self.fail, exc))

    def release(self, lease_id: str, *, dropped: bool = False) -> None:
        """Give a lease back (idempotent on the server)."""
        self._call(self._stub.Release, pb.ReleaseRequest(lease_id=lease_id, dropped=dropped))

    def heartbeat(self, lease_ids: Sequence[str]) -> LeaseBeat:
        """Renew every listed lease in one call."""
        r = self._call(self._stub.Heartbeat, pb.HeartbeatRequest(lease_ids=list(lease_ids)))
        return LeaseBeat(list(r.live_ids), list(r.reclaimed_ids), r.next_deadline)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ServiceBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAdmission(Admission):
    """The answer of :meth:`AsyncServiceBackend.admit`; ``await release()`` or ``async with``."""

    async def release(self, *, dropped: bool = False) -> None:  # type: ignore[override]
        if not self._released and self.lease_id:
            self._released = True
            await self._backend.release(self.lease_id, dropped=dropped)

    async def __aenter__(self) -> AsyncAdmission:
        return self

    async def __aexit__(self, exc_type: object, *_: object) -> None:
        await self.release(dropped=exc_type is not None)


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
    ) -> None:
        self.fail = validate_fail(fail)
        self.timeout = timeout
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
        self, policy: str, key: str, cost: int = 1, *, hold: int = 0, value: int = 1
    ) -> AsyncAdmission:
        request = pb.AdmitRequest(policy=policy, key=key, cost=cost, hold=hold, value=value)
        try:
            return AsyncAdmission(self, await self._call(self._stub.Admit, request))
        except ServiceUnavailableError as exc:
            return AsyncAdmission(self, None, synthesized(self.fail, exc))

    async def release(self, lease_id: str, *, dropped: bool = False) -> None:
        await self._call(self._stub.Release, pb.ReleaseRequest(lease_id=lease_id, dropped=dropped))

    async def heartbeat(self, lease_ids: Sequence[str]) -> LeaseBeat:
        r = await self._call(self._stub.Heartbeat, pb.HeartbeatRequest(lease_ids=list(lease_ids)))
        return LeaseBeat(list(r.live_ids), list(r.reclaimed_ids), r.next_deadline)

    async def aclose(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncServiceBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
