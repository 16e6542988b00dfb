"""Load the Lua transforms: read the manifest, expand includes, hash the result.

The expanded text is what runs everywhere (Redis EVALSHA and lupa), so its SHA1 is the script's
identity. ``--- @include "lib/<name>"`` lines are replaced depth-first by the helper's text; each helper is
pasted once per script; cycles and missing files raise :class:`LoaderError` naming the include stack.

A transform file is a header comment, optionally ``local rcall = redis.call``, its includes, then the
code (docs/ARCHITECTURE.md, "Lua"); the loader enforces that order and records where the code starts
(:attr:`Transform.body_line`), so an in-process executor may evaluate the constant part once.

The manifest is the contract by name: a reply containing ``allowed`` is a decision and must name
exactly :data:`DECISION_REPLY`; one containing ``spendable_now`` is a forecast and must name exactly
:data:`FORECAST_REPLY`. Callers find fields with :func:`reply_index`, never by a fixed position.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from operator import itemgetter
from pathlib import Path
from typing import Any

from ._errors import LoaderError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "DECISION_REPLY",
    "FORECAST_REPLY",
    "RUNTIME_FILES",
    "Transform",
    "expand",
    "load_manifest",
    "lock_entries",
    "lua_root",
    "reply_fields",
    "reply_index",
]

_INCLUDE = re.compile(r'^\s*---\s*@include\s+"([A-Za-z0-9_/.-]+)"\s*$')
_NOW_ARG = "now_ms"
_RCALL = re.compile(r"^\s*local\s+rcall\s*=\s*redis\.call\s*$")
#: Lua files under ``lua/`` that are not transforms but run with them (the lupa executor's Redis shim):
#: pinned in ``manifest.lock`` by path.
RUNTIME_FILES = ("runtime/shim.lua",)
#: The reply names of every decision transform (check, peek, debit), as the Decision fields.
DECISION_REPLY = ("allowed", "limit", "remaining", "reset_at", "retry_after_ms")
#: The reply names of every forecast transform, as the Forecast fields.
FORECAST_REPLY = ("spendable_now", "next_replenish_at", "full_at")


@dataclass(frozen=True)
class Transform:
    """One Lua transform as listed in ``lua/manifest.toml``, with its expanded source and SHA1."""

    name: str
    file: str
    keys: tuple[str, ...]
    argv: tuple[str, ...]
    reply: tuple[str, ...]
    read_only: bool
    state_version: int
    state: str
    source: str
    sha: str
    includes: tuple[str, ...]
    #: 1-based line of ``source`` where the code starts (after the header, ``rcall`` and the includes):
    #: everything above it is constant (helper definitions) and may be evaluated once per runtime.
    body_line: int = 1


def lua_root() -> Path:
    """The ``lua/`` directory: the copy bundled in the wheel, else the repository's own."""
    bundled = resources.files("throttlekit").joinpath("_lua")
    if bundled.is_dir():
        return Path(str(bundled))
    repo = Path(__file__).resolve().parent.parent / "lua"
    if repo.is_dir():
        return repo
    raise LoaderError("cannot find the Lua sources (neither throttlekit/_lua nor ../lua exists)")


def expand(root: Path, rel: str) -> tuple[str, tuple[str, ...]]:
    """Return the text of ``rel`` (relative to ``root``) with every include expanded, and the includes used."""
    seen: list[str] = []
    out = _expand(root, rel, stack=(), seen=seen)
    return out, tuple(seen)


def body_line(root: Path, rel: str, source: str) -> int:
    """The line of the expanded ``source`` where the code of ``rel`` starts.

    Above it only the header comment, blank lines, ``--`` comments, ``local rcall = redis.call`` and
    include lines may appear (each helper defines one ``local function``): anything else there would
    run once instead of per call in the lupa executor, so it is a :class:`LoaderError` naming the line.
    """
    lines = (root / rel).read_text(encoding="utf-8").splitlines()
    last_include = 0
    for lineno, line in enumerate(lines, start=1):
        if _INCLUDE.match(line):
            last_include = lineno
    if last_include == 0:
        return 1
    in_block = False
    for lineno, line in enumerate(lines[:last_include], start=1):
        text = line.strip()
        if in_block:
            in_block = "]]" not in text
            continue
        if text.startswith("--[[") and "]]" not in text:
            in_block = True
            continue
        if not text or text.startswith("--") or _RCALL.match(line):
            continue
        raise LoaderError(
            f"{rel}:{lineno}: code before the last include ({text[:60]!r}); a transform is a header, "
            "'local rcall = redis.call', its includes, then its code"
        )
    # the expanded text of the lines up to the last include is the constant part
    head = _expand_text(root, rel, "\n".join(lines[:last_include]))
    if not source.startswith(head):  # pragma: no cover - the expansion is deterministic
        raise LoaderError(f"{rel}: cannot locate the code after the includes")
    return head.count("\n") + 1


