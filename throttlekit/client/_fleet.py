"""Clients of the Fleet door (``throttlekit.v1.Fleet/Reserve``): :class:`FleetBackend` (blocking) and
:class:`AsyncFleetBackend` (grpc.aio), with the public shape of throttlekit-py 0.5.1.

``reserve`` leases a chunk of a ``federated:`` policy's window budget and returns the server's
:class:`Lease` as is (a partial grant, window-coupled; ``capacity`` 0 is the server's refusal).
``leased(policy, batch=...)`` gives a :class:`LeasedLimiter` that spends the chunks locally with a
:class:`~throttlekit.LeaseSpender` (the Lua ``lease_spend`` transform) and round-trips only to refresh:
with ``batch=100`` about one ``Reserve`` per hundred requests. The client never invents a denial: a
refusal is surfaced as the server's (``Lease.denied_decision()``), and credits are discarded at the
window's end (``expiry_ms``) unless ``window_coupled=False``.

Errors: :class:`PolicyNotFoundError` (no such federated policy), :class:`OperationNotSupportedError`
(the concurrency axis; a server without federated policies), :class:`ServiceUnavailableError`
(unreachable, or its coordinator is), :class:`~throttlekit.ThrottleKitError` for the rest (e.g.
``UNAUTHENTICATED``: a non-loopback caller without the fleet secret).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from .._errors import ConfigError, ThrottleKitError
from .._proto import throttlekit_pb2 as pb
from .._proto import throttlekit_pb2_grpc as pb_grpc
from .._types import Decision
from ..meters import LeaseSpender
from ._errors import map_rpc_error

__all__ = ["AsyncFleetBackend", "AsyncLeasedLimiter", "FleetBackend", "Lease", "LeasedLimiter"]

#: ``axis`` names -> the proto enum; "concurrency" is accepted so a caller can probe it (UNIMPLEMENTED).
AXES = {"rate": pb.AXIS_RATE, "token_budget": pb.AXIS_TOKEN_BUDGET, "concurrency": pb.AXIS_CONCURRENCY}
#: Refresh rounds one request may take before the client gives up (a server that neither grants nor
#: denies); a grant always makes progress within a window.
MAX_ROUNDS = 1024


@dataclass(frozen=True, slots=True)
class Lease:
    """A Fleet lease: spend ``capacity`` units locally until ``expiry_ms`` (epoch ms, the window's end).

    ``capacity`` may be below what was asked (partial) and 0 is a refusal; ``refresh_interval_ms`` is the
    time left to ``expiry_ms``; ``safe_capacity`` equals ``capacity`` (v1); ``retry_after_ms`` is the wait
    when refused, else 0; ``limit`` is the budget per window."""

    capacity: int
    expiry_ms: int
    refresh_interval_ms: int
    safe_capacity: int
    retry_after_ms: int
    limit: int

    @property
    def granted(self) -> bool:
        """Whether any units were granted."""
        return self.capacity > 0

    def denied_decision(self) -> Decision:
        """The server's refusal as a decision (never synthesized by the client)."""
        return Decision(False, self.limit, 0, self.expiry_ms, self.retry_after_ms)


def _lease(msg: Any) -> Lease:
    return Lease(
        msg.capacity, msg.expiry_ms, msg.refresh_interval_ms, msg.safe_capacity, msg.retry_after_ms, msg.limit
    )


def _request(policy: str, domain: str, wants: int, has: int, used: int, axis: str) -> Any:
    if axis not in AXES:
        raise ConfigError(f"axis must be one of {', '.join(AXES)}, got {axis!r}")
    return pb.ReserveRequest(
        policy=policy, caller=pb.Caller(domain=domain), wants=wants, has=has, used=used, axis=AXES[axis]
    )


def _metadata(secret: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("x-fleet-secret", secret),) if secret else None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _batch(batch: Any) -> int:
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"batch must be an integer >= 1, got {batch!r}")
    return batch


