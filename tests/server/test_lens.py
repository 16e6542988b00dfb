"""Lens driven headless (Textual's own harness) against a real server with real traffic: the frame shows
the numbers the hub holds, keys switch tabs, pause freezes the frame; the link to the server is the one
``--tui`` uses (a Unix socket pair, the snapshot read on the server's loop)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests._support.env import ROOT
from tests._support.pty import OnPty
from tests._support.server import Starter, launch, wait_listening
from throttlekit import ManualClock, MemoryStore
from throttlekit.client import ServiceBackend
from throttlekit.lens import LensApp, LensSource
from throttlekit.lens._link import LinkClient, serve_link
from throttlekit.server._telemetry import TelemetryHub

pytestmark = pytest.mark.slow

POLICIES = {
    "api": {"strategy": "fixedWindow", "limit": 3, "windowMs": 600_000},
    "search": {"strategy": "gcra", "limit": 100, "period": "1s", "burst": 100},
}


class Panels:
    """The TUI-only panels as a server offers them (what-if replay and plan)."""

    def __init__(self) -> None:
        self.runs = 0

    def replay(self) -> dict[str, Any] | None:
        return {"shadows": [{"policy": "api", "steps": 5, "state": "recording"}], "candidate": "configured"}

    def prepare_what_if(self) -> Any:
        self.runs += 1

        def job() -> dict[str, Any]:
            return {
                **(self.replay() or {}),
                "result": {"policy": "api", "state": "ok", "steps": 5, "flippedAllowToDeny": 2},
            }

        return job

    def prepare_plan(self) -> Any:
        return None


def linked(served: Any, hub: TelemetryHub, panels: Any = None) -> tuple[LinkClient, Any]:
    mine, theirs = socket.socketpair()
    running = served.handle.submit(serve_link(mine, hub.snapshot, panels))
    return LinkClient(theirs.detach()), running


async def until(app: LensApp, text: str, timeout: float = 10.0) -> str:
    """The frame, once it shows ``text`` (repaints come every 250 ms; bounded wait)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in app.frame_text():
        assert asyncio.get_running_loop().time() < deadline, f"{text!r} not shown:\n{app.frame_text()}"
        await asyncio.sleep(0.05)
    return app.frame_text()


def test_each_view_shows_the_hubs_numbers_from_real_traffic(start_server: Starter) -> None:
    clock = ManualClock(1_764_460_810_000)  # 10 s into an analytics window: no roll mid-test
    served = start_server(POLICIES, store=MemoryStore(clock=clock), clock=clock)
    hub = served.handle.hub  # the server's own hub, on the service's clock
    assert hub is not None
    decisions = [served.check("api", "alice").allowed for _ in range(5)]
    served.check("search", "bob")
    assert decisions == [True, True, True, False, False]
    link, running = linked(served, hub, Panels())
    app = LensApp(LensSource.over_link(link), color=False)

    async def scenario() -> None:
        async with app.run_test(size=(110, 30)) as pilot:
            await pilot.pause()
            overview = app.frame_text()
            assert "ThrottleKit · memory · fail-open · 2 policies" in overview
            assert "ALLOW 4  DENY 2  33.3% denied" in overview
            assert "2  alice  [api]" in overview  # top denied key
            assert overview.count("api  alice  remaining 0") == 2  # the live denial feed
            await pilot.press("2")
            latency = app.frame_text()
            api_row = next(line for line in latency.splitlines() if line.startswith("api "))
            assert api_row.split()[-1] == "5"  # five latency samples
            await pilot.press("tab")
            assert "(no fair-share policies reporting)" in app.frame_text()
            await pilot.press("tab")  # Capacity: a forecast of each limiter's hottest key (memory store)
            capacity = app.frame_text()
            api_row = next(line for line in capacity.splitlines() if line.startswith("api "))
            # fixedWindow 3 per 600 s, 5 Checks at 10 s into the window: nothing left until it ends
            assert api_row.split()[1:5] == ["alice", "0", "590.0s", "590.0s"], api_row
            search_row = next(line for line in capacity.splitlines() if line.startswith("search "))
            assert search_row.split()[1:3] == ["bob", "99"], search_row
            await pilot.press("r")  # the what-if runs on the server's worker thread, jumps to Replay
            replay = await until(app, "allow→deny 2")
            assert "allow→deny 2" in replay and "api                              5  recording" in replay
            await pilot.press("1", "p")
            frozen = app.frame_text()
            assert " PAUSED " in frozen
            served.check("api", "alice")  # a third denial, while paused
            await asyncio.sleep(0.6)
            await pilot.pause()
            assert app.frame_text().split("\n", 1)[1] == frozen.split("\n", 1)[1]
            await pilot.press("p")
            await until(app, "DENY 3")
            await pilot.press("q")
        assert app.return_code in (0, None)

    try:
        asyncio.run(scenario())
    finally:
        link.close()
    running.result(timeout=5)  # the server's end returns once the dashboard closed the link


