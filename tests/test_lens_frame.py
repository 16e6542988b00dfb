"""The Lens frame as a pure function: every tab at every size is exactly rows x cols cells, and each
view shows the numbers of the snapshot it is given (spec server-behaviour 10)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from throttlekit.lens import MIN_COLS, MIN_ROWS, TABS, LensState, render_frame

NOW = 1_764_460_800_000  # 2025-11-30T00:00:00Z


def snapshot(**extra: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "meta": {"generatedAt": NOW, "windowMs": 60_000, "mode": "process", "nodeId": "127.0.0.1:50051"},
        "policies": [
            {
                "name": "api",
                "kind": "limiter",
                "strategy": "gcra",
                "analytics": {
                    "allowed": 40,
                    "denied": 7,
                    "topDenied": [{"key": "alice", "count": 5}, {"key": "bob", "count": 2}],
                    "topRequested": [{"key": "alice", "count": 30}],
                },
                "limit": 10,
                "latency": {"avgMs": 0.2, "p50Ms": 0.1, "p99Ms": 30.0, "maxMs": 41.0, "n": 47},
                "forecast": {
                    "key": "alice",
                    "spendableNow": 3,
                    "nextReplenishAt": NOW + 1500,
                    "fullAt": NOW + 9000,
                },
            },
            {
                "name": "jobs",
                "kind": "admitter",
                "analytics": {
                    "allowed": 5,
                    "denied": 4,
                    "deniedByLane": {"rate": 1, "concurrency": 3, "cost": 0, "policy": 0},
                    "topDenied": [{"key": "worker-9", "count": 4}],
                },
                "latency": {"avgMs": 0, "p50Ms": 0, "p99Ms": 0, "maxMs": 0, "n": 0},
            },
        ],
        "guards": [{"name": "jobs", "limit": 2, "inflight": 2, "rttNoload": 12, "lastRtt": 15}],
        "stats": [
            {
                "name": "tenants",
                "kind": "wfe",
                "value": {
                    "windowStart": NOW - 10_000,
                    "limit": 100,
                    "effectiveLimit": 100,
                    "pool": 20,
                    "totalUsed": 80,
                    "tenants": [
                        {"tenant": "gold", "weight": 3, "used": 70},
                        {"tenant": "free", "weight": 1, "used": 10},
                    ],
                },
            }
        ],
        "recentDenials": [
            {
                "at": NOW - 2000 + i,
                "policy": "api",
                "key": f"k{i}",
                "decision": {"remaining": 0, "retryAfterMs": 250},
            }
            for i in range(30)
        ],
        "recentFences": [{"at": NOW - 5000, "guard": "jobs"}],
        "health": {"backend": "memory", "failMode": "open"},
    }
    snap.update(extra)
    return snap


def plain(lines: list[Any]) -> str:
    return "\n".join(line.plain for line in lines)


@pytest.mark.parametrize("tab", range(len(TABS)))
@pytest.mark.parametrize("cols,rows", [(MIN_COLS, MIN_ROWS), (80, 24), (132, 43), (41, 9), (300, 100)])
def test_every_frame_is_exactly_the_terminal(tab: int, cols: int, rows: int) -> None:
    state = LensState(tab=tab)
    lines = render_frame(snapshot(), state, cols, rows)
    assert len(lines) == rows
    assert [cell_len(line.plain) for line in lines] == [cols] * rows


@pytest.mark.parametrize("cols,rows", [(19, 6), (20, 5), (1, 1), (0, 0)])
def test_a_terminal_below_the_minimum_says_so_and_still_fits(cols: int, rows: int) -> None:
    lines = render_frame(snapshot(), LensState(), cols, rows)
    assert len(lines) == rows
    assert all(cell_len(line.plain) == cols for line in lines)
    if rows >= 1 and cols >= 18:
        assert "terminal too small" in lines[0].plain


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.text(max_size=60), max_size=12),
    cols=st.integers(MIN_COLS, 160),
    rows=st.integers(MIN_ROWS, 50),
    tab=st.integers(0, len(TABS) - 1),
)
def test_hostile_keys_and_any_size_never_break_the_frame(
    keys: list[str], cols: int, rows: int, tab: int
) -> None:
    snap = snapshot()
    snap["recentDenials"] = [{"at": NOW, "policy": k, "key": k, "decision": {}} for k in keys]
    snap["policies"][0]["analytics"]["topDenied"] = [{"key": k, "count": 1} for k in keys]
    lines = render_frame(snap, LensState(tab=tab), cols, rows)
    assert len(lines) == rows and all(cell_len(line.plain) == cols for line in lines)


@settings(max_examples=40, deadline=None)
@given(junk=_json, tab=st.integers(0, len(TABS) - 1))
def test_a_malformed_snapshot_still_draws_a_frame(junk: Any, tab: int) -> None:
    snap = junk if isinstance(junk, dict) else {"policies": junk}
    lines = render_frame(snap, LensState(tab=tab), 80, 24)
    assert len(lines) == 24 and all(cell_len(line.plain) == 80 for line in lines)


def test_header_throughput_and_status_bar() -> None:
    state = LensState()
    state.observe(snapshot())
    lines = render_frame(snapshot(), state, 120, 30)
    assert lines[0].plain.startswith("ThrottleKit · memory · fail-open · 2 policies")
    assert lines[0].plain.rstrip().endswith("00:00:00 · 60s window")
    assert "ALLOW 45  DENY 11  19.6% denied" in lines[1].plain
    assert "1 Overview" in lines[2].plain and "8 Plan" in lines[2].plain
    assert lines[-1].plain.startswith("q quit  1-8/Tab views")  # upstream's bar still says 1-7
    assert lines[-1].plain.rstrip().endswith("127.0.0.1:50051")


def test_sparkline_counts_new_denials_per_frame_across_a_window_roll() -> None:
    state = LensState()
    for denied in (0, 4, 4, 10, 3):  # the last: the 60 s window rolled, 3 denials since
        snap = snapshot()
        snap["policies"] = [{"name": "a", "kind": "limiter", "analytics": {"allowed": 0, "denied": denied}}]
        state.observe(snap)
    assert list(state.spark) == [0, 4, 0, 6, 3]


def test_overview_hero_top_denied_guards_and_feed() -> None:
    text = plain(render_frame(snapshot(), LensState(tab=0), 120, 40))
    assert "binding axis · jobs · 4 denied" in text
    assert "concurrency       3  75.0%" in text
    assert "5  alice  [api]" in text and "4  worker-9  [jobs]" in text
    assert "jobs               2/2 headroom 0" in text
    assert "23:59:58  api  k29  remaining 0  retry 250ms" in text  # newest at the bottom


def test_feed_scrolls_by_one_ten_and_to_the_ends() -> None:
    state = LensState(tab=0)
    n = 30

    def last_key() -> str:
        rows = [ln for ln in plain(render_frame(snapshot(), state, 100, 24)).splitlines() if "  api  k" in ln]
        return rows[-1].split("  api  ")[1].split()[0]

    assert last_key() == "k29"
    state.key("up", n)
    assert last_key() == "k28"
    state.key("pageup", n)
    assert last_key() == "k18"
    state.key("pagedown", n)
    state.key("down", n)
    assert last_key() == "k29"
    state.key("g", n)
    assert last_key() == "k0"
    state.key("G", n)
    assert last_key() == "k29"
    state.key("down", n)  # never below the newest
    assert state.scroll == 0


def test_latency_view_flags_a_tail_and_shows_no_samples() -> None:
    lines = render_frame(snapshot(), LensState(tab=1), 100, 20)
    text = plain(lines)
    assert "api                         0.20ms    0.10ms   30.00ms   41.00ms      47" in text
    assert "jobs                    no samples yet" in text
    p99_row = next(ln for ln in lines if ln.plain.startswith("api"))
    assert any("red" in str(span.style) for span in p99_row.spans)


def test_fairness_view_guarantee_and_borrowing() -> None:
    text = plain(render_frame(snapshot(), LensState(tab=2), 120, 20))
    assert "tenants  L 100  used 80  free 20" in text
    assert "gold             used     70 guar     75 borrowed      0" in text
    assert "free             used     10 guar     25 borrowed      0" in text
    empty = plain(render_frame(snapshot(stats=[]), LensState(tab=2), 80, 10))
    assert "(no fair-share policies reporting)" in empty


def test_capacity_view_forecast_and_reasons() -> None:
    text = plain(render_frame(snapshot(), LensState(tab=3), 100, 20))
    assert "api                     alice                        3      1.5s      9.0s" in text
    assert "jobs                    n/a (admitter)" in text
    snap = snapshot()
    del snap["policies"][0]["forecast"]
    snap["policies"][0]["forecastUnavailable"] = "async"
    assert "n/a (async store)" in plain(render_frame(snap, LensState(tab=3), 100, 20))


def test_guarantee_view() -> None:
    text = plain(render_frame(snapshot(), LensState(tab=4), 120, 20))
    assert "1 guard(s) within their slice · 0 draining over it · 1 self-fence(s)" in text
    assert "23:59:55  jobs" in text
    assert "not verified live" in text


def test_cost_room_replay_and_plan_placeholders() -> None:
    assert "(no cost rooms" in plain(render_frame(snapshot(), LensState(tab=5), 100, 10))
    assert "what-if replay is off" in plain(render_frame(snapshot(), LensState(tab=6), 100, 10))
    assert "(no-candidate:" in plain(render_frame(snapshot(), LensState(tab=7), 100, 10))


def test_replay_and_plan_panels() -> None:
    state = LensState(tab=6)
    state.replay = {
        "shadows": [{"policy": "api", "steps": 120, "state": "recording"}],
        "candidate": "configured (api: limit x0.5)",
        "result": {
            "policy": "api",
            "state": "ok",
            "steps": 120,
            "flippedAllowToDeny": 9,
            "flippedDenyToAllow": 0,
            "divergent": 9,
        },
    }
    text = plain(render_frame(snapshot(), state, 120, 20))
    assert "api                            120  recording" in text
    assert "allow→deny 9 · deny→allow 0 · divergent 9" in text
    state.tab = 7
    state.plan = {"candidate": "cand.yaml", "summary": "Summary: 9 newly DENIED", "rows": ["api: 9 flips"]}
    assert "Summary: 9 newly DENIED" in plain(render_frame(snapshot(), state, 120, 20))


def test_keys_switch_tabs_and_pause() -> None:
    state = LensState()
    for key, tab in (("3", 2), ("tab", 3), ("shift+tab", 2), ("8", 7), ("tab", 0), ("shift+tab", 7)):
        state.key(key, 0)
        assert state.tab == tab
    state.key("9", 0)  # not a tab: ignored
    assert state.tab == 7
    state.key("p", 0)
    assert state.paused
    assert " PAUSED " in render_frame(snapshot(), state, 100, 10)[-1].plain


def test_no_color_draws_no_style() -> None:
    lines = render_frame(snapshot(), LensState(tab=1), 100, 20, color=False)
    assert all(not span.style for line in lines for span in line.spans)


def test_the_binding_axis_hero_is_the_first_unified_admitter() -> None:
    snap = snapshot()
    snap["policies"][1]["axes"] = ["concurrency"]
    snap["policies"].append(
        {
            "name": "checkout",
            "kind": "admitter",
            "axes": ["rate", "concurrency"],
            "analytics": {"denied": 2, "deniedByLane": {"rate": 2, "concurrency": 0, "cost": 0, "policy": 0}},
        }
    )
    text = plain(render_frame(snap, LensState(tab=0), 120, 40))
    assert "binding axis · checkout · 2 denied" in text
    assert "rate              2 100.0%" in text
