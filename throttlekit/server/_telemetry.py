"""The decision tap and the telemetry hub: what the Monitor door, ``/metrics`` and capture observe.

**The tap** (:class:`DecisionTap`) is the one seam through which a decision leaves the service for
observers. Every decision path of the service core (``_service.py``: Check, CheckMany, Peek, Debit,
two-tier, and every runtime added later) ends in ``_Runtime._observe``, which hands the reply to
:meth:`DecisionTap.observe` (it builds one :class:`DecisionEvent` and emits it), only when at least one
observer is registered (an untapped service pays one attribute test per decision). ``emit`` calls each observer inline,
in registration order; an observer that raises is counted and logged once per burst and never reaches the
caller, so observing cannot change or fail a decision. Observers must be O(1) and must not block: they
run on the event-loop thread between a decision and its reply.

Register with ``service.tap.register(observer)`` (returns the function that unregisters it). An observer
is any callable taking a :class:`DecisionEvent`.

**The hub** (:class:`TelemetryHub`, spec 11) is the first observer: per policy an epoch-aligned 60 s
analytics window (allowed/denied, Space-Saving top-10 requested and denied keys), lifetime monotonic
totals (for Prometheus), the last observed limit, a ring of the last 256 decision latencies; for the
server a ring of the last 200 denials, and denial subscribers (the Monitor ``Watch`` streams). Every
update is O(1) (the top-K replacement scans K = 10 entries). :meth:`TelemetryHub.snapshot` builds the
``LensSnapshot`` (spec 5.4) the Monitor door projects and ``raw_json`` carries.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter, not_
from time import perf_counter_ns
from typing import Any, NamedTuple, Protocol

__all__ = [
    "ANALYTICS_WINDOW_MS",
    "BATCH",
    "DENIAL_RING",
    "LATENCY_RING",
    "LENS_VERSION",
    "TOP_K",
    "DecisionEvent",
    "DecisionObserver",
    "DecisionSink",
    "DecisionTap",
    "EventFields",
    "PolicyStats",
    "SpaceSaving",
    "TelemetryHub",
]

log = logging.getLogger("throttlekit.server")

#: A DecisionEvent from a full tuple of its fields, without the keyword-parsing constructor (hot path).
_event = tuple.__new__

#: The analytics window (ms); windows are epoch-aligned.
ANALYTICS_WINDOW_MS = 60_000
#: Keys kept by each Space-Saving top-K.
TOP_K = 10
#: Denials kept for the snapshot's ``recentDenials``.
DENIAL_RING = 200
#: Decision latencies kept per policy.
LATENCY_RING = 256
#: The snapshot format version (``meta.lensVersion``).
LENS_VERSION = "0.3.0"
#: Decisions a tap holds for its sinks before handing them over (a reader drains sooner).
BATCH = 256
#: Buffered keys per policy before they are merged into the top-K summaries (also merged on a snapshot).
FLUSH_EVERY = 512


class DecisionEvent(NamedTuple):
    """One decision as observers see it (built only when an observer is registered).

    ``kind``: ``limiter`` (rate, two-tier, federated), ``admitter`` or ``meter`` (budgets). ``op``:
    ``check``, ``check_many``, ``peek`` (non-consuming), ``debit``, ``admit``. The five decision numbers
    are the engine's (before any shadow override). ``at_ms``: epoch ms (the service's clock).
    ``latency_ns``: the decision's duration (for a CheckMany, the batch's duration divided by its size).
    ``synthesized``: the store failed and the fail mode answered. ``shadow``: the policy is in shadow
    mode, so the client was answered allowed whatever ``allowed`` says. ``axis``: the binding axis of an
    admitter's denial (``rate``/``concurrency``/``cost``/``policy``), ``""`` otherwise.
    """

    policy: str
    kind: str
    op: str
    key: str
    cost: int
    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after_ms: int
    at_ms: int
    latency_ns: int
    synthesized: bool = False
    shadow: bool = False
    axis: str = ""


class DecisionObserver(Protocol):
    """Anything registered on a :class:`DecisionTap`: called inline with each event; O(1), no blocking."""

    def __call__(self, event: DecisionEvent, /) -> None: ...


#: One decision's fields in :class:`DecisionEvent`'s order: a plain tuple, or the event itself.
EventFields = tuple[Any, ...]


class DecisionSink(Protocol):
    """Anything registered on a :class:`DecisionTap` with ``register_sink``: takes the decisions in
    batches (a list of its own, in decision order, at most :data:`BATCH` at a time unless drained late),
    on the thread that drains: the decisions' own, or a reader's. Must not block."""

    def absorb(self, events: Sequence[EventFields], /) -> None: ...


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _int_clock(now_ms: Callable[[], float] | None) -> Callable[[], int]:
    if now_ms is None:
        return _wall_ms
    return lambda: int(now_ms())


class DecisionTap:
    """The observers of one service's decisions, of two kinds:

    - **observers** (:meth:`register`) are called inline with each :class:`DecisionEvent`;
    - **sinks** (:meth:`register_sink`) take the events in batches: each decision appends its fields (a
      plain tuple in :class:`DecisionEvent`'s order) to a list, and a sink's ``absorb`` gets the list every
      :data:`BATCH` decisions, or sooner on :meth:`drain` (a sink's reader drains first, so what it reads
      includes every decision made so far). No event object is built for a sink, and the sink can fold a
      batch with C-level operations: the telemetry hub's cost per decision, measured in
      ``scripts/bench_instructions.py --server``.

    Both are tuples replaced on (un)registration, so iterating is safe while one registers. ``active``
    says whether anything observes: the decision paths read the clock only then. Any thread may drain
    (a read of the hub from outside the event loop, say): the decisions append lock-free to one list that
    is never replaced, and draining takes what is there under a lock, so no decision is lost or handed
    over twice."""

    def __init__(self, now_ms: Callable[[], float] | None = None, *, remind_s: float = 60.0) -> None:
        self.observers: tuple[DecisionObserver, ...] = ()
        self.sinks: tuple[DecisionSink, ...] = ()
        #: True while an observer or a sink is registered.
        self.active = False
        self._batch: list[EventFields] = []
        self._draining = threading.Lock()
        #: Epoch ms of an event (the service's clock, else wall time).
        self.now_ms = _int_clock(now_ms)
        self._wall = now_ms is None
        self._offset = 0
        self._resync_at = 0
        self.errors = 0
        self._remind_s = remind_s
        self._last_report = -remind_s

    def register(self, observer: DecisionObserver) -> Callable[[], None]:
        """Add ``observer`` (called inline per event); returns a function that removes it (idempotent)."""
        self.observers = (*self.observers, observer)
        self.active = True

        def unregister() -> None:
            self.observers = tuple(o for o in self.observers if o is not observer)
            self.active = bool(self.observers or self.sinks)

        return unregister

    def register_sink(self, sink: DecisionSink) -> Callable[[], None]:
        """Add ``sink`` (fed batches of event fields, see the class docstring); returns a function that
        drains the batch into it and removes it (idempotent). A sink registered later sees only later
        decisions: what is pending goes to the sinks registered before it."""
        self.drain()
        self.sinks = (*self.sinks, sink)
        self.active = True

        def unregister() -> None:
            if any(s is sink for s in self.sinks):
                self.drain()
                self.sinks = tuple(s for s in self.sinks if s is not sink)
                self.active = bool(self.observers or self.sinks)

        return unregister

    def drain(self) -> None:
        """Hand the pending events to every sink now (a sink's reader calls this before reading)."""
        batch = self._batch
        if not batch:
            return
        with self._draining:  # the list is never replaced: an append racing a drain stays for the next
            events = batch[:]
            del batch[: len(events)]
            for sink in self.sinks:
                try:
                    sink.absorb(events)
                except Exception as exc:
                    self._failed(sink, exc)

    def emit(self, event: DecisionEvent) -> None:
        """Call every observer with ``event`` and queue it for the sinks; an observer's exception is
        counted and logged at most once per ``remind_s``, never raised."""
        for observer in self.observers:
            try:
                observer(event)
            except Exception as exc:
                self._failed(observer, exc)
        if self.sinks:
            self._queue(event)

    def _queue(self, fields: EventFields) -> None:
        batch = self._batch
        batch.append(fields)
        if len(batch) >= BATCH:
            self.drain()

    def observe(
        self,
        policy: str,
        kind: str,
        op: str,
        key: str,
        cost: int,
        r: Sequence[Any],
        t0: int,
        synthesized: bool,
        shadow: bool,
        axis: str = "",
    ) -> None:
        """Observe one decision from its reply items ``r`` (``allowed`` 1/0 or a bool, then the four
        numbers) and its start ``t0`` (``perf_counter_ns``): the decision paths' one frame (hot path).
        Its fields go to the sinks' batch; an event is built only for inline observers. On the wall clock
        the event's ``at_ms`` comes from the same monotonic reading as its latency, offset to the epoch
        (the offset is read again every second): one clock read per event instead of two."""
        t1 = perf_counter_ns()
        if self._wall:
            if t1 >= self._resync_at:
                self._resync(t1)
            at = (t1 + self._offset) // 1_000_000
        else:
            at = self.now_ms()
        fields = (
            policy,
            kind,
            op,
            key,
            cost,
            r[0] == 1,
            r[1],
            r[2],
            r[3],
            r[4],
            at,
            t1 - t0,
            synthesized,
            shadow,
            axis,
        )
        if self.observers:  # inline observers take the event (and the sinks' batch holds it)
            self.emit(_event(DecisionEvent, fields))
        elif self.sinks:
            batch = self._batch
            batch.append(fields)
            if len(batch) >= BATCH:
                self.drain()

    def _resync(self, mono_ns: int) -> None:
        """Read the epoch's offset from the monotonic clock again (at most a second old when used)."""
        self._offset = time.time_ns() - perf_counter_ns()
        self._resync_at = mono_ns + 1_000_000_000

    def _failed(self, observer: DecisionObserver | DecisionSink, exc: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_report >= self._remind_s:
            self._last_report = now
            log.error(
                "decision observer %s failed (%d failures so far; decisions are unaffected): %s: %s",
                getattr(observer, "__qualname__", type(observer).__name__),
                self.errors,
                type(exc).__name__,
                str(exc)[:200],
            )


_count = itemgetter(1)


class SpaceSaving:
    """Space-Saving top-K (Metwally et al.): at most ``k`` counters; an unseen key replaces the smallest
    counter and inherits its count plus one, so counts are upper bounds and every key whose true count
    exceeds total/k is present. ``add`` is O(k) with k fixed (10): constant per decision. ``merge`` folds
    in exact counts of a batch (the mergeable-summary rule: a key the summary lacks enters with the
    summary's minimum as its prior bound, then the k largest are kept), which is how the hub feeds it:
    keys are buffered per decision (one list append) and merged in batches."""

    __slots__ = ("counts", "k")

    def __init__(self, k: int = TOP_K) -> None:
        self.k = k
        self.counts: dict[str, int] = {}

    def merge(self, batch: dict[str, int]) -> None:
        counts = self.counts
        if len(counts) + len(batch) <= self.k:
            for key, n in batch.items():
                counts[key] = counts.get(key, 0) + n
            return
        floor = min(counts.values()) if len(counts) >= self.k else 0
        get = batch.get
        combined = {key: c + get(key, 0) for key, c in counts.items()}
        # a key the summary lacks can only be kept if it is among the batch's k largest: each of those
        # ends at least as high and comes first on a tie (ties in batch order, as the final selection)
        for key, n in heapq.nlargest(self.k, batch.items(), key=_count):
            if key not in counts:
                combined[key] = floor + n
        self.counts = dict(heapq.nlargest(self.k, combined.items(), key=_count))

    def add(self, key: str, n: int = 1) -> None:
        counts = self.counts
        c = counts.get(key)
        if c is not None:
            counts[key] = c + n
        elif len(counts) < self.k:
            counts[key] = n
        else:
            victim = min(counts, key=counts.__getitem__)
            floor = counts.pop(victim)
            counts[key] = floor + n

    def top(self) -> list[tuple[str, int]]:
        """Keys by count descending, then key ascending."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def clear(self) -> None:
        self.counts.clear()


LANES = ("rate", "concurrency", "cost", "policy")


@dataclass(slots=True)
class PolicyStats:
    """One policy's analytics. Window figures reset when the epoch-aligned window rolls; ``*_total``
    figures never reset (monotonic counters)."""

    name: str
    kind: str
    strategy: str
    window_ms: int = ANALYTICS_WINDOW_MS
    window_start: int = 0
    allowed: int = 0
    denied: int = 0
    denied_by_lane: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANES, 0))
    top_requested: SpaceSaving = field(default_factory=SpaceSaving)
    top_denied: SpaceSaving = field(default_factory=SpaceSaving)
    top_denied_by_lane: dict[str, SpaceSaving] = field(default_factory=dict)
    allowed_total: int = 0
    denied_total: int = 0
    synthesized_total: int = 0
    shadow_denied_total: int = 0
    peeks_total: int = 0
    denied_by_lane_total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANES, 0))
    latency_sum_ns: int = 0
    limit: int = 0
    #: the last LATENCY_RING decision durations, ns
    latencies: deque[int] = field(default_factory=lambda: deque(maxlen=LATENCY_RING))
    window_end: int = 0
    #: Keys of this window's decisions not yet merged into the top-K summaries.
    pending_requested: list[str] = field(default_factory=list)
    pending_denied: list[str] = field(default_factory=list)
    pending_lanes: list[tuple[str, str]] = field(default_factory=list)
    #: An admitter's axes (``concurrency``, plus ``rate`` for a unified policy); empty for the others.
    axes: tuple[str, ...] = ()

    def flush(self) -> None:
        """Merge the buffered keys into the top-K summaries."""
        if self.pending_requested:
            self.top_requested.merge(Counter(self.pending_requested))
            self.pending_requested.clear()
        if self.pending_denied:
            self.top_denied.merge(Counter(self.pending_denied))
            self.pending_denied.clear()
        if self.pending_lanes:
            for (lane, key), n in Counter(self.pending_lanes).items():
                top = self.top_denied_by_lane.get(lane)
                if top is None:
                    top = self.top_denied_by_lane[lane] = SpaceSaving(TOP_K)
                top.merge({key: n})
            self.pending_lanes.clear()

    def roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % self.window_ms
        if start != self.window_start:
            self.pending_requested.clear()
            self.pending_denied.clear()
            self.pending_lanes.clear()
            self.window_start = start
            self.window_end = start + self.window_ms
            self.allowed = self.denied = 0
            for lane in self.denied_by_lane:
                self.denied_by_lane[lane] = 0
            self.top_requested.clear()
            self.top_denied.clear()
            self.top_denied_by_lane.clear()

    @property
    def latency_count(self) -> int:
        """Decisions timed since start (the latency summary's ``_count``): allowed plus denied."""
        return self.allowed_total + self.denied_total

    def latency(self) -> dict[str, float]:
        """avg/p50/p99/max (ms, nearest rank) and n over the latency ring; zeros with n=0 when empty."""
        samples = [ns / 1e6 for ns in sorted(self.latencies)]
        n = len(samples)
        if n == 0:
            return {"avgMs": 0.0, "p50Ms": 0.0, "p99Ms": 0.0, "maxMs": 0.0, "n": 0}

        def rank(p: float) -> float:
            return samples[max(0, min(n - 1, math.ceil(p * n) - 1))]

        return {
            "avgMs": sum(samples) / n,
            "p50Ms": rank(0.50),
            "p99Ms": rank(0.99),
            "maxMs": samples[-1],
            "n": n,
        }


class TelemetryHub:
    """The server's telemetry: register it on a service's tap (:meth:`attach`) or call it with events.

    ``node_id``: ``meta.nodeId`` (``host:port``, plus ``#w<i>`` under ``--workers``). ``mode``/
    ``fail_mode``: the snapshot's ``health`` block. ``now_ms``: the hub's clock (tests pass a manual one).
    """

    def __init__(
        self,
        *,
        node_id: str = "",
        backend: str = "memory",
        fail_mode: str = "open",
        now_ms: Callable[[], float] | None = None,
        window_ms: int = ANALYTICS_WINDOW_MS,
    ) -> None:
        self.node_id = node_id
        self.backend = backend
        self.fail_mode = fail_mode
        self.window_ms = window_ms
        self.now_ms = _int_clock(now_ms)
        self.policies: dict[str, PolicyStats] = {}
        self.denials: deque[DecisionEvent] = deque(maxlen=DENIAL_RING)
        self.subscribers: tuple[Callable[[DecisionEvent], None], ...] = ()
        #: The taps this hub is a sink of (drained before each read), and the inline observers that
        #: forward denials to the subscribers while there are any (by the tap's id).
        self._taps: list[DecisionTap] = []
        self._forwarding: dict[int, Callable[[], None]] = {}
        #: Held while a batch is folded in or a read rolls and merges the windows: a tap drained from
        #: another thread (a read outside the event loop) never folds beside the loop's own drain.
        self._folding = threading.Lock()
        #: Callables returning the concurrency guards' views (``name``, ``limit``, ``inflight``, ...), for
        #: the snapshot's ``guards`` (admitters register theirs).
        self.guard_sources: list[Callable[[], list[dict[str, Any]]]] = []
        #: Callables returning the fair-escrow policies as ``(name, policy, stats or the error)`` for the
        #: snapshot's ``stats`` (kind ``wfe``) and ``costRooms``.
        self.fair_sources: list[Callable[[], list[tuple[str, Any, Any]]]] = []
        #: The Cost Room's burn rings: policy -> tenant -> ``(at_ms, used)`` samples of this window.
        self.burn: dict[str, dict[str, deque[tuple[int, float]]]] = {}
        #: ``(policy, key) -> Forecast | None``: a limiter's cost-1 forecast read synchronously (None:
        #: not available, e.g. an asynchronous store), for the snapshot's ``forecast`` of its hottest key.
        self.forecaster: Callable[[str, str], Any] | None = None
        #: Extra top-level snapshot sections by name (``replay``: the What-If shadows), each a callable
        #: returning JSON-ready data; additive fields of ``raw_json`` (a section that raises is left out).
        self.sections: dict[str, Callable[[], Any]] = {}

    # -- wiring ---------------------------------------------------------------------------------------

    def track(self, name: str, kind: str, strategy: str = "") -> PolicyStats:
        """Declare a policy so it is listed before any traffic (idempotent; keeps existing figures
        when the kind and strategy are unchanged, e.g. across a config reload)."""
        stats = self.policies.get(name)
        if stats is None or stats.kind != kind or stats.strategy != strategy:
            stats = PolicyStats(name, kind, strategy, self.window_ms)
            stats.roll(self.now_ms())
            self.policies[name] = stats
        return stats

    def retain(self, names: Iterable[str]) -> None:
        """Forget policies not in ``names`` (after a reload removed them)."""
        keep = set(names)
        for name in [n for n in self.policies if n not in keep]:
            del self.policies[name]

    def attach(self, service: Any) -> Callable[[], None]:
        """Track every policy of ``service``, read its concurrency guards, and register on its tap as a
        sink (batches, drained before every read); returns the unregister function."""
        self.sync_policies(service)
        self.guard_sources.append(lambda: _service_guards(service))
        self.fair_sources.append(lambda: _service_fair(service))
        self.forecaster = lambda policy, key: service.policies[policy].forecast_now(key)
        tap: DecisionTap = service.tap
        self._taps.append(tap)
        unregister_sink = tap.register_sink(self)
        if self.subscribers:
            self._forwarding[id(tap)] = tap.register(self._forward)

        def unregister() -> None:
            unregister_sink()
            stop = self._forwarding.pop(id(tap), None)
            if stop is not None:
                stop()
            self._taps = [t for t in self._taps if t is not tap]

        return unregister

    def sync_policies(self, service: Any) -> None:
        """Track ``service``'s current policies (kinds and strategies from its runtimes) and forget the
        others."""
        self.drain()
        for name, rt in service.policies.items():
            kind = rt.telemetry_kind
            stats = self.track(name, kind, "" if kind == "admitter" else rt.strategy_name)
            if kind == "admitter":
                unified = rt.strategy_name != "concurrency"
                stats.axes = ("rate", "concurrency") if unified else ("concurrency",)
        self.retain(service.policies)

    def subscribe(self, fn: Callable[[DecisionEvent], None]) -> Callable[[], None]:
        """Call ``fn`` inline with each denial (it must not block or raise); returns the unsubscribe.
        While anything is subscribed the hub also observes its taps inline, so a denial reaches ``fn``
        as it happens, not with the next batch."""
        self.subscribers = (*self.subscribers, fn)
        for tap in self._taps:
            if id(tap) not in self._forwarding:
                self._forwarding[id(tap)] = tap.register(self._forward)

        def unsubscribe() -> None:
            self.subscribers = tuple(s for s in self.subscribers if s is not fn)
            if not self.subscribers:
                for stop in self._forwarding.values():
                    stop()
                self._forwarding.clear()

        return unsubscribe

    def _forward(self, event: DecisionEvent) -> None:
        """The inline observer while anything is subscribed: each denial the ring keeps, to the
        subscribers (the batch path records it)."""
        if event.allowed or event.op == "peek" or event.kind == "meter":
            return
        self._notify(event)

    def _notify(self, event: DecisionEvent) -> None:
        for fn in self.subscribers:
            try:
                fn(event)
            except Exception:  # a subscriber never fails a decision
                pass

    def drain(self) -> None:
        """Take in every decision the attached taps still hold (each read does this first)."""
        for tap in self._taps:
            tap.drain()

    # -- the observer ---------------------------------------------------------------------------------

    def __call__(self, event: DecisionEvent) -> None:
        """Record one event now (the hub as an inline observer) and hand a denial to the subscribers."""
        if self._record(event):
            self._notify(event)

    def _record(self, event: EventFields, keep: bool = True) -> bool:
        """Record one event (a denial in the ring only with ``keep``); True when it is a denial the ring
        keeps (the subscribers' events). The per-event form of :meth:`absorb`, which must leave the same
        figures."""
        (policy, kind, op, key, _, allowed, limit, _, _, _, at, latency_ns, synthesized, shadow, axis) = event
        stats = self.policies.get(policy)
        if stats is None:
            stats = self.track(policy, kind)
        if op == "peek":
            stats.peeks_total += 1
            return False
        if not stats.window_start <= at < stats.window_end:
            stats.roll(at)
        if limit > 0:
            stats.limit = limit
        stats.latencies.append(latency_ns)
        stats.latency_sum_ns += latency_ns
        if synthesized:
            stats.synthesized_total += 1
        ring = False
        if allowed:
            stats.allowed += 1
            stats.allowed_total += 1
        else:
            stats.denied += 1
            stats.denied_total += 1
            if shadow:
                stats.shadow_denied_total += 1
            stats.pending_denied.append(key)
            if kind == "admitter":
                lane = axis if axis in stats.denied_by_lane else "policy"
                stats.denied_by_lane[lane] += 1
                stats.denied_by_lane_total[lane] += 1
                stats.pending_lanes.append((lane, key))
            if kind != "meter":
                if keep:
                    self.denials.append(
                        event if type(event) is DecisionEvent else _event(DecisionEvent, event)
                    )
                ring = True
        pending = stats.pending_requested
        pending.append(key)
        if len(pending) >= FLUSH_EVERY:
            stats.flush()
        return ring

    def absorb(self, events: Sequence[EventFields]) -> None:
        """A tap's batch (the hub as a sink): the same figures as :meth:`_record` per event, in order, but
        folded per policy with C-level operations (column sums, list extends) while no window rolls;
        the subscribers are not called (:meth:`_forward` did, inline)."""
        if not events:
            return
        with self._folding:
            self._absorb(events)

    def _absorb(self, events: Sequence[EventFields]) -> None:
        cols = tuple(zip(*events))
        policies, allowed = cols[0], cols[5]
        if policies.count(policies[0]) == len(policies):
            self._fold(policies[0], events, cols)
        else:
            groups: dict[str, list[EventFields]] = {}
            for e in events:
                group = groups.get(e[0])
                if group is None:
                    groups[e[0]] = [e]
                else:
                    group.append(e)
            for policy, group in groups.items():
                self._fold(policy, group, tuple(zip(*group)))
        if allowed.count(True) != len(allowed):  # the ring of denials, in decision order
            ring = self.denials
            for e in compress(events, map(not_, allowed)):
                if e[2] != "peek" and e[1] != "meter":
                    ring.append(e if type(e) is DecisionEvent else _event(DecisionEvent, e))

    def _fold(self, policy: str, events: Sequence[EventFields], cols: tuple[tuple[Any, ...], ...]) -> None:
        """One policy's events of a batch (``cols``: their fields transposed), the ring aside."""
        stats = self.policies.get(policy)
        if stats is None:
            stats = self.track(policy, events[0][1])
        peeks = cols[2].count("peek")
        if peeks:
            stats.peeks_total += peeks
            if peeks == len(events):
                return
            events = [e for e in events if e[2] != "peek"]
            cols = tuple(zip(*events))
        ats = cols[10]
        if not (stats.window_start <= min(ats) and max(ats) < stats.window_end):
            for e in events:  # a window rolls inside the batch: event by event (the ring is absorb's)
                self._record(e, False)
            return
        i, n = 0, len(events)
        while i < n:  # segments that end where the per-event form flushes the top-K buffers
            j = min(n, i + FLUSH_EVERY - len(stats.pending_requested))
            seg = cols if (i, j) == (0, n) else tuple(c[i:j] for c in cols)
            _fold_segment(stats, seg)
            i = j

    # -- reading --------------------------------------------------------------------------------------

    def listed(self) -> list[PolicyStats]:
        """Policies of the typed snapshot: limiters, then admitters (meters are only in ``raw_json``).
        Drains the taps first: every read (the snapshot, ``/metrics``) goes through here."""
        self.drain()
        now = self.now_ms()
        with self._folding:
            for s in list(self.policies.values()):
                s.roll(now)
                s.flush()
        limiters = [s for s in self.policies.values() if s.kind == "limiter"]
        admitters = [s for s in self.policies.values() if s.kind == "admitter"]
        return limiters + admitters

    def snapshot(self) -> dict[str, Any]:
        """The ``LensSnapshot`` (spec 5.4), camelCase, JSON-ready. Additive fields beyond the upstream
        shape: ``meters`` (budget policies' figures) and per policy ``totals`` (monotonic counts)."""
        now = self.now_ms()
        meta: dict[str, Any] = {
            "generatedAt": now,
            "windowMs": self.window_ms,
            "mode": "process",
            "lensVersion": LENS_VERSION,
        }
        if self.node_id:
            meta["nodeId"] = self.node_id
        policies = [self._policy_json(s) for s in self.listed()]
        meters = [self._policy_json(s) for s in self.policies.values() if s.kind == "meter"]
        stats, rooms = self._fair_json(now)
        out: dict[str, Any] = {
            "meta": meta,
            "policies": policies,
            "guards": self.snapshot_guards(),
            "stats": stats,
            "recentDenials": [_denial_json(e) for e in self.denials],
            "recentFences": [],
            "health": {"backend": self.backend, "failMode": self.fail_mode},
            "meters": meters,
            **self._sections(),
        }
        if rooms:
            out["costRooms"] = rooms
        return out

    def _fair_json(self, now: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``stats`` (kind ``wfe``: each fair-escrow policy's window) and ``costRooms`` (those with
        ``costRoom`` on), spec 5.4. A policy whose read failed reports ``{error}``."""
        stats: list[dict[str, Any]] = []
        rooms: list[dict[str, Any]] = []
        seen: set[str] = set()
        for source in self.fair_sources:
            try:
                found = source()
            except Exception:
                continue
            for name, policy, value in found:
                seen.add(name)
                if isinstance(value, Exception):
                    stats.append({"name": name, "kind": "wfe", "error": f"{type(value).__name__}: {value}"})
                    continue
                stats.append({"name": name, "kind": "wfe", "value": value})
                if getattr(policy, "cost_room", False):
                    rooms.append(self._cost_room(name, policy, value, now))
        for gone in [n for n in self.burn if n not in seen]:
            del self.burn[gone]
        return stats, rooms

    def _cost_room(self, name: str, policy: Any, w: dict[str, Any], now: int) -> dict[str, Any]:
        """One Cost Room (spec 5.4 ``LensCostRoomSnapshot``): the guarantee, borrowing and burn rate of
        the most used tenants, each snapshot adding a usage sample to the tenant's ring."""
        start, span = int(w["windowStart"]), int(policy.window_ms)
        effective, used_all = int(w["effectiveLimit"]), float(w["totalUsed"])
        rings = self.burn.setdefault(name, {})
        listed = list(w["tenants"])[: int(policy.cost_room_max_keys)]
        keep = {str(t["tenant"]) for t in listed}
        for tenant in [t for t in rings if t not in keep]:
            del rings[tenant]
        total_weight = sum(float(t["weight"]) for t in w["tenants"]) or 1.0
        rows: list[dict[str, Any]] = []
        burn_sum = 0.0
        for t in listed:
            tenant, weight, used = str(t["tenant"]), float(t["weight"]), float(t["used"])
            ring = rings.get(tenant)
            if ring is None or (ring and ring[-1][0] < start):  # a new tenant, or a new window
                ring = rings[tenant] = deque(maxlen=int(policy.cost_room_ring_size))
            if not ring or ring[-1][0] != now:
                ring.append((now, used))
            guaranteed = math.floor(weight * effective / total_weight)
            row: dict[str, Any] = {
                "tenant": tenant,
                "weight": t["weight"],
                "used": t["used"],
                "guaranteed": guaranteed,
                "borrowed": max(0, math.ceil(used - guaranteed)),
                "burnPerSec": None,
                "etaToExhaustAt": None,
                "etaCappedByWindow": False,
            }
            if span < 1300:
                row["burnReason"] = "window-too-short"
            elif len(ring) < 2 or ring[-1][0] - ring[0][0] < 1000:
                row["burnReason"] = "warming"
            else:
                rate = (ring[-1][1] - ring[0][1]) * 1000 / (ring[-1][0] - ring[0][0])
                row["burnPerSec"] = rate
                burn_sum += rate
                if rate <= 0:
                    row["burnReason"] = "idle"
                elif used < guaranteed:
                    eta = now + math.ceil((guaranteed - used) * 1000 / rate)
                    row["etaToExhaustAt"] = eta
                    row["etaCappedByWindow"] = eta > start + span
            rows.append(row)
        pool = max(0, effective - math.ceil(used_all))
        room: dict[str, Any] = {
            "policy": name,
            "windowStart": start,
            "windowMs": span,
            "limit": int(w["limit"]),
            "effectiveLimit": effective,
            "pool": pool,
            "totalUsed": w["totalUsed"],
            "unit": str(policy.unit),
            "scope": "single-node",
            "fairShareReliable": False,
            "enforced": True,
            "activeTenants": int(w["tenantCount"]),
            "tenants": rows[:12],
        }
        if burn_sum > 0 and pool > 0:
            room["poolEtaToExhaustAt"] = now + math.ceil(pool * 1000 / burn_sum)
        return room

    def _forecast_json(self, policy: str, analytics: dict[str, Any]) -> dict[str, Any]:
        """``forecast`` of the policy's hottest key on a synchronous store, else ``forecastUnavailable``
        (``idle``: no traffic yet; ``async``: a shared store; ``unsupported``: no forecast)."""
        key = _hottest(analytics)
        if key is None:
            return {"forecastUnavailable": "idle"}
        f = None
        if self.forecaster is not None:
            try:
                f = self.forecaster(policy, key)
            except Exception:  # a store error or a policy swapped by a reload: no forecast this time
                f = None
        if f is None:
            return {"forecastUnavailable": "async" if self.backend != "memory" else "unsupported"}
        return {
            "forecast": {
                "key": key,
                "spendableNow": f.spendable_now,
                "nextReplenishAt": f.next_replenish_at,
                "fullAt": f.full_at,
            }
        }

    def _sections(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, source in self.sections.items():
            try:
                out[name] = source()
            except Exception:
                continue
        return out

    def snapshot_guards(self) -> list[dict[str, Any]]:
        """Every registered guard source's views (a source that raises contributes nothing)."""
        out: list[dict[str, Any]] = []
        for source in self.guard_sources:
            try:
                out.extend(source())
            except Exception:
                continue
        return out

    def _policy_json(self, s: PolicyStats) -> dict[str, Any]:
        analytics: dict[str, Any] = {
            "windowStartedAt": s.window_start,
            "windowMs": s.window_ms,
            "allowed": s.allowed,
            "denied": s.denied,
            "total": s.allowed + s.denied,
            "denyRate": s.denied / (s.allowed + s.denied) if s.allowed + s.denied else 0,
            "topRequested": _top_json(s.top_requested.top()),
            "topDenied": _top_json(s.top_denied.top()),
        }
        if s.kind == "admitter":
            analytics["deniedByLane"] = dict(s.denied_by_lane)
            analytics["topDeniedByLane"] = {
                lane: _top_json(s.top_denied_by_lane[lane].top()) if lane in s.top_denied_by_lane else []
                for lane in LANES
            }
        out: dict[str, Any] = {"name": s.name, "kind": s.kind}
        if s.strategy:
            out["strategy"] = s.strategy
        if s.axes:
            out["axes"] = list(s.axes)
        out["analytics"] = analytics
        if s.limit > 0:
            out["limit"] = s.limit
        out["latency"] = s.latency()
        if s.kind == "limiter":
            out.update(self._forecast_json(s.name, analytics))
        out["totals"] = {
            "allowed": s.allowed_total,
            "denied": s.denied_total,
            "shadowDenied": s.shadow_denied_total,
            "synthesized": s.synthesized_total,
        }
        return out


def _fold_segment(stats: PolicyStats, cols: tuple[tuple[Any, ...], ...]) -> None:
    """Events of one policy, in one window, no peek, that do not reach a top-K flush before their last
    (``cols``: their fields transposed): what :meth:`TelemetryHub._record` does to ``stats`` for each of
    them, as column operations, the ring aside."""
    allowed, keys = cols[5], cols[3]
    n, a = len(allowed), allowed.count(True)
    stats.allowed += a
    stats.allowed_total += a
    for limit in reversed(cols[6]):
        if limit > 0:
            stats.limit = limit
            break
    latencies = cols[11]
    stats.latencies.extend(latencies)
    stats.latency_sum_ns += sum(latencies)
    stats.synthesized_total += cols[12].count(True)
    if a != n:
        stats.denied += n - a
        stats.denied_total += n - a
        pending, lanes = stats.pending_denied, stats.pending_lanes
        for key, kind, shadow, axis in compress(zip(keys, cols[1], cols[13], cols[14]), map(not_, allowed)):
            if shadow:
                stats.shadow_denied_total += 1
            pending.append(key)
            if kind == "admitter":
                lane = axis if axis in stats.denied_by_lane else "policy"
                stats.denied_by_lane[lane] += 1
                stats.denied_by_lane_total[lane] += 1
                lanes.append((lane, key))
    stats.pending_requested.extend(keys)
    if len(stats.pending_requested) >= FLUSH_EVERY:
        stats.flush()


def _hottest(analytics: dict[str, Any]) -> str | None:
    """Spec 5.4: the first of ``topDenied``, else the first of ``topRequested``."""
    for name in ("topDenied", "topRequested"):
        top = analytics.get(name) or []
        if top:
            return str(top[0]["key"])
    return None


def _service_fair(service: Any) -> list[tuple[str, Any, Any]]:
    """``(name, policy, stats or the exception)`` of ``service``'s fair-escrow policies."""
    out: list[tuple[str, Any, Any]] = []
    for name, rt in service.policies.items():
        try:
            value = rt.fair_stats()
        except Exception as exc:  # a store outage (the region pool): reported, never raised
            out.append((name, rt.policy, exc))
            continue
        if value is not None:
            out.append((name, rt.policy, value))
    return out


def _service_guards(service: Any) -> list[dict[str, Any]]:
    """The guards of ``service``'s admitter policies in the snapshot's shape (spec 5.4 ``guards``)."""
    out = []
    for rt in service.policies.values():
        stats = getattr(rt, "guard_stats", None)
        if stats is None:
            continue
        g = stats()
        out.append(
            {
                "name": g["name"],
                "limit": g["limit"],
                "inflight": g["inflight"],
                "share": g.get("share", 0.0),
                "lGlobal": g.get("l_global", 0),
                "nodes": g.get("nodes", 0),
                "fenced": bool(g.get("fenced", False)),
            }
        )
    return out


def _top_json(items: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"key": k, "count": c} for k, c in items]


def _denial_json(e: DecisionEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"at": e.at_ms, "policy": e.policy, "key": e.key}
    if e.axis:
        out["lane"] = e.axis
    out["allowed"] = False
    out["decision"] = {
        "allowed": False,
        "limit": e.limit,
        "remaining": e.remaining,
        "resetAt": e.reset_at,
        "retryAfterMs": e.retry_after_ms,
    }
    if e.shadow:
        out["shadow"] = True
    return out
