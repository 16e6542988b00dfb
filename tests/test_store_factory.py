"""The store factory: one URL means one store (db, prefix, full key) on every entry point.

Each entry point (sync ``Limiter``, ``AsyncLimiter``, ``TwoTierLimiter``, the server's
``RateLimiterService`` and ``store_from_flags``, ``tk lua verify``'s store builder, the meters) makes one
check on the same URL; a raw client then finds the very same full key in the very same database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from click.testing import CliRunner

import throttlekit as tk
from tests._support.env import REDIS_URL
from throttlekit.stores import open_async, open_sync, store_from_flags
from throttlekit.stores._redisconn import redis_options

_BASE = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL.rstrip("/")


def _real_redis() -> None:
    try:
        redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis_lib.RedisError:
        pytest.skip(f"needs a real Redis at {REDIS_URL}")


STRATEGY = tk.FixedWindow(10, "1h")


def _sync(url: str) -> tuple[Any, str]:
    with tk.Limiter(STRATEGY, store=url, prefix="api") as lim:
        lim.check("k")
        return lim.store, lim._kp + "k"


def _async(url: str) -> tuple[Any, str]:
    async def run() -> tuple[Any, str]:
        lim = tk.AsyncLimiter(STRATEGY, store=url, prefix="api")
        await lim.check("k")
        await lim.aclose()
        return lim.store, lim._kp + "k"

    return asyncio.run(run())


def _two_tier(url: str) -> tuple[Any, str]:
    async def run() -> tuple[Any, str]:
        lim = tk.TwoTierLimiter(STRATEGY, store=url, prefix="api", mode="strict")
        await lim.check("k")
        await lim.aclose()
        return lim.l2.store, lim.l2._kp + "k"

    return asyncio.run(run())


def _server(url: str) -> tuple[Any, str]:
    from throttlekit.server import create_rate_limiter_service_from_config

    async def run() -> tuple[Any, str]:
        svc = create_rate_limiter_service_from_config(
            "version: 1\nlimiters:\n  api: { strategy: fixedWindow, limit: 10, period: 1h }\n", store=url
        )
        await svc.check("api", "k")
        await svc.aclose()
        return svc.store, tk.stores.join_prefix(svc.store.prefix, "api") + "k"

    return asyncio.run(run())


def _server_flags(url: str) -> tuple[Any, str]:
    async def run() -> tuple[Any, str]:
        store = store_from_flags("redis", redis_url=url)
        lim = tk.AsyncLimiter(STRATEGY, store=store, prefix="api")
        await lim.check("k")
        await store.aclose()
        return store, lim._kp + "k"

    return asyncio.run(run())


def _verify(url: str) -> tuple[Any, str]:
    from throttlekit.cli.lua import VERIFY_STORES

    store = VERIFY_STORES["redis"]({"redis_url": url})(tk.ManualClock(0))
    lim = tk.Limiter(STRATEGY, store=store, prefix="api")
    lim.check("k")
    store.close()
    return store, lim._kp + "k"


def _meter(url: str) -> tuple[Any, str]:
    meter = tk.TokenBudget(10, "1h", store=url, prefix="api")
    meter.debit("k")
    meter.close()
    return meter.store, meter._kp + "k"


ENTRY_POINTS: dict[str, Callable[[str], tuple[Any, str]]] = {
    "sync Limiter": _sync,
    "AsyncLimiter": _async,
    "TwoTierLimiter": _two_tier,
    "server RateLimiterService": _server,
    "server store_from_flags": _server_flags,
    "tk lua verify": _verify,
    "TokenBudget": _meter,
}

URLS = [
    ("{base}/5?prefix={p}", 5, "{p}"),
    ("{base}/3", 3, ""),
    ("{base}?db=4&prefix={p}", 4, "{p}"),
    ("{base}/0?prefix={p}&socket_timeout=2&socket_connect_timeout=0.5", 0, "{p}"),
]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(("template", "db", "prefix"), URLS)
def test_one_url_one_key_on_every_entry_point(entry: str, template: str, db: int, prefix: str) -> None:
    _real_redis()
    p = f"tkf-{uuid.uuid4().hex[:8]}"
    url = template.format(base=_BASE, p=p)
    store, full = ENTRY_POINTS[entry](url)
    expected_prefix = prefix.format(p=p)
    assert store.prefix == expected_prefix
    assert store.options.db == db
    assert full == tk.stores.join_prefix(expected_prefix, "api") + "k"
    raw = redis_lib.Redis.from_url(f"{_BASE}/{db}")
    try:
        assert raw.exists(full) == 1, f"{entry}: {full!r} not in db {db}"
    finally:
        raw.delete(full)
        raw.close()


def test_sync_and_async_on_one_url_meter_one_counter() -> None:
    """The issue's scenario: three sync checks and one async check on one URL leave 6 of 10."""
    _real_redis()
    url = f"{_BASE}/5?prefix=tkf-{uuid.uuid4().hex[:8]}"
    sync = tk.Limiter(tk.FixedWindow(10, "1h"), store=url, prefix="api")
    for _ in range(3):
        sync.check("k")

    async def once() -> tk.Decision:
        async with tk.AsyncLimiter(tk.FixedWindow(10, "1h"), store=url, prefix="api") as lim:
            return await lim.check("k")

    assert asyncio.run(once()).remaining == 6
    sync.reset("k")
    sync.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h/0?bogus=1", "unknown option 'bogus'; allowed: db, prefix, socket_connect_timeout"),
        ("redis://h/0?socket_timeout=-1", "socket_timeout must be a positive number of seconds"),
        ("redis://h/abc", "the database must be a number, got 'abc'"),
        ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of none, optional, required"),
        ("memory://?size=1", "unknown option 'size'; allowed: max_keys, prefix, runtime"),
        ("mongo://x", "unknown store URL 'mongo://x'"),
    ],
)
def test_bad_urls_are_config_errors_on_every_entry_point(url: str, message: str) -> None:
    builds: list[Callable[[], Any]] = [
        lambda: tk.from_url(url),
        lambda: tk.stores.from_url_async(url),
        lambda: tk.Limiter(STRATEGY, store=url),
        lambda: tk.AsyncLimiter(STRATEGY, store=url),
        lambda: tk.TwoTierLimiter(STRATEGY, store=url, mode="strict"),
        lambda: tk.TokenBudget(10, "1h", store=url),
    ]
    if url.startswith("redis"):
        builds.append(lambda: store_from_flags("redis", redis_url=url))
    for build in builds:
        with pytest.raises(tk.ConfigError, match=message.replace("(", r"\(")):
            build()


