"""Who may call an operator door on the shared port: loopback peers, or a shared secret. The one home of
this rule: the Fleet door (``_fleet.py``) and the Monitor door (``_monitor.py``) each hold a
:class:`DoorGuard`.

Rules (spec server-behaviour 6): with a secret configured **every** caller, loopback included, must
present it, in the door's header (``x-fleet-secret``, ``x-monitor-secret``; the first non-empty value) or
as ``authorization: Bearer <secret>``; the comparison is constant-time. Without a secret only loopback
peers are admitted (``unix:`` peers are local; ``127.0.0.0/8``, ``::1`` and ``::ffff:127.x`` are
loopback). Anything else is ``UNAUTHENTICATED`` with a message saying what to do. The decision is by the
peer's address, not by the bind: the doors share the main port.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from typing import Any

__all__ = ["DoorGuard", "is_loopback_peer", "peer_host"]


def peer_host(peer: str) -> str:
    """The host of a grpc peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``, ``unix:/p``)."""
    for scheme in ("ipv4:", "ipv6:"):
        if peer.startswith(scheme):
            peer = peer[len(scheme) :]
            break
    if peer.startswith("["):
        return peer[1 : peer.find("]")] if "]" in peer else peer[1:]
    if peer.count(":") == 1:
        return peer.split(":", 1)[0]
    return peer


def is_loopback_peer(peer: str) -> bool:
    """True for a local peer: a unix socket, a loopback address, ``localhost``."""
    if peer.startswith("unix:") or peer.startswith("unix-abstract:"):
        return True
    host = peer_host(peer)
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


class DoorGuard:
    """The check of one door: ``door`` names it in messages (``fleet``), ``header`` is its secret's
    metadata key, ``flag`` the server option that sets a secret. ``refusal(peer, metadata)`` returns None
    to admit the call or the ``UNAUTHENTICATED`` message."""

    def __init__(self, door: str, header: str, flag: str, secret: str | None) -> None:
        self.door = door
        self.header = header
        self.flag = flag
        self._secret = secret.encode("utf-8") if secret else None

    @property
    def has_secret(self) -> bool:
        return self._secret is not None

    def _presented(self, metadata: Iterable[tuple[str, Any]]) -> bytes | None:
        bearer: bytes | None = None
        for key, value in metadata:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if key == self.header and text:
                return text.encode("utf-8")
            if key == "authorization" and bearer is None:
                scheme, _, token = text.strip().partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    bearer = token.strip().encode("utf-8")
        return bearer

    def refusal(self, peer: str, metadata: Iterable[tuple[str, Any]] | None) -> str | None:
        if self._secret is not None:
            given = self._presented(metadata or ())
            if given is not None and hmac.compare_digest(given, self._secret):
                return None
            return (
                f"{self.door}: missing or invalid secret (provide `{self.header}` metadata or "
                "`authorization: Bearer <secret>`)"
            )
        if is_loopback_peer(peer):
            return None
        return (
            f"{self.door}: loopback-only by default — set a {self.door} secret ({self.flag}) to expose it "
            "beyond loopback"
        )
