"""JSON codecs between the Redis layout a transform uses and the upstream JSON state shape.

Snapshot stores (Postgres, DynamoDB) persist one JSON document per key in the shapes of the upstream
core (spec 4.3), so a table is documented and portable. The Lua always runs against the Redis layout;
these codecs only translate layouts, they never compute anything.

===============  =============================================  ======================================
``state``        Redis layout (what the Lua reads and writes)     JSON document
===============  =============================================  ======================================
``tat``          string, TAT epoch ms ``'%.17g'``                  number
``token_bucket`` hash ``t`` tokens, ``l`` last refill (ms)       ``{"tokens": n, "last": ms}``
``window_count`` hash ``s`` window start, ``c`` count            ``{"start": ms, "count": n}``
``ring``         hash ``tick mod (S+1)`` -> ``"<tick>:<count>"``  ``{"i": [tick|-1]*(S+1), "n": [count]*(S+1)}``
``log``          zset, member ``"<t>-<n>"``, score ``t``         ascending array of timestamps (ms)
``budget``       hash ``w`` window start, ``s`` served           ``{"w": ms, "s": n}``
``departure``    string, next departure epoch ms                 number
``lease``        hash ``c`` credits, ``e`` expiry (optional)     ``{"credits": n, "expiresAt": ms|null}``
``deny_cache``   hash ``u`` until, ``l`` limit, ``r`` reset_at     ``{"until": ms, "limit": n, "resetAt": ms}``
``coordinator``  hash ``budget``, ``expiresAt``, ``rec_<ws>:<r>``  ``{"budget": n, "expiresAt": ms,
                 (units credited back by reconciler r)            "reconciled": {"<ws>:<r>": n}}``
``escrow``       hash ``balance``, ``expires_at``,               ``{"balance": n, "expiresAt": ms,
                 ``source_lease`` (the window start)             "sourceLease": ms}``
``fields``       hash of any fields (text values)                  ``{"<field>": "<text>", ...}``
``tat_or_bucket``  ``tat`` (a string) or ``token_bucket`` (a hash)    a number or ``{"tokens", "last"}``
===============  =============================================  ======================================

Numbers round-trip as doubles: encoded as JSON numbers (integers when integral), decoded to
``'%.17g'`` text, which Lua's ``tonumber`` reads back to the same double. The one-number families
(``tat``, ``departure``) pass plain decimal text through unchanged both ways (:data:`_PLAIN_NUMBER`:
an optional minus, at most 17 integer digits, an optional fraction, no exponent): the Lua writes its
numbers as ``'%.17g'``, which for a timestamp is such text and already a JSON number, and reads them
with ``tonumber``, which gives the same double for any such text; formatting a double costs about
1 us per direction in Python, once per decision. Anything else (an exponent, ``inf``, ``-0``, spaces)
takes the general path. A ring needs ``S`` (the
transform's ``buckets`` argument); a log's zset members are regenerated on decode as ``"<t>-<r>"``,
``r`` being the 1-based rank among the entries with that same timestamp: every entry stamped ``now``
is live (window > 0), so ``r <= count`` and the Lua's new members ``"<now>-<count+i>"`` never collide.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CODECS", "Codec", "CodecError", "decode", "encode", "encode_string"]

#: (kind, value) as ``LuaEngine.load``/``dump`` take and return them.
Layout = tuple[str, Any]


class CodecError(ValueError):
    """A stored document or a Redis layout does not have the shape its state family expects."""


def _num(x: float) -> int | float:
    """A JSON-friendly double: an int when integral and exact, else the float itself."""
    if math.isfinite(x) and x == int(x) and abs(x) <= 2**53:
        return int(x)
    return x


def _txt(x: Any) -> str:
    """A JSON number as Lua ``'%.17g'`` text (the upstream Redis encoding)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise CodecError(f"expected a number, got {x!r}")
    return format(x, ".17g")


def _f(s: Any) -> int | float:
    try:
        return _num(float(s))
    except (TypeError, ValueError):
        raise CodecError(f"expected numeric text, got {s!r}") from None


def _string_enc(layout: Layout, _s: int) -> Any:
    kind, value = layout
    if kind != "string":
        raise CodecError(f"expected a string key, got {kind}")
    return _f(value)


def _string_dec(doc: Any, _s: int) -> Layout:
    return "string", _txt(doc)


