"""The wheel ships the Lua sources and vectors, and works from an installed copy."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests._support.env import build_wheel
from throttlekit._loader import load_manifest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_the_lua_sources(tmp_path: Path) -> None:
    wheel = build_wheel(REPO, tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for t in load_manifest().values():
        assert f"throttlekit/_lua/{t.file}" in names
        for inc in t.includes:
            assert f"throttlekit/_lua/{inc}" in names
    assert "throttlekit/_lua/manifest.toml" in names
    assert "throttlekit/_lua/runtime/shim.lua" in names
    assert "throttlekit/_vectors/golden-vectors.json" in names
    assert "throttlekit/_vectors/project-vectors.json" in names
    # installed elsewhere, the loader finds the bundled copy and the SHAs are identical
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    code = (
        "import json; from throttlekit._loader import load_manifest, lua_root; "
        "print(json.dumps([str(lua_root()), {n: t.sha for n, t in load_manifest().items()}]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    import json

    root, shas = json.loads(out.stdout)
    assert root.startswith(str(target))
    assert shas == {n: t.sha for n, t in load_manifest().items()}