def test_a_server_that_does_not_answer_keeps_the_last_frame(start_server: Starter) -> None:
    served = start_server(POLICIES)
    hub = served.handle.hub
    assert hub is not None
    served.check("api", "alice")
    calls = {"n": 0}

    async def flaky() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise asyncio.TimeoutError
        return served.handle.submit(_on_loop(hub.snapshot)).result(5)

    app = LensApp(LensSource(flaky), color=False)

    async def scenario() -> None:
        async with app.run_test(size=(100, 20)) as pilot:
            await pilot.pause()
            first = app.frame_text()
            await asyncio.sleep(0.7)
            await pilot.pause()
            assert app.errors >= 1
            assert app.frame_text().splitlines()[1] == first.splitlines()[1]  # the same numbers

    asyncio.run(scenario())


def test_a_tick_that_ends_after_the_app_closed_paints_nothing() -> None:
    """A repaint tick still waiting on a snapshot when the app closes (the server slow under load) ends
    after the frame widget is gone: it paints nothing instead of crashing the exit with NoMatches."""
    release = asyncio.Event()
    calls = {"n": 0}

    async def slow() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > 1:
            await release.wait()
        return {}

    app = LensApp(LensSource(slow), color=False)

    async def scenario() -> None:
        async with app.run_test(size=(100, 20)) as pilot:
            await pilot.pause()
            painted = app.frames
            late = asyncio.ensure_future(app.tick())  # waits in the snapshot
            await asyncio.sleep(0)
        release.set()  # the app is closed: the snapshot answers now
        await late
        assert app.frames == painted

    asyncio.run(scenario())


async def _on_loop(fn: Any) -> Any:
    return fn()


def _server_argv(*args: str) -> list[str]:
    code = "import sys; from throttlekit.cli import server_main; sys.exit(server_main())"
    return [sys.executable, "-c", code, "--config", str(ROOT / "examples" / "lens.yaml"), *args]


