"""The RateLimiter door over a real gRPC server, on the memory store and on Redis."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import example, given
from hypothesis import strategies as st

import throttlekit as tk
from tests._support.server import Starter, make_store, pb
from throttlekit.server import MAX_KEY_BYTES, MAX_KEYS

NOW = 1_700_000_000_000
# periods of hours: Redis expires keys on its own (real) clock while the test's clock is manual, so a
# TTL of a few hundred ms (a 1 s period) lapsed mid-test on a loaded machine
POLICIES = {
    "api": {"strategy": "gcra", "limit": 10, "period": "1h", "burst": 3},
    "win": {"strategy": "fixedWindow", "limit": 5, "period": "1m"},
    "tb": {"strategy": "tokenBucket", "capacity": 4, "refillPerSec": 2},
}
C = grpc.StatusCode


def _d(msg: object) -> tk.Decision:
    return tk.Decision(msg.allowed, msg.limit, msg.remaining, msg.reset_at, msg.retry_after_ms)  # type: ignore[attr-defined]


@pytest.fixture
def clock() -> tk.ManualClock:
    return tk.ManualClock(NOW)


@pytest.fixture
def served(start_server: Starter, store_kind: str, clock: tk.ManualClock) -> object:
    return start_server(POLICIES, store=make_store(store_kind, clock), clock=clock)


def test_check_returns_the_engine_decisions(served, clock) -> None:  # type: ignore[no-untyped-def]
    reference = tk.Limiter(tk.Gcra(10, "1h", burst=3), clock=clock)
    for _ in range(5):
        assert _d(served.check("api", "alice")) == reference.check("alice")
    denied = served.check("api", "alice")
    assert not denied.allowed and denied.retry_after_ms > 0 and denied.remaining == 0
    clock.advance(360_000)  # one emission interval: one more admitted
    again = _d(served.check("api", "alice"))
    assert again.allowed and again == reference.check("alice")


def test_cost_zero_means_one_and_costs_add_up(served) -> None:  # type: ignore[no-untyped-def]
    assert served.check("win", "k", cost=0).remaining == 4
    assert served.check("win", "k", cost=1).remaining == 3
    assert served.check("win", "k", cost=3).remaining == 0
    assert not served.check("win", "k", cost=1).allowed


def test_check_many_decides_in_input_order_at_one_instant(served, clock) -> None:  # type: ignore[no-untyped-def]
    reply = served.stub.CheckMany(
        pb.CheckManyRequest(policy="win", keys=["a", "b", "a", "a", "a", "a"], cost=0)
    )
    got = [_d(d) for d in reply.decisions]
    reference = tk.Limiter(tk.FixedWindow(5, "1m"), clock=clock)
    assert got == reference.check_many(["a", "b", "a", "a", "a", "a"])
    assert [d.remaining for d in got] == [4, 4, 3, 2, 1, 0]
    assert served.stub.CheckMany(pb.CheckManyRequest(policy="win", keys=[])).decisions == []


def test_peek_and_forecast_consume_nothing(served, clock) -> None:  # type: ignore[no-untyped-def]
    served.check("tb", "k", cost=3)
    peek = _d(served.stub.Peek(pb.PeekRequest(policy="tb", key="k")).decision)
    fc = served.stub.Forecast(pb.ForecastRequest(policy="tb", key="k", cost=0)).forecast
    reference = tk.Limiter(tk.TokenBucket(4, 2), clock=clock)
    reference.check("k", 3)
    assert peek == reference.peek("k")
    assert (fc.spendable_now, fc.next_replenish_at, fc.full_at) == tuple(vars_of(reference.forecast("k")))
    assert served.check("tb", "k").remaining == 0  # the one unit left is still there


def vars_of(f: tk.Forecast) -> list[int]:
    return [f.spendable_now, f.next_replenish_at, f.full_at]


def test_status_codes(served) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        served.stub.Check(pb.CheckRequest(policy="nope", key="k"))
    assert info.value.code() == C.NOT_FOUND
    assert info.value.details() == 'unknown policy "nope"; configured policies: "api", "win", "tb"'
    assert served.code_of("Check", pb.CheckRequest(policy="", key="k")) == C.INVALID_ARGUMENT
    assert served.code_of("Check", pb.CheckRequest(policy="api", key="k", cost=-1)) == C.INVALID_ARGUMENT
    assert served.code_of("Check", pb.CheckRequest(policy="api", key="k", cost=2**53)) == C.INVALID_ARGUMENT
    assert (
        served.code_of("Check", pb.CheckRequest(policy="api", key="x" * (MAX_KEY_BYTES + 1)))
        == C.INVALID_ARGUMENT
    )
    assert served.check("api", "é" * (MAX_KEY_BYTES // 2)).allowed  # exactly at the limit, in bytes
    too_many = pb.CheckManyRequest(policy="api", keys=[str(i) for i in range(MAX_KEYS + 1)])
    assert served.code_of("CheckMany", too_many) == C.INVALID_ARGUMENT
    assert served.code_of("Peek", pb.PeekRequest(policy="nope")) == C.NOT_FOUND
    assert served.code_of("Forecast", pb.ForecastRequest(policy="api", cost=-5)) == C.INVALID_ARGUMENT
    assert served.code_of("Debit", pb.DebitRequest(policy="nope")) == C.NOT_FOUND


@pytest.mark.parametrize(
    ("method", "request_", "op"),
    [
        ("Debit", pb.DebitRequest(policy="api", key="k", tokens=5), "debit"),
        ("Admit", pb.AdmitRequest(policy="api", key="k"), "admit"),
    ],
)
def test_ops_a_rate_policy_does_not_offer_are_unimplemented(served, method, request_, op) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        getattr(served.stub, method)(request_)
    assert info.value.code() == C.UNIMPLEMENTED
    assert info.value.details() == f'policy "api" does not support {op}'


def test_lease_rpcs_are_policy_independent_and_idempotent(served) -> None:  # type: ignore[no-untyped-def]
    served.stub.Release(pb.ReleaseRequest(lease_id="1"), timeout=10)  # unknown id: a no-op
    beat = served.stub.Heartbeat(pb.HeartbeatRequest(lease_ids=["1"]), timeout=10)
    assert list(beat.live_ids) == [] and list(beat.reclaimed_ids) == ["1"]


def test_fleet_is_not_served_without_federated_policies(served) -> None:  # type: ignore[no-untyped-def]
    call = served.channel.unary_unary("/throttlekit.v1.Fleet/Reserve")
    with pytest.raises(grpc.RpcError) as info:
        call(b"")
    assert info.value.code() == C.UNIMPLEMENTED


def test_health_reports_each_service_and_not_serving_while_draining(start_server: Starter) -> None:
    served = start_server(POLICIES)
    health = health_pb2_grpc.HealthStub(served.channel)
    for name in ("", "throttlekit.v1.RateLimiter"):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service=name)).status
            == health_pb2.HealthCheckResponse.SERVING
        )
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="throttlekit.v1.Nope"))
    assert info.value.code() == C.NOT_FOUND
    watch = health.Watch(health_pb2.HealthCheckRequest(service="throttlekit.v1.RateLimiter"))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    served.handle.close(grace=1)
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_the_services(start_server: Starter) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    served = start_server(POLICIES)
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in next(replies).list_services_response.service}
    assert {"throttlekit.v1.RateLimiter", "grpc.health.v1.Health"} <= names


def test_every_service_is_registered_as_generic_handlers_only(
    start_server: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """grpc.aio keeps a pending request task per *registered* method and waits on all of them for every
    call (with our 14 methods registered: an asyncio.wait over 15 tasks per Check, ~1/8 of the server's
    instructions per Check). The server registers generic handlers only, its own doors and the health
    and reflection services alike, and every service still answers."""
    import grpc.aio

    registered: list[str] = []
    make = grpc.aio.server

    def spying_server(*args: object, **kwargs: object) -> grpc.aio.Server:
        server = make(*args, **kwargs)
        add = server.add_registered_method_handlers

        def record(service: str, handlers: object) -> None:
            registered.append(service)
            add(service, handlers)

        server.add_registered_method_handlers = record  # type: ignore[method-assign]
        return server

    monkeypatch.setattr(grpc.aio, "server", spying_server)
    served = start_server(POLICIES)
    assert registered == []
    assert served.check("api", "k").allowed
    health = health_pb2_grpc.HealthStub(served.channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="")).status
        == health_pb2.HealthCheckResponse.SERVING
    )


def test_every_strategy_is_served_over_grpc(
    start_server: Starter, store_kind: str, clock: tk.ManualClock
) -> None:
    policies = {
        "gcra": {"strategy": "gcra", "limit": 5, "period": "1s"},
        "tb": {"strategy": "tokenBucket", "capacity": 5, "refillPerSec": 1},
        "fw": {"strategy": "fixedWindow", "limit": 5, "windowMs": 1000},
        "sw": {"strategy": "slidingWindow", "limit": 5, "period": "1s", "buckets": 5},
        "swl": {"strategy": "slidingWindowLog", "limit": 5, "period": "1s"},
        "q": {"strategy": "quota", "limit": 5, "resetCadence": "calendar-day"},
        "qr": {"strategy": "quota", "limit": 5, "resetCadence": "rolling", "period": "1h"},
    }
    served = start_server(policies, store=make_store(store_kind, clock), clock=clock)
    for name in policies:
        got = [served.check(name, "k").remaining for _ in range(6)]
        assert got == [4, 3, 2, 1, 0, 0], name
        assert not served.stub.Peek(pb.PeekRequest(policy=name, key="k")).decision.allowed
        assert served.stub.Forecast(pb.ForecastRequest(policy=name, key="k")).forecast.spendable_now == 0


_INT64 = st.integers(-(2**63), 2**63 - 1)
_REPLY = st.tuples(st.sampled_from([0, 1, True, False]), _INT64, _INT64, _INT64, _INT64)
_REFUSED = st.tuples(
    st.just(1),
    st.one_of(_INT64, st.just(10.0), st.just(0.0), st.just(2**63)),
    _INT64,
    st.one_of(_INT64, st.just(2**70)),
    st.one_of(_INT64, st.just(5.4e19), st.just(0.0)),
)


@given(st.lists(st.one_of(_REPLY, _REFUSED), min_size=1, max_size=12))
@example([(1, 10, 9, 1, 0), (1, 10.0, 8, 1, 0), (1, 10, 7, 1, 0)])
@example([(0, 2, 0, 5, 7), (True, 2, 1, 5, 0), (1, 2, 0, 2**70, 0), (1, 2, 0, 5, 0)])
@example([(1, 5, 0, 1, 0), (1, 2**63, 0, 1, 0), (1, 2**63, 0, 1, 0), (1, 5, 0, 1, 0)])
def test_the_check_encoder_answers_each_reply_alone_whatever_came_before(replies: list[Any]) -> None:
    """Check's encoder reuses one message and assigns only the fields that changed: every answer must be
    the bytes of that reply's own response, and a value the wire refuses must be refused every time
    (even right after an equal integer), whatever sequence came before."""
    from throttlekit.server._door import _check_response_encoder

    encode = _check_response_encoder()
    for r in replies:
        try:
            expected = pb.CheckResponse(
                decision=pb.Decision(
                    allowed=r[0] == 1, limit=r[1], remaining=r[2], reset_at=r[3], retry_after_ms=r[4]
                )
            ).SerializeToString()
        except (TypeError, ValueError):
            with pytest.raises((TypeError, ValueError)):
                encode(r)
        else:
            assert encode(r) == expected, r


def test_check_answers_the_same_bytes_as_the_response_message(start_server: Starter) -> None:
    """Check is registered through ``check_bytes`` (the response serialized by hand: one reused Decision
    message, framed as CheckResponse field 1). Its bytes are exactly the message's serialization, for an
    allow, a denial (retry_after_ms set) and large values; and the door mounted on a plain grpc.aio server
    with the generated ``add_RateLimiterServicer_to_server`` (the servicer API) answers messages."""
    import asyncio

    import grpc.aio

    from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
    from throttlekit.server import RateLimiterDoor

    served = start_server({"api": {"strategy": "fixedWindow", "limit": 2, "period": "1h"}})
    raw = served.channel.unary_unary("/throttlekit.v1.RateLimiter/Check")
    for _ in range(4):
        request = pb.CheckRequest(policy="api", key="k").SerializeToString()
        wire = raw(request, timeout=10)
        assert (
            pb.CheckResponse(decision=pb.CheckResponse.FromString(wire).decision).SerializeToString() == wire
        )
    d = pb.CheckResponse.FromString(wire).decision
    assert not d.allowed and d.retry_after_ms > 0 and d.limit == 2 and d.reset_at > 10**12

    encode = RateLimiterDoor(served.service)._check_response
    for r in [(1, 2**53 - 1, 0, 2**62, 0), (0, 1, -1, -(2**63), 2**63 - 1), (True, 0, 0, 0, 0)]:
        expected = pb.CheckResponse(
            decision=pb.Decision(
                allowed=r[0] == 1, limit=r[1], remaining=r[2], reset_at=r[3], retry_after_ms=r[4]
            )
        )
        assert encode(r) == expected.SerializeToString(), r

    async def mounted() -> pb.CheckResponse:
        server = grpc.aio.server()
        pb_grpc.add_RateLimiterServicer_to_server(RateLimiterDoor(served.service), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.RateLimiterStub(channel)
                return await stub.Check(pb.CheckRequest(policy="api", key="other"), timeout=10)
        finally:
            await server.stop(0)

    answer = asyncio.run(mounted())
    assert answer.decision.allowed and answer.decision.remaining == 1
