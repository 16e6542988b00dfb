"""Simulate gradient2 vs aimd (and gradient2 with minRTT recalibration) on a latency step and draw the limit
over time as an SVG (no plotting library).

    .venv/bin/python scripts/plot_concurrency.py [--out docs/concurrency-gradient2-vs-aimd.svg]

The guards (gradient2 and aimd, minLimit 4, maxLimit 200, rttWindow 1000, tolerance 1.5) are the real ones (:class:`throttlekit.concurrency.ConcurrencyGuard`: every limit update is
the ``conc_release`` Lua transform) on a manual clock. The backend is a queue: a request's latency is
``base x max(1, in flight / capacity)``; clients always have work (every slot the guard offers is taken
at once). ``base`` steps from 20 ms to 80 ms at t = 4 s (the backend slows down) and back at t = 8 s.
The third run is gradient2 with ``recalibration: {intervalMs: 1000, probeLimit: 4, probeSamples: 10}``.
"""

from __future__ import annotations

import argparse
import heapq
from pathlib import Path

from throttlekit import ManualClock
from throttlekit.concurrency import ConcurrencyGuard, concurrency_params

DURATION_MS = 12_000
CAPACITY = 40
RTT_WINDOW = 1000
TOLERANCE = 1.5
STEP = (4_000, 8_000)


def base_latency(t: int) -> float:
    return 80.0 if STEP[0] <= t < STEP[1] else 20.0


#: the recalibrating run: a probe every second at 4 in flight, 10 pure samples re-learn the baseline
RECALIBRATION = {"intervalMs": 1000, "probeLimit": 4, "probeSamples": 10}
SERIES = {
    "gradient2": ("gradient2", None),
    "aimd": ("aimd", None),
    "gradient2 + recalibration": ("gradient2", RECALIBRATION),
}


def simulate(name: str) -> list[tuple[int, int, int]]:
    """(t ms, limit, in flight) sampled every 20 ms."""
    algorithm, recal = SERIES[name]
    clock = ManualClock(1_000_000)
    extra = {} if recal is None else {"recalibration": recal}
    guard = ConcurrencyGuard(
        concurrency_params(
            min_limit=4,
            max_limit=200,
            initial_limit=10,
            algorithm=algorithm,
            rtt_window=RTT_WINDOW,
            tolerance=TOLERANCE,
            **extra,
        ),
        clock=clock,
    )
    done: list[tuple[float, int, object]] = []
    n = 0
    out = []
    limit = 10
    for t in range(DURATION_MS):
        clock.set(1_000_000 + t)
        while done and done[0][0] <= t:
            _, _, grant = heapq.heappop(done)
            limit = guard.release(grant).limit  # type: ignore[arg-type]
        while True:
            g = guard.acquire()
            if not g.decision.allowed:
                break
            inflight = guard.inflight
            latency = base_latency(t) * max(1.0, inflight / CAPACITY)
            n += 1
            heapq.heappush(done, (t + round(latency), n, g))
        if t % 20 == 0:
            out.append((t, limit, guard.inflight))
    guard.close()
    return out


def svg(series: dict[str, list[tuple[int, int, int]]]) -> str:
    w, h, left, right, top, bottom = 900, 420, 60, 20, 40, 50
    pw, ph = w - left - right, h - top - bottom
    ymax = max(max(p[1] for p in s) for s in series.values())
    ymax = max(CAPACITY * 2, ((ymax // 20) + 1) * 20)

    def x(t: float) -> float:
        return left + pw * t / DURATION_MS

    def y(v: float) -> float:
        return top + ph * (1 - v / ymax)

    colors = {"gradient2": "#1f77b4", "aimd": "#d62728", "gradient2 + recalibration": "#2ca02c"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="15">Concurrency limit on a latency step '
        f"(base 20 ms, 80 ms from {STEP[0] // 1000} s to {STEP[1] // 1000} s; capacity {CAPACITY})</text>",
        f'<rect x="{x(STEP[0])}" y="{top}" width="{x(STEP[1]) - x(STEP[0])}" height="{ph}" fill="#f3f3f3"/>',
    ]
    for v in range(0, ymax + 1, 20):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v)}" y2="{y(v)}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4}" text-anchor="end">{v}</text>')
    for s in range(0, DURATION_MS // 1000 + 1):
        parts.append(f'<text x="{x(s * 1000)}" y="{top + ph + 18}" text-anchor="middle">{s}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle">time (s)</text>')
    parts.append(
        f'<text x="16" y="{top + ph / 2}" transform="rotate(-90 16 {top + ph / 2})" text-anchor="middle">'
        "limit (slots)</text>"
    )
    parts.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{y(CAPACITY)}" y2="{y(CAPACITY)}" stroke="#999" '
        'stroke-dasharray="4 4"/>'
    )
    parts.append(
        f'<text x="{left + pw - 4}" y="{y(CAPACITY) - 4}" text-anchor="end" fill="#666">capacity</text>'
    )
    for i, (name, pts) in enumerate(series.items()):
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v, _ in pts)
        parts.append(f'<polyline fill="none" stroke="{colors[name]}" stroke-width="2" points="{path}"/>')
        parts.append(
            f'<rect x="{left + 12}" y="{top + 10 + 18 * i}" width="14" height="4" fill="{colors[name]}"/>'
        )
        parts.append(f'<text x="{left + 32}" y="{top + 16 + 18 * i}">{name}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent.parent / "docs" / "concurrency-gradient2-vs-aimd.svg"),
    )
    args = ap.parse_args()
    series = {name: simulate(name) for name in SERIES}
    Path(args.out).write_text(svg(series))
    for name, pts in series.items():
        phases = [
            [v for t, v, _ in pts if lo <= t < hi] for lo, hi in ((0, STEP[0]), STEP, (STEP[1], DURATION_MS))
        ]
        print(
            name,
            "mean limit before / during / after the step:",
            " / ".join(f"{sum(p) / len(p):.1f}" for p in phases),
        )
    print("wrote", args.out)


if __name__ == "__main__":
    main()
