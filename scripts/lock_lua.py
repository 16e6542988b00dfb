"""Regenerate lua/manifest.lock (transform name -> SHA1 of the expanded script, state_version; runtime
file path -> SHA1: the lupa shim).

Run after changing any Lua file; tests fail while the lock is stale, so every script change is a
conscious one. Bump ``state_version`` in lua/manifest.toml when the persisted layout changes.
"""

from __future__ import annotations

import json
from pathlib import Path

from throttlekit._loader import lock_entries

root = Path(__file__).resolve().parent.parent
lock = lock_entries(root / "lua")
(root / "lua" / "manifest.lock").write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
print(f"wrote lua/manifest.lock ({len(lock)} entries)")
