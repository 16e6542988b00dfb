"""distributedConcurrency's acknowledged handoff, report sequencing and eager beats (spec 9.3 / 9.4) in
process on Redis: services driven directly, the periodic beat parked (heartbeatMs 100 s) so every report
is one the test sends or an eager trigger schedules; the eager beats on a manual clock with a manual timer
(the runtime's ``set_timer`` seam), so no test sleeps for a debounce."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import throttlekit as tk
from tests._support.server import async_redis_store
from tests._support.stores import unique_prefix
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService

pytestmark = pytest.mark.redis


def _service(
    prefix: str, node: str, *, handoff: bool = False, eager: bool = False, clock: tk.ManualClock | None = None
) -> RateLimiterService:
    block: dict[str, Any] = {"minLimit": 6, "maxLimit": 6, "heartbeatMs": 100_000, "aggregate": "min"}
    if handoff:
        block["handoff"] = True
    if eager:
        block.update(eagerHandoff=True, minHeartbeatMs=1)
    cfg = load_config(json.dumps({"limiters": {"fleet": {"distributedConcurrency": block}}}))
    return RateLimiterService(
        cfg, store=async_redis_store(prefix), node_id=node, clock=clock, close_store=True
    )


async def _admits(service: RateLimiterService, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        adm = await service.admit("fleet", "k")
        if not adm.decision.allowed:
            break
        out.append(adm)
    return out


@pytest.mark.parametrize(("handoff", "b_share"), [(True, 0), (False, 3)])
def test_a_lowered_share_is_not_handed_on_before_its_holder_applied_it(handoff: bool, b_share: int) -> None:
    """a's report is answered with a lowered share (6 -> 3) but the reply is lost: a still admits up to
    6. Without handoff the coordinator hands the 3 to b at once (9 may be held against a ceiling of 6);
    with handoff a's unacknowledged high (6) counts until a reports the generation applied."""

    async def run() -> None:
        prefix = unique_prefix("tkho")
        a, b = _service(prefix, "a", handoff=handoff), _service(prefix, "b", handoff=handoff)
        await a.astart()
        ra, rb = a.policies["fleet"], b.policies["fleet"]
        assert ra.share == 6 and ra.applied_gen == (1 if handoff else 0)
        await b.astart()  # a holds a share of 6: b gets 0
        assert rb.share == 0
        # a's next report, whose reply never reaches a (its runtime keeps share 6)
        lost = await ra.coordinator.aheartbeat(6, 0, ra.lease_ms, seq=ra.seq + 1, applied_gen=ra.applied_gen)
        ra.seq += 1
        assert lost.share == 3 and ra.cap == 6
        await rb.beat()
        assert rb.share == b_share
        if handoff:
            await ra.beat()  # the next report is answered (gen 2) and applied; the one after acks it
            assert (ra.share, ra.applied_gen) == (3, 2)
            await rb.beat()
            assert rb.share == 0  # applied, but not yet acknowledged
            await ra.beat()
            await rb.beat()
            assert rb.share == 3
        await a.aclose()
        await b.aclose()

    asyncio.run(run())


def test_a_reply_older_than_the_newest_applied_one_is_dropped() -> None:
    async def run() -> None:
        prefix = unique_prefix("tkho")
        a, b = _service(prefix, "a", handoff=True), _service(prefix, "b", handoff=True)
        await a.astart()
        ra = a.policies["fleet"]
        real = ra.coordinator.aheartbeat
        gate, answered = asyncio.Event(), asyncio.Event()

        async def slow_first(*args: Any, **kwargs: Any) -> Any:
            reply = await real(*args, **kwargs)
            if kwargs["seq"] == 2:
                answered.set()
                await gate.wait()  # this reply (share 6, a alone) arrives late
            return reply

        ra.coordinator.aheartbeat = slow_first  # type: ignore[method-assign]
        late = asyncio.ensure_future(ra.beat())  # seq 2: answered 6 (a is alone), delivered late
        await answered.wait()
        await b.astart()
        await ra.beat()  # seq 3: a is told 3
        assert (ra.share, ra.applied_seq) == (3, 3)
        gate.set()
        await late
        assert (ra.share, ra.cap, ra.dropped_replies) == (3, 3, 1)
        await a.aclose()
        await b.aclose()

    asyncio.run(run())


