"""Durable capture segments (AES-256-GCM files) and the append-only audit log.

A segment file is ``IV (12 bytes) || tag (16 bytes) || ciphertext`` of the UTF-8 JSON of one segment,
encrypted with AES-256-GCM (``cryptography``'s ``AESGCM``, a fresh random IV per file, no associated
data). Its name is ``seg-<createdAt>-<16 random hex>.bin``: no tenant, key or policy on disk in clear.
Files are written to a temporary name and renamed (a reader never sees half a file), with mode 0600 in a
directory created with mode 0700. A segment is expired when ``now - createdAt > ttl``; expired files are
purged before every write, on read, and by :meth:`SegmentStore.sweep`.

The audit log ``<dir>/audit.jsonl`` gets one JSON line per authorized admin action, appended with
``O_APPEND`` (and written before the action runs: an action that cannot be audited does not run).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import ThrottleKitError

__all__ = ["AUDIT_FILE", "SegmentError", "SegmentStore"]

AUDIT_FILE = "audit.jsonl"
_IV, _TAG = 12, 16
_NAME = re.compile(r"seg-([0-9]{1,16})-[0-9a-f]{16}")


class SegmentError(ThrottleKitError):
    """A segment cannot be read: unknown, corrupt, tampered with or the wrong key, or expired."""


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - cryptography is a dependency
        raise SegmentError(
            "durable capture needs the 'cryptography' package: pip install 'throttlekit-server[capture]'"
        ) from exc
    if len(key) != 32:
        raise SegmentError(f"the capture encryption key must be 32 bytes (AES-256), got {len(key)}")
    return AESGCM(key)


class SegmentStore:
    """Encrypted segments in ``directory`` with ``ttl_ms`` retention; ``now_ms`` is the clock."""

    def __init__(self, directory: str | Path, key: bytes, ttl_ms: int, now_ms: Callable[[], int]) -> None:
        self.dir = Path(str(directory).rstrip("/\\") or "/")
        self._aead = _aesgcm(key)
        self.ttl_ms = ttl_ms
        self.now_ms = now_ms

    # -- files ---------------------------------------------------------------------------------------

    def _ensure_dir(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def ids(self) -> list[tuple[str, int]]:
        """``(id, createdAt)`` of every segment file, oldest first (ties by id)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if not name.endswith(".bin"):
                continue
            m = _NAME.fullmatch(name[:-4])
            if m is not None:
                out.append((name[:-4], int(m.group(1))))
        out.sort(key=lambda x: (x[1], x[0]))
        return out

    def _expired(self, created: int) -> bool:
        return self.now_ms() - created > self.ttl_ms

    def sweep(self) -> int:
        """Delete every expired segment; returns how many."""
        purged = 0
        for sid, created in self.ids():
            if self._expired(created):
                try:
                    (self.dir / f"{sid}.bin").unlink()
                    purged += 1
                except FileNotFoundError:
                    pass
        return purged

    def write(self, segment: dict[str, Any], *, sweep: bool = True) -> str:
        """Encrypt and store one segment (after purging expired ones, unless ``sweep`` is False: a
        flush of many segments sweeps once first); returns its id."""
        if sweep:
            self.sweep()
        self._ensure_dir()
        created = int(segment["createdAt"])
        sid = f"seg-{created}-{secrets.token_hex(8)}"
        iv = secrets.token_bytes(_IV)
        sealed = self._aead.encrypt(iv, json.dumps(segment, separators=(",", ":")).encode(), None)
        blob = iv + sealed[-_TAG:] + sealed[:-_TAG]
        tmp = self.dir / f".{sid}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / f"{sid}.bin")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return sid

    def read(self, sid: str) -> dict[str, Any]:
        """Decrypt one segment. Raises :class:`SegmentError` naming why it cannot be read."""
        m = _NAME.fullmatch(sid) if isinstance(sid, str) else None
        if m is None:
            raise SegmentError(f"no segment {sid!r} (ids look like seg-<createdAt>-<16 hex>)")
        path = self.dir / f"{sid}.bin"
        if self._expired(int(m.group(1))):
            path.unlink(missing_ok=True)
            raise SegmentError(f"segment {sid} is past its TTL and was purged")
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise SegmentError(f"no segment {sid}") from None
        except OSError as exc:
            raise SegmentError(f"segment {sid} cannot be read: {exc.strerror}") from exc
        if len(blob) < _IV + _TAG:
            raise SegmentError(f"segment {sid} is corrupt (truncated blob)")
        from cryptography.exceptions import InvalidTag

        iv, tag, body = blob[:_IV], blob[_IV : _IV + _TAG], blob[_IV + _TAG :]
        try:
            plain = self._aead.decrypt(iv, body + tag, None)
        except InvalidTag:
            raise SegmentError(
                f"segment {sid} failed authentication (tampered with, or encrypted with another key)"
            ) from None
        try:
            segment = json.loads(plain)
        except ValueError as exc:
            raise SegmentError(f"segment {sid} is corrupt (not a segment document)") from exc
        if not isinstance(segment, dict):
            raise SegmentError(f"segment {sid} is corrupt (not a segment document)")
        created = segment.get("createdAt")
        if not isinstance(created, int) or self._expired(created):
            path.unlink(missing_ok=True)
            raise SegmentError(f"segment {sid} is past its TTL and was purged")
        return segment

    # -- audit ---------------------------------------------------------------------------------------

    def audit(self, principal: str, action: str, **fields: Any) -> None:
        """Append one audit record (raises OSError if it cannot be written)."""
        self._ensure_dir()
        record = {"ts": self.now_ms(), "principal": principal, "action": action}
        record.update({k: v for k, v in fields.items() if v is not None})
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        fd = os.open(self.dir / AUDIT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
