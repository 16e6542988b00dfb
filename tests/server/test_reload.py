"""Safe config rollout: a reload validates everything and swaps atomically (a client checking throughout
loses no request and never sees half of a config), a bad file or a layout clash keeps the current
policies and says why, counters survive where the state layout is unchanged, SIGHUP and --watch-config
reload a running server, and ``shadow: true`` decides and counts but always answers allowed."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

import throttlekit as tk
from tests._support.server import config_text, launch, pb, wait_listening
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
from throttlekit.config import PolicyConfigError, load_config
from throttlekit.server import RateLimiterService, serve

NOW = 1_700_000_020_000


def _config(policies: dict[str, Any]) -> Any:
    return load_config(config_text(policies))


def test_reload_keeps_counters_where_the_layout_is_unchanged_and_refuses_a_clash() -> None:
    clock = tk.ManualClock(NOW)
    svc = RateLimiterService(
        _config(
            {
                "api": {"strategy": "fixedWindow", "limit": 5, "period": "1h"},
                "tt": {"strategy": "gcra", "limit": 10, "period": "1h", "twoTier": {"batch": 5}},
                "gone": {"strategy": "gcra", "limit": 1, "period": "1h"},
            }
        ),
        store=tk.MemoryStore(clock=clock),
        clock=clock,
    )

    async def go() -> None:
        for _ in range(3):
            await svc.check("api", "k")
        await svc.check("tt", "k")
        tt = svc.policies["tt"]
        report = svc.reload(
            _config(
                {
                    "api": {"strategy": "fixedWindow", "limit": 4, "period": "1h"},  # new limit, same layout
                    "tt": {"strategy": "gcra", "limit": 10, "period": "1h", "twoTier": {"batch": 5}},
                    "new": {"strategy": "tokenBucket", "capacity": 1, "refillPerSec": 1},
                }
            )
        )
        assert (report.added, report.removed, report.changed, report.kept) == (
            ("new",),
            ("gone",),
            ("api",),
            ("tt",),
        )
        assert svc.policies["tt"] is tt  # unchanged: runtime (and its L1 credits) kept
        d = await svc.check("api", "k")
        assert (d.allowed, d.limit, d.remaining) == (True, 4, 0)  # 3 spent before the reload still count
        assert svc.names == ("api", "tt", "new")
        with pytest.raises(tk.ConfigError, match="'api' would keep gcra state under store-key prefix 'api'"):
            svc.reload(_config({"api": {"strategy": "gcra", "limit": 4, "period": "1h"}}))
        assert svc.names == ("api", "tt", "new") and svc.reloads == {"ok": 1, "error": 1}
        # a new prefix makes the change safe
        svc.reload(_config({"api": {"strategy": "gcra", "limit": 4, "period": "1h", "prefix": "api2"}}))
        assert (await svc.check("api", "k")).remaining == 3
        for rt in report.retired:
            await rt.aclose()
        await svc.aclose()

    asyncio.run(go())


def test_a_reload_under_load_loses_no_request_and_never_mixes_configs() -> None:
    def policies(limit: int) -> dict[str, Any]:
        return {n: {"strategy": "fixedWindow", "limit": limit, "period": "1h"} for n in ("a", "b")}

    service = RateLimiterService(_config(policies(10**9)))
    handle = serve(service, "127.0.0.1", 0)
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client() -> None:
        with grpc.insecure_channel(handle.address) as ch:
            stub = pb_grpc.RateLimiterStub(ch)
            while not stop.is_set():
                try:
                    a = stub.Check(pb.CheckRequest(policy="a", key="k"), timeout=10).decision.limit
                    b = stub.Check(pb.CheckRequest(policy="b", key="k"), timeout=10).decision.limit
                except grpc.RpcError as exc:
                    errors.append(exc)
                    return
                seen.append((a, b))

    t = threading.Thread(target=client)
    t.start()
    try:
        for i in range(1, 21):
            while len(seen) < 5 * i:
                time.sleep(0.005)
            handle.reload(_config(policies(10**9 + i)))
        while len(seen) < 5 * 21:  # a few checks after the last reload (else the client may stop first)
            time.sleep(0.005)
    finally:
        stop.set()
        t.join(30)
        handle.close(grace=1)
    assert not errors
    flat = [x for pair in seen for x in pair]
    assert flat == sorted(flat)  # limits only grow: never the new a and then the old b
    assert flat[0] == 10**9 and flat[-1] == 10**9 + 20


def test_shadow_policies_answer_allowed_and_validate_the_flag() -> None:
    clock = tk.ManualClock(NOW)
    cfg = _config(
        {
            "trial": {"strategy": "fixedWindow", "limit": 1, "period": "1h", "shadow": True},
            "real": {"strategy": "fixedWindow", "limit": 1, "period": "1h", "shadow": False},
        }
    )
    assert cfg.shadow == frozenset({"trial"}) and cfg.describe()[0].endswith("[shadow]")
    svc = RateLimiterService(cfg, store=tk.MemoryStore(clock=clock), clock=clock)
    events: list[Any] = []
    svc.tap.register(events.append)
    trial = [svc.policy("trial").check_reply("k", 1) for _ in range(3)]
    real = [svc.policy("real").check_reply("k", 1) for _ in range(2)]
    assert [r[0] == 1 for r in trial] == [True, True, True] and [r[4] for r in trial] == [0, 0, 0]
    assert [r[0] == 1 for r in real] == [True, False]
    assert [(e.allowed, e.shadow) for e in events[:3]] == [(True, True), (False, True), (False, True)]
    assert events[1].retry_after_ms > 0  # the observer sees the engine's real numbers
    with pytest.raises(PolicyConfigError, match=r"limiters\.x\.shadow: must be true or false"):
        _config({"x": {"strategy": "gcra", "limit": 1, "period": "1s", "shadow": "yes"}})


def _wait_for(pred: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _policies(target: str) -> set[str]:
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.RateLimiterStub(ch)
        found = set()
        for name in ("one", "two"):
            try:
                stub.Peek(pb.PeekRequest(policy=name, key="k"), timeout=10)
                found.add(name)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
        return found


ONE = {"one": {"strategy": "gcra", "limit": 5, "period": "1m"}}
TWO = {**ONE, "two": {"strategy": "gcra", "limit": 5, "period": "1m"}}


def test_sighup_reloads_and_a_bad_file_keeps_the_old_policies(tmp_path: Path, processes: list[Any]) -> None:
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"limiters": ONE}))
    proc = launch("--config", str(cfg), "--port", "0", "--metrics-port", "0")
    processes.append(proc)
    target = wait_listening(proc)
    assert _policies(target) == {"one"}
    cfg.write_text(json.dumps({"limiters": TWO}))
    proc.send_signal(signal.SIGHUP)
    _wait_for(lambda: _policies(target) == {"one", "two"})
    cfg.write_text("limiters:\n  two: { strategy: gcra, limit: -1, period: 1m }\n")
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert _policies(target) == {"one", "two"}
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "config reloaded from" in err and "added: two" in err
    assert "failed; still serving the 2 current policies" in err and "limiters.two.limit" in err


def test_watch_config_reloads_on_change(tmp_path: Path, processes: list[Any]) -> None:
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"limiters": ONE}))
    proc = launch("--config", str(cfg), "--port", "0", "--watch-config")
    processes.append(proc)
    target = wait_listening(proc)
    staged = tmp_path / "p.json.new"
    staged.write_text(json.dumps({"limiters": TWO}))
    staged.replace(cfg)  # an atomic rename, as editors and config managers do
    _wait_for(lambda: _policies(target) == {"one", "two"})
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