class _Timers:
    """A manual timer for the eager beats (the runtime's ``set_timer`` seam): records each scheduled
    report's delay; :meth:`fire` runs the due ones and waits for their reports."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, Any]] = []
        self.delays: list[float] = []

    def __call__(self, delay_s: float, callback: Any) -> Any:
        self.delays.append(delay_s)
        entry = (delay_s, callback)
        self.scheduled.append(entry)

        class Handle:
            def cancel(_self) -> None:
                if entry in self.scheduled:
                    self.scheduled.remove(entry)

        return Handle()

    async def fire(self, *runtimes: Any) -> int:
        due, self.scheduled = self.scheduled, []
        for _, callback in due:
            callback()
        for rt in runtimes:
            if rt._eager_task is not None:
                await rt._eager_task
        return len(due)


def _manual(service: RateLimiterService, timers: _Timers) -> Any:
    rt = service.policies["fleet"]
    rt.set_timer = timers
    return rt


def test_eager_beats_pull_push_ack_and_none_in_steady_state() -> None:
    async def run() -> None:
        prefix = unique_prefix("tkho")
        clock = tk.ManualClock(1_000_000)
        a = _service(prefix, "a", handoff=True, eager=True, clock=clock)
        b = _service(prefix, "b", handoff=True, eager=True, clock=clock)
        timers = _Timers()
        ra, rb = _manual(a, timers), _manual(b, timers)
        await a.astart()
        held = await _admits(a, 6)
        assert len(held) == 6
        await b.astart()  # b: share 0, below its fair share 3
        assert rb.share == 0
        # PULL: b's demand is rejected while capped below its fair share: one off-cycle report
        clock.advance(5)
        assert not (await b.admit("fleet", "k")).decision.allowed
        assert rb.eager_beats["pull"] == 1 and len(timers.scheduled) == 1
        assert await timers.fire(ra, rb) == 1
        assert rb.seq == 2 and rb.share == 0  # a still holds 6
        # a's periodic report lowers its share to 3 (gen 2): ACK reports the generation applied at once
        clock.advance(5)
        await ra.beat()
        assert ra.share == 3 and ra.eager_beats["ack"] == 1
        assert await timers.fire(ra, rb) == 1 and ra.seq == 3
        # PUSH: a drains to its lowered share: an off-cycle report says so
        for adm in held[:3]:
            a.release(adm.lease_id)
        assert ra.eager_beats["push"] == 1
        assert await timers.fire(ra, rb) == 1 and ra.seq == 4
        # b's next rejected admit pulls, and the share is b's without a periodic beat
        clock.advance(5)
        assert not (await b.admit("fleet", "k")).decision.allowed
        assert await timers.fire(ra, rb) == 1
        assert rb.share == 3 and rb.eager_beats["pull"] == 2
        held_b = await _admits(b, 6)
        assert len(held_b) == 3
        for adm in held[3:]:
            a.release(adm.lease_id)
        for adm in held_b:
            b.release(adm.lease_id)
        # steady state: every node at its fair share; admits, denials at the share and releases schedule
        # no report
        seqs, beats = (ra.seq, rb.seq), (dict(ra.eager_beats), dict(rb.eager_beats))
        for _ in range(20):
            clock.advance(50)
            for s in (a, b):
                more = await _admits(s, 6)  # 3 admitted, the 4th denied at the (fair) share
                assert len(more) == 3
                for adm in more:
                    s.release(adm.lease_id)
        assert timers.scheduled == [] and (ra.seq, rb.seq) == seqs
        assert (ra.eager_beats, rb.eager_beats) == beats
        await a.aclose()
        await b.aclose()

    asyncio.run(run())


def test_eager_beats_are_debounced_to_min_heartbeat_ms() -> None:
    async def run() -> None:
        prefix = unique_prefix("tkho")
        clock = tk.ManualClock(1_000_000)
        block = {
            "minLimit": 4,
            "maxLimit": 4,
            "heartbeatMs": 100_000,
            "eagerHandoff": True,
            "minHeartbeatMs": 300,
        }
        cfg = load_config(json.dumps({"limiters": {"fleet": {"distributedConcurrency": block}}}))
        a = RateLimiterService(
            cfg, store=async_redis_store(prefix), node_id="a", clock=clock, close_store=True
        )
        b = RateLimiterService(
            cfg, store=async_redis_store(prefix), node_id="b", clock=clock, close_store=True
        )
        timers = _Timers()
        _manual(a, timers)
        rb = _manual(b, timers)
        await a.astart()
        await _admits(a, 4)
        await b.astart()  # b's last report: now
        clock.advance(120)
        for _ in range(50):  # a burst of rejected demand: one pending report, not fifty
            assert not (await b.admit("fleet", "k")).decision.allowed
        assert rb.eager_beats["pull"] == 1 and len(timers.scheduled) == 1
        assert timers.delays == [pytest.approx(0.18)]  # 300 ms after the last report, 120 ms of it gone
        await timers.fire(rb)
        assert rb.seq == 2
        clock.advance(400)  # longer than minHeartbeatMs since that report: the next one is due at once
        assert not (await b.admit("fleet", "k")).decision.allowed
        assert timers.delays[-1] == 0.0
        await timers.fire(rb)
        assert rb.seq == 3
        await a.aclose()
        await b.aclose()

    asyncio.run(run())