def _hash_codec(
    pairs: Sequence[tuple[str, str]], optional: Sequence[str] = ()
) -> tuple[Callable[[Layout, int], Any], Callable[[Any, int], Layout]]:
    """A hash of fixed fields <-> a JSON object with fixed names (``optional`` ones may be null)."""

    def enc(layout: Layout, _s: int) -> Any:
        kind, value = layout
        if kind != "hash":
            raise CodecError(f"expected a hash key, got {kind}")
        extra = set(value) - {f for f, _ in pairs}
        if extra:
            raise CodecError(f"unexpected hash field(s) {sorted(extra)}")
        out: dict[str, Any] = {}
        for field, name in pairs:
            if field in value:
                out[name] = _f(value[field])
            elif name in optional:
                out[name] = None
            else:
                raise CodecError(f"hash field {field!r} missing")
        return out

    def dec(doc: Any, _s: int) -> Layout:
        if not isinstance(doc, dict):
            raise CodecError(f"expected a JSON object, got {doc!r}")
        h: dict[str, str] = {}
        for field, name in pairs:
            v = doc.get(name)
            if v is None:
                if name in optional:
                    continue
                raise CodecError(f"missing {name!r}")
            h[field] = _txt(v)
        return "hash", h

    return enc, dec


def _ring_enc(layout: Layout, s: int) -> Any:
    kind, value = layout
    if kind != "hash":
        raise CodecError(f"expected a hash key, got {kind}")
    slots: dict[int, tuple[int | float, int | float]] = {}
    for field, v in value.items():
        tick_txt, sep, count_txt = str(v).partition(":")
        if not sep:
            raise CodecError(f"ring slot {field!r}: expected '<tick>:<count>', got {v!r}")
        try:
            slot = int(field)
        except ValueError:
            raise CodecError(f"ring slot {field!r} is not an integer") from None
        slots[slot] = (_f(tick_txt), _f(count_txt))
    size = max([s + 1, *(k + 1 for k in slots)])
    ticks: list[int | float] = [-1] * size
    counts: list[int | float] = [0] * size
    for slot, (tick, count) in slots.items():
        ticks[slot], counts[slot] = tick, count
    return {"i": ticks, "n": counts}


def _ring_dec(doc: Any, _s: int) -> Layout:
    if not isinstance(doc, dict) or not isinstance(doc.get("i"), list) or not isinstance(doc.get("n"), list):
        raise CodecError(f"expected {{'i': [...], 'n': [...]}}, got {doc!r}")
    ticks, counts = doc["i"], doc["n"]
    if len(ticks) != len(counts):
        raise CodecError("ring 'i' and 'n' differ in length")
    h = {str(k): f"{_txt(t)}:{_txt(c)}" for k, (t, c) in enumerate(zip(ticks, counts)) if t != -1}
    return "hash", h


def _log_enc(layout: Layout, _s: int) -> Any:
    kind, value = layout
    if kind != "zset":
        raise CodecError(f"expected a sorted set, got {kind}")
    return [_num(float(score)) for _, score in value]  # dump order: ascending (score, member)


def _log_dec(doc: Any, _s: int) -> Layout:
    if not isinstance(doc, list):
        raise CodecError(f"expected an array of timestamps, got {doc!r}")
    rank: dict[str, int] = {}
    members: list[tuple[str, float]] = []
    for t in sorted(doc):
        stamp = _lua_concat(t)
        rank[stamp] = rank.get(stamp, 0) + 1
        members.append((f"{stamp}-{rank[stamp]}", float(t)))
    return "zset", members


def _fields_enc(layout: Layout, _s: int) -> Any:
    kind, value = layout
    if kind != "hash":
        raise CodecError(f"expected a hash key, got {kind}")
    return {str(k): str(v) for k, v in value.items()}


def _fields_dec(doc: Any, _s: int) -> Layout:
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise CodecError(f"expected a JSON object of text values, got {doc!r}")
    return "hash", dict(doc)


_BUCKET_ENC, _BUCKET_DEC = _hash_codec((("t", "tokens"), ("l", "last")))


def _tat_or_bucket_enc(layout: Layout, s: int) -> Any:
    """A transform over a gcra key and a token-bucket key (unified_fused): each by its own layout."""
    return _string_enc(layout, s) if layout[0] == "string" else _BUCKET_ENC(layout, s)


def _tat_or_bucket_dec(doc: Any, s: int) -> Layout:
    return _BUCKET_DEC(doc, s) if isinstance(doc, dict) else _string_dec(doc, s)


