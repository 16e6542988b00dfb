"""The gRPC binding of ``throttlekit.v1.RateLimiter``: validate, call the service, map errors to status.

Input rules (the upstream never answers INVALID_ARGUMENT; we reject what cannot be a sensible request,
with these documented limits):

* ``policy`` must not be empty; an unknown policy is NOT_FOUND listing the configured ones;
* ``cost`` / ``tokens``: 0 means 1 (proto3 default), negative or above 2^53 - 1 is INVALID_ARGUMENT;
* ``key``: at most :data:`MAX_KEY_BYTES` bytes of UTF-8;
* ``CheckMany.keys``: at most :data:`MAX_KEYS` keys.

A denial is a normal reply. A store outage is a synthesized decision (the service's fail mode); only a
Forecast, which has no honest synthesized answer, reports UNAVAILABLE. Ops a policy kind does not offer
answer UNIMPLEMENTED naming the op and the policy; a transform error is INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NoReturn

import grpc

from .._errors import NotSupportedError, StoreError, ThrottleKitError
from .._proto import throttlekit_pb2 as pb
from .._proto import throttlekit_pb2_grpc as pb_grpc
from .._types import Decision
from ..strategies import MAX_COST
from ._service import RateLimiterService, UnknownPolicyError

__all__ = ["MAX_KEYS", "MAX_KEY_BYTES", "RateLimiterDoor", "add_to_server"]

log = logging.getLogger("throttlekit.server")

#: Longest key accepted, in bytes of UTF-8.
MAX_KEY_BYTES = 4096
#: Most keys one CheckMany may carry.
MAX_KEYS = 1000

_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_PbDecision = pb.Decision


def _pb(d: Decision) -> Any:
    return _PbDecision(
        allowed=d.allowed,
        limit=d.limit,
        remaining=d.remaining,
        reset_at=d.reset_at,
        retry_after_ms=d.retry_after_ms,
    )


class _Reject(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _cost(value: int, name: str = "cost") -> int:
    if value > 0:
        if value > MAX_COST:
            raise _Reject(_INVALID, f"{name} must be at most {MAX_COST}, got {value}")
        return value
    if value == 0:
        return 1
    raise _Reject(_INVALID, f"{name} must not be negative (0 means 1), got {value}")


def _key(key: str) -> str:
    # Fewer than MAX_KEY_BYTES / 4 characters cannot exceed the limit: skip the encode on the hot path.
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise _Reject(_INVALID, f"key is longer than {MAX_KEY_BYTES} bytes")
    return key


class _Malformed:
    """Stands in for a request whose bytes did not decode: reading any field rejects the call with
    INVALID_ARGUMENT (grpc itself would answer UNKNOWN and log a traceback per bad request)."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def __getattr__(self, name: str) -> Any:
        raise _Reject(_INVALID, self.problem)


def _decoder(cls: Any) -> Any:
    parse = cls.FromString
    name = cls.DESCRIPTOR.name

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # protobuf's DecodeError (any parse failure)
            return _Malformed(f"malformed {name}: {exc}")

    return decode


def add_to_server(door: RateLimiterDoor, server: grpc.aio.Server) -> None:
    """Register ``door``'s handlers for every RPC of ``throttlekit.v1.RateLimiter``."""
    service = pb.DESCRIPTOR.services_by_name["RateLimiter"]
    handlers = {
        m.name: grpc.unary_unary_rpc_method_handler(
            getattr(door, m.name),
            request_deserializer=_decoder(getattr(pb, m.input_type.name)),
            response_serializer=getattr(pb, m.output_type.name).SerializeToString,
        )
        for m in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


class RateLimiterDoor(pb_grpc.RateLimiterServicer):
    """``throttlekit.v1.RateLimiter`` over a :class:`RateLimiterService`."""

    def __init__(self, service: RateLimiterService) -> None:
        self.service = service
        self._policies = service.policies

    def _policy(self, name: str) -> Any:
        rt = self._policies.get(name)
        if rt is not None:
            return rt
        if not name:
            raise _Reject(_INVALID, "policy is required")
        raise _Reject(grpc.StatusCode.NOT_FOUND, str(UnknownPolicyError(name, self.service.names)))

    async def _fail(self, context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
        if isinstance(exc, _Reject):
            await context.abort(exc.code, exc.details)
        if isinstance(exc, NotSupportedError):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
        if isinstance(exc, StoreError):
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"store unavailable: {exc}")
        if isinstance(exc, ThrottleKitError):
            log.error("request failed: %s", exc)
            await context.abort(grpc.StatusCode.INTERNAL, str(exc))
        log.exception("unexpected error in a RateLimiter handler")
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        raise AssertionError("unreachable: abort raises")

    async def Check(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            rt = self._policy(request.policy)
            d = await rt.check(_key(request.key), _cost(request.cost))
        except Exception as exc:
            await self._fail(context, exc)
        return pb.CheckResponse(decision=_pb(d))

    async def CheckMany(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            rt = self._policy(request.policy)
            keys: Sequence[str] = request.keys
            if len(keys) > MAX_KEYS:
                raise _Reject(_INVALID, f"CheckMany takes at most {MAX_KEYS} keys, got {len(keys)}")
            cost = _cost(request.cost)
            for k in keys:
                _key(k)
            ds = await rt.check_many(list(keys), cost)
        except Exception as exc:
            await self._fail(context, exc)
        return pb.CheckManyResponse(decisions=[_pb(d) for d in ds])

    async def Peek(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            d = await self._policy(request.policy).peek(_key(request.key))
        except Exception as exc:
            await self._fail(context, exc)
        return pb.PeekResponse(decision=_pb(d))

    async def Forecast(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            f = await self._policy(request.policy).forecast(_key(request.key), _cost(request.cost))
        except Exception as exc:
            await self._fail(context, exc)
        return pb.ForecastResponse(
            forecast=pb.Forecast(
                spendable_now=f.spendable_now, next_replenish_at=f.next_replenish_at, full_at=f.full_at
            )
        )

    async def Debit(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            rt = self._policy(request.policy)
            d = await rt.debit(_key(request.key), _cost(request.tokens, "tokens"))
        except Exception as exc:
            await self._fail(context, exc)
        return pb.DebitResponse(decision=_pb(d))

    async def Admit(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            self._policy(request.policy)
            raise self.service.unsupported(request.policy, "admit")
        except Exception as exc:
            await self._fail(context, exc)

    async def Release(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await context.abort(_INVALID, request.problem)
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "release is not served: this server has no admitter (concurrency) policies yet",
        )

    async def Heartbeat(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await context.abort(_INVALID, request.problem)
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "heartbeat is not served: this server has no admitter (concurrency) policies yet",
        )
