"""The gRPC binding of ``throttlekit.v1.RateLimiter``: validate, call the service, map errors to status.

Input rules (the upstream never answers INVALID_ARGUMENT; we reject what cannot be a sensible request,
with these documented limits):

* ``policy`` must not be empty; an unknown policy is NOT_FOUND listing the configured ones;
* ``cost`` / ``tokens``: 0 means 1 (proto3 default), negative or above 2^53 - 1 is INVALID_ARGUMENT;
* ``key``: at most :data:`MAX_KEY_BYTES` bytes of UTF-8;
* ``CheckMany.keys``: at most :data:`MAX_KEYS` keys;
* ``Admit.value``: 0 means 1, like ``cost``; ``hold`` below 0 is 0;
* ``Release``/``Heartbeat``: lease ids of at most :data:`MAX_LEASE_ID` characters, at most
  :data:`MAX_LEASE_IDS` ids per Heartbeat. Both are policy-independent and idempotent (an unknown id is
  a successful no-op for Release and ``reclaimed`` for Heartbeat).

A denial is a normal reply. A store outage is a synthesized decision (the service's fail mode); only a
Forecast, which has no honest synthesized answer, reports UNAVAILABLE. Ops a policy kind does not offer
answer UNIMPLEMENTED naming the op and the policy. A store key holding another strategy's state (Redis
``WRONGTYPE``: another client of a shared store uses the policy's prefix) is FAILED_PRECONDITION naming the
policy. A transform's own error, or a decision the wire cannot carry, is INTERNAL with a generic message;
the detail goes to the server log once per burst (never a Lua traceback, a path or a client key to the
client, never a log line per request).

The response is built inside the same error handling as the decision: nothing a store returns can make
grpc answer UNKNOWN with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import grpc

from .._errors import NotSupportedError, ScriptError, StoreError, ThrottleKitError, loggable
from .._proto import throttlekit_pb2 as pb
from .._proto import throttlekit_pb2_grpc as pb_grpc
from .._types import Decision
from ..stores.base import Reply
from ..strategies import MAX_COST
from ._service import RateLimiterService, UnknownPolicyError

__all__ = ["MAX_KEYS", "MAX_KEY_BYTES", "MAX_LEASE_IDS", "RateLimiterDoor", "add_to_server"]

log = logging.getLogger("throttlekit.server")

#: Longest key accepted, in bytes of UTF-8.
MAX_KEY_BYTES = 4096
#: Most keys one CheckMany may carry.
MAX_KEYS = 1000
#: Most lease ids one Heartbeat may renew.
MAX_LEASE_IDS = 10_000
#: Longest lease id accepted (ours are 16 hex digits, a dot and a counter).
MAX_LEASE_ID = 128

_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_PbDecision = pb.Decision
_FIELDS = ("allowed", "limit", "remaining", "reset_at", "retry_after_ms")
_INT64 = (-(2**63), 2**63 - 1)


def _pb(d: Decision) -> Any:
    return _PbDecision(
        allowed=d.allowed,
        limit=d.limit,
        remaining=d.remaining,
        reset_at=d.reset_at,
        retry_after_ms=d.retry_after_ms,
    )


def _reply_pb(r: Reply) -> Any:
    """The wire Decision straight from a decision transform's reply items (``allowed`` is 1/0 or a bool).
    Their order is the manifest's: the loader refuses a decision transform whose reply is not exactly
    ``DECISION_REPLY`` (tests/test_manifest_contract.py), so these positions are those names."""
    return _PbDecision(allowed=r[0] == 1, limit=r[1], remaining=r[2], reset_at=r[3], retry_after_ms=r[4])


def _check_response_encoder() -> Callable[[Reply], bytes]:
    """``reply items -> CheckResponse bytes``, what Check answers (registered without a serializer): one
    ``Decision`` message, reused, gets the fields that changed since the last call assigned and is
    serialized, then framed by hand as field 1 of ``CheckResponse`` (tag 0x0a and a one-byte length, from
    a table: a Decision is at most 46 bytes). ``last`` mirrors what the message holds, set only after an
    assignment succeeded, so a value the message refuses (not an integer, outside int64) raises every
    time. Under steady traffic only ``remaining`` changes: 6.3k instructions a call, against 8.3k
    assigning all five and 16.4k building both messages (callgrind; the table framing since, ~40 ns less
    than ``%`` formatting). The message belongs to the event loop's thread: the
    encoder runs between awaits, so no two calls interleave."""
    msg = _PbDecision()
    serialize = msg.SerializeToString
    head = [b"\n" + bytes((n,)) for n in range(128)]  # tag and one-byte length, by length
    last: list[Any] = [False, 0, 0, 0, 0]  # a new message's fields

    def encode(r: Reply) -> bytes:
        v = r[0] == 1
        if v is not last[0]:
            msg.allowed = last[0] = v
        v = r[1]
        if v != last[1] or v.__class__ is not int:
            msg.limit = last[1] = v
        msg.remaining = r[2]
        v = r[3]
        if v != last[3] or v.__class__ is not int:
            msg.reset_at = last[3] = v
        v = r[4]
        if v != last[4] or v.__class__ is not int:
            msg.retry_after_ms = last[4] = v
        body: bytes = serialize()
        return head[len(body)] + body

    return encode


class _Unencodable(Exception):
    """A response field the wire cannot carry (not an integer, or outside int64)."""


def _bad_fields(names: Sequence[str], values: Sequence[Any]) -> list[str]:
    bad = []
    for name, v in zip(names, values, strict=False):
        if v.__class__ is not int and v.__class__ is not bool:
            bad.append(f"{name}={v!r} is not an integer")
        elif not _INT64[0] <= v <= _INT64[1]:
            bad.append(f"{name}={v} is outside int64")
    return bad


def _wire(exc: Exception, answer: Any) -> Exception:
    """``exc`` raised while building a response from ``answer`` (reply items, a Decision or a Forecast):
    an :class:`_Unencodable` naming the fields without a wire form, else ``exc`` itself."""
    if answer is None or not isinstance(exc, (TypeError, ValueError)):
        return exc
    if isinstance(answer, (tuple, list)):
        names, values = _FIELDS[1:], list(answer)[1:]
    elif hasattr(answer, "__dataclass_fields__"):
        names = tuple(f for f in answer.__dataclass_fields__ if f != "allowed")
        values = [getattr(answer, f) for f in names]
    else:
        return exc
    bad = _bad_fields(names, values)
    return _Unencodable("; ".join(bad)) if bad else exc


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


def _lease_id(lease_id: str) -> str:
    if len(lease_id) > MAX_LEASE_ID:
        raise _Reject(_INVALID, f"lease_id is longer than {MAX_LEASE_ID} characters")
    return lease_id


#: Keys of at most this many characters cannot exceed MAX_KEY_BYTES: the hot path skips the check.
_SHORT_KEY = MAX_KEY_BYTES // 4


def _policy_name(request: Any) -> str:
    try:
        return str(request.policy)
    except _Reject:  # a malformed request has no policy
        return ""


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
    handlers = {}
    for m in service.methods:
        wire = door.WIRE_BYTES.get(m.name)
        handlers[m.name] = grpc.unary_unary_rpc_method_handler(
            getattr(door, wire or m.name),
            request_deserializer=_decoder(getattr(pb, m.input_type.name)),
            response_serializer=None if wire else getattr(pb, m.output_type.name).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


class RateLimiterDoor(pb_grpc.RateLimiterServicer):
    """``throttlekit.v1.RateLimiter`` over a :class:`RateLimiterService`. Every method answers a response
    message, as the generated servicer's; :func:`add_to_server` registers the hot ones through their
    twins in :attr:`WIRE_BYTES`, which answer the same response already serialized."""

    #: RPC name -> the method answering its serialized response (registered without a serializer).
    WIRE_BYTES = {"Check": "check_bytes"}

    def __init__(self, service: RateLimiterService) -> None:
        self.service = service
        self._check_response = _check_response_encoder()

    def _policy(self, name: str) -> Any:
        rt = self.service.policies.get(name)
        if rt is not None:
            return rt
        if not name:
            raise _Reject(_INVALID, "policy is required")
        raise _Reject(grpc.StatusCode.NOT_FOUND, str(UnknownPolicyError(name, self.service.names)))

    async def _fail(
        self, context: grpc.aio.ServicerContext, exc: BaseException, policy: str = ""
    ) -> NoReturn:
        code, details = self._status(exc, policy)
        await context.abort(code, details)
        raise AssertionError("unreachable: abort raises")

    def _status(self, exc: BaseException, policy: str) -> tuple[grpc.StatusCode, str]:
        """The status and client-facing message for ``exc``; faults are logged once per burst."""
        if isinstance(exc, _Reject):
            return exc.code, exc.details
        if isinstance(exc, NotSupportedError):
            return grpc.StatusCode.UNIMPLEMENTED, str(exc)
        rt = self.service.policies.get(policy)
        name = f'policy "{policy}"' if rt is not None else "this request"
        errors = self.service.errors
        if isinstance(exc, StoreError):
            self.service.outage.failed(exc, 0)
            return grpc.StatusCode.UNAVAILABLE, f"{name}: the store is unavailable (fail {self.service.fail})"
        if isinstance(exc, ScriptError) and "WRONGTYPE" in str(exc):
            strategy = getattr(getattr(rt, "policy", None), "strategy", None)
            kind = f" ({strategy.kind})" if strategy is not None else ""
            prefix = getattr(getattr(rt, "policy", None), "prefix", "")
            errors.report(
                f"wrongtype:{policy}",
                f"{name}{kind}: a store key under prefix {prefix!r} holds "
                "another strategy's state (WRONGTYPE): another client of the shared store writes "
                "this prefix with a different strategy",
            )
            return grpc.StatusCode.FAILED_PRECONDITION, (
                f"{name}{kind}: the store holds another strategy's state at this key (another client of "
                f"the shared store uses prefix {prefix!r} with a different strategy); the key belongs to "
                f"{name}: give the other client another prefix"
            )
        if isinstance(exc, _Unencodable):
            errors.report(f"unencodable:{policy}", f"{name}: a decision the wire cannot carry: {exc}")
            return grpc.StatusCode.INTERNAL, (
                f"{name}: the decision for this request has no wire form (a field out of range); "
                "the server log has the detail"
            )
        if isinstance(exc, ThrottleKitError):
            errors.report(f"{type(exc).__name__}:{policy}", f"{name}: request failed: {loggable(exc)}")
            return grpc.StatusCode.INTERNAL, f"{name}: internal error; the server log has the detail"
        errors.report(
            f"unexpected:{type(exc).__name__}:{policy}",
            f"{name}: unexpected error in a RateLimiter handler: {loggable(exc)}",
        )
        return grpc.StatusCode.INTERNAL, f"{name}: internal error; the server log has the detail"

    async def Check(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.CheckResponse.FromString(await self.check_bytes(request, context))

    async def check_bytes(self, request: Any, context: grpc.aio.ServicerContext) -> bytes:
        """Check, answering the serialized ``CheckResponse``."""
        r: Any = None
        try:
            rt = self.service.policies.get(request.policy) or self._policy(request.policy)
            key = request.key
            if len(key) > _SHORT_KEY:
                _key(key)
            cost = request.cost
            if not 0 < cost <= MAX_COST:
                cost = _cost(cost)
            r = rt.check_reply(key, cost)
            if not rt.inline:
                r = await r
            return self._check_response(r)
        except Exception as exc:
            await self._fail(context, _wire(exc, r), _policy_name(request))

    async def CheckMany(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        rs: Any = None
        try:
            rt = self._policy(request.policy)
            keys: Sequence[str] = request.keys
            if len(keys) > MAX_KEYS:
                raise _Reject(_INVALID, f"CheckMany takes at most {MAX_KEYS} keys, got {len(keys)}")
            cost = _cost(request.cost)
            for k in keys:
                _key(k)
            rs = await rt.check_many_replies(list(keys), cost)
            return pb.CheckManyResponse(decisions=[_reply_pb(r) for r in rs])
        except Exception as exc:
            if rs is not None:
                exc = next((e for e in (_wire(exc, r) for r in rs) if e is not exc), exc)
            await self._fail(context, exc, _policy_name(request))

    async def Peek(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        d = None
        try:
            d = await self._policy(request.policy).peek(_key(request.key))
            return pb.PeekResponse(decision=_pb(d))
        except Exception as exc:
            await self._fail(context, _wire(exc, d), _policy_name(request))

    async def Forecast(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        f = None
        try:
            f = await self._policy(request.policy).forecast(_key(request.key), _cost(request.cost))
            return pb.ForecastResponse(
                forecast=pb.Forecast(
                    spendable_now=f.spendable_now, next_replenish_at=f.next_replenish_at, full_at=f.full_at
                )
            )
        except Exception as exc:
            await self._fail(context, _wire(exc, f), _policy_name(request))

    async def Debit(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        d = None
        try:
            rt = self._policy(request.policy)
            d = await rt.debit(_key(request.key), _cost(request.tokens, "tokens"))
            return pb.DebitResponse(decision=_pb(d))
        except Exception as exc:
            await self._fail(context, _wire(exc, d), _policy_name(request))

    async def Admit(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        adm = None
        try:
            rt = self._policy(request.policy)
            key = _key(request.key)
            cost = _cost(request.cost)
            value = _cost(request.value, "value")
            hold = max(0, request.hold)
            adm = await rt.admit(key, cost, hold, value)
            return pb.AdmitResponse(
                decision=_pb(adm.decision),
                lease_id=adm.lease_id,
                lease_expires_at=adm.lease_expires_at,
                binding_axis=adm.binding_axis,
                policy_denied=adm.policy_denied,
            )
        except Exception as exc:
            await self._fail(
                context, _wire(exc, adm.decision if adm is not None else None), _policy_name(request)
            )

    async def Release(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            self.service.release(_lease_id(request.lease_id), bool(request.dropped))
            return pb.ReleaseResponse()
        except Exception as exc:
            await self._fail(context, exc)

    async def Heartbeat(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            ids: Sequence[str] = request.lease_ids
            if len(ids) > MAX_LEASE_IDS:
                raise _Reject(_INVALID, f"Heartbeat takes at most {MAX_LEASE_IDS} lease ids, got {len(ids)}")
            live, gone, deadline = self.service.heartbeat([_lease_id(i) for i in ids])
            return pb.HeartbeatResponse(live_ids=live, reclaimed_ids=gone, next_deadline=deadline)
        except Exception as exc:
            await self._fail(context, exc)