def _embeds_decision(reply: tuple[str, ...]) -> bool:
    """A decision embedded in a longer reply (a flag before it, extras after: lease spend, deny cache)."""
    n = len(DECISION_REPLY)
    return any(reply[i : i + n] == DECISION_REPLY for i in range(len(reply) - n + 1))


def _expand_text(root: Path, rel: str, text: str) -> str:
    seen: list[str] = []
    out: list[str] = []
    for line in text.splitlines():
        match = _INCLUDE.match(line)
        if match is None:
            out.append(line)
            continue
        target = match.group(1)
        if not target.endswith(".lua"):
            target += ".lua"
        if target in seen:
            continue
        seen.append(target)
        out.append(_expand(root, target, (rel,), seen).rstrip("\n"))
    return "\n".join(out) + "\n"


def reply_index(t: Transform, names: Sequence[str]) -> tuple[int, ...]:
    """The 0-based reply positions of ``names`` in transform ``t`` (a :class:`LoaderError` names a
    missing field): how every caller reads a reply, by the manifest's names."""
    try:
        return tuple(t.reply.index(n) for n in names)
    except ValueError:
        missing = [n for n in names if n not in t.reply]
        raise LoaderError(
            f"transform {t.name!r} has no reply field(s) {missing}; its reply is {list(t.reply)}"
        ) from None


@cache
def reply_fields(transform: str, *names: str) -> Callable[[Sequence[Any]], Any]:
    """A reader of ``names`` in a reply of ``transform`` by the manifest's reply names (positions resolved
    once; the reader is C-level ``operator.itemgetter``): a tuple of the fields in the order asked, or the
    field itself when one name is asked. The one way Python reads a reply that is not a bound decision."""
    return itemgetter(*reply_index(load_manifest()[transform], names))


def _expand(root: Path, rel: str, stack: tuple[str, ...], seen: list[str]) -> str:
    path = root / rel
    if not path.is_file():
        chain = " -> ".join((*stack, rel)) if stack else rel
        raise LoaderError(f"missing Lua file {rel!r} (include stack: {chain})")
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        match = _INCLUDE.match(line)
        if match is None:
            out.append(line)
            continue
        target = match.group(1)
        if not target.endswith(".lua"):
            target += ".lua"
        if target in stack or target == rel:
            chain = " -> ".join((*stack, rel, target))
            raise LoaderError(f"include cycle at {rel}:{lineno}: {chain}")
        if target in seen:
            continue
        seen.append(target)
        out.append(_expand(root, target, (*stack, rel), seen).rstrip("\n"))
    return "\n".join(out) + "\n"


@lru_cache(maxsize=4)
def load_manifest(root: Path | None = None) -> dict[str, Transform]:
    """Every transform of the manifest, keyed by name, in manifest order."""
    base = root or lua_root()
    manifest = base / "manifest.toml"
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LoaderError(f"cannot read {manifest}: {exc}") from exc
    table = data.get("transforms")
    if not isinstance(table, dict) or not table:
        raise LoaderError(f"{manifest}: expected a non-empty [transforms] table")
    out: dict[str, Transform] = {}
    for name, entry in table.items():
        where = f"{manifest}: transforms.{name}"
        try:
            keys = tuple(str(k) for k in entry["keys"])
            argv = tuple(str(a) for a in entry["argv"])
            reply = tuple(str(r) for r in entry["reply"])
            file = str(entry["file"])
            read_only = bool(entry["read_only"])
            state_version = int(entry["state_version"])
            state = str(entry["state"])
        except (KeyError, TypeError) as exc:
            raise LoaderError(f"{where}: missing or malformed field {exc}") from exc
        unknown = set(entry) - {"file", "keys", "argv", "reply", "read_only", "state_version", "state"}
        if unknown:
            raise LoaderError(f"{where}: unknown field(s) {sorted(unknown)}")
        if not argv or argv[0] != _NOW_ARG:
            raise LoaderError(f"{where}: ARGV[1] must be {_NOW_ARG!r}, got {argv[:1]}")
        for kind, names, marker in (
            ("decision", DECISION_REPLY, "allowed"),
            ("forecast", FORECAST_REPLY, "spendable_now"),
        ):
            if marker in reply and reply != names and not (kind == "decision" and _embeds_decision(reply)):
                raise LoaderError(f"{where}: a {kind} reply must be exactly {list(names)}, got {list(reply)}")
        source, includes = expand(base, file)
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        out[name] = Transform(
            name,
            file,
            keys,
            argv,
            reply,
            read_only,
            state_version,
            state,
            source,
            sha,
            includes,
            body_line(base, file, source),
        )
    return out


def lock_entries(root: Path | None = None) -> dict[str, dict[str, object]]:
    """What ``lua/manifest.lock`` pins: each transform's SHA1 and state_version, each runtime file's SHA1."""
    base = root or lua_root()
    lock: dict[str, dict[str, object]] = {
        t.name: {"sha1": t.sha, "state_version": t.state_version} for t in load_manifest(base).values()
    }
    for rel in RUNTIME_FILES:
        lock[rel] = {"sha1": hashlib.sha1((base / rel).read_bytes()).hexdigest()}
    return lock
