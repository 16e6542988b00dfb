"""Launch ``throttlekit-server`` for the fleet test (``python _fleet_server.py serve -c ... --postgres-url ...``).

Test-only shim, to be deleted once the server accepts snapshot stores itself: ``_open_store`` in
``throttlekit/server/_service.py`` (not owned by the stores work) accepts a MemoryStore or a Redis store
only. The change it needs is one branch before its final ``raise``::

    if isinstance(store, AsyncScriptStore):  # Postgres, DynamoDB: aeval on the loop thread
        return store, type(store).__name__, False

This file applies exactly that branch at import time when the server does not have it yet.
"""

from __future__ import annotations

import sys
from typing import Any


def _patch() -> None:
    from throttlekit.server import _service
    from throttlekit.stores import AsyncScriptStore
    from throttlekit.stores._snapshot import SnapshotStore

    original = _service._open_store

    def open_store(store: Any, clock: Any) -> tuple[Any, str, bool]:
        if isinstance(store, SnapshotStore) and isinstance(store, AsyncScriptStore):
            return store, type(store).__name__, False
        return original(store, clock)  # type: ignore[no-any-return]

    try:
        original(_probe(), None)
    except Exception:
        _service._open_store = open_store  # type: ignore[assignment]


def _probe() -> Any:
    from throttlekit.stores.postgres import PostgresStore

    return PostgresStore("postgresql://127.0.0.1:1/x", sweep_interval_ms=0)


if __name__ == "__main__":
    _patch()
    from throttlekit.cli import server_main

    sys.exit(server_main(sys.argv[1:]))