class FleetBackend:
    """A blocking client of the Fleet door.

    ``target`` is ``host:port``; ``credentials`` enable TLS; ``secret`` is the server's
    ``--fleet-secret`` (sent as ``x-fleet-secret``; needed from a non-loopback address, and from everyone
    once the server has one). ``timeout`` (seconds) bounds each call.

    ::

        with FleetBackend("127.0.0.1:50051") as fleet:
            limiter = fleet.leased("global-api", domain="acme", batch=100)
            d = limiter.check()   # local, one Reserve per ~100 requests
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        credentials: grpc.ChannelCredentials | None = None,
        secret: str | None = None,
        timeout: float | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.timeout = timeout
        self._channel = (
            grpc.secure_channel(target, credentials, options=list(options))
            if credentials is not None
            else grpc.insecure_channel(target, options=list(options))
        )
        self._stub = pb_grpc.FleetStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = _metadata(secret)

    def reserve(
        self,
        policy: str,
        *,
        domain: str = "",
        wants: int = 1,
        has: int = 0,
        used: int = 0,
        axis: str = "rate",
    ) -> Lease:
        """Lease up to ``wants`` units of ``policy``'s window budget for ``domain`` (empty: the policy's
        own budget). ``has``/``used`` are advisory (ignored by v1 servers)."""
        req = _request(policy, domain, wants, has, used, axis)
        try:
            reply = self._stub.Reserve(req, metadata=self._metadata, timeout=self.timeout)
        except grpc.RpcError as err:
            raise map_rpc_error(err) from err
        return _lease(reply.lease)

    def leased(
        self, policy: str, *, domain: str = "", batch: int = 1, window_coupled: bool = True
    ) -> LeasedLimiter:
        """A :class:`LeasedLimiter` leasing ``policy`` (for ``domain``) ``batch`` units at a time."""
        return LeasedLimiter(self, policy, domain=domain, batch=batch, window_coupled=window_coupled)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> FleetBackend:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()


class AsyncFleetBackend:
    """The asyncio twin of :class:`FleetBackend` (``await reserve(...)``; ``await close()``)."""

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        credentials: grpc.ChannelCredentials | None = None,
        secret: str | None = None,
        timeout: float | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.timeout = timeout
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=list(options))
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=list(options))
        )
        self._stub = pb_grpc.FleetStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = _metadata(secret)

    async def reserve(
        self,
        policy: str,
        *,
        domain: str = "",
        wants: int = 1,
        has: int = 0,
        used: int = 0,
        axis: str = "rate",
    ) -> Lease:
        """:meth:`FleetBackend.reserve`, awaited."""
        req = _request(policy, domain, wants, has, used, axis)
        try:
            reply = await self._stub.Reserve(req, metadata=self._metadata, timeout=self.timeout)
        except grpc.RpcError as err:
            raise map_rpc_error(err) from err
        return _lease(reply.lease)

    def leased(
        self, policy: str, *, domain: str = "", batch: int = 1, window_coupled: bool = True
    ) -> AsyncLeasedLimiter:
        """An :class:`AsyncLeasedLimiter` leasing ``policy`` (for ``domain``) ``batch`` units at a time."""
        return AsyncLeasedLimiter(self, policy, domain=domain, batch=batch, window_coupled=window_coupled)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncFleetBackend:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.close()


class _Spend:
    """The part of both leased limiters that is not I/O: the spender (built from the first lease, which
    carries the limit and the window) and what to do with each lease."""

    def __init__(self, policy: str, domain: str, batch: int, window_coupled: bool) -> None:
        self.policy = policy
        self.domain = domain
        self.batch = _batch(batch)
        self.window_coupled = window_coupled
        self.spender: LeaseSpender | None = None
        #: Reserve calls made (refresh round trips)
        self.reserves = 0

    def local(self, now: int, cost: int, discard: bool) -> Decision | None:
        """Spend locally; ``discard`` applies the window-coupled discard (only on a request's first
        round: a fresh grant whose window the client's clock already sees as ended is still spent once,
        as ``LeaseSpender.spend_or_refresh`` does, instead of being discarded and re-leased in a loop)."""
        return None if self.spender is None else self.spender._spend(now, cost, discard)

    def wants(self, cost: int) -> int:
        return max(cost, self.batch)

    def apply(self, lease: Lease) -> Decision | None:
        """A refusal as the server's denial, or None after adding the grant."""
        self.reserves += 1
        if self.spender is None:
            self.spender = LeaseSpender(
                lease.limit, max(1, lease.refresh_interval_ms), window_coupled=self.window_coupled
            )
        if not lease.granted:
            return lease.denied_decision()
        self.spender.apply_lease(lease.capacity, lease.expiry_ms)
        return None

    def exhausted(self, cost: int) -> ThrottleKitError:
        return ThrottleKitError(
            f"Fleet lease refresh exceeded {MAX_ROUNDS} rounds for one request (cost={cost})"
        )

    def close(self) -> None:
        if self.spender is not None:
            self.spender.close()
            self.spender = None


class LeasedLimiter:
    """Spend ``batch``-sized leases of one ``(policy, domain)`` budget locally, refreshing on a shortfall.

    :meth:`check` answers from local credits (no round trip) and calls ``Reserve`` only when they cannot
    cover the cost, asking for ``max(cost, batch)``; a refusal is the server's denial, verbatim. Credits
    of an ended window are discarded once per request, never a grant just received (a client clock ahead
    of the server's would otherwise discard every fresh grant and drain the window). ``now`` (epoch ms) is
    injectable for tests. :meth:`close` drops the local credits.
    """

    def __init__(
        self,
        backend: FleetBackend,
        policy: str,
        *,
        domain: str = "",
        batch: int = 1,
        window_coupled: bool = True,
    ) -> None:
        self._backend = backend
        self._spend = _Spend(policy, domain, batch, window_coupled)

    @property
    def reserves(self) -> int:
        """``Reserve`` round trips made so far."""
        return self._spend.reserves

    def check(self, cost: int = 1, *, now: int | None = None) -> Decision:
        s = self._spend
        ts = _now_ms() if now is None else now
        for i in range(MAX_ROUNDS):
            d = s.local(ts, cost, i == 0)
            if d is not None:
                return d
            denied = s.apply(self._backend.reserve(s.policy, domain=s.domain, wants=s.wants(cost)))
            if denied is not None:
                return denied
        raise s.exhausted(cost)

    def close(self) -> None:
        self._spend.close()


class AsyncLeasedLimiter:
    """:class:`LeasedLimiter` over an :class:`AsyncFleetBackend` (``await check()``)."""

    def __init__(
        self,
        backend: AsyncFleetBackend,
        policy: str,
        *,
        domain: str = "",
        batch: int = 1,
        window_coupled: bool = True,
    ) -> None:
        self._backend = backend
        self._spend = _Spend(policy, domain, batch, window_coupled)

    @property
    def reserves(self) -> int:
        """``Reserve`` round trips made so far."""
        return self._spend.reserves

    async def check(self, cost: int = 1, *, now: int | None = None) -> Decision:
        s = self._spend
        ts = _now_ms() if now is None else now
        for i in range(MAX_ROUNDS):
            d = s.local(ts, cost, i == 0)
            if d is not None:
                return d
            denied = s.apply(await self._backend.reserve(s.policy, domain=s.domain, wants=s.wants(cost)))
            if denied is not None:
                return denied
        raise s.exhausted(cost)

    def close(self) -> None:
        self._spend.close()
