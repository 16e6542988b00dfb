"""Load the Lua transforms: read the manifest, expand includes, hash the result.

The expanded text is what runs everywhere (Redis EVALSHA and lupa), so its SHA1 is the script's
identity. ``--- @include "lib/<name>"`` lines are replaced depth-first by the helper's text; each helper is
pasted once per script; cycles and missing files raise :class:`LoaderError` naming the include stack.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ._errors import LoaderError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["Transform", "expand", "load_manifest", "lua_root"]

_INCLUDE = re.compile(r'^\s*---\s*@include\s+"([A-Za-z0-9_/.-]+)"\s*$')
_NOW_ARG = "now_ms"


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
        source, includes = expand(base, file)
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        out[name] = Transform(
            name, file, keys, argv, reply, read_only, state_version, state, source, sha, includes
        )
    return out
