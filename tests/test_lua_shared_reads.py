"""Peek and forecast read their check's state through the same lua/lib helper, so they agree with it."""

from __future__ import annotations

from typing import Any

import pytest

import throttlekit as tk
from tests._support.stores import STORES, unique_prefix
from throttlekit._loader import load_manifest

SHARED = {
    "gcra": "lib/gcra_tat.lua",
    "token_bucket": "lib/bucket_tokens.lua",
    "fixed_window": "lib/window_count.lua",
    "quota": "lib/window_count.lua",
    "sliding_window": "lib/ring_estimate.lua",
    "sliding_window_log_peek": "lib/log_live.lua",
}


@pytest.mark.parametrize("check", sorted(SHARED))
def test_check_peek_and_forecast_include_one_state_read(check: str) -> None:
    manifest = load_manifest()
    lib = SHARED[check]
    family = [check, f"{check}_peek", f"{check}_forecast"] if not check.endswith("_peek") else [check]
    if check.endswith("_peek"):
        family.append(check.replace("_peek", "_forecast"))
    for name in family:
        assert lib in manifest[name].includes, name


@pytest.mark.parametrize("store_name", ["memory-luajit", "memory-lua51", "redis"])
def test_a_token_bucket_peek_predicts_the_check_on_partial_state(store_name: str) -> None:
    """A hash with `t` but no `l` (another writer, an old snapshot): the check reads t and takes
    last = now (spec 2.2); the peek used to call such a bucket full. Both now read it the check's way."""
    clock = tk.ManualClock(1_000_000)
    store: Any = STORES[store_name].values[0](clock)
    lim = tk.Limiter(tk.TokenBucket(10, 1), store=store, prefix=unique_prefix(), clock=clock)
    key = lim._kp + "k"
    try:
        if isinstance(store, tk.MemoryStore):
            store.engine.load(clock.now_ms(), key, "hash", {"t": "3"}, None)
        else:
            store.client.hset(key, "t", "3")
        peek = lim.peek("k")
        forecast = lim.forecast("k", 1)
        assert peek.remaining == 3 and forecast.spendable_now == 3
        d = lim.check("k", 1)
        assert d.allowed and d.remaining == 2  # the peek's 3, minus one
    finally:
        lim.reset("k")
        store.close()