@pytest.mark.parametrize("quit_key", ["q", "ctrl+c"])
def test_tui_on_a_terminal_shows_live_numbers_switches_tabs_and_quits_draining(quit_key: str) -> None:
    term = OnPty(_server_argv("--port", "0", "--tui", "--drain-grace", "0"), cols=100, rows=30)
    try:
        port = int(term.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        term.wait_for(r"ThrottleKit · memory · fail-open · 6 policies")
        # the header counts the hub's epoch-aligned 60 s window: requests sent in its last seconds roll out
        # of it before a repaint shows them (seen once: sent at :59, frame at :00 read ALLOW 0 DENY 0)
        into_minute = time.time() % 60
        if into_minute > 45:
            time.sleep(60.5 - into_minute)
        with ServiceBackend(f"127.0.0.1:{port}") as client:
            for _ in range(8):
                client.check("login", "mallory")  # 5 allowed, 3 denied
        term.wait_for(r"ALLOW 5 +DENY 3")
        term.wait_for(r"login +mallory +remaining 0")
        term.send(b"2")
        term.wait_for(r"p99 in red")
        term.send(b"\t\t")  # Tab twice: Latency -> Fairness -> Capacity
        term.wait_for(r"hottest key +spendable")
        term.send(b"\x1b[Z")  # Shift-Tab: back to Fairness
        term.wait_for(r"tenants  L 300  used 0  free 300")
        term.send(b"q" if quit_key == "q" else b"\x03")
        assert term.close() == 0
        out = term.text()
        assert "dashboard closed: draining" in out and "throttlekit-server stopped" in out
    finally:
        term.kill()  # the server's whole process group: a failed test leaves no dashboard behind
        term.close()


def test_sigterm_closes_the_dashboard_first_then_drains_and_monitor_off_keeps_the_hub() -> None:
    argv = _server_argv("--port", "0", "--tui", "--monitor", "off", "--drain-grace", "0")
    term = OnPty(argv, cols=90, rows=24)
    try:
        term.wait_for(r"ThrottleKit · memory")
        term.proc.send_signal(signal.SIGTERM)
        assert term.close() == 0
        out = term.text()
        assert "SIGTERM received, draining" in out and "throttlekit-server stopped" in out
    finally:
        term.kill()  # the server's whole process group: a failed test leaves no dashboard behind
        term.close()


def test_tui_without_a_terminal_warns_and_serves_plainly() -> None:
    proc = launch("--config", str(ROOT / "examples" / "lens.yaml"), "--port", "0", "--tui")
    try:
        target = wait_listening(proc)
        with ServiceBackend(target) as client:
            assert client.check("api", "k").allowed
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "--tui needs a terminal on stdin and stdout" in err
    assert proc.returncode == 0


REPLAYED = """
version: 1
limiters:
  api: { strategy: fixedWindow, limit: 5, windowMs: 600000 }
replay:
  enabled: true
  candidate: { policy: api, set: { limit: 2 } }
"""


def test_replay_and_plan_views_run_the_what_if_and_the_plan_over_live_shadows(
    start_server: Starter, tmp_path: Path
) -> None:
    from throttlekit.config import load_config
    from throttlekit.forensics import attach_replay
    from throttlekit.lens._panels import ReplayPanels

    clock = ManualClock(1_764_460_810_000)
    served = start_server(REPLAYED, store=MemoryStore(clock=clock), clock=clock)
    shadows = attach_replay(served.service, load_config(REPLAYED))
    current, candidate = tmp_path / "current.yaml", tmp_path / "candidate.yaml"
    current.write_text(REPLAYED)
    candidate.write_text(REPLAYED.replace("limit: 5", "limit: 2"))
    for key in ("alice",) * 5 + ("bob",):
        assert served.check("api", key).allowed  # limit 5: all admitted; a limit of 2 would deny 3
        clock.advance(10)
    hub = served.handle.hub
    assert hub is not None
    link, running = linked(served, hub, ReplayPanels(shadows, current, candidate))
    app = LensApp(LensSource.over_link(link), color=False)

    async def scenario() -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("7")
            replay = await until(app, "api                              6  recording")
            assert "candidate: configured (api: limit=2)" in replay
            await pilot.press("r")
            await until(app, "allow→deny 3 · deny→allow 0 · divergent")
            await pilot.press("P")
            plan = await until(app, "Summary: 3 newly DENIED, 0 newly ALLOWED across 1 key(s)")
            assert "corpus: 6 arrival(s) across 1 policy(ies)" in plan
            assert "api: 3 allow→deny, 0 deny→allow over 6 arrival(s)  top: " in plan
            assert "alice" not in plan  # shadows hold redacted keys (per-trace-salt): the plan shows refs

    try:
        asyncio.run(scenario())
    finally:
        link.close()
    running.result(timeout=5)


def test_plan_view_placeholders_without_a_candidate_or_shadows() -> None:
    from throttlekit.lens._panels import ReplayPanels

    no_candidate = ReplayPanels(None, "x.yaml", None).prepare_plan()
    no_shadows = ReplayPanels(None, "x.yaml", "cand.yaml").prepare_plan()
    assert no_candidate is not None and no_candidate() == {"placeholder": "no-candidate"}
    assert no_shadows is not None and no_shadows() == {"placeholder": "no-shadows"}
    assert ReplayPanels(None, "x.yaml", None).replay() is None


def test_a_killed_server_leaves_no_dashboard_behind() -> None:
    term = OnPty(_server_argv("--port", "0", "--tui"), cols=90, rows=24)
    try:
        term.wait_for(r"ThrottleKit · memory")
        children = Path(f"/proc/{term.proc.pid}/task/{term.proc.pid}/children").read_text().split()
        assert len(children) == 1, children  # the dashboard process
        dashboard = int(children[0])
        os.kill(term.proc.pid, signal.SIGKILL)  # the server only: its link end closes with it
        deadline = time.monotonic() + 10
        while Path(f"/proc/{dashboard}").exists() and _state(dashboard) != "Z":
            assert time.monotonic() < deadline, "the dashboard outlived its server"
            time.sleep(0.05)
    finally:
        term.kill()
        term.close()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


FAIR = """
version: 1
limiters:
  tenants: { fairEscrow: { limit: 100, windowMs: 60000, weights: { gold: 3 }, unit: tokens } }
"""


def test_fairness_and_cost_room_views_show_the_escrow_window(start_server: Starter) -> None:
    clock = ManualClock(1_764_460_800_000)  # a window start
    served = start_server(FAIR, store=MemoryStore(clock=clock), clock=clock)
    hub = served.handle.hub
    assert hub is not None

    def snap() -> dict[str, Any]:
        return served.handle.submit(_on_loop(hub.snapshot)).result(5)

    for _ in range(30):
        served.check("tenants", "gold")
    for _ in range(5):
        served.check("tenants", "free")
    first = snap()
    [wfe] = first["stats"]
    assert wfe["name"] == "tenants" and wfe["kind"] == "wfe"
    assert wfe["value"]["totalUsed"] == 35 and wfe["value"]["effectiveLimit"] == 100
    assert [(t["tenant"], t["weight"], t["used"]) for t in wfe["value"]["tenants"]] == [
        ("gold", 3, 30),
        ("free", 1, 5),
    ]
    [room] = first["costRooms"]
    assert room["unit"] == "tokens" and room["pool"] == 65
    assert [(t["tenant"], t["guaranteed"], t["borrowed"], t["burnReason"]) for t in room["tenants"]] == [
        ("gold", 75, 0, "warming"),  # floor(3 * 100 / 4); one sample so far
        ("free", 25, 0, "warming"),
    ]
    clock.advance(2000)
    for _ in range(20):
        served.check("tenants", "gold")
    second = snap()
    gold = second["costRooms"][0]["tenants"][0]
    assert gold["burnPerSec"] == 10.0  # 20 units over the 2 s between the two samples
    assert gold["etaToExhaustAt"] == clock.now_ms() + 2500  # 25 left to its floor at 10/s
    assert second["costRooms"][0]["poolEtaToExhaustAt"] == clock.now_ms() + 4500  # 45 left at 10/s

    link, running = linked(served, hub)
    app = LensApp(LensSource.over_link(link), color=False)

    async def scenario() -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("3")
            fairness = await until(app, "tenants  L 100  used 55  free 45")
            assert "gold             used     50 guar     75 borrowed      0" in fairness
            await pilot.press("6")
            room = await until(app, "unit tokens")
            assert "L 100  used 55  pool 45  pool ETA 4.5s" in room

    try:
        asyncio.run(scenario())
    finally:
        link.close()
    running.result(timeout=5)
