"""The loader: include expansion, hashing, the manifest and its lock."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from throttlekit._errors import LoaderError
from throttlekit._loader import expand, load_manifest, lock_entries, lua_root

FIXTURES = Path(__file__).parent / "fixtures" / "lua"
REPO = Path(__file__).resolve().parent.parent


def test_simple_include_is_pasted_before_use() -> None:
    text, includes = expand(FIXTURES, "simple.lua")
    assert includes == ("lib/a.lua",)
    assert text.index("local function a()") < text.index("return a()")
    assert "@include" not in text


def test_each_helper_is_pasted_once_depth_first() -> None:
    text, includes = expand(FIXTURES, "duplicate.lua")
    assert includes == ("lib/a.lua", "lib/b.lua")
    assert text.count("local function a()") == 1
    assert text.index("local function a()") < text.index("local function b()")


def test_cycle_is_an_error_naming_the_stack() -> None:
    with pytest.raises(
        LoaderError,
        match=r"include cycle at lib/c2.lua:1: circular.lua -> lib/c1.lua -> lib/c2.lua -> lib/c1.lua",
    ):
        expand(FIXTURES, "circular.lua")


def test_missing_include_names_the_stack() -> None:
    with pytest.raises(
        LoaderError, match=r"missing Lua file 'lib/nope.lua' \(include stack: missing.lua -> lib/nope.lua\)"
    ):
        expand(FIXTURES, "missing.lua")


def test_manifest_matches_transform_files_one_to_one() -> None:
    manifest = load_manifest()
    files = {p.relative_to(lua_root()).as_posix() for p in (lua_root() / "transforms").glob("*.lua")}
    assert {t.file for t in manifest.values()} == files
    assert all(t.file == f"transforms/{t.name}.lua" for t in manifest.values())


def test_every_lib_helper_is_used_and_defines_one_local_function() -> None:
    manifest = load_manifest()
    used = {inc for t in manifest.values() for inc in t.includes}
    libs = {p.relative_to(lua_root()).as_posix() for p in (lua_root() / "lib").glob("*.lua")}
    assert used == libs
    for lib in libs:
        text = (lua_root() / lib).read_text()
        assert len(re.findall(r"^local function ", text, re.M)) == 1, lib


def test_every_transform_has_a_contract_header() -> None:
    for t in load_manifest().values():
        text = (lua_root() / t.file).read_text()
        assert text.startswith(f"--[[ {t.name}: "), t.name
        header = text[: text.index("]]")]
        assert "Reply" in header, t.name
        for i in range(1, len(t.keys) + 1):
            assert f"KEYS[{i}]" in header, (t.name, i)
        for i, name in enumerate(t.argv, start=1):
            assert re.search(rf"ARGV\[{i}(\.\.\d+)?\]|ARGV\[1\.\.{i}\]|ARGV\[1\.\.\d+\]", header), (
                t.name,
                i,
                name,
            )


def test_sha_is_sha1_of_the_expanded_text() -> None:
    for t in load_manifest().values():
        assert t.sha == hashlib.sha1(t.source.encode()).hexdigest()
        assert "@include" not in t.source


def test_manifest_lock_is_current() -> None:
    """A script change must be acknowledged by regenerating lua/manifest.lock (scripts/lock_lua.py);
    a changed persisted layout must also bump state_version."""
    lock = json.loads((REPO / "lua" / "manifest.lock").read_text())
    current = lock_entries(REPO / "lua")
    assert "runtime/shim.lua" in current  # the lupa shim is pinned too
    stale = sorted(n for n in current if lock.get(n) != current[n])
    assert not stale, f"lua/manifest.lock is stale for {stale}: run python scripts/lock_lua.py"
    assert set(lock) == set(current)


def test_broken_manifest_is_reported(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text('[transforms.x]\nfile = "x.lua"\n')
    with pytest.raises(LoaderError, match="missing or malformed field"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.toml").write_text(
        '[transforms.x]\nfile = "x.lua"\nkeys = []\nargv = ["cost"]\nreply = []\nread_only = true\n'
        'state_version = 1\nstate = "tat"\n'
    )
    with pytest.raises(LoaderError, match="ARGV\\[1\\] must be 'now_ms'"):
        load_manifest(tmp_path)