def _lua_concat(x: Any) -> str:
    """A number as Lua 5.1 ``..`` renders it (``'%.14g'``), the prefix the Lua gives its members."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise CodecError(f"expected a number, got {x!r}")
    return format(x, ".14g")


def _coordinator_enc(layout: Layout, _s: int) -> Any:
    kind, value = layout
    if kind != "hash":
        raise CodecError(f"expected a hash key, got {kind}")
    out: dict[str, Any] = {}
    marks: dict[str, Any] = {}
    for field, v in value.items():
        if field in ("budget", "expiresAt"):
            out[field] = _f(v)
        elif field.startswith("rec_"):
            marks[field[4:]] = _f(v)
        else:
            raise CodecError(f"unexpected hash field {field!r}")
    for name in ("budget", "expiresAt"):
        if name not in out:
            raise CodecError(f"hash field {name!r} missing")
    out["reconciled"] = marks
    return out


def _coordinator_dec(doc: Any, _s: int) -> Layout:
    if not isinstance(doc, dict):
        raise CodecError(f"expected a JSON object, got {doc!r}")
    h: dict[str, str] = {}
    for name in ("budget", "expiresAt"):
        if doc.get(name) is None:
            raise CodecError(f"missing {name!r}")
        h[name] = _txt(doc[name])
    marks = doc.get("reconciled") or {}
    if not isinstance(marks, dict):
        raise CodecError(f"'reconciled' must be an object, got {marks!r}")
    for mark, v in marks.items():
        h["rec_" + str(mark)] = _txt(v)
    return "hash", h


class Codec:
    """One state family: ``encode(layout, S) -> JSON value`` and ``decode(JSON value, S) -> layout``."""

    __slots__ = ("decode", "encode", "name")

    def __init__(self, name: str, encode: Callable[[Layout, int], Any], decode: Callable[[Any, int], Layout]):
        self.name = name
        self.encode = encode
        self.decode = decode


#: state family (``lua/manifest.toml`` ``state``) -> codec
CODECS: dict[str, Codec] = {
    "tat": Codec("tat", _string_enc, _string_dec),
    "departure": Codec("departure", _string_enc, _string_dec),
    "token_bucket": Codec("token_bucket", *_hash_codec((("t", "tokens"), ("l", "last")))),
    "window_count": Codec("window_count", *_hash_codec((("s", "start"), ("c", "count")))),
    "budget": Codec("budget", *_hash_codec((("w", "w"), ("s", "s")))),
    "lease": Codec("lease", *_hash_codec((("c", "credits"), ("e", "expiresAt")), optional=("expiresAt",))),
    "deny_cache": Codec("deny_cache", *_hash_codec((("u", "until"), ("l", "limit"), ("r", "resetAt")))),
    "ring": Codec("ring", _ring_enc, _ring_dec),
    "coordinator": Codec("coordinator", _coordinator_enc, _coordinator_dec),
    "escrow": Codec(
        "escrow",
        *_hash_codec((("balance", "balance"), ("expires_at", "expiresAt"), ("source_lease", "sourceLease"))),
    ),
    "log": Codec("log", _log_enc, _log_dec),
    "fields": Codec("fields", _fields_enc, _fields_dec),
    "tat_or_bucket": Codec("tat_or_bucket", _tat_or_bucket_enc, _tat_or_bucket_dec),
}


#: Families stored as one JSON number: the hot path skips the ``json`` module for them.
_SCALARS = frozenset({"tat", "departure"})

#: Decimal text that is at once a JSON number, a finite double for Python and Lua alike, and not ``-0``
#: (a JSON number's integer part has no leading zero; 17 digits keep it far from overflow).
_PLAIN_NUMBER = re.compile(r"(?!-0$)-?(?:0|[1-9][0-9]{0,16})(?:\.[0-9]+)?").fullmatch


def encode(state: str, layout: Layout, slots: int = 0) -> str:
    """Redis layout -> JSON text for family ``state`` (``slots`` = S, for ``ring``)."""
    if state in _SCALARS and layout[0] == "string":
        text = layout[1]
        if text.__class__ is str and _PLAIN_NUMBER(text) is not None:
            return text  # the Lua's '%.17g' text is already the JSON number (module doc)
        try:
            x = float(text)
        except (TypeError, ValueError):
            pass  # the general path reports it
        else:  # as _num, inlined (once per decision): an int when integral and within 2^53
            if -9007199254740992.0 <= x <= 9007199254740992.0:  # finite (NaN fails every comparison)
                i = int(x)
                return str(i) if i == x else repr(x)
            if math.isfinite(x):
                return repr(x)
    try:
        codec = CODECS[state]
    except KeyError:
        raise CodecError(f"no codec for state family {state!r}") from None
    return json.dumps(codec.encode(layout, slots), separators=(",", ":"), allow_nan=False)


def encode_string(state: str, text: str, slots: int = 0) -> str:
    """:func:`encode` of a string layout ``("string", text)``: the one-number families' plain text is
    already their JSON (module doc), returned as is; anything else goes through :func:`encode`."""
    if state in _SCALARS and _PLAIN_NUMBER(text) is not None:
        return text
    return encode(state, ("string", text), slots)


def decode(state: str, blob: str, slots: int = 0) -> Layout:
    """JSON text -> Redis layout for family ``state`` (``slots`` = S, for ``ring``)."""
    if state in _SCALARS:
        if _PLAIN_NUMBER(blob) is not None:
            return "string", blob  # tonumber reads it as the same double (module doc)
        try:
            x = float(blob)  # a JSON number is valid float text; anything else takes the general path
        except ValueError:
            pass
        else:
            if math.isfinite(x) and blob.strip()[:1] in "-0123456789":
                return "string", format(x, ".17g")
    try:
        codec = CODECS[state]
    except KeyError:
        raise CodecError(f"no codec for state family {state!r}") from None
    try:
        doc = json.loads(blob)
    except ValueError as exc:
        raise CodecError(f"stored state is not JSON: {exc}") from None
    return codec.decode(doc, slots)
