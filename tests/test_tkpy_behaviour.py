"""The pure parts of throttlekit-py 0.5.1 behave the same here: one script, written against its public API
only, runs under its interpreter and under ours, and every result must match (headers, strategies from
specs and keywords, the lease spender's spends and discards, RateLimited, the decorator, bind_policy)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests._support.env import ROOT
from tests._support.tkpy import run_tkpy

pytestmark = pytest.mark.slow

SCRIPT = r"""
import asyncio, json
from throttlekit import (Decision, FixedWindow, Gcra, LeaseGrant, LeaseSpender, RateLimited, SlidingWindow,
    SlidingWindowLog, ThrottleKitError, TokenBucket, bind_policy, decision_headers, from_spec, rate_limit)

NOW = 1_700_000_000_000
out = {}

def row(d):
    return None if d is None else [d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms]

def error(call):
    try:
        call()
    except Exception as exc:
        return isinstance(exc, ValueError)  # ours raise ConfigError, a ValueError (and a ThrottleKitError)
    return "no error"

decisions = [
    Decision(True, 10, 3, NOW + 1500, 0),
    Decision(False, 10, 0, NOW + 60000, 59001),
    Decision(False, 5, -1, NOW - 10, 1),
    Decision(True, 0, 0, 0, 0),
    Decision(True, 7, 7, NOW + 999, 0),
]
out["headers"] = [[decision_headers(d, s, now_ms=NOW) for s in ("ietf", "legacy", "both")] for d in decisions]
out["default_style"] = decision_headers(decisions[1], now_ms=NOW)
out["bad_style"] = error(lambda: decision_headers(decisions[0], "nope"))

specs = [
    ("gcra", {"limit": 100, "periodMs": 60000, "burst": 20}),
    ("tokenBucket", {"capacity": 10, "refillPerSec": 2}),
    ("fixedWindow", {"limit": 5, "windowMs": 1000}),
    ("slidingWindow", {"limit": 5, "windowMs": 1000, "buckets": 4}),
    ("slidingWindowLog", {"limit": 5, "windowMs": 1000}),
]
out["from_spec"] = [[from_spec(k, o).kind, from_spec(k, o).params()] for k, o in specs]
out["bad_kind"] = error(lambda: from_spec("leakyBucket", {}))
out["keywords"] = [
    Gcra(limit=100, period_ms=60000, burst=20).params(),
    Gcra(100, 60000, 20).params(),
    TokenBucket(capacity=10, refill_per_sec=2).params(),
    FixedWindow(limit=5, window_ms=1000).params(),
    SlidingWindow(limit=5, window_ms=1000, buckets=4).params(),
    SlidingWindowLog(limit=5, window_ms=1000).params(),
]
out["equal"] = Gcra(limit=100, period_ms=60000, burst=20) == Gcra(limit=100, period_ms=60000, burst=20)

trace = []
s = LeaseSpender(limit=10, ttl_ms=500)
trace += [s.credits, s.expires_at, row(s.spend(NOW))]
s.apply_lease(LeaseGrant(capacity=3, expires_at=NOW + 1000))
trace += [s.credits, s.expires_at]
trace += [row(s.spend(NOW + i)) for i in range(4)]
s.apply_lease(LeaseGrant(capacity=5, expires_at=NOW + 1000))
trace += [s.credits, row(s.spend(NOW + 1000)), s.credits]  # the window rolled: the rest is discarded
s.apply_lease(LeaseGrant(capacity=4, expires_at=NOW + 2000))
trace += [row(s.spend(NOW + 1500, 3)), row(s.spend(now=NOW + 1501, cost=2)), s.credits]
s.reset()
trace += [s.credits, s.expires_at]
loose = LeaseSpender(limit=4, window_coupled=False)
loose.apply_lease(LeaseGrant(capacity=2, expires_at=NOW))
trace += [row(loose.spend(NOW + 10_000)), loose.credits]
trace.append(error(lambda: s.spend(NOW, 0)))
trace.append(error(lambda: s.spend(NOW, -1)))
out["lease"] = trace

denial = RateLimited(decisions[1])
out["rate_limited"] = [str(denial), denial.retry_after_ms, denial.reset_at, isinstance(denial, ThrottleKitError),
                       row(denial.decision)]

calls = []
def checker(key, *, cost=1):
    calls.append([key, cost])
    return decisions[0] if key.startswith("ok") else decisions[1]

@rate_limit(checker, key=lambda k, **_: k, cost=2)
def handle(k, suffix=""):
    return "ran " + k + suffix

@rate_limit(checker, key=lambda k: k)
async def ahandle(k):
    return "async " + k

results = [handle("ok"), handle("ok-2", suffix="!")]
try:
    handle("no")
except RateLimited as exc:
    results.append(["denied", row(exc.decision)])
results.append(asyncio.run(ahandle("ok-async")))
try:
    asyncio.run(ahandle("no-async"))
except RateLimited as exc:
    results.append(["async denied", exc.retry_after_ms])
out["decorator"] = [results, calls, handle.__name__]

class Backend:
    def __init__(self):
        self.seen = []
    def check(self, policy, key, cost=1):
        self.seen.append([policy, key, cost])
        return decisions[4]

class AsyncBackend(Backend):
    async def check(self, policy, key, cost=1):
        self.seen.append([policy, key, cost])
        return decisions[4]

b, ab = Backend(), AsyncBackend()
sync_checker, async_checker = bind_policy(b, "api"), bind_policy(ab, "llm")
bound = [row(sync_checker("k")), row(sync_checker("k", cost=3)), row(asyncio.run(async_checker("j", cost=2)))]
out["bind_policy"] = [bound, b.seen, ab.seen, asyncio.iscoroutinefunction(async_checker)]
print(json.dumps(out, sort_keys=True))
"""


def test_the_pure_api_behaves_as_throttlekit_py_does() -> None:
    theirs = json.loads(run_tkpy(SCRIPT))
    ours_run = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert ours_run.returncode == 0, ours_run.stderr[-3000:]
    ours = json.loads(ours_run.stdout)
    assert set(ours) == set(theirs)
    for part in sorted(theirs):
        assert ours[part] == theirs[part], part
