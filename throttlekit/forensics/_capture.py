"""Decision capture: a sink of the decision tap that records consuming decisions, and its flusher.

:class:`CaptureRecorder` is registered on the service's decision tap as a sink (the one observer seam,
see ``throttlekit/server/_telemetry.py``): the tap hands it the decisions in batches of plain tuples,
and every read of its state drains the tap first. It records the consuming decisions (Check, each key of
CheckMany, Debit, Admit; Peek is skipped). Per decision it does O(1) work and never raises (a fault
drops the event and is counted):

- it always counts allowed/denied per policy (memory only, never written);
- without a tenant rule (``counts-only``) nothing else is kept;
- with one, the tenant is the whole key (``key``) or the text before the first delimiter
  (``key-prefix``; the whole key when there is none); a key with an empty tenant is skipped. Tenant and
  key are both redacted (:class:`~._redact.Redactor`); a redaction collision drops the event. The event
  ``(keyRef, cost, at, decision)`` is appended to the ring of its (scope, policy) until ``ringSize``,
  after which events are counted as ``dropped`` (the ring keeps its prefix). At most ``maxScopes``
  scopes are live: a new one evicts the oldest (its rings are counted in ``evicted_events``).

:class:`CaptureFlusher` drains the rings every 5 s (off the request path: the encryption and the file
writes run in a worker thread) into encrypted segments, and once more at shutdown. Without a durable
block the rings stay in memory and are discarded once older than the retention TTL.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .._loader import load_manifest
from ..config import PolicyConfig, RatePolicy
from ..config._forensics import CaptureConfig
from ..server._telemetry import DecisionTap, EventFields
from ._plan import _js
from ._redact import Redactor
from ._segments import SegmentStore

__all__ = [
    "FLUSH_INTERVAL_S",
    "CaptureFlusher",
    "CaptureRecorder",
    "Decided",
    "attach_capture",
    "banner",
    "policy_registry",
]

log = logging.getLogger("throttlekit.server")

#: Seconds between two flushes of the rings to durable segments.
FLUSH_INTERVAL_S = 5.0
#: Raw keys whose (scope, keyRef) the recorder remembers (one dict lookup per event for a hot key).
_KEY_MEMORY = 65_536
#: Operations that consume (Peek and Forecast do not).
CONSUMING = frozenset({"check", "check_many", "debit", "admit"})


class Decided(Protocol):
    """What capture reads of a decision event (the decision tap's ``DecisionEvent`` has these)."""

    @property
    def policy(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def cost(self) -> int: ...
    @property
    def allowed(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset_at(self) -> int: ...
    @property
    def retry_after_ms(self) -> int: ...
    @property
    def at_ms(self) -> int: ...


#: A policy kind -> the ``policyKind`` its segments carry (other kinds carry their own name).
_KINDS = {
    "tokenBudget": "meter",
    "fleetBudget": "meter",
    "concurrency": "admitter",
    "distributedConcurrency": "admitter",
}


#: A decision event's ``kind`` -> ``policyKind``, for a policy the recorder was not configured with.
_EVENT_KINDS = {"limiter": "rate", "meter": "meter", "admitter": "admitter"}


def policy_registry(config: PolicyConfig, redact: Callable[[str], str | None]) -> dict[str, dict[str, Any]]:
    """Per policy what a segment says about it: ``policyKind`` and, for leaf rate policies, the spec as
    written (its ``prefix`` redacted), the strategy identity and the check transform's SHA1."""
    limiters = config.raw.get("limiters", {})
    out: dict[str, dict[str, Any]] = {}
    for name, p in config.policies.items():
        kind = _KINDS.get(p.kind, p.kind)
        entry: dict[str, Any] = {"policyKind": kind}
        if isinstance(p, RatePolicy):
            raw = limiters.get(name, {}) if isinstance(limiters, Mapping) else {}
            spec = _js({**raw, "prefix": redact(p.prefix) or "__redacted__"})
            entry["spec"] = dict(sorted(spec.items()))
            entry["strategy"] = {"name": p.strategy.kind, "limit": _js(p.strategy.limit_value), "ttlMs": 0}
            entry["luaSha1"] = load_manifest()[p.strategy.check_transform].sha
        out[name] = entry
    return out


class _Ring:
    __slots__ = ("created", "dropped", "events")

    def __init__(self, created: int) -> None:
        self.created = created
        self.events: list[tuple[Any, ...]] = []
        self.dropped = 0


T = TypeVar("T")


class _Drained(Generic[T]):
    """A recorder figure read (or written, as when it was a plain attribute) after draining the tap the
    recorder is a sink of, so it includes every decision made so far."""

    def __init__(self, field: str, doc: str) -> None:
        self.field = field
        self.__doc__ = doc

    def __get__(self, recorder: CaptureRecorder | None, owner: object = None) -> T:
        if recorder is None:  # on the class: the descriptor itself (its docstring, for help())
            return self  # type: ignore[return-value]
        recorder.pending()
        return getattr(recorder, self.field)  # type: ignore[no-any-return]

    def __set__(self, recorder: CaptureRecorder, value: T) -> None:
        recorder.pending()
        with recorder._lock:
            setattr(recorder, self.field, value)


class CaptureRecorder:
    """The capture recorder, a sink of the service's decision tap (:func:`attach_capture` registers it):
    the tap hands it the decisions in batches (``absorb``), so no event object is built per decision for
    it. Every read of its state (``drain``, ``expire``, ``tallies`` and the counters) first drains the
    tap, so it includes every decision made so far. Called with one event (``recorder(event)``) it
    records that event at once (an inline observer, as before it was a sink)."""

    def __init__(self, capture: CaptureConfig, config: PolicyConfig) -> None:
        self.config = capture
        self.redact = Redactor(capture.redaction_mode, capture.redaction_secret)
        self.policies = policy_registry(config, self.redact)
        self._tallies: dict[str, list[int]] = {name: [0, 0] for name in config.policies}
        self._rings: dict[tuple[str, str], _Ring] = {}
        self._scopes: dict[str, list[tuple[str, str]]] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # raw key -> (scope, keyRef), bounded
        self._skipped = 0
        self._faults = 0
        self._evicted = 0
        self._lock = threading.Lock()  # a batch and a read never interleave (a tap drains on any thread)
        #: drains the tap this recorder is a sink of (set by :func:`attach_capture`)
        self.pending: Callable[[], None] = lambda: None
        mode = capture.tenant_from
        delim = capture.tenant_delimiter
        if mode == "key":
            self._tenant: Callable[[str], str] | None = lambda key: key
        elif mode == "key-prefix":
            self._tenant = lambda key: key.split(delim, 1)[0]
        else:
            self._tenant = None

    tallies: _Drained[dict[str, list[int]]] = _Drained(
        "_tallies",
        "Allowed and denied consuming decisions per policy (``[allowed, denied]``), never written.",
    )
    skipped: _Drained[int] = _Drained("_skipped", "Events whose key names no tenant.")
    faults: _Drained[int] = _Drained(
        "_faults", "Events dropped by a redaction collision or an unexpected fault."
    )
    evicted_events: _Drained[int] = _Drained("_evicted", "Events of scopes evicted at ``maxScopes``.")

    def __call__(self, event: EventFields) -> None:
        """Record one event now (a ``DecisionEvent``, or its fields as a plain tuple)."""
        with self._lock:
            self._one(event)

    def absorb(self, events: Sequence[EventFields]) -> None:
        """A batch of the tap's decisions, in order (the recorder as a sink)."""
        one = self._one
        with self._lock:
            for e in events:
                one(e)

    def _one(self, e: EventFields) -> None:
        try:
            self._record(e)
        except Exception:
            self._faults += 1

    def _record(self, e: EventFields) -> None:
        """One decision's fields (``DecisionEvent``'s order: the event itself or a plain tuple)."""
        policy, kind, op, key, cost, allowed, limit, remaining, reset_at, retry, at = e[:11]
        if op not in CONSUMING:
            return
        tally = self._tallies.get(policy)
        if tally is None:  # a policy added by a reload: recorded, without a spec (not replayable)
            tally = self._tallies[policy] = [0, 0]
            self.policies[policy] = {"policyKind": _EVENT_KINDS.get(kind, kind)}
        tally[0 if allowed else 1] += 1
        if self._tenant is None:
            return
        refs: tuple[str, ...] | None = self._keys.get(key)
        if refs is None:
            refs = self._resolve(key)
        if not refs:
            return
        slot = (refs[0], policy)
        ring = self._rings.get(slot)
        if ring is None:
            ring = self._open(slot, at)
        if len(ring.events) >= self.config.ring_size:
            ring.dropped += 1
            return
        ring.events.append((refs[1], cost, at, allowed, limit, remaining, reset_at, retry))

    def _resolve(self, key: str) -> tuple[str, str] | tuple[()]:
        """``(scope, keyRef)`` of a raw key, remembered for the next events of that key (at most
        ``_KEY_MEMORY`` keys, oldest forgotten first); ``()`` when this event is skipped (the key names no
        tenant) or refused (a redaction collision); neither is remembered, so each occurrence counts."""
        assert self._tenant is not None
        tenant = self._tenant(key)
        if not tenant:
            self._skipped += 1
            return ()
        scope, ref = self.redact(tenant), self.redact(key)
        if scope is None or ref is None:
            self._faults += 1
            return ()
        keys = self._keys
        if len(keys) >= _KEY_MEMORY:
            del keys[next(iter(keys))]
        out = keys[key] = (scope, ref)
        return out

    def _open(self, slot: tuple[str, str], at: int) -> _Ring:
        scope = slot[0]
        slots = self._scopes.get(scope)
        if slots is None:
            if len(self._scopes) >= self.config.max_scopes:
                oldest = next(iter(self._scopes))
                for old in self._scopes.pop(oldest):
                    gone = self._rings.pop(old)
                    self._evicted += len(gone.events) + gone.dropped
            slots = self._scopes[scope] = []
        slots.append(slot)
        ring = self._rings[slot] = _Ring(at)
        return ring

    def drain(self) -> list[dict[str, Any]]:
        """Every ring as a segment document (the tap drained first); the rings restart empty (the
        tallies persist)."""
        self.pending()
        with self._lock:
            rings, self._rings, self._scopes = self._rings, {}, {}
        return [self._segment(slot, ring) for slot, ring in rings.items() if ring.events or ring.dropped]

    def expire(self, now_ms: int) -> int:
        """Discard rings older than the retention TTL (the in-memory mode; the tap drained first);
        returns how many."""
        self.pending()
        ttl = self.config.ttl_ms
        with self._lock:
            old = [slot for slot, ring in self._rings.items() if now_ms - ring.created > ttl]
            for slot in old:
                del self._rings[slot]
                slots = self._scopes.get(slot[0])
                if slots is not None:
                    slots.remove(slot)
                    if not slots:
                        del self._scopes[slot[0]]
        return len(old)

    def _segment(self, slot: tuple[str, str], ring: _Ring) -> dict[str, Any]:
        scope, policy = slot
        info = self.policies.get(policy, {"policyKind": "unknown"})
        seg: dict[str, Any] = {
            "policy": policy,
            "policyKind": info["policyKind"],
            "scope": scope,
            "createdAt": ring.created,
            "redactionMode": self.config.redaction_mode,
            "clock": "system",
            "count": len(ring.events),
            "dropped": ring.dropped,
        }
        for k in ("spec", "strategy", "luaSha1"):
            if k in info:
                seg[k] = info[k]
        seg["events"] = [
            {
                "keyRef": ref,
                "cost": cost,
                "at": at,
                "decision": {
                    "allowed": bool(allowed),
                    "limit": limit,
                    "remaining": remaining,
                    "resetAt": reset_at,
                    "retryAfterMs": retry,
                },
            }
            for ref, cost, at, allowed, limit, remaining, reset_at, retry in ring.events
        ]
        return seg


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CaptureFlusher:
    """Drains a recorder into a :class:`SegmentStore` every ``interval_s`` (non-overlapping: a tick is
    skipped while a flush runs) and once at :meth:`aclose`. A segment that fails to write is dropped
    and logged (at most once a minute). Without a store it only discards expired in-memory rings."""

    def __init__(
        self,
        recorder: CaptureRecorder,
        store: SegmentStore | None,
        *,
        interval_s: float = FLUSH_INTERVAL_S,
        now_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.recorder = recorder
        self.store = store
        self.interval_s = interval_s
        self.now_ms = now_ms
        self.written = 0
        self.failed = 0
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._last_error = -60.0
        #: removes the recorder from the tap (set by :func:`attach_capture`; called by :meth:`aclose`)
        self.unregister: Callable[[], None] = lambda: None

    def start(self) -> None:
        """Start the periodic flush on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="capture-flush")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def flush(self) -> int:
        """One flush now (skipped, returning 0, while another runs); returns segments written."""
        if self._busy:
            return 0
        self._busy = True
        try:
            if self.store is None:
                self.recorder.expire(self.now_ms())
                return 0
            segments = self.recorder.drain()
            if not segments:
                return 0
            return await asyncio.to_thread(self._write, segments)
        finally:
            self._busy = False

    def _write(self, segments: list[dict[str, Any]]) -> int:
        assert self.store is not None
        done = 0
        try:
            self.store.sweep()
        except OSError:
            pass  # a directory that cannot be listed fails the writes below, which are logged
        for seg in segments:
            try:
                self.store.write(seg, sweep=False)
                done += 1
            except Exception as exc:
                self.failed += 1
                now = time.monotonic()
                if now - self._last_error >= 60.0:
                    self._last_error = now
                    log.error(
                        "capture: a segment could not be written to %s and was dropped (%d so far): %s: %s",
                        self.store.dir,
                        self.failed,
                        type(exc).__name__,
                        getattr(exc, "strerror", None) or str(exc)[:200],
                    )
        self.written += done
        return done

    async def aclose(self) -> None:
        """Stop the timer and run the final flush."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.unregister()
        deadline = time.monotonic() + 30.0  # a flush stuck on a dead disk does not hold shutdown forever
        while self._busy and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self.flush()


class _Tapped(Protocol):
    """A service with a decision tap (``RateLimiterService``)."""

    @property
    def tap(self) -> DecisionTap: ...


def banner(capture: CaptureConfig) -> str:
    """The startup warning that decisions are being recorded."""
    durable = capture.durable_dir if capture.durable_dir is not None else "in-memory only"
    scoped = "counts-only" if capture.counts_only else "tenant-scoped"
    return (
        f"⚠ capture ON — recording decisions (PII): redaction={capture.redaction_mode}, durable={durable}, "
        f"{scoped}, ttl={capture.ttl_ms}ms"
    )


def attach_capture(
    service: _Tapped, config: PolicyConfig, *, interval_s: float = FLUSH_INTERVAL_S
) -> CaptureFlusher | None:
    """Register a :class:`CaptureRecorder` on ``service``'s decision tap per ``config.capture`` and
    return its flusher (call ``start()`` on the event loop, ``aclose()`` at shutdown: the final flush
    also unregisters the recorder). None when capture is off."""
    capture = config.capture
    if capture is None:
        return None
    recorder = CaptureRecorder(capture, config)
    store = None
    if capture.durable_dir is not None and capture.encryption_key is not None:
        store = SegmentStore(capture.durable_dir, capture.encryption_key, capture.ttl_ms, _wall_ms)
    flusher = CaptureFlusher(recorder, store, interval_s=interval_s)
    flusher.unregister = service.tap.register_sink(recorder)
    recorder.pending = service.tap.drain
    return flusher
