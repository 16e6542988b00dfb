"""The snapshot executor: the same Lua, run under lupa against state a non-Redis store transports.

A snapshot store (Postgres, DynamoDB) implements a tiny transport, :class:`StateStore`: ``begin(keys)``
reads the JSON state of every key a transform touches (all of them are in KEYS) under the store's own
guard (a Postgres advisory lock, a DynamoDB version), and the returned :class:`StateTxn` either
``commit(changes)`` atomically (``False`` when a compare-and-set lost a race) or ``close()`` without
writing. :class:`SnapshotStore` turns any StateStore into a ``ScriptStore``: per decision it loads the
keys into a private :class:`~throttlekit._lupa.LuaEngine`, runs the transform, dumps the keys and writes
back only what changed; a lost race retries (bounded, then :class:`ConcurrentUpdateError`). Read-only
transforms never write. No algorithm lives here: codecs translate layouts, the Lua decides.

Expiry: a record carries its absolute deadline (epoch ms on the store's clock, ``None`` = persistent);
it is live while ``now <= deadline`` (as in Redis and the memory store). Transports return every stored
record; this module alone decides liveness (lazy expiry), and stores sweep expired records periodically.

Time: the clock is read **after** ``begin`` returns, i.e. once the guard is held and the state read. The
writer whose state we read took its clock before it wrote, so (on one host's clock) a decision's ``now``
is never older than the state it starts from, as with Redis ``TIME`` inside a script. Reading the clock
before the read let a decision delayed between the two (a lock wait, a slow GetItem) apply an old ``now``
to newer state: at a fixedWindow boundary it reset the new window's count to a fresh count of the old
window (expiring at once), so the new window admitted more than its limit (152 of 150 in the fleet test).

One call into Lua per decision: :meth:`~throttlekit._lupa.LuaEngine.step` (the shim's ``step``) loads the
live records into the engine's empty keyspace, runs the transform, reports per key whether it is as
loaded (no write), gone (a delete) or its new layout, and empties the keyspace again on every exit, a
script error included. It used to be four crossings (load, run, dump, flush), each ~1 us of lupa call
overhead in a tight loop and two to three times that in place, after a network wait. One key (the
common case) is :meth:`SnapshotExecutor.bind1`: the same step with the transform's constant arguments
fixed in Lua once, and no record, change or list objects; a store's bound call runs it directly.

Threading: that one call is atomic by itself (lupa serialises calls into one runtime), so the engine
needs no lock of ours, and no lock is ever held during I/O. The async path runs Lua on the event-loop
thread (see docs/ARCHITECTURE.md, "Threads and event loops").
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from .._clock import SERVER_TIME, Clock, SystemClock
from .._errors import ConcurrentUpdateError, ScriptError, as_script_error
from .._loader import Transform, load_manifest
from .._lupa import LuaEngine, step_result
from ._codecs import CodecError, decode, encode, encode_string
from .base import AsyncBoundCall, BoundCall, EvalBinding, Last, Reply

__all__ = [
    "AsyncStateStore",
    "AsyncStateTxn",
    "Change",
    "Outcome",
    "Record",
    "SnapshotExecutor",
    "SnapshotStore",
    "StateStore",
    "StateTxn",
]

#: ``expires_at`` of a persistent record in stores whose column is NOT NULL (max BIGINT).
NEVER = 9_223_372_036_854_775_807


class Record(NamedTuple):
    """One stored key as read: its JSON ``state``, absolute ``expires_at_ms`` (None = never), ``version``.
    (Immutable; a named tuple rather than a frozen dataclass: one is built per key per decision.)"""

    state: str
    expires_at_ms: int | None
    version: int = 0


#: What one key's decision writes (:meth:`SnapshotExecutor.run1`): ``True`` nothing (read-only, or the
#: state is as read), ``None`` a delete, else ``(state, expires_at_ms)`` (None: persistent) to store.
Outcome = tuple[str, int | None] | Literal[True] | None


class Change(NamedTuple):
    """A write: ``state`` None deletes the key; ``read`` is what ``begin`` saw (None: absent)."""

    key: str
    state: str | None
    expires_at_ms: int | None
    read: Record | None


class StateTxn(Protocol):
    """One attempt at one decision, opened by :meth:`StateStore.begin`. Used by one thread."""

    @property
    def records(self) -> Sequence[Record | None]:
        """Stored records in the order of ``keys`` (None: missing; expired ones included)."""
        ...

    def commit(self, changes: Sequence[Change]) -> bool:
        """Write ``changes`` atomically and end the attempt; False if another writer won (then retry).
        An empty ``changes`` just ends the attempt (releasing any lock). Raises ``StoreError``."""
        ...

    def close(self) -> None:
        """End the attempt without writing (after an error). Idempotent, never raises."""
        ...


class StateStore(Protocol):
    """Transport of JSON state. Implementations must be thread-safe; expiry is theirs (lazy + sweep)."""

    def begin(self, keys: Sequence[str], write: bool) -> StateTxn:
        """Read ``keys`` (expired records included); with ``write`` under the guard that makes ``commit``
        atomic."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (absent: no-op)."""
        ...