def test_keyword_options_win_over_the_query_and_are_checked() -> None:
    o = redis_options("redis://u:pw@h:7000/2?prefix=a&socket_timeout=3", prefix="b", socket_timeout=0.25)
    assert (o.host, o.port, o.db, o.username, o.password, o.prefix, o.timeout) == (
        "h",
        7000,
        2,
        "u",
        "pw",
        "b",
        0.25,
    )
    assert "pw" not in repr(o)
    with pytest.raises(tk.ConfigError, match="unknown option 'decode_responses'"):
        open_sync("redis://h/0", decode_responses=True)
    s = open_async("unix:///tmp/r.sock?db=3&prefix=x")
    assert s.options.path == "/tmp/r.sock" and s.options.db == 3 and s.prefix == "x"
    assert isinstance(tk.stores.from_url_async("redis://h/1"), tk.stores.PipelinedRedisStore)
    assert isinstance(tk.from_url("redis://h/1"), tk.RedisStore)


def _serve(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[str, Any]:
    """Run ``throttlekit-server`` up to the store choice: the service is built, then the run is stopped."""
    from throttlekit.cli import serve as serve_mod

    cfg = tmp_path / "p.yaml"
    cfg.write_text("version: 1\nlimiters:\n  a: { strategy: gcra, limit: 1, period: 1s }\n")
    seen: dict[str, Any] = {}

    async def fake_run(service: Any, host: str, port: int, credentials: Any, tag: str, *rest: Any) -> None:
        seen["tag"], seen["store"] = tag, service.store
        await service.aclose()

    original = serve_mod._run
    serve_mod._run = fake_run  # type: ignore[assignment]
    try:
        res = CliRunner().invoke(serve_mod.serve, ["-c", str(cfg), "-p", "0", *args], env=env)
    finally:
        serve_mod._run = original  # type: ignore[assignment]
    return res.output + str(res.exception or ""), seen


ENV = {
    "THROTTLEKIT_REDIS_URL": "redis://127.0.0.1:1/7",
    "THROTTLEKIT_POSTGRES_URL": "postgresql://x@127.0.0.1:1/db",
}


@pytest.mark.parametrize(
    "env",
    [
        ENV,
        {"THROTTLEKIT_REDIS_URL": ENV["THROTTLEKIT_REDIS_URL"]},
        {"THROTTLEKIT_POSTGRES_URL": ENV["THROTTLEKIT_POSTGRES_URL"]},
    ],
    ids=["both", "redis", "postgres"],
)
def test_environment_never_chooses_the_store(tmp_path: Path, env: dict[str, str]) -> None:
    out, seen = _serve(tmp_path, env)
    assert seen.get("tag", "").startswith("memory,"), out
    assert isinstance(seen["store"], tk.MemoryStore)


def test_environment_supplies_the_url_once_store_is_chosen(tmp_path: Path) -> None:
    out, seen = _serve(tmp_path, ENV, "--store", "redis")
    assert seen.get("tag", "").startswith("redis,"), out
    assert seen["store"].options.port == 1 and seen["store"].options.db == 7


def test_store_redis_without_any_url_is_a_usage_error(tmp_path: Path) -> None:
    out, seen = _serve(tmp_path, {}, "--store", "redis")
    assert "--store redis requires --redis <url>" in out and not seen


def test_help_says_the_environment_only_supplies_values() -> None:
    from throttlekit.cli.serve import serve

    out = " ".join(CliRunner().invoke(serve, ["--help"]).output.split())
    assert "environment variables never choose it" in out
    assert "THROTTLEKIT_REDIS_URL" in out and "THROTTLEKIT_POSTGRES_URL" in out
