"""Capture admin actions (``capture list|export|sweep`` and ``policy plan --from-capture``).

Every action first checks the operator credential (fail-closed: no ``capture.auth`` in the config
disables the admin entirely), comparing SHA-256 digests in constant time; an authorized action is then
written to the audit log before it runs, and an unauthorized attempt is never logged there.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from .._errors import ThrottleKitError
from ..config._forensics import CaptureConfig
from ._corpus import Corpus, Trace, parse_trace
from ._segments import SegmentError, SegmentStore

__all__ = ["MAX_PRINCIPAL", "CaptureAdmin", "CaptureAdminError"]

#: Longest principal name written to the audit log.
MAX_PRINCIPAL = 256


class CaptureAdminError(ThrottleKitError):
    """An admin action was refused (disabled, unauthorized) or failed; the message says which."""


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CaptureAdmin:
    """The admin actions over the durable segments of one ``capture:`` block."""

    def __init__(self, capture: CaptureConfig, *, now_ms: Callable[[], int] = _wall_ms) -> None:
        if capture.durable_dir is None or capture.encryption_key is None:
            raise CaptureAdminError("capture admin requires a durable store (set a capture.durable block)")
        self.capture = capture
        self.store = SegmentStore(capture.durable_dir, capture.encryption_key, capture.ttl_ms, now_ms)

    def authorize(self, credential: str | None) -> None:
        secret = self.capture.operator_secret
        if not secret:
            raise CaptureAdminError(
                "capture admin is disabled: no operator credential is configured (fail-closed)"
            )
        if not credential:
            raise CaptureAdminError("unauthorized: an operator credential is required")
        given = hashlib.sha256(credential.encode("utf-8", "surrogatepass")).digest()
        if not hmac.compare_digest(given, hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()):
            raise CaptureAdminError("unauthorized: invalid operator credential")

    def _begin(self, credential: str | None, principal: str, action: str, **fields: Any) -> None:
        self.authorize(credential)
        if not principal or len(principal) > MAX_PRINCIPAL:
            raise CaptureAdminError(f"principal must be 1 to {MAX_PRINCIPAL} characters")
        try:
            self.store.audit(principal, action, **fields)
        except OSError as exc:
            raise CaptureAdminError(
                f"the audit log in {self.store.dir} cannot be written ({exc.strerror}); nothing was done"
            ) from exc

    def list(self, credential: str | None, principal: str = "operator") -> list[dict[str, Any]]:
        """Every segment, oldest first: ``{id, createdAt, policy, scope, policyKind, count, replayable}``
        or ``{id, createdAt, unreadable: true}``."""
        self._begin(credential, principal, "list")
        out: list[dict[str, Any]] = []
        for sid, created in self.store.ids():
            try:
                seg = self.store.read(sid)
            except SegmentError:
                out.append({"id": sid, "createdAt": created, "unreadable": True})
                continue
            out.append(
                {
                    "id": sid,
                    "createdAt": seg.get("createdAt", created),
                    "policy": seg.get("policy"),
                    "scope": seg.get("scope"),
                    "policyKind": seg.get("policyKind"),
                    "count": seg.get("count"),
                    "replayable": _replayable(seg),
                }
            )
        return out

    def export(self, credential: str | None, sid: str | None, principal: str = "operator") -> dict[str, Any]:
        """One segment: ``{kind: "replay-trace", trace}`` when replayable, else ``{kind: "forensic",
        segment}``."""
        self.authorize(credential)
        if not sid:
            raise CaptureAdminError("export requires a segment id")
        try:
            seg = self.store.read(sid)
        except SegmentError as exc:
            self._begin(credential, principal, "export")  # an authorized attempt is still audited
            raise CaptureAdminError(str(exc)) from exc
        self._begin(
            credential,
            principal,
            "export",
            policy=seg.get("policy"),
            tenant=seg.get("scope"),
            redactionMode=seg.get("redactionMode"),
        )
        if _replayable(seg):
            return {"kind": "replay-trace", "trace": to_trace(seg)}
        return {"kind": "forensic", "segment": seg}

    def sweep(self, credential: str | None, principal: str = "operator") -> dict[str, int]:
        """Purge expired segments: ``{purged: n}``."""
        self._begin(credential, principal, "sweep")
        return {"purged": self.store.sweep()}

    def corpus(self, credential: str | None, principal: str = "operator") -> tuple[Corpus, int]:
        """A plan corpus: one authorized list, then an authorized export per replayable segment,
        grouped by policy. Returns ``(corpus, segments skipped)``."""
        listed = self.list(credential, principal)
        corpus: Corpus = {}
        skipped = 0
        for row in listed:
            if row.get("unreadable") or not row.get("replayable"):
                skipped += 1
                continue
            try:
                out = self.export(credential, row["id"], principal)
            except CaptureAdminError:
                skipped += 1
                continue
            trace = out["trace"]
            steps = [{"key": s["key"], "cost": s["cost"], "at": s["at"]} for s in trace["steps"]]
            parsed = parse_trace({"steps": steps, "truncated": trace["truncated"]}, f"segment {row['id']}")
            corpus.setdefault(trace["policy"], []).append(Trace(parsed.steps, parsed.truncated))
        return corpus, skipped


def _replayable(seg: dict[str, Any]) -> bool:
    return seg.get("policyKind") == "rate" and "spec" in seg and "strategy" in seg


def to_trace(seg: dict[str, Any]) -> dict[str, Any]:
    """A replayable segment as a replay trace (``version: 1``). Its clock is the server's wall clock,
    so it is a plan corpus, not a bit-exact regression fixture."""
    spec = seg["spec"]
    fingerprint: dict[str, Any] = {
        "spec": spec,
        "strategy": seg["strategy"],
        "clock": "system",
        "axis": "rate",
        "policy": None,
        "luaSha1": seg.get("luaSha1"),
    }
    if "prefix" in spec:
        fingerprint["prefix"] = spec["prefix"]
    dropped = int(seg.get("dropped", 0))
    return {
        "version": 1,
        "policy": seg.get("policy"),
        "fingerprint": fingerprint,
        "redacted": True,
        "truncated": dropped > 0,
        "dropped": dropped,
        "steps": [
            {"key": e["keyRef"], "cost": e["cost"], "at": e["at"], "decision": e["decision"]}
            for e in seg.get("events", [])
        ],
    }
