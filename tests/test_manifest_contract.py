"""The manifest is the contract, by name: ARGV packed and replies read by the manifest's names."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import throttlekit as tk
from throttlekit._errors import LoaderError
from throttlekit._loader import DECISION_REPLY, FORECAST_REPLY, load_manifest, lua_root, reply_index
from throttlekit.limiter import decision_decoder, forecast_decoder

REPO = Path(__file__).resolve().parent.parent

STRATEGIES = [
    tk.Gcra(10, "1s", burst=5),
    tk.TokenBucket(10, 5),
    tk.FixedWindow(10, "1m"),
    tk.SlidingWindow(10, "1m", buckets=6),
    tk.SlidingWindowLog(10, "1m"),
    tk.Quota(10, "calendar-month"),
    tk.Quota(10, "fixed", period="1h", anchor=5),
    tk.Quota(10, "rolling", period="1h", buckets=4),
]


def _ids(s: tk.Strategy) -> str:
    return s.describe()


@pytest.mark.parametrize("strategy", STRATEGIES, ids=_ids)
def test_strategy_parameter_names_are_the_manifest_argv(strategy: tk.Strategy) -> None:
    manifest = load_manifest()
    for name in (strategy.check_transform, strategy.peek_transform, strategy.forecast_transform):
        argv = manifest[name].argv
        params = {a for a in argv if a not in ("now_ms", "cost")}
        assert set(strategy.param_values) == params, name
        packed = strategy.arguments(name)
        # packed in the manifest's order: ARGV[i] is the value named argv[i]
        assert packed == tuple(strategy.param_values[a] for a in argv[1:] if a != "cost")
    assert strategy.params == strategy.arguments(strategy.check_transform)


def test_every_decision_and_forecast_reply_is_named_exactly() -> None:
    for t in load_manifest().values():
        if t.reply[:1] == ("allowed",):
            assert t.reply == DECISION_REPLY, t.name
        if "spendable_now" in t.reply:
            assert t.reply == FORECAST_REPLY, t.name


def _manifest_with(tmp_path: Path, reply: list[str]) -> Path:
    (tmp_path / "transforms").mkdir()
    (tmp_path / "transforms" / "x.lua").write_text("return {1, 2, 3, 4, 5}\n")
    names = ", ".join(f'"{r}"' for r in reply)
    (tmp_path / "manifest.toml").write_text(
        f'[transforms.x]\nfile = "transforms/x.lua"\nkeys = ["state"]\nargv = ["now_ms", "cost"]\n'
        f'reply = [{names}]\nread_only = false\nstate_version = 1\nstate = "tat"\n'
    )
    return tmp_path


def test_the_loader_rejects_a_decision_reply_with_other_names(tmp_path: Path) -> None:
    root = _manifest_with(tmp_path, ["allowed", "limit", "remaining", "reset_at", "retry_ms"])
    with pytest.raises(LoaderError, match=r"a decision reply must be exactly \['allowed', 'limit'"):
        load_manifest(root)


def test_the_loader_rejects_a_forecast_reply_with_other_names(tmp_path: Path) -> None:
    root = _manifest_with(tmp_path, ["spendable_now", "full_at"])
    with pytest.raises(LoaderError, match="a forecast reply must be exactly"):
        load_manifest(root)


def test_reply_index_names_a_missing_field() -> None:
    t = load_manifest()["gcra_forecast"]
    with pytest.raises(LoaderError, match=r"no reply field\(s\) \['allowed'\]"):
        reply_index(t, ["allowed"])


def test_decoders_read_by_name_not_position(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reorder a transform's reply names in the manifest: the decoders follow the names."""
    manifest = load_manifest()
    t = manifest["gcra"]
    swapped = ("limit", "allowed", "remaining", "reset_at", "retry_after_ms")
    monkeypatch.setitem(manifest, "gcra", dataclasses.replace(t, reply=swapped))
    d = decision_decoder("gcra")([10, 1, 3, 400, 0])
    assert d == tk.Decision(True, 10, 3, 400, 0)
    f = manifest["gcra_forecast"]
    monkeypatch.setitem(
        manifest,
        "gcra_forecast",
        dataclasses.replace(f, reply=("full_at", "spendable_now", "next_replenish_at")),
    )
    assert forecast_decoder("gcra_forecast")([900, 2, 100]) == tk.Forecast(2, 100, 900)


def test_no_python_reads_a_decision_reply_by_position() -> None:
    """The limiter, meters and vector runner read replies through the manifest's names."""
    pattern = re.compile(r"\b(?:r|reply|out)\[[0-4]\]\s*==\s*1")
    for rel in ("throttlekit/limiter.py", "throttlekit/stores/memory.py", "throttlekit/vectors.py"):
        text = (REPO / rel).read_text()
        assert not pattern.search(text), rel


def test_the_shim_is_lua_under_lua_runtime_and_pinned() -> None:
    shim = lua_root() / "runtime" / "shim.lua"
    assert shim.is_file()
    from throttlekit import _lupa

    assert "local C = {}" in _lupa.shim_source()
    # no Lua source kept in a Python string any more
    assert not any(isinstance(v, str) and "local function" in v for v in vars(_lupa).values())
