"""distributedConcurrency in process: shares split by the coordinator on Redis, leave() frees a share at
once, node-id collisions, demand-proportional allocation, the outage policies and self-fencing. Services
are driven directly (beats called by the test; the fleets of processes are
tests/stores/test_fleet_concurrency.py and tests/stores/test_fleet_demand.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

import throttlekit as tk
from tests._support.redis_server import OwnRedis
from tests._support.server import async_redis_store
from tests._support.stores import unique_prefix
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService

pytestmark = pytest.mark.redis


def _config(limit: int = 6, outage: str = "fail-closed", allocation: str = "equal-split") -> Any:
    block = {
        "minLimit": limit,
        "maxLimit": limit,
        "heartbeatMs": 100000,
        "onCoordinatorOutage": outage,
        "allocation": allocation,
    }
    return load_config(json.dumps({"limiters": {"fleet": {"distributedConcurrency": block}}}))


async def _admits(service: RateLimiterService, n: int = 20) -> list[Any]:
    out = []
    for _ in range(n):
        adm = await service.admit("fleet", "k")
        if not adm.decision.allowed:
            break
        out.append(adm)
    return out


def test_shares_split_and_leave_frees_a_share_at_once() -> None:
    async def run() -> None:
        prefix = unique_prefix("tkdc")
        a = RateLimiterService(_config(), store=async_redis_store(prefix), node_id="n1", close_store=True)
        b = RateLimiterService(_config(), store=async_redis_store(prefix), node_id="n2", close_store=True)
        await a.astart()  # alone: the whole ceiling
        assert a.policies["fleet"].share == 6
        await b.astart()  # joins under a's share: target 3, but a holds a share of 6 -> 0
        assert b.policies["fleet"].share == 0
        await a.policies["fleet"].beat()
        await b.policies["fleet"].beat()
        assert (a.policies["fleet"].share, b.policies["fleet"].share) == (3, 3)
        held_a, held_b = await _admits(a), await _admits(b)
        assert (len(held_a), len(held_b)) == (3, 3)
        denied = await a.admit("fleet", "k")
        assert (denied.decision.allowed, denied.decision.limit, denied.binding_axis) == (
            False,
            3,
            "concurrency",
        )
        for adm in held_b:
            b.release(adm.lease_id)
        await b.aclose()  # stops beating and leaves: n2's share is free now, not after its lease lapses
        await a.policies["fleet"].beat()
        assert a.policies["fleet"].share == 6 and a.policies["fleet"].nodes == 1
        assert len(await _admits(a)) == 3  # 3 more beside the 3 held
        await a.aclose()

    asyncio.run(run())


def test_demand_proportional_gives_an_idle_servers_share_to_a_busy_one() -> None:
    """allocation: demand-proportional (spec 9.4 step 4), beats driven by the test, ceiling 6."""

    async def run() -> None:
        prefix = unique_prefix("tkdc")
        cfg = _config(allocation="demand-proportional")
        a = RateLimiterService(cfg, store=async_redis_store(prefix), node_id="n1", close_store=True)
        b = RateLimiterService(cfg, store=async_redis_store(prefix), node_id="n2", close_store=True)
        pa, pb = a.policies["fleet"], b.policies["fleet"]
        await a.astart()  # alone and hungry (0 in flight, share 0): 6
        await b.astart()  # a is satisfied (0 < 6): spare 6 - 1 = 5, but a holds a share of 6 -> 0
        assert (pa.share, pb.share) == (6, 0)
        await pa.beat()  # idle a is satisfied: inflight + 1 = 1
        await pb.beat()  # spare 6 - 1 = 5, capped by a's max(1, 0): 5 (equal split: 3)
        assert (pa.share, pb.share) == (1, 5)
        held_b, held_a = await _admits(b), await _admits(a)
        assert (len(held_b), len(held_a)) == (5, 1)
        denied = await b.admit("fleet", "k")
        assert (denied.decision.allowed, denied.decision.limit) == (False, 5)
        # both busy (inflight = share: hungry): a's target is floor(6/2) = 3, capped by b's 5 held -> 1
        await pa.beat()
        assert pa.share == 1
        for adm in held_b[:2]:
            b.release(adm.lease_id)
        await pb.beat()  # b is satisfied (3 < 5): 3 + 1 = 4
        await pa.beat()  # b satisfied: spare 6 - 4 = 2 for the one hungry node, cap 6 - max(4, 3) = 2
        assert (pa.share, pb.share) == (2, 4)
        held_a += await _admits(a)
        assert len(held_a) == 2  # one more beside the one held
        for adm in held_a:
            a.release(adm.lease_id)
        for adm in held_b[2:]:
            b.release(adm.lease_id)
        await a.aclose()
        await b.aclose()

    asyncio.run(run())


def test_a_node_id_held_by_a_live_server_is_a_collision(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        prefix = unique_prefix("tkdc")
        a = RateLimiterService(_config(), store=async_redis_store(prefix), node_id="same", close_store=True)
        b = RateLimiterService(_config(), store=async_redis_store(prefix), node_id="same", close_store=True)
        await a.astart()
        with caplog.at_level(logging.ERROR, logger="throttlekit.server"):
            await b.astart()
        assert b.policies["fleet"].collision and b.policies["fleet"].cap == 0
        assert not (await b.admit("fleet", "k")).decision.allowed
        assert "node id 'same' is held by another live server" in caplog.text
        assert a.policies["fleet"].share == 6 and len(await _admits(a)) == 6  # the first holder is unharmed
        await b.aclose()  # leaving with the wrong instance token removes nothing
        await a.policies["fleet"].beat()
        assert a.policies["fleet"].nodes == 1 and not a.policies["fleet"].collision
        await a.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(("outage", "admitted"), [("fail-closed", 0), ("local-only", 6)])
def test_coordinator_outage_policy(outage: str, admitted: int) -> None:
    own = OwnRedis()
    own.start()
    try:

        async def run() -> None:
            from throttlekit.server import redis_store

            s = RateLimiterService(
                _config(outage=outage), store=redis_store(own.url), node_id="n", close_store=True
            )
            await s.astart()
            assert s.policies["fleet"].share == 6
            own.stop()
            await s.policies["fleet"].beat()  # fails: share 0 (fail-closed) or the local limit
            assert len(await _admits(s)) == admitted
            await s.aclose()

        asyncio.run(run())
    finally:
        own.stop()


def test_self_fence_when_the_coordinator_lease_is_about_to_lapse() -> None:
    async def run() -> None:
        clock = tk.ManualClock(1_000_000)
        block = {"minLimit": 4, "maxLimit": 4, "heartbeatMs": 1000}
        cfg = load_config(json.dumps({"limiters": {"fleet": {"distributedConcurrency": block}}}))
        s = RateLimiterService(cfg, store=async_redis_store(), node_id="n", clock=clock, close_store=True)
        await s.astart()  # beat at t: coordinator lease 2000 ms, margin (2000 - 1000) / 2 = 500
        rt = s.policies["fleet"]
        assert rt.fence_at == 1_000_000 + 2000 - 500
        clock.set(1_001_499)
        held = await _admits(s, 1)
        assert len(held) == 1
        clock.set(1_001_500)  # no successful beat since: fenced, nothing admitted
        d = await s.admit("fleet", "k")
        assert (d.decision.allowed, d.binding_axis) == (False, "concurrency")
        await rt.beat()  # a successful beat un-fences
        assert len(await _admits(s, 1)) == 1
        await s.aclose()

    asyncio.run(run())


def test_the_server_reports_under_its_node_id_and_leaves_on_sigterm(tmp_path: Any) -> None:
    import redis as redis_lib

    from tests._support.env import REAL_REDIS, REDIS_URL
    from tests._support.server import launch, wait_listening

    if REAL_REDIS is None:
        pytest.skip(f"needs a real Redis at {REDIS_URL}")
    prefix = unique_prefix("tkdc")
    cfg = tmp_path / "p.yaml"
    cfg.write_text("limiters:\n  fleet: { distributedConcurrency: { minLimit: 4, maxLimit: 4 } }\n")
    proc = launch("-c", str(cfg), "-p", "0", "--redis", REDIS_URL, "--redis-prefix", prefix,
                  "--drain-grace", "0", env={"TK_NODE_ID": "node-from-env"})  # fmt: skip
    try:
        wait_listening(proc)
        r = redis_lib.Redis.from_url(REDIS_URL)
        key = f"{prefix}:tk:fedconc:fleet"
        fields = r.hgetall(key)
        assert list(fields) == [b"node-from-env"]
        l_local, inflight, _expires, share = fields[b"node-from-env"].split()
        assert (l_local, inflight, share) == (b"4", b"0", b"4")
        proc.terminate()
        proc.wait(20)
        assert r.hgetall(key) == {}  # left on shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=20)


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "x" * 257])
def test_bad_node_ids_are_refused(bad: str) -> None:
    from throttlekit.concurrency import Coordinator

    with pytest.raises(tk.ConfigError, match="nodeId"):
        Coordinator(tk.MemoryStore(), "k", bad)
