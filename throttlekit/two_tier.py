"""Two-tier limiting: an in-process tier (L1) in front of a shared store (L2), trading exactness for
round trips (``docs/server.md``, "Two-tier leasing").

Modes:

* ``strict``: every check runs the strategy on L2 (exactly a plain limiter).
* ``cached-deny``: an L2 denial is cached per key until its retry time; meanwhile checks are denied
  locally (``deny_cache_lookup``/``deny_cache_put``), so a hot denied key costs no round trip.
* ``leased``: each key leases ``batch`` units from L2 at once (one L2 check of cost ``batch``) and
  spends them locally (``lease_spend``/``lease_grant``, the transforms behind :class:`LeaseSpender`).
  At most one on-demand lease per key is in flight; concurrent checks queue (first come, first served)
  and spend what it brought, leasing again only when it is gone. An L2 denial is
  returned verbatim. ``window_coupled`` discards local credits once L2's window has ended (the
  per-window total then stays <= the limit for any number of instances); without it a window can admit
  up to ``limit + N x (batch - 1)`` with N instances. ``low_water > 0`` leases ahead of need, in the
  background, when a spend leaves at most that many credits.

Every decision, local or not, is computed by a Lua transform; this module routes, coalesces and caches
the grants it was given. The L1 state lives in a private :class:`MemoryStore` bounded by ``max_keys``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from . import _validate as v
from ._clock import Clock, SystemClock
from ._errors import NotSupportedError, StoreError, loggable
from ._loader import DECISION_REPLY, load_manifest, reply_fields, reply_index
from ._types import Decision, make_decision
from .limiter import AsyncLimiter, _key
from .stores import MemoryStore, ScriptStore, resolve_async
from .strategies import Strategy

__all__ = ["MODES", "DenyCache", "LocalLeases", "TwoTierLimiter"]

log = logging.getLogger("throttlekit.two_tier")

Mode = Literal["strict", "cached-deny", "leased"]
MODES: tuple[str, ...] = ("strict", "cached-deny", "leased")


class DenyCache:
    """The cached-deny L1: per key, an L2 denial answered locally until ``now + retry_after_ms``."""

    def __init__(self, store: ScriptStore, prefix: str = "") -> None:
        self.store = store
        self.prefix = prefix

    def lookup(self, key: str, now_ms: float) -> Decision | None:
        """The local denial while a cached one holds (retry counts down to its instant), else None."""
        r = self.store.eval("deny_cache_lookup", (self.prefix + key,), now_ms, ())
        hit, allowed, limit, remaining, reset_at, retry = reply_fields(
            "deny_cache_lookup", "hit", *DECISION_REPLY
        )(r)
        if hit != 1:
            return None
        return make_decision(allowed == 1, limit, remaining, reset_at, retry)

    def put(self, key: str, now_ms: float, denial: Decision) -> int:
        """Cache ``denial`` (decided at ``now_ms``); returns the instant it stops answering."""
        r = self.store.eval(
            "deny_cache_put",
            (self.prefix + key,),
            now_ms,
            (denial.limit, denial.reset_at, denial.retry_after_ms),
        )
        return int(reply_fields("deny_cache_put", "until")(r))

    def forget(self, key: str) -> None:
        self.store.delete(self.prefix + key)


class LocalLeases:
    """The leased L1: per key, credits granted by L2 and spent locally (never a local denial).

    ``spend`` returns ``(allow, refill)``: the synthesized allow (None when the credits cannot cover
    the cost: lease more) and whether a proactive refill is due (credits at or below ``low_water``).
    ``grant`` adds a grant and its window end; with ``drop_if_ended`` a grant whose window has already
    ended by ``now_ms`` is dropped entirely and ``grant`` returns False.
    """

    def __init__(
        self,
        store: ScriptStore,
        limit: float,
        ttl_ms: float,
        *,
        window_coupled: bool,
        low_water: float = 0,
        prefix: str = "",
        runner: Callable[..., Sequence[Any]] | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self._args = (limit, ttl_ms, 1 if window_coupled else 0)
        self._low = low_water
        # ``runner``: the memory store's raw ``lease_spend`` runner (``MemoryStore.engine.runner``), given by
        # the owner of an in-process L1; any other store goes through ``eval``
        # ``r`` below is the runner's ``(is_array, *items)``: each reply field one position on
        fields = reply_index(load_manifest()["lease_spend"], ("needs_refresh", *DECISION_REPLY, "refill"))
        self._read = itemgetter(*(i + 1 for i in fields))
        self._fast = runner is not None
        if runner is not None:
            self._spend_run = runner

    def spend(self, key: str, now_ms: float, cost: float, discard: bool) -> tuple[Decision | None, bool]:
        limit, ttl, wc = self._args
        k = self.prefix + key
        if self._fast:
            r: Sequence[Any] = self._spend_run(
                now_ms, k, now_ms, cost, limit, ttl, wc, int(discard), self._low
            )
        else:
            r = (
                True,
                *self.store.eval(
                    "lease_spend", (k,), now_ms, (cost, limit, ttl, wc, int(discard), self._low)
                ),
            )
        refresh, allowed, limit, remaining, reset_at, retry, refill = self._read(r)
        if refresh == 1:
            return None, False
        return make_decision(allowed == 1, limit, remaining, reset_at, retry), refill == 1

    def grant(
        self, key: str, now_ms: float, capacity: float, expires_at: float, *, drop_if_ended: bool = False
    ) -> bool:
        r = self.store.eval(
            "lease_grant", (self.prefix + key,), now_ms, (capacity, expires_at, 1 if drop_if_ended else 0)
        )
        return bool(reply_fields("lease_grant", "applied")(r) == 1)

    def forget(self, key: str) -> None:
        self.store.delete(self.prefix + key)


@dataclass
class _Entry:
    """Per-key routing state (never a count): when it was last used and the leases in flight."""

    last_use: float
    lock: asyncio.Lock | None = None  # held while a lease is in flight; created on first need
    refilling: bool = False
    leases: int = 0  # leases completed (or failed); queued checks compare it to see one went by
    error: StoreError | None = None  # the last lease's failure, for the checks queued behind it

    def busy(self) -> bool:
        return self.refilling or (self.lock is not None and self.lock.locked())


def lease_options(
    mode: Any,
    batch: Any,
    low_water: Any,
    window_coupled: Any,
    return_idle_after_ms: Any,
    limit: float,
) -> tuple[Mode, int, int, bool, float | None]:
    """``(mode, batch, low_water, window_coupled, return_idle_after_ms)`` checked against the strategy's
    ``limit``, or a :class:`ConfigError` listing every bad field (the config kind calls this too)."""
    c = v.Checks("twoTier")
    m = c(v.choice, "mode", mode, MODES)
    b, low = 1, 0
    if m == "leased":
        if batch is None:
            c.error("batch", "is required for mode leased (units leased from the shared store per call)",
                    allowed="an integer >= 1")  # fmt: skip
        else:
            b = c(v.integer, "batch", batch, 1, v.MAX_SAFE_INTEGER) or 0
            if b > limit:
                c.error(
                    "batch",
                    f"exceeds the policy's limit ({limit:g}): every lease would be refused "
                    "(a lease is one all-or-nothing check of `batch` units)",
                    b,
                    f"an integer from 1 to {limit:g}",
                )
        low = c(v.integer, "lowWater", low_water, 0, v.MAX_SAFE_INTEGER, " (0 = no proactive refill)") or 0
        if b and low >= b:
            c.error("lowWater", f"must be below batch ({b}): a refill would start on every spend", low)
    idle = None
    if return_idle_after_ms is not None:
        idle = c(v.duration, "returnIdleAfterMs", return_idle_after_ms, strings=False)
    if not isinstance(window_coupled, bool):
        c.error("windowCoupled", "must be true or false", window_coupled, "true, false")
    c.done()
    return m, b, low, window_coupled, idle  # type: ignore[return-value]


class TwoTierLimiter:
    """An asyncio rate limiter with an in-process tier in front of a shared store.

    ``TwoTierLimiter(tk.FixedWindow(1000, "1m"), store="redis://...", mode="leased", batch=50,
    window_coupled=True)``. ``store`` is L2 (a URL, a store object, or None for a private memory store);
    ``mode`` is ``"strict"``, ``"cached-deny"`` or ``"leased"`` (default); ``batch`` (leased, required) is
    the units leased per L2 call; ``low_water`` (leased, default 0 = off) leases ahead in the background
    once a spend leaves that many credits or fewer; ``window_coupled`` (default False, as upstream)
    discards credits at L2's window end; ``return_idle_after_ms`` forgets keys idle that long (a
    background task, every that many ms); ``max_keys`` bounds the L1 key table (oldest evicted first).
    ``clock`` fixes time for both tiers (tests); by default L1 reads the system clock and L2 the store's.

    ``check``/``check_many`` are coroutines; ``peek`` and ``forecast`` raise :class:`NotSupportedError`
    (two-tier limiters are consume-only). An L2 failure raises :class:`StoreError`, as a plain limiter's.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        store: Any = None,
        mode: Mode = "leased",
        batch: int | None = None,
        low_water: int = 0,
        window_coupled: bool = False,
        return_idle_after_ms: float | None = None,
        max_keys: int = 100_000,
        prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        mode, batch, low_water, window_coupled, return_idle_after_ms = lease_options(
            mode, batch, low_water, window_coupled, return_idle_after_ms, strategy.limit_value
        )
        self.strategy = strategy
        self.mode: Mode = mode
        self.batch = batch
        self.low_water = low_water
        self.window_coupled = window_coupled
        self.return_idle_after_ms = return_idle_after_ms
        self.max_keys = max_keys
        self.clock: Clock = clock or SystemClock()
        store, self._owns_l2 = resolve_async(store, clock)
        self.l2 = AsyncLimiter(strategy, store=store, prefix=prefix, clock=clock)
        self.l1 = MemoryStore(clock=self.clock, max_keys=max_keys)
        self._deny = DenyCache(self.l1)
        self._leases = LocalLeases(
            self.l1,
            strategy.limit_value,
            strategy.ttl_ms,
            runner=self.l1.engine.runner("lease_spend"),
            window_coupled=window_coupled,
            low_water=self.low_water,
        )
        self._entries: dict[str, _Entry] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._idle_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- checks -------------------------------------------------------------------------------------
    async def check(self, key: str, cost: float = 1) -> Decision:
        """Consume ``cost`` units for ``key``; see the class docstring for what each mode does."""
        v.cost(cost)
        _key(key)
        if self.mode == "strict":
            return await self.l2.check(key, cost)
        now = self.clock.now_ms()
        if self.mode == "cached-deny":
            local = self._deny.lookup(key, now)
            if local is not None:
                return local
            d = await self.l2.check(key, cost)
            if not d.allowed:
                self._deny.put(key, now, d)
            return d
        return await self._leased(key, now, cost)

    async def _leased(self, key: str, now: float, cost: float) -> Decision:
        entry = self._entry(key, now)
        d, refill = self._leases.spend(key, now, cost, True)  # the window-coupled discard, once
        if d is None:
            # Short: queue (FIFO) behind the lease in flight, spend what it brought, else lease. A lease
            # and its holder's spend run in one task with no await between them, so nobody takes the
            # credits in between, and a cancelled caller cannot lose a grant that L2 already counted.
            lock = entry.lock or self._lock(entry)
            seen = entry.leases
            async with lock:
                d, refill = self._leases.spend(key, now, cost, False)
                if d is None:
                    if entry.leases != seen and entry.error is not None:
                        raise entry.error  # the lease we queued behind failed: fail fast, no pile-up
                    entry.error = None
                    task = asyncio.ensure_future(self._lease_and_spend(key, now, cost))
                    try:
                        granted, d, refill = await asyncio.shield(task)
                    except StoreError as exc:
                        entry.error = exc
                        raise
                    finally:
                        entry.leases += 1
                    if d is None:
                        return granted  # L2's denial, verbatim (its remaining and retry are the lease's)
        if refill:
            self._refill(key, entry)
        return d

    @staticmethod
    def _lock(entry: _Entry) -> asyncio.Lock:
        entry.lock = asyncio.Lock()
        return entry.lock

    async def _lease_and_spend(
        self, key: str, now: float, cost: float
    ) -> tuple[Decision, Decision | None, bool]:
        granted = await self._grant(key, max(self.batch, cost), False)
        return (granted, *self._leases.spend(key, now, cost, False))

    def _entry(self, key: str, now: float) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            if self._idle_task is None and self.return_idle_after_ms is not None:
                self._idle_task = asyncio.get_running_loop().create_task(self._idle_loop())
            if len(self._entries) >= self.max_keys:
                self._evict()
            entry = self._entries[key] = _Entry(now)
        else:
            entry.last_use = now
        return entry

    def _evict(self) -> None:
        """Forget the oldest key with no lease in flight (its credits go with it)."""
        for k, e in self._entries.items():
            if not e.busy():
                del self._entries[k]
                self._leases.forget(k)
                return

    async def _grant(self, key: str, amount: float, proactive: bool) -> Decision:
        """One L2 check of ``amount``; its grant (or, on a denial, its window end) lands in L1."""
        d = await self.l2.check(key, amount)
        self._leases.grant(
            key,
            self.clock.now_ms(),
            amount if d.allowed else 0,
            d.reset_at,
            drop_if_ended=proactive and self.window_coupled,
        )
        return d

    def _refill(self, key: str, entry: _Entry) -> None:
        """Fire-and-forget lease of ``batch`` (errors are logged and swallowed)."""
        if entry.busy():
            return
        entry.refilling = True

        async def run() -> None:
            try:
                await self._grant(key, self.batch, True)
            except Exception as exc:
                # never the key itself: client keys stay out of the logs
                log.warning("two-tier proactive refill (prefix %r) failed: %s", self.l2.prefix, loggable(exc))
            finally:
                entry.refilling = False

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def check_many(self, keys: Sequence[str], cost: float = 1) -> list[Decision]:
        """Concurrent :meth:`check` per key; decisions in input order."""
        v.cost(cost)
        return list(await asyncio.gather(*(self.check(k, cost) for k in keys)))

    async def peek(self, key: str) -> Decision:
        raise NotSupportedError("two-tier limiters are consume-only: peek is not supported")

    async def forecast(self, key: str, cost: float = 1) -> Any:
        raise NotSupportedError("two-tier limiters are consume-only: forecast is not supported")

    # -- housekeeping -------------------------------------------------------------------------------
    def forget_idle(self, now_ms: float | None = None) -> int:
        """Forget keys unused for longer than ``return_idle_after_ms`` (their local credits and cached
        denials); returns how many. The idle task calls this every ``return_idle_after_ms``."""
        if self.return_idle_after_ms is None:
            return 0
        now = self.clock.now_ms() if now_ms is None else now_ms
        idle = [
            k
            for k, e in self._entries.items()
            if now - e.last_use > self.return_idle_after_ms and not e.busy()
        ]
        for k in idle:
            del self._entries[k]
            self._leases.forget(k)
        return len(idle)

    async def _idle_loop(self) -> None:
        assert self.return_idle_after_ms is not None
        while True:
            await asyncio.sleep(self.return_idle_after_ms / 1000)
            try:
                self.forget_idle()
            except Exception as exc:  # never let housekeeping die silently
                log.warning("two-tier idle sweep failed: %s", exc)

    def credits(self, key: str) -> float:
        """Local credits held for ``key`` (for tests and debugging)."""
        raw = self.l1.dump(key)
        if raw is None or raw[0] != "hash":
            return 0
        return float(raw[1].get("c", 0))

    async def reset(self, key: str) -> None:
        """Forget ``key`` locally and reset it on L2."""
        self._entries.pop(_key(key), None)
        self.l1.delete(key)
        await self.l2.reset(key)

    async def aclose(self) -> None:
        """Stop the background tasks, drop L1, and close L2 if this limiter opened it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for task in (*self._background, *([self._idle_task] if self._idle_task else [])):
            task.cancel()
        self.l1.close()
        if self._owns_l2:
            await self.l2.store.aclose()

    async def __aenter__(self) -> TwoTierLimiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        extra = f", batch={self.batch}, window_coupled={self.window_coupled}" if self.mode == "leased" else ""
        return f"TwoTierLimiter({self.strategy!r}, mode={self.mode!r}{extra}, l2={self.l2.store!r})"
