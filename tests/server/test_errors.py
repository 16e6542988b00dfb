"""Faults answered with a proper status and a clear message: a key holding another strategy's state, a
transform's own error, a decision the wire cannot carry. No Lua traceback, path or client key reaches a
client or a log line, and a fault is logged once per burst, not once per request."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import grpc
import pytest

import throttlekit as tk
from tests._support.env import redis_client
from tests._support.server import Starter, async_redis_store, make_store, pb
from throttlekit.stores.base import AsyncBoundCall

GCRA = {"strategy": "gcra", "limit": 10, "period": "1m"}
WINDOW = {"strategy": "fixedWindow", "limit": 10, "period": "1m"}
LEAKS = ("Traceback", "user_script", ".lua", "stack traceback", "/", "@")


def _error(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value


def _no_leak(text: str, *secrets: str) -> None:
    for leak in (*LEAKS, *secrets):
        assert leak not in text, f"{leak!r} leaked into {text!r}"


def test_a_key_holding_another_strategys_state_is_failed_precondition_naming_the_policy(
    start_server: Starter, store_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two servers share one store and one prefix with different strategies (two fleets that disagree):
    the second one's Check on the same key is FAILED_PRECONDITION naming its policy, logged once."""
    caplog.set_level(logging.ERROR, logger="throttlekit.server")
    prefix = f"shared-{uuid.uuid4().hex[:8]}"
    if store_kind == "memory":
        one = tk.MemoryStore()
        stores = [one, one]
    else:  # one store object per server: each server runs its own event loop
        stores = [async_redis_store(prefix), async_redis_store(prefix)]
    first = start_server({"a": {**GCRA, "prefix": prefix}}, store=stores[0])
    second = start_server({"b": {**WINDOW, "prefix": prefix}}, store=stores[1])
    secret = "alice\nsecret"
    assert first.check("a", secret).allowed
    for _ in range(5):
        err = _error(second.stub.Check, pb.CheckRequest(policy="b", key=secret))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = err.details() or ""
        assert 'policy "b"' in details and "fixedWindow" in details and prefix in details
        assert "another strategy" in details
        _no_leak(details, secret)
    many = _error(second.stub.CheckMany, pb.CheckManyRequest(policy="b", keys=["x", secret]))
    assert many.code() == grpc.StatusCode.FAILED_PRECONDITION
    lines = [r.getMessage() for r in caplog.records if "WRONGTYPE" in r.getMessage()]
    assert len(lines) == 1, lines  # once per burst, not once per request
    _no_leak(lines[0].replace(prefix, ""), secret)
    assert second.check("b", "someone-else").allowed  # other keys are unaffected


@pytest.mark.redis
def test_a_transform_error_is_internal_with_a_generic_message_logged_once(
    start_server: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    """State the transform cannot read (a corrupt value at the key) makes the Lua raise: the client gets
    INTERNAL naming the policy and nothing of the Lua error; the log gets the detail once."""
    caplog.set_level(logging.ERROR, logger="throttlekit.server")
    client = redis_client()
    if "Fake" in type(client).__name__:
        pytest.skip("needs a real Redis")
    store = async_redis_store()
    served = start_server({"api": GCRA}, store=store)
    key = f"{store.prefix}:api:k"
    client.set(key, "not a time")  # gcra's tonumber() gives nil: the Lua raises
    try:
        for _ in range(4):
            err = _error(served.stub.Check, pb.CheckRequest(policy="api", key="k"))
            details = err.details() or ""
            assert err.code() == grpc.StatusCode.INTERNAL
            assert details == 'policy "api": internal error; the server log has the detail'
    finally:
        client.delete(key)
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1, logged
    assert 'policy "api": request failed: ScriptError' in logged[0] and "gcra" in logged[0]
    assert served.check("api", "k").allowed


def test_a_lua_fault_on_the_memory_store_is_internal_logged_once(
    start_server: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    """The memory store's Check runs its bound transform without a ``pcall``: a fault in the Lua (state
    it cannot read) must still be a ScriptError, INTERNAL to the client with nothing of the Lua error,
    the detail logged once, and the next decision on another key unaffected."""
    caplog.set_level(logging.ERROR, logger="throttlekit.server")
    store = tk.MemoryStore()
    served = start_server({"api": GCRA}, store=store)
    store.engine.load(0, "api:k", "string", "not a time", None)  # gcra's tonumber() gives nil
    for _ in range(3):
        err = _error(served.stub.Check, pb.CheckRequest(policy="api", key="k"))
        assert err.code() == grpc.StatusCode.INTERNAL
        assert (err.details() or "") == 'policy "api": internal error; the server log has the detail'
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1, logged
    assert 'policy "api": request failed: ScriptError' in logged[0] and "gcra" in logged[0]
    assert "stack traceback" not in logged[0]
    assert served.check("api", "other").allowed


def test_a_huge_cost_never_answers_unknown(start_server: Starter, store_kind: str) -> None:
    """gcra with cost 2^53-1 on a 10/min policy: a decision in range, or a clear INTERNAL; never UNKNOWN
    with a traceback."""
    served = start_server({"api": GCRA}, store=make_store(store_kind))
    for method, request in [
        ("Check", pb.CheckRequest(policy="api", key="k", cost=2**53 - 1)),
        ("CheckMany", pb.CheckManyRequest(policy="api", keys=["k", "j"], cost=2**53 - 1)),
    ]:
        try:
            getattr(served.stub, method)(request, timeout=10)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INTERNAL, err
            assert "no wire form" in (err.details() or "")
            _no_leak(err.details() or "")


class _OutOfRange(tk.MemoryStore):
    """A store implementing the protocol wrongly: its decisions carry a float and an out-of-int64 value
    (what a store without the Lua's clamping could return)."""

    inline = False

    def abind(self, name: str, params: Sequence[Any]) -> AsyncBoundCall:
        async def call(key: str, now_ms: float, cost: float) -> Sequence[Any]:
            return (1, 10, 9, 2**70, 5.4e19)

        return call

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        return [(1, 10, 9, 1, 0), (0, 10, 0, 1, 5.4e19)]


def test_a_reply_without_a_wire_form_is_internal_naming_the_field(
    start_server: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="throttlekit.server")
    served = start_server({"api": GCRA}, store=_OutOfRange())
    for _ in range(3):
        err = _error(served.stub.Check, pb.CheckRequest(policy="api", key="k"))
        assert err.code() == grpc.StatusCode.INTERNAL
        assert (err.details() or "").startswith(
            'policy "api": the decision for this request has no wire form'
        )
    err = _error(served.stub.CheckMany, pb.CheckManyRequest(policy="api", keys=["a", "b"]))
    assert err.code() == grpc.StatusCode.INTERNAL
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "reset_at=1180591620717411303424 is outside int64" in lines[0]
    assert "retry_after_ms=5.4e+19 is not an integer" in lines[0]
