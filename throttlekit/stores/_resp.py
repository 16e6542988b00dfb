"""The one Redis command path, without I/O: RESP framing, reply classification and EVALSHA-or-load.

Every Redis store (the sync :class:`~throttlekit.RedisStore`, the asyncio
:class:`~throttlekit.stores.PipelinedRedisStore` and the redis-py based
:class:`~throttlekit.AsyncRedisStore`) frames commands with :func:`pack` / :func:`bulk` /
:func:`evalsha_head`, turns an error reply into an exception with :func:`error`, and recovers a
``NOSCRIPT`` with the :func:`settle` generator (SCRIPT LOAD, then one resend of the commands that missed),
which each store drives with its own transport (:func:`drive` for blocking I/O, :func:`adrive` for asyncio).

Error replies: a code in :data:`UNAVAILABLE` (``BUSY``, ``OOM``, ``LOADING``, ``READONLY``, ...) means the
store cannot serve right now and becomes :class:`~throttlekit.StoreError`, like a refused connection;
``WRONGTYPE`` becomes :class:`~throttlekit.WrongTypeError` carrying the call's keys; any other error reply
is the script's own failure, :class:`~throttlekit.ScriptError`. See ``docs/stores.md`` (Redis).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Optional

import hiredis

from .._clock import SERVER_TIME
from .._errors import ScriptError, StoreError, ThrottleKitError, WrongTypeError
from .._loader import Transform
from .base import Last

__all__ = [
    "UNAVAILABLE",
    "ReplyError",
    "adrive",
    "bulk",
    "drive",
    "error",
    "evalsha_batch",
    "evalsha_common",
    "evalsha_head",
    "from_redis_py",
    "is_error",
    "pack",
    "settle",
]

ReplyError = hiredis.ReplyError
_pack: Any = hiredis.pack_command  # its stub types the argument as a 1-tuple

#: Error-reply codes that mean "the store cannot serve now" (a store outage, not a script bug).
UNAVAILABLE = frozenset(
    {
        "BUSY",
        "OOM",
        "LOADING",
        "READONLY",
        "MASTERDOWN",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "MISCONF",
        "NOREPLICAS",
        "NOAUTH",
        "WRONGPASS",
        "NOPERM",
        "MOVED",
        "ASK",
    }
)


def pack(*args: Any) -> bytes:
    """One command as RESP (an array of bulk strings; ints as decimal, floats as ``repr``, str UTF-8)."""
    return _pack(args)  # type: ignore[no-any-return]


def bulk(v: Any) -> bytes:
    """One RESP bulk string, encoded exactly as :func:`pack` encodes an argument."""
    b = v if v.__class__ is bytes else (v if v.__class__ is str else repr(v)).encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


def evalsha_head(t: Transform, nargs: int) -> bytes:
    """``EVALSHA <sha> <numkeys>`` with the array header for ``numkeys`` keys and ``nargs`` ARGV items:
    append the keys' and arguments' :func:`bulk` strings to get the whole command."""
    nkeys = len(t.keys)
    return b"*%d\r\n" % (3 + nkeys + nargs) + bulk("EVALSHA") + bulk(t.sha) + bulk(nkeys)


def evalsha_batch(t: Transform, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]) -> bytes:
    """``EVALSHA`` of ``t`` for every key set at one ``now_ms`` with the same ``args``, as one payload
    (the constant head and tail packed once; the batch paths of every store). ASCII keys are framed as
    text and encoded once (about twice as fast as per-key bytes formatting)."""
    head = evalsha_head(t, 1 + len(args))
    tail = bulk(now_ms) + b"".join(map(bulk, args))
    if len(t.keys) == 1:
        if tail.isascii():
            hs, ts = head.decode(), tail.decode()
            text = "".join([f"{hs}${len(k)}\r\n{k}\r\n{ts}" for (k,) in keys])
            if text.isascii():
                return text.encode()
        return b"".join(
            [b"%s$%d\r\n%s\r\n%s" % (head, len(kb), kb, tail) for kb in [ks[0].encode() for ks in keys]]
        )
    return b"".join([b"".join([head, *map(bulk, ks), tail]) for ks in keys])


def evalsha_common(t: Transform, params: Sequence[Any]) -> bytes:
    """The EVALSHA bytes of the common call of a single-key transform with ARGV ``[now_ms, *params, cost]``
    (the store's clock, cost 1) as a template of the key alone: ``template % (len(kb), kb)`` for the
    key's UTF-8 bytes ``kb``. A store's hot path may format it inline; :func:`evalsha_packer` does."""
    head = evalsha_head(t, len(params) + 2).replace(b"%", b"%%")
    tail = (bulk(SERVER_TIME) + b"".join(map(bulk, params)) + bulk(1)).replace(b"%", b"%%")
    return head + b"$%d\r\n%b\r\n" + tail


def evalsha_packer(t: Transform, params: Sequence[Any]) -> Callable[[str, float, Last], bytes]:
    """``(key, now_ms, cost) -> EVALSHA bytes`` for a single-key transform with ARGV ``[now_ms, *params,
    cost]``: the constant parts are packed once, and the common call (the store's clock, cost 1) has its
    whole tail packed once (:func:`evalsha_common`), so a call formats only the key. ``cost`` (the last
    ARGV) may also be text (str or bytes: a concurrency guard's release ticket)."""
    head = evalsha_head(t, len(params) + 2)
    mid = b"".join(map(bulk, params))
    common = evalsha_common(t, params)

    def packed(key: str, now_ms: float, cost: Last) -> bytes:
        kb = key.encode()
        if now_ms == SERVER_TIME and cost == 1:
            return common % (len(kb), kb)
        nb = repr(now_ms).encode()
        return b"%s$%d\r\n%s\r\n$%d\r\n%s\r\n%s%s" % (head, len(kb), kb, len(nb), nb, mid, bulk(cost))

    return packed


def is_error(reply: Any) -> bool:
    return reply.__class__ is ReplyError


def _code(message: str) -> str:
    return message.split(" ", 1)[0]


def error(t: Transform, reply: Any, keys: Sequence[str] = ()) -> ThrottleKitError:
    """The exception for an error reply to transform ``t`` called on ``keys``."""
    message = str(reply)
    code = _code(message)
    if code in UNAVAILABLE:
        return StoreError(f"redis: {message}")
    if code == "WRONGTYPE" or message.startswith("ERR WRONGTYPE"):
        return WrongTypeError(t.name, t.sha, message, tuple(keys))
    return ScriptError(t.name, t.sha, message)


def from_redis_py(exc: BaseException) -> Any:
    """A redis-py exception as the reply it stands for: a :data:`ReplyError` with its code restored
    (redis-py strips the code of the replies it maps to classes), or a :class:`StoreError` for a
    transport failure (refused, reset, timed out, ``LOADING``)."""
    from redis import exceptions as rx

    if isinstance(exc, rx.ResponseError):
        code = getattr(exc, "status_code", None)
        if code is None:
            code = next((c for cls, c in _REDIS_PY_CODES if isinstance(exc, getattr(rx, cls, ()))), None)
        message = str(exc)
        if code is not None and not message.startswith(code):
            message = f"{code} {message}"
        elif code is None and _code(message).upper() != _code(message):
            message = f"ERR {message}"
        return ReplyError(message)
    if isinstance(exc, rx.BusyLoadingError):
        return StoreError(f"redis: LOADING {exc}", exc)
    return StoreError(f"redis: {exc}", exc)


#: redis-py exception class name -> the reply code it stands for (versions without ``status_code``).
_REDIS_PY_CODES = (
    ("NoScriptError", "NOSCRIPT"),
    ("ReadOnlyError", "READONLY"),
    ("OutOfMemoryError", "OOM"),
    ("NoPermissionError", "NOPERM"),
    ("TryAgainError", "TRYAGAIN"),
    ("ClusterDownError", "CLUSTERDOWN"),
    ("MasterDownError", "MASTERDOWN"),
    ("MovedError", "MOVED"),
    ("AskError", "ASK"),
    ("ExecAbortError", "EXECABORT"),
)

#: What :func:`settle` asks its driver for: ``LOAD`` (send ``SCRIPT LOAD``, answer with the reply) or a
#: list of indexes (resend those commands of the batch, answer with their replies in that order).
LOAD = None
Request = Optional[list[int]]  # noqa: UP045 - a runtime alias (Python 3.10)


#: SCRIPT LOADs one call may make before its NOSCRIPT is a store fault: a SCRIPT FLUSH (or a failover to a
#: replica without the scripts) racing between the load and the resend is survived this many times.
MAX_LOADS = 3


def _noscript(r: Any) -> bool:
    return r.__class__ is ReplyError and str(r).startswith("NOSCRIPT")


def settle(
    t: Transform, replies: list[Any], keys: Sequence[Sequence[str]]
) -> Generator[Request, Any, list[Any]]:
    """EVALSHA-or-load, once for every store: given a batch's replies, load the script if any reply is
    ``NOSCRIPT`` and resend those commands, up to :data:`MAX_LOADS` times (a flush can race the resend);
    then raise the first error reply (see :func:`error`). A script the server keeps dropping is a
    :class:`StoreError` (the caller's fail mode), not a script's fault. ``keys[i]`` are the keys of
    command ``i`` (for :class:`WrongTypeError`)."""
    missing = [i for i, r in enumerate(replies) if _noscript(r)]
    for _ in range(MAX_LOADS):
        if not missing:
            break
        loaded = yield LOAD
        if loaded.__class__ is ReplyError:
            raise error(t, loaded)
        again = yield missing
        for i, r in zip(missing, again):
            replies[i] = r
        missing = [i for i in missing if _noscript(replies[i])]
    if missing:
        raise StoreError(
            f"redis: {t.name} still NOSCRIPT after {MAX_LOADS} SCRIPT LOADs: the server keeps dropping its "
            "scripts (SCRIPT FLUSH, a failover to replicas without them, or a proxy that does not keep them)"
        )
    for i, r in enumerate(replies):
        if r.__class__ is ReplyError:
            raise error(t, r, keys[i])
        if isinstance(r, StoreError):
            raise r
    return replies


def drive(gen: Generator[Request, Any, list[Any]], serve: Callable[[Request], Any]) -> list[Any]:
    """Run :func:`settle` over blocking I/O: ``serve(request)`` answers each request."""
    try:
        request = next(gen)
        while True:
            request = gen.send(serve(request))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def adrive(
    gen: Generator[Request, Any, list[Any]], serve: Callable[[Request], Awaitable[Any]]
) -> list[Any]:
    """Run :func:`settle` over asyncio: ``await serve(request)`` answers each request."""
    try:
        request = next(gen)
        while True:
            request = gen.send(await serve(request))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
