"""Redaction of tenants and keys before anything is recorded: ``hmac``, ``per-trace-salt`` or ``drop``.

- ``hmac``: the reference is HMAC-SHA-256(secret, raw) as 64 lowercase hex characters (stable across
  runs and servers sharing the secret: the same key always maps to the same reference);
- ``per-trace-salt``: the same with a salt of 16 random bytes (as 32 hex characters, used as the HMAC
  key string) drawn once per redactor, so references are stable within one server run only;
- ``drop``: every value becomes ``__redacted__``.

Collision guard: two different raw values giving one reference would merge two clients' records, so
such a value is refused (``None``) instead. The guard remembers the most recent ``memory`` distinct
values (a bounded map; a collision of HMAC-SHA-256 is not expected to ever happen, the guard is there so
that it could not silently corrupt a record). Redacted values are cached the same way, so a hot key costs
one dict lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["DROPPED", "Redactor"]

DROPPED = "__redacted__"


class Redactor:
    """``redactor(raw) -> reference | None`` (None: refused by the collision guard)."""

    def __init__(self, mode: str, secret: str | None = None, *, memory: int = 65_536) -> None:
        if mode not in ("hmac", "per-trace-salt", "drop"):
            raise ValueError(f"unknown redaction mode {mode!r}")
        self.mode = mode
        if mode == "hmac" and not secret:
            raise ValueError("hmac redaction needs a secret")
        key = secret if mode == "hmac" else secrets.token_hex(16)
        self._base = hmac.new((key or "").encode(), digestmod=hashlib.sha256)
        self._memory = memory
        self._refs: dict[str, str] = {}  # raw -> ref
        self._owners: dict[str, str] = {}  # ref -> raw
        self.collisions = 0

    def __call__(self, raw: str) -> str | None:
        if self.mode == "drop":
            return DROPPED
        ref = self._refs.get(raw)
        if ref is not None:
            return ref
        h = self._base.copy()
        h.update(raw.encode("utf-8", "surrogatepass"))
        ref = h.hexdigest()
        owner = self._owners.get(ref)
        if owner is not None and owner != raw:
            self.collisions += 1
            return None
        if len(self._refs) >= self._memory:  # forget the oldest value (dicts keep insertion order)
            old = next(iter(self._refs))
            self._owners.pop(self._refs.pop(old), None)
        self._refs[raw] = ref
        self._owners[ref] = raw
        return ref
