#!/usr/bin/env python3
"""Draw docs/lens/<view>.svg: each of Lens' eight views over a real in-process server with real traffic.

    python scripts/lens_screenshots.py [--out docs/lens] [--cols 110 --rows 32]

A server on an ephemeral port serves examples/lens.yaml on the memory store (rate, concurrency, unified,
fair-escrow policies and a replay block); a client makes a burst of Checks (some keys over their limit),
holds admissions and spends the escrow; the dashboard reads the server's telemetry hub over the same link
``--tui`` uses (``r`` and ``P`` run the what-if and the plan against examples/lens-candidate.yaml), and
Textual's headless harness saves one SVG per view. Needs the ``tui`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from throttlekit.client import ServiceBackend  # noqa: E402
from throttlekit.config import load_config_file  # noqa: E402
from throttlekit.forensics import attach_replay  # noqa: E402
from throttlekit.lens import TABS, LensApp, LensSource  # noqa: E402
from throttlekit.lens._link import LinkClient, serve_link  # noqa: E402
from throttlekit.lens._panels import ReplayPanels  # noqa: E402
from throttlekit.server import RateLimiterService, serve  # noqa: E402

SLUGS = ["overview", "latency", "fairness", "capacity", "guarantee", "cost-room", "replay", "plan"]


def traffic(target: str, seed: int = 7) -> list[object]:
    """A skewed burst: a few heavy keys go over their rate limits, many light keys do not; tenants spend
    the fair escrow in two bursts a second apart (so the Cost Room has burn rates); jobs and checkouts are
    admitted and held (returned, so the guards show them in flight) until the limits bind."""
    rng = random.Random(seed)
    held: list[object] = []
    with ServiceBackend(target) as client:
        for i in range(400):
            key = rng.choice(["alice", "alice", "alice", "bob", "bob", "carol"]) if i % 3 else f"user-{i}"
            policy = rng.choice(["api", "api", "search", "login"])
            client.check(policy, key)
        for i in range(12):
            for policy in ("jobs", "checkout"):
                admission = client.admit(policy, f"worker-{i % 4}")
                if admission.allowed:
                    held.append(admission)
        for tenant, n in (("gold", 60), ("free", 40), ("trial", 10)):
            for _ in range(n):
                client.check("tenants", tenant)
    return held


def more_tenant_traffic(target: str) -> None:
    with ServiceBackend(target) as client:
        for tenant, n in (("gold", 50), ("free", 20)):
            for _ in range(n):
                client.check("tenants", tenant)


async def shoot(
    handle: object, snapshot: object, panels: object, target: str, out: Path, cols: int, rows: int
) -> list[Path]:
    mine, theirs = socket.socketpair()
    running = handle.submit(serve_link(mine, snapshot, panels))  # type: ignore[attr-defined]
    app = LensApp(LensSource.over_link(LinkClient(theirs.detach())))
    paths = []
    async with app.run_test(size=(cols, rows)) as pilot:
        await pilot.pause()
        await asyncio.sleep(1.2)  # a second sample for the Cost Room's burn rates
        await asyncio.to_thread(more_tenant_traffic, target)
        await asyncio.sleep(0.6)
        for i, slug in enumerate(SLUGS):
            await pilot.press(str(i + 1))
            if slug in ("replay", "plan"):
                await pilot.press("r" if slug == "replay" else "P")
                await asyncio.sleep(1.0)  # the what-if / plan runs on the server's worker thread
            await pilot.pause()
            path = out / f"{slug}.svg"
            path.write_text(app.export_screenshot(title=f"ThrottleKit Lens · {TABS[i]}"))
            paths.append(path)
            print(f"{TABS[i]:<10} -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    running.result(timeout=5)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lens")
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "lens.yaml")
    parser.add_argument("--candidate", type=Path, default=ROOT / "examples" / "lens-candidate.yaml")
    parser.add_argument("--cols", type=int, default=110)
    parser.add_argument("--rows", type=int, default=32)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = load_config_file(args.config)
    service = RateLimiterService(cfg)
    shadows = attach_replay(service, cfg)
    panels = ReplayPanels(shadows, args.config, args.candidate)
    handle = serve(service, "127.0.0.1", 0)
    target = f"127.0.0.1:{handle.port}"
    try:
        assert handle.hub is not None
        held = traffic(target)  # admissions stay held (not released) while shooting
        asyncio.run(shoot(handle, handle.hub.snapshot, panels, target, args.out, args.cols, args.rows))
        del held
    finally:
        handle.close(grace=1)
        if shadows is not None:
            shadows.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