class AsyncStateTxn(Protocol):
    """The asyncio twin of :class:`StateTxn`."""

    @property
    def records(self) -> Sequence[Record | None]: ...

    async def commit(self, changes: Sequence[Change]) -> bool: ...

    async def close(self) -> None: ...


class AsyncStateStore(Protocol):
    """The asyncio twin of :class:`StateStore`."""

    async def begin(self, keys: Sequence[str], write: bool) -> AsyncStateTxn: ...

    async def delete(self, key: str) -> None: ...


class SnapshotExecutor:
    """Runs one transform against a snapshot: load the records, run the Lua, diff, encode the changes."""

    def __init__(self, runtime: str | None = None) -> None:
        self.transforms = load_manifest()
        self.engine = LuaEngine(list(self.transforms.values()), max_keys=1024, runtime=runtime)
        self._slots_arg: dict[str, int | None] = {
            n: (t.argv.index("buckets") - 1 if "buckets" in t.argv else None)
            for n, t in self.transforms.items()
        }
        self._run1: dict[str, Callable[..., tuple[list[Any], Outcome]]] = {}  # run1's, made on first use

    def transform(self, name: str) -> Transform:
        try:
            return self.transforms[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None

    def run(
        self,
        t: Transform,
        keys: Sequence[str],
        records: Sequence[Record | None],
        clock_ms: int,
        now_ms: float,
        args: Sequence[Any],
    ) -> tuple[list[Any], list[Change]]:
        """Reply items and the changed keys (empty for read-only transforms and untouched state).
        ``records`` are as stored: the expired ones (``clock_ms`` past their deadline) count as absent, but
        a change to such a key still carries the record it replaces (its version, for compare-and-set)."""
        if len(keys) == 1:  # the common case: one key, its own step (what a bound call runs directly)
            r = records[0]
            if r is None:
                reply, out = self.run1(t, keys[0], None, None, clock_ms, (now_ms, *args))
            else:
                reply, out = self.run1(t, keys[0], r.state, r.expires_at_ms, clock_ms, (now_ms, *args))
            if out is True:
                return reply, []
            if out is None:
                return reply, [Change(keys[0], None, None, r)]
            return reply, [Change(keys[0], out[0], out[1], r)]
        idx = self._slots_arg[t.name]
        slots = 0 if idx is None else _slots(args, idx)
        states: list[tuple[str, Any, int | None] | None] = []
        try:
            for r in records:  # a loop, not comprehensions: this runs per decision (Python 3.11 frames)
                if r is None or (r.expires_at_ms is not None and clock_ms > r.expires_at_ms):
                    states.append(None)  # absent or expired: the transform starts from nothing
                else:
                    states.append((*decode(t.state, r.state, slots), r.expires_at_ms))
        except CodecError as exc:
            raise ScriptError(t.name, t.sha, f"stored state does not decode as {t.state!r}: {exc}") from None
        # load, run, dump and flush in one call into Lua (atomic by itself; the engine is empty after it)
        reply, after = self.engine.step(t.name, clock_ms, keys, states, (now_ms, *args), not t.read_only)
        changes: list[Change] = []
        for key, r, now in zip(keys, records, after):
            if now is True:  # as loaded (or absent before and after): nothing to write
                continue
            if now is None:
                changes.append(Change(key, None, None, r))
                continue
            changes.append(
                Change(key, self._encode(t, now, slots), None if now[2] is None else int(now[2]), r)
            )
        return reply, changes

    def _encode(self, t: Transform, layout: tuple[str, Any, int | None], slots: int) -> str:
        try:
            return encode(t.state, (layout[0], layout[1]), slots)
        except CodecError as exc:
            raise ScriptError(t.name, t.sha, f"state does not encode as {t.state!r}: {exc}") from None

    def run1(
        self,
        t: Transform,
        key: str,
        state: str | None,
        expires_at_ms: int | None,
        clock_ms: int,
        argv: Sequence[Any],
    ) -> tuple[list[Any], Outcome]:
        """:meth:`run` on one key, from its stored ``state`` and ``expires_at_ms`` (``state`` None:
        absent) and the whole ARGV (``now_ms`` first): the reply and the :data:`Outcome`. Runs
        :meth:`bind1` of ``t`` with no constant (made on first use)."""
        run = self._run1.get(t.name)
        if run is None:
            run = self._run1[t.name] = self.bind1(t, ())
        return run(key, state, expires_at_ms, clock_ms, argv[0], argv[1:])

    def bind1(self, t: Transform, params: Sequence[Any]) -> Callable[..., tuple[list[Any], Outcome]]:
        """The one-key decision of ``t`` with ARGV ``[now_ms, *params, *tail]``, prepared once (the
        constants cross into Lua here: :meth:`~throttlekit._lupa.LuaEngine.bind_step_raw`):
        ``run(key, state, expires_at_ms, clock_ms, now_ms, tail) -> (reply, outcome)``. ``state`` and
        ``expires_at_ms`` are the stored record (``state`` None: absent; expired: absent too), and
        ``now_ms`` is resolved (not the sentinel). I/O-free: what both halves of a store run between
        their read and their write, with no record, change or list of its own (every one-key decision
        runs this)."""
        fixed = tuple(params)
        engine, write = self.engine, not t.read_only
        lua_step = engine.bind_step_raw(t.name, fixed, len(t.argv) - 1 - len(fixed))
        lua_error, table = engine.lua_error, engine.table
        idx, family, name, sha = self._slots_arg[t.name], t.state, t.name, t.sha

        def run(
            key: str,
            state: str | None,
            expires_at_ms: int | None,
            clock_ms: int,
            now_ms: float,
            tail: Sequence[Any],
        ) -> tuple[list[Any], Outcome]:
            slots = 0 if idx is None else _slots((*fixed, *tail), idx)
            # load, run, dump and flush in one call into Lua (atomic by itself; the engine is empty after it)
            try:
                if state is None or (expires_at_ms is not None and clock_ms > expires_at_ms):
                    out = lua_step(
                        clock_ms, write, key, False, None, None, now_ms, *tail
                    )  # absent or expired
                else:
                    try:
                        kind, value = decode(family, state, slots)
                    except CodecError as exc:
                        raise ScriptError(
                            name, sha, f"stored state does not decode as {family!r}: {exc}"
                        ) from None
                    if kind != "string":
                        value = table(kind, value)
                    out = lua_step(clock_ms, write, key, kind, value, expires_at_ms, now_ms, *tail)
            except lua_error as exc:
                raise as_script_error(name, sha, exc) from None
            if write and out[0] == "string" and out[3] is True:  # the common case, read inline as
                # step_result would: a new string value and an array of numbers and strings as the reply
                try:
                    blob = encode_string(family, out[1], slots)
                except CodecError as exc:
                    raise ScriptError(name, sha, f"state does not encode as {family!r}: {exc}") from None
                return list(out[4:]), (blob, None if out[2] is None else int(out[2]))
            reply, now = step_result(out, write)
            if now is True or now is None:
                return reply, now
            try:
                blob = encode(family, (now[0], now[1]), slots)
            except CodecError as exc:
                raise ScriptError(name, sha, f"state does not encode as {family!r}: {exc}") from None
            return reply, (blob, None if now[2] is None else int(now[2]))

        return run


def _slots(args: Sequence[Any], idx: int) -> int:
    """S, the ``buckets`` argument of a ring transform, at ``args[idx]`` (ARGV after ``now_ms``)."""
    try:
        return int(args[idx])
    except (TypeError, ValueError, IndexError):  # a bad argument: the Lua reports it
        return 0


def _backoff_s(attempt: int, took_s: float) -> float:
    """Full-jitter backoff before retry ``attempt`` (1-based), over a window of 1, 2, 4, then 8 times the
    lost attempt's duration ``took_s`` (at least 1 ms, the window at most 250 ms). Scaling by the attempt's
    own duration spreads the contenders over the time a read-and-write really takes on this store and
    this machine: a fixed 1-32 ms window stops separating them once an attempt takes longer (a loaded
    host, a slow endpoint), and they keep colliding until the retries run out."""
    window = min(0.25, max(0.001, took_s) * float(min(8, 1 << (attempt - 1))))
    return random.random() * window


class _KeyLocks:
    """Per-key locks that exist only while someone holds or waits on them (upstream's per-key promise chain):
    calls in one process on one key queue here instead of racing in the store (CAS conflicts, or pooled
    connections parked on the same advisory lock)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._sync: dict[tuple[str, ...], list[Any] | None] = {}
        self._async: dict[tuple[str, ...], list[Any]] = {}

    def _enter(self, table: dict[tuple[str, ...], list[Any]], key: tuple[str, ...], factory: Any) -> Any:
        with self._guard:
            entry = table.get(key)
            if entry is None:
                entry = table[key] = [factory(), 0]
            entry[1] += 1
            return entry[0]

    def _leave(self, table: dict[tuple[str, ...], list[Any]], key: tuple[str, ...]) -> None:
        with self._guard:
            entry = table[key]
            entry[1] -= 1
            if entry[1] == 0:
                del table[key]

    def acquire(self, keys: Sequence[str]) -> tuple[str, ...]:
        """Queue behind in-process calls on ``keys``; pass the result to :meth:`release` (sync API; a plain
        pair of calls rather than a context manager: this is on every decision's path). A key's entry is
        None while one caller holds it and nobody waits (no lock object at all); the first caller that
        has to wait makes it ``[lock, callers]`` (the holder included), the lock taken on behalf of the
        holder, who hands it over on release."""
        key = tuple(keys)
        guard, table = self._guard, self._sync
        guard.acquire()  # acquire/release, not ``with``: half the instructions (~1,000 per decision)
        try:
            if key not in table:  # nobody holds or waits: held from now on
                table[key] = None
                return key
            entry = table[key]
            if entry is None:
                lock = threading.Lock()
                lock.acquire()  # the holder's: released when it hands the key over
                entry = table[key] = [lock, 1]
            entry[1] += 1
        finally:
            guard.release()
        try:
            entry[0].acquire()
        except BaseException:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0 and table.get(key) is entry:  # the key was handed over, to nobody
                    del table[key]
            raise
        return key

    def release(self, key: tuple[str, ...]) -> None:
        guard, table = self._guard, self._sync
        guard.acquire()  # as in acquire
        try:
            entry = table.pop(key)
            if entry is None:  # nobody waited
                return
            entry[1] -= 1
            if entry[1] == 0:  # the last waiter gave up: forget the key and its lock
                return
            table[key] = entry
        finally:
            guard.release()
        entry[0].release()  # hand over to one waiter, which now holds the key

    async def aacquire(self, keys: Sequence[str]) -> tuple[tuple[str, ...], Any]:
        """The asyncio twin of :meth:`acquire` (an ``asyncio.Lock`` per key set); see :meth:`arelease`."""
        key = tuple(keys)
        lock = self._enter(self._async, key, asyncio.Lock)
        try:
            await lock.acquire()  # a fresh or free lock: at once, without yielding to the loop
        except BaseException:
            self._leave(self._async, key)
            raise
        return key, lock

    def arelease(self, held: tuple[tuple[str, ...], Any]) -> None:
        key, lock = held
        with self._guard:
            entry = self._async[key]
            entry[1] -= 1
            if entry[1] == 0:
                del self._async[key]
        lock.release()


class SnapshotStore(EvalBinding):
    """A ``ScriptStore`` (and ``AsyncScriptStore``) over a :class:`StateStore` transport.

    Subclasses set ``_transport`` (sync) and/or implement ``_atransport()`` (async) and call
    ``super().__init__``. ``max_retries`` bounds compare-and-set retries per decision (the attempt count is
    ``max_retries + 1``); stores that lock (Postgres) never lose a race, so never retry.
    """

    prefix: str
    _transport: StateStore

    def __init__(self, *, clock: Clock | None, prefix: str, max_retries: int, runtime: str | None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.prefix = prefix
        self.max_retries = max_retries
        self._exec = SnapshotExecutor(runtime)
        self._keylocks = _KeyLocks()
        #: network round trips so far (approximate under threads; for benchmarks and tests)
        self.round_trips = 0

    async def _atransport(self) -> AsyncStateStore:
        raise NotImplementedError

    def bind(self, name: str, params: Sequence[Any], *, guarded: bool = True) -> BoundCall:
        """:meth:`eval` of ``name`` on one key with ``params`` fixed, the transform looked up once (an
        unknown name raises here); the call passes the remaining ARGV (a cost, or several per-request values). ``guarded`` changes nothing: every error here is already a
        ``ThrottleKitError``."""
        t = self._exec.transform(name)
        fixed = tuple(params)
        evaluate = self._eval
        if t.read_only:

            def read(key: str, now_ms: float, *last: Last) -> Reply:
                return evaluate(t, (key,), now_ms, (*fixed, *last))

            return read
        keylocks = self._keylocks

        def call(key: str, now_ms: float, *last: Last) -> Reply:
            keys = (key,)
            held = keylocks.acquire(keys)
            try:
                return evaluate(t, keys, now_ms, (*fixed, *last))
            finally:
                keylocks.release(held)

        return call

    def abind(self, name: str, params: Sequence[Any]) -> AsyncBoundCall:
        """The asyncio twin of :meth:`bind` (:meth:`aeval` with the transform looked up once)."""
        t = self._exec.transform(name)
        fixed = tuple(params)
        evaluate = self._aeval
        if t.read_only:

            async def read(key: str, now_ms: float, *last: Last) -> Reply:
                return await evaluate(t, (key,), now_ms, (*fixed, *last))

            return read
        keylocks = self._keylocks

        async def call(key: str, now_ms: float, *last: Last) -> Reply:
            keys = (key,)
            held = await keylocks.aacquire(keys)
            try:
                return await evaluate(t, keys, now_ms, (*fixed, *last))
            finally:
                keylocks.arelease(held)

        return call

    def eval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Sequence[Any]:
        """Run ``name`` atomically on ``keys``. Raises ``StoreError`` (incl. ``ConcurrentUpdateError``)."""
        t = self._exec.transform(name)
        if t.read_only:
            return self._eval(t, keys, now_ms, args)
        held = self._keylocks.acquire(keys)
        try:
            return self._eval(t, keys, now_ms, args)
        finally:
            self._keylocks.release(held)

    def _keyless(self, t: Transform, now_ms: float, args: Sequence[Any]) -> Sequence[Any]:
        """A transform with no keys (a pure computation such as ``lp_solve``) reads and writes no state:
        it runs in the executor without a transaction."""
        clock_ms = int(self.clock.now_ms())
        return self._exec.run(t, (), (), clock_ms, clock_ms if now_ms == SERVER_TIME else now_ms, args)[0]

    def _eval(self, t: Transform, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Sequence[Any]:
        if not keys:
            return self._keyless(t, now_ms, args)
        transport = self._transport
        retries = self.max_retries
        started = 0.0
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(_backoff_s(attempt, time.monotonic() - started))
            if retries:
                started = time.monotonic()
            txn = transport.begin(keys, not t.read_only)
            try:
                clock_ms = int(self.clock.now_ms())  # after the read: see the module doc (Time)
                now = clock_ms if now_ms == SERVER_TIME else now_ms
                reply, changes = self._exec.run(t, keys, txn.records, clock_ms, now, args)
                if txn.commit(changes):
                    return reply
            finally:
                txn.close()
        raise ConcurrentUpdateError(keys[0] if keys else "", self.max_retries + 1)

    def eval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        """One decision per key set, in input order, each its own transaction. An explicit ``now_ms`` is
        shared; ``SERVER_TIME`` resolves per decision, after its read (see the module doc: Time)."""
        return [self.eval(name, ks, now_ms, args) for ks in keys]

    async def aeval(
        self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]
    ) -> Sequence[Any]:
        """The asyncio twin of :meth:`eval` (Lua runs on the loop thread, between the two I/O steps)."""
        t = self._exec.transform(name)
        if t.read_only:
            return await self._aeval(t, keys, now_ms, args)
        held = await self._keylocks.aacquire(keys)
        try:
            return await self._aeval(t, keys, now_ms, args)
        finally:
            self._keylocks.arelease(held)

    async def _aeval(
        self, t: Transform, keys: Sequence[str], now_ms: float, args: Sequence[Any]
    ) -> Sequence[Any]:
        if not keys:
            return self._keyless(t, now_ms, args)
        transport = await self._atransport()
        retries = self.max_retries
        started = 0.0
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(_backoff_s(attempt, time.monotonic() - started))
            if retries:
                started = time.monotonic()
            txn = await transport.begin(keys, not t.read_only)
            try:
                clock_ms = int(self.clock.now_ms())  # after the read: see the module doc (Time)
                now = clock_ms if now_ms == SERVER_TIME else now_ms
                reply, changes = self._exec.run(t, keys, txn.records, clock_ms, now, args)
                if await txn.commit(changes):
                    return reply
            finally:
                await txn.close()
        raise ConcurrentUpdateError(keys[0] if keys else "", self.max_retries + 1)

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        """See :meth:`eval_many`; the key sets run concurrently (each its own transaction)."""
        calls: list[Awaitable[Sequence[Any]]] = [self.aeval(name, ks, now_ms, args) for ks in keys]
        return list(await asyncio.gather(*calls))

    async def aping(self) -> None:
        """Read one (absent) key through the transport: reachable, authorised and the table exists.
        Stores override this with a check that names what is wrong."""
        transport = await self._atransport()
        txn = await transport.begin([f"{self.prefix}:__throttlekit_ping__"], False)
        await txn.close()

    def delete(self, key: str) -> None:
        self._transport.delete(key)

    async def adelete(self, key: str) -> None:
        await (await self._atransport()).delete(key)
