"""The in-flight axis: the adaptive concurrency guard, its lease table and the fleet coordinator client.

Each is a thin router over Lua transforms (``conc_acquire``, ``conc_release``, ``conc_heartbeat``,
``conc_leave``); the decisions (admit or not, the limit update, a node's share) are computed in Lua.

* :class:`ConcurrencyGuard` keeps one guard's state (estimate, in flight, the RTT window) under one key
  of a store (by default a private in-process :class:`~throttlekit.MemoryStore`: a guard is per process).
* :class:`LeaseTable` names held slots with lease ids unique across processes and restarts, renews them
  (heartbeat) and hands back those whose deadline passed (the sweep reclaims them as dropped).
* :class:`Coordinator` reports a node's limit and in-flight count to a shared store (Redis, or Postgres
  through the snapshot executor) and reads back its share of the fleet-wide ceiling.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import _validate as v_
from ._clock import SERVER_TIME, Clock, SystemClock
from ._errors import ConfigError, as_script_error
from ._types import Decision, make_decision

__all__ = [
    "ALGORITHMS",
    "ALLOCATIONS",
    "DEFAULT_LEASE_TTL_MS",
    "Admitted",
    "ConcurrencyGuard",
    "ConcurrencyParams",
    "Coordinator",
    "FusedAxes",
    "FusedDecision",
    "Grant",
    "GuardStats",
    "Lease",
    "LeaseTable",
    "Share",
    "combine",
    "concurrency_params",
]

ALGORITHMS = ("gradient2", "aimd")
#: How the fleet coordinator splits L_global (spec 9.4 step 4); the first is the default.
ALLOCATIONS = ("equal-split", "demand-proportional")
#: Default lease TTL: twice the 1 s client heartbeat, so one missed beat is tolerated.
DEFAULT_LEASE_TTL_MS = 2000
#: Largest RTT window (samples): the window's deque is stored with the guard's state.
MAX_RTT_WINDOW = 10_000
#: Longest node id (characters).
MAX_NODE_ID = 256
#: Largest limit a guard may reach.
MAX_LIMIT = 1_000_000_000


@dataclass(frozen=True)
class ConcurrencyParams:
    """Validated guard parameters (spec 9.1 / server 2.5; defaults in :func:`concurrency_params`)."""

    min_limit: int = 4
    max_limit: int = 512
    initial_limit: int = 4
    algorithm: str = "gradient2"
    rtt_window: int = 100
    smoothing: float = 0.2
    tolerance: float = 2.0
    backoff_ratio: float = 0.9
    #: minRTT recalibration (spec 9.2): probe interval (0 = off), probe in-flight cap, pure samples
    recal_interval_ms: int = 0
    probe_limit: int = 0
    probe_samples: int = 0

    @property
    def recalibrating(self) -> bool:
        """True when the minRTT recalibration probe is configured (``recalibration:``)."""
        return self.recal_interval_ms > 0

    @property
    def pinned(self) -> bool:
        """True when ``min_limit == max_limit``: a fixed cap the limit update never moves."""
        return self.min_limit == self.max_limit

    def release_args(self) -> tuple[Any, ...]:
        """``conc_release`` ARGV after ``now_ms``, before ``mode, ticket`` (manifest order)."""
        return (
            self.min_limit,
            self.max_limit,
            self.initial_limit,
            ALGORITHMS.index(self.algorithm),
            self.rtt_window,
            self.smoothing,
            self.tolerance,
            self.backoff_ratio,
            self.recal_interval_ms,
            self.probe_limit,
            self.probe_samples,
        )

    def describe(self) -> str:
        if self.pinned:
            return f"concurrency pinned at {self.min_limit}"
        text = (
            f"concurrency {self.algorithm} {self.min_limit}..{self.max_limit} (initial {self.initial_limit})"
        )
        if self.recalibrating:
            text += (
                f", recalibrating every {self.recal_interval_ms} ms "
                f"(probe {self.probe_limit} in flight, {self.probe_samples} samples)"
            )
        return text


#: ``recalibration:`` defaults (spec 9.2 did not recover them; ours, in docs/concurrency.md): a probe
#: every 30 s, at most ``minLimit`` in flight while it runs, 10 pure samples replace the baseline.
RECAL_INTERVAL_MS = 30_000
RECAL_PROBE_SAMPLES = 10
RECAL_FIELDS = {"intervalMs": "interval_ms", "probeLimit": "probe_limit", "probeSamples": "probe_samples"}
#: Longest recalibration interval (ms): one day.
MAX_RECAL_INTERVAL_MS = 86_400_000


_MISSING: Any = object()


def concurrency_params(
    min_limit: Any = _MISSING,
    max_limit: Any = _MISSING,
    initial_limit: Any = _MISSING,
    algorithm: Any = _MISSING,
    rtt_window: Any = _MISSING,
    smoothing: Any = _MISSING,
    tolerance: Any = _MISSING,
    backoff_ratio: Any = _MISSING,
    recalibration: Any = _MISSING,
) -> ConcurrencyParams:
    """Check every field (all problems at once, as one :class:`~throttlekit.ConfigError`): ``minLimit``
    an integer >= 1 (default 4), ``maxLimit`` an integer >= minLimit (default 512), ``initialLimit`` an
    integer in [minLimit, maxLimit] (default minLimit), ``algorithm`` gradient2 | aimd, ``rttWindow`` an
    integer >= 1 (default 100), ``smoothing`` in (0, 1] (default 0.2), ``tolerance`` >= 1 (default 2.0),
    ``backoffRatio`` in [0.5, 1) (default 0.9), ``recalibration`` (spec 9.2, off by default) a mapping of
    optional ``intervalMs`` (integer 1..86400000, default 30000), ``probeLimit`` (integer in [1,
    maxLimit], default minLimit) and ``probeSamples`` (integer 1..10000, default 10); ``{}`` turns it on
    with every default."""
    c = v_.Checks("concurrency")
    lo = 4 if min_limit is _MISSING else c(v_.integer, "minLimit", min_limit, 1, MAX_LIMIT)
    hi = 512 if max_limit is _MISSING else c(v_.integer, "maxLimit", max_limit, 1, MAX_LIMIT)
    if lo is not None and hi is not None and hi < lo:
        if max_limit is _MISSING:
            c.error("maxLimit", f"defaults to 512, below minLimit {lo}", allowed=f"set maxLimit >= {lo}")
        else:
            c.error("maxLimit", "is below minLimit", max_limit, f"an integer >= minLimit ({lo})")
    init = lo
    if initial_limit is not _MISSING:
        init = c(v_.integer, "initialLimit", initial_limit, 1, MAX_LIMIT)
        if init is not None and lo is not None and hi is not None and not lo <= init <= hi:
            c.error(
                "initialLimit",
                "is outside [minLimit, maxLimit]",
                initial_limit,
                f"an integer from {lo} to {hi}",
            )
    algo = "gradient2" if algorithm is _MISSING else c(v_.choice, "algorithm", algorithm, ALGORITHMS)
    window = 100 if rtt_window is _MISSING else c(v_.integer, "rttWindow", rtt_window, 1, MAX_RTT_WINDOW)
    smooth = 0.2 if smoothing is _MISSING else c(v_.number, "smoothing", smoothing, high=1)
    tol = (
        2.0
        if tolerance is _MISSING
        else c(v_.number, "tolerance", tolerance, low=1, low_open=False, high=1e6)
    )
    backoff: Any = 0.9
    if backoff_ratio is not _MISSING:
        backoff = c(v_.number, "backoffRatio", backoff_ratio, low=0.5, low_open=False, high=1)
        if backoff is not None and backoff >= 1:
            c.error("backoffRatio", "must be below 1", backoff_ratio, "a number >= 0.5 and < 1")
    interval = probe_limit = probe_samples = 0
    if recalibration is not _MISSING:
        if not isinstance(recalibration, Mapping):
            c.error(
                "recalibration",
                "must be a mapping",
                recalibration,
                "{} or a mapping of intervalMs, probeLimit, probeSamples",
            )
        else:
            for k in recalibration:
                if k not in RECAL_FIELDS:
                    c.error(
                        f"recalibration.{k}",
                        "is not a recalibration field",
                        recalibration[k],
                        ", ".join(RECAL_FIELDS),
                    )
            interval = RECAL_INTERVAL_MS
            if "intervalMs" in recalibration:
                interval = (
                    c(
                        v_.integer,
                        "recalibration.intervalMs",
                        recalibration["intervalMs"],
                        1,
                        MAX_RECAL_INTERVAL_MS,
                    )
                    or 0
                )
            probe_limit = lo or 1
            if "probeLimit" in recalibration:
                probe_limit = (
                    c(v_.integer, "recalibration.probeLimit", recalibration["probeLimit"], 1, hi or MAX_LIMIT)
                    or 0
                )
            probe_samples = RECAL_PROBE_SAMPLES
            if "probeSamples" in recalibration:
                probe_samples = (
                    c(
                        v_.integer,
                        "recalibration.probeSamples",
                        recalibration["probeSamples"],
                        1,
                        MAX_RTT_WINDOW,
                    )
                    or 0
                )
    c.done()
    return ConcurrencyParams(
        lo,  # type: ignore[arg-type]
        hi,  # type: ignore[arg-type]
        init,  # type: ignore[arg-type]
        algo,  # type: ignore[arg-type]
        window,  # type: ignore[arg-type]
        smooth,  # type: ignore[arg-type]
        tol,  # type: ignore[arg-type]
        backoff,
        interval,
        probe_limit,
        probe_samples,
    )


class Grant(NamedTuple):
    """One ``conc_acquire`` answer: the concurrency axis's decision (spec 10.2); when allowed, ``slot``
    (in flight after the acquire), ``start_ms`` (the acquire instant, as the transform's clock read it)
    and ``ticket`` (what ``conc_release`` settles the slot by: start, slot, probe id) identify it."""

    decision: Decision
    slot: int
    start_ms: float
    ticket: str = ""


class GuardStats(NamedTuple):
    """A guard after a release: ``limit`` (floor of the estimate), ``inflight``, ``rtt_noload`` (the
    window-minimum RTT), ``last_rtt``."""

    limit: int
    inflight: int
    rtt_noload: float
    last_rtt: float


#: conc_release's ``mode``: the work completed, was dropped, or never ran (the slot returned unused).
COMPLETED, DROPPED, UNUSED = 0, 1, 2
_ACQUIRE_REPLY = ("slot", "allowed", "limit", "remaining", "reset_at", "retry_after_ms", "ticket")
_RELEASE_REPLY = ("limit", "inflight", "rtt_noload", "last_rtt")
#: Bound acquire calls kept per guard, one per fleet share seen (a share is a small integer).
_MAX_CAP_BINDINGS = 64


class ConcurrencyGuard:
    """An adaptive in-flight guard (gradient2 or aimd) whose state is one key of a store.

    ``acquire(cap, fence_at)`` takes a slot (``cap``: a fleet share capping the limit, -1 none;
    ``fence_at``: epoch ms from which it refuses, -1 never); ``release(grant, dropped)`` returns it and
    updates the limit from the RTT sample (``sample=False`` returns a slot whose work never ran, without a
    sample). The store defaults to a private in-process memory store. Thread-safe as its store is.

    Both are one bound call each (:meth:`~throttlekit.stores.base.ScriptStore.bind`): acquire's constant
    ARGV (initial limit, probe limit, the cap) and release's (the parameters and the mode) are packed once;
    the per-call argument is the fence instant (acquire) or the grant's ticket (release). Without a
    ``clock`` the store's clock decides (``SERVER_TIME``: on the memory store under LuaJIT the Lua
    function reads the wall clock itself).
    """

    def __init__(
        self,
        params: ConcurrencyParams | None = None,
        *,
        store: Any = None,
        key: str = "guard",
        clock: Clock | None = None,
    ) -> None:
        from ._loader import load_manifest, reply_index
        from .stores import MemoryStore

        self.params = params or concurrency_params()
        self._owned = store is None
        self.store = MemoryStore(clock=clock) if store is None else store
        self.clock: Clock = clock or getattr(self.store, "clock", None) or SystemClock()
        self._now: Any = None if clock is None else clock.now_ms
        self.key = key
        p = self.params
        self._acq_fixed = (p.initial_limit, p.probe_limit if p.recalibrating else 0)
        self._acquires: dict[float, Any] = {}
        manifest = load_manifest()
        self._ai = reply_index(manifest["conc_acquire"], _ACQUIRE_REPLY)
        self._ri = reply_index(manifest["conc_release"], _RELEASE_REPLY)
        fixed = p.release_args()
        # unguarded (as the limiter's check): no pcall per call in the memory store; a script fault is
        # converted by as_script_error in the except clauses below
        self._releases = tuple(
            self.store.bind("conc_release", (*fixed, mode), guarded=False) for mode in (0, 1, 2)
        )
        self._acq_sha, self._rel_sha = manifest["conc_acquire"].sha, manifest["conc_release"].sha
        self._acquire_for(-1)
        self.limit = self.params.initial_limit
        self.inflight = 0
        self.rtt_noload: float = 0
        self.last_rtt: float = 0

    def _acquire_for(self, cap: float) -> Any:
        run = self._acquires.get(cap)
        if run is None:
            if len(self._acquires) >= _MAX_CAP_BINDINGS:
                self._acquires.clear()
            run = self._acquires[cap] = self.store.bind(
                "conc_acquire", (*self._acq_fixed, cap), guarded=False
            )
        return run

    def acquire(self, cap: float = -1, fence_at: float = -1) -> Grant:
        run = self._acquires.get(cap) or self._acquire_for(cap)
        try:
            r = run(self.key, SERVER_TIME if self._now is None else self._now(), fence_at)
        except Exception as exc:
            raise as_script_error("conc_acquire", self._acq_sha, exc) from None
        slot, a, lim, rem, rst, rty, tk = self._ai
        d = make_decision(r[a] == 1, r[lim], r[rem], r[rst], r[rty])
        if d.allowed:
            self.inflight = r[slot]
        return Grant(d, r[slot], r[rst], r[tk])

    def release(self, grant: Grant, dropped: bool = False, *, sample: bool = True) -> GuardStats:
        """Return ``grant``'s slot. ``sample=False``: the work never ran (a later axis denied): the slot
        goes back without an RTT sample, so the limit is not moved by a zero-length non-request."""
        run = self._releases[(DROPPED if dropped else COMPLETED) if sample else UNUSED]
        try:
            r = run(self.key, SERVER_TIME if self._now is None else self._now(), grant.ticket)
        except Exception as exc:
            raise as_script_error("conc_release", self._rel_sha, exc) from None
        lim, inf, rn, lr = self._ri
        self.limit, self.inflight, self.rtt_noload, self.last_rtt = r[lim], r[inf], r[rn], r[lr]
        return GuardStats(r[lim], r[inf], r[rn], r[lr])

    def reset(self) -> None:
        self.store.delete(self.key)

    def close(self) -> None:
        if self._owned:
            self.store.close()


class Lease:
    """A held slot: its id, the guard that holds it (``owner``), the grant, and its deadline (epoch ms)."""

    __slots__ = ("deadline", "grant", "id", "owner")

    def __init__(self, id: str, owner: Any, grant: Grant, deadline: float) -> None:
        self.id = id
        self.owner = owner
        self.grant = grant
        self.deadline = deadline

    def __repr__(self) -> str:
        return f"Lease(id={self.id!r}, deadline={self.deadline!r})"


class LeaseTable:
    """Held slots by lease id, with deadlines. Ids are ``<16 random hex>.<n>``: unique across processes and
    restarts (a stale id from an earlier run is never mistaken for a live lease). Thread-safe."""

    def __init__(self, ttl_ms: int = DEFAULT_LEASE_TTL_MS, clock: Clock | None = None) -> None:
        self.ttl_ms = v_.integer("leaseTtlMs", ttl_ms, 1, 86_400_000)
        self.clock = clock or SystemClock()
        self.token = secrets.token_hex(8)
        self._count = itertools.count(1)
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._leases)

    def mint(self, owner: Any, grant: Grant) -> Lease:
        deadline = self.clock.now_ms() + self.ttl_ms
        n = next(self._count)  # atomic under the GIL: no lock for the id
        lease = Lease(f"{self.token}.{n}", owner, grant, deadline)
        self._leases[lease.id] = lease  # one dict store: atomic; expired() copies under the lock
        return lease

    def pop(self, lease_id: str) -> Lease | None:
        return self._leases.pop(lease_id, None)  # atomic under the GIL

    def renew(self, lease_ids: Sequence[str]) -> tuple[list[str], list[str], float]:
        """Renew every held id: ``(live, reclaimed, next_deadline)``; an id not held (never minted,
        released or reclaimed) is reported reclaimed."""
        deadline = self.clock.now_ms() + self.ttl_ms
        live, gone = [], []
        with self._lock:
            for i in lease_ids:
                lease = self._leases.get(i)
                if lease is None:
                    gone.append(i)
                else:
                    lease.deadline = deadline
                    live.append(i)
        return live, gone, deadline

    def expired(self) -> list[Lease]:
        """Remove and return every lease whose deadline has passed (``deadline <= now``)."""
        now = self.clock.now_ms()
        with self._lock:  # against a concurrent sweep; mint and pop stay lock-free (atomic dict ops)
            lapsed = [lease for lease in list(self._leases.values()) if lease.deadline <= now]
            pop = self._leases.pop
            return [lease for lease in lapsed if pop(lease.id, None) is not None]


@dataclass(frozen=True)
class Share:
    """A coordinator's answer: this node's ``share`` of ``l_global`` across ``nodes`` live nodes;
    ``collision`` when another live process holds this node id (the share is then 0); ``expires_at``
    the coordinator-clock instant this report lapses; ``gen`` the committed grant generation (acknowledged
    handoff; -1 without)."""

    share: int
    l_global: int
    nodes: int
    collision: bool
    expires_at: float
    gen: int = -1


_SHARE_REPLY = ("share", "l_global", "nodes", "collision", "expires_at", "gen")


class Coordinator:
    """The fleet coordinator of one ``distributedConcurrency`` key on a shared store: ``heartbeat`` reports
    this node and returns its :class:`Share`, ``leave`` removes it. Keys: ``<prefix>conc:<key>`` (the
    upstream Redis layout: no separator) and ``<prefix>conc:<key>:owners`` (the node-id owners).
    ``handoff``: acknowledged handoff (spec 9.4): each report carries ``seq`` and ``applied_gen``.
    ``allocation`` (spec 9.4 step 4): ``"equal-split"`` (default) splits ``l_global`` equally by sorted
    node id; ``"demand-proportional"`` gives a node below its share (satisfied) ``inflight + 1`` and
    splits the rest among the nodes at or above theirs. Every node of one key must use the same
    ``aggregate`` and ``allocation`` (each report computes with its own)."""

    def __init__(
        self,
        store: Any,
        key: str,
        node_id: str,
        *,
        prefix: str = "tk:fed",
        aggregate: str = "median",
        handoff: bool = False,
        allocation: str = "equal-split",
    ) -> None:
        if not isinstance(node_id, str) or not node_id.strip() or len(node_id) > MAX_NODE_ID:
            raise ConfigError(
                field="nodeId",
                value=node_id,
                problem="must be a non-blank string",
                allowed=f"1 to {MAX_NODE_ID} characters, no control characters",
            )
        if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in node_id):
            raise ConfigError(
                field="nodeId",
                value=node_id,
                problem="contains a control character",
                allowed=f"1 to {MAX_NODE_ID} characters, no control characters",
            )
        from ._loader import load_manifest, reply_index

        self.aggregate = v_.choice("aggregate", aggregate, ("median", "min"))
        self.store = store
        self.node_id = node_id
        self.handoff = bool(handoff)
        self.allocation = v_.choice("allocation", allocation, ALLOCATIONS)
        self.token = secrets.token_hex(8)
        from .stores.base import join_prefix

        base = join_prefix(getattr(store, "prefix", "")) + f"{prefix}conc:{key}"
        self.keys = (base, base + ":owners")
        self._agg = 1 if self.aggregate == "min" else 0
        beat = load_manifest()["conc_heartbeat"]
        self._si = reply_index(beat, _SHARE_REPLY)
        self._argv = beat.argv[1:]  # after now_ms: packed by these names
        (self._removed,) = reply_index(load_manifest()["conc_leave"], ("removed",))

    def _args(self, l_local: int, inflight: int, ttl_ms: int, seq: int, applied_gen: int) -> tuple[Any, ...]:
        named: dict[str, Any] = {
            "node_id": self.node_id,
            "token": self.token,
            "l_local": l_local,
            "inflight": inflight,
            "ttl_ms": ttl_ms,
            "aggregate": self._agg,
            "seq": seq,
            "applied_gen": applied_gen,
            "handoff": 1 if self.handoff else 0,
            "allocation": self.allocation,
        }
        return tuple(named[n] for n in self._argv)

    def _share(self, r: Sequence[Any]) -> Share:
        s, lg, n, c, x, g = self._si
        return Share(int(r[s]), int(r[lg]), int(r[n]), r[c] == 1, v_.whole(r[x]), int(r[g]))

    def heartbeat(
        self,
        l_local: int,
        inflight: int,
        ttl_ms: int,
        now_ms: float = -1,
        *,
        seq: int = -1,
        applied_gen: int = -1,
    ) -> Share:
        args = self._args(l_local, inflight, ttl_ms, seq, applied_gen)
        return self._share(self.store.eval("conc_heartbeat", self.keys, now_ms, args))

    async def aheartbeat(
        self,
        l_local: int,
        inflight: int,
        ttl_ms: int,
        now_ms: float = -1,
        *,
        seq: int = -1,
        applied_gen: int = -1,
    ) -> Share:
        args = self._args(l_local, inflight, ttl_ms, seq, applied_gen)
        return self._share(await self.store.aeval("conc_heartbeat", self.keys, now_ms, args))

    def leave(self, now_ms: float = -1) -> bool:
        r = self.store.eval("conc_leave", self.keys, now_ms, (self.node_id, self.token))
        return bool(r[self._removed] == 1)

    async def aleave(self, now_ms: float = -1) -> bool:
        r = await self.store.aeval("conc_leave", self.keys, now_ms, (self.node_id, self.token))
        return bool(r[self._removed] == 1)


@dataclass(frozen=True)
class Admitted:
    """An admit's answer (the wire's AdmitResponse): the combined ``decision``; ``lease_id`` ("" = nothing
    held) and ``lease_expires_at`` (0 when nothing is held); ``binding_axis`` ("concurrency", "rate" or
    "" when admitted); ``policy_denied`` (the joint-LP bid filter denied it: see :mod:`throttlekit.jointlp`)."""

    decision: Decision
    lease_id: str = ""
    lease_expires_at: int = 0
    binding_axis: str = ""
    policy_denied: bool = False


def combine(a: Decision, b: Decision) -> Decision:
    """Spec 10.1: allowed iff both, the smaller limit and remaining, the later reset and retry."""
    return make_decision(
        a.allowed and b.allowed,
        min(a.limit, b.limit),
        min(a.remaining, b.remaining),
        max(a.reset_at, b.reset_at),
        max(a.retry_after_ms, b.retry_after_ms),
    )


@dataclass(frozen=True)
class FusedDecision:
    """``unified_fused``'s answer: the combined decision and each axis's own."""

    decision: Decision
    rate: Decision
    cost: Decision


class FusedAxes:
    """The rate (:class:`~throttlekit.Gcra`, cost 1) and cost (:class:`~throttlekit.TokenBucket`) axes of a
    unified admission decided in one Lua call (spec 10.4, ``unified_fused``): one round trip on Redis.
    Each axis writes its state iff it allowed, independently of the other. Keys ``<rate_prefix>:<key>`` and
    ``<cost_prefix>:<key>`` (the prefixes must differ)."""

    def __init__(
        self,
        rate: Any,
        cost: Any,
        *,
        store: Any = None,
        rate_prefix: str = "rate",
        cost_prefix: str = "cost",
        clock: Clock | None = None,
    ) -> None:
        from .stores import resolve_sync
        from .stores.base import join_prefix
        from .strategies import Gcra, TokenBucket

        if not isinstance(rate, Gcra) or not isinstance(cost, TokenBucket):
            raise ConfigError(
                field="fused",
                value=(rate, cost),
                problem="needs a Gcra rate axis and a TokenBucket cost axis",
            )
        if rate_prefix == cost_prefix:
            raise ConfigError(field="cost_prefix", value=cost_prefix, problem="must differ from rate_prefix")
        self.store, self._owned = resolve_sync(store, clock)
        self.clock = clock
        base = getattr(self.store, "prefix", "")
        self._rp, self._cp = join_prefix(base, rate_prefix), join_prefix(base, cost_prefix)
        p, c = rate.param_values, cost.param_values
        self._args = (p["period_ms"], p["limit"], p["burst"])
        self._bucket = (c["capacity"], c["refill_per_sec"])

    def check(self, key: str, cost_tokens: float = 1) -> FusedDecision:
        now = self.clock.now_ms() if self.clock is not None else -1
        r = self.store.eval(
            "unified_fused", (self._rp + key, self._cp + key), now, (*self._args, cost_tokens, *self._bucket)
        )
        return FusedDecision(
            Decision(r[0] == 1, r[1], r[2], r[3], r[4]),
            Decision(r[5] == 1, int(self._args[2]), r[6], r[7], r[8]),
            Decision(r[9] == 1, int(self._bucket[0]), r[10], r[11], r[12]),
        )

    def reset(self, key: str) -> None:
        self.store.delete(self._rp + key)
        self.store.delete(self._cp + key)

    def close(self) -> None:
        if self._owned:
            self.store.close()
