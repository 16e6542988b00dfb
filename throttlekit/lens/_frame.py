"""One Lens frame as text: a pure function of a ``LensSnapshot`` (the telemetry hub's dict, the Monitor
door's ``raw_json``), the dashboard's own state and the terminal size.

:func:`render_frame` returns exactly ``rows`` lines of exactly ``cols`` cells (Rich ``Text``, width-1
glyphs only), so the frame fits the terminal by construction and tests check any size without a
terminal. The Textual app (``_app.py``) only shows these lines, reads keys and repaints; nothing here
touches a decision, a store or the event loop. See docs/lens.md.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

__all__ = [
    "MIN_COLS",
    "MIN_ROWS",
    "SPARK_FRAMES",
    "TABS",
    "LensState",
    "render_frame",
]

#: The smallest terminal a frame is drawn in; below it the frame says so.
MIN_COLS, MIN_ROWS = 20, 6
#: Frames of new-denial history in the throughput sparkline.
SPARK_FRAMES = 120
#: The eight views, in key order (``1``..``8``).
TABS = ("Overview", "Latency", "Fairness", "Capacity", "Guarantee", "Cost Room", "Replay", "Plan")
LANES = ("rate", "concurrency", "cost", "policy")
_SPARK = " ▁▂▃▄▅▆▇█"
_HONESTY_REPLAY = (
    "what-if replays redacted live arrivals through the same Lua on a manual clock; it predicts flips, "
    "it does not change a live decision"
)
_HONESTY_PLAN = "a plan diffs a recorded corpus; traffic the corpus did not see is not predicted"


@dataclass
class LensState:
    """What the dashboard remembers between frames (the snapshot itself is not kept here)."""

    tab: int = 0
    #: Denial-feed scroll: 0 shows the newest denials; n scrolls n rows towards the oldest.
    scroll: int = 0
    paused: bool = False
    #: New denials per frame, for the sparkline (oldest first).
    spark: deque[int] = field(default_factory=lambda: deque(maxlen=SPARK_FRAMES))
    last_denied: int | None = None
    #: The TUI-only panels (What-If Replay and Plan), as their providers last returned them.
    replay: dict[str, Any] | None = None
    #: The last what-if result (``r``), kept apart from the panel, which repaints refresh.
    what_if: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None

    def observe(self, snapshot: dict[str, Any]) -> None:
        """Account one fresh snapshot in the sparkline (call once per unpaused frame)."""
        denied = sum(_analytics(p).get("denied", 0) for p in snapshot.get("policies", ()))
        if self.last_denied is None:
            new = 0
        elif denied >= self.last_denied:
            new = denied - self.last_denied
        else:  # the 60 s window rolled: what it holds now is new since the roll
            new = denied
        self.last_denied = denied
        self.spark.append(new)

    def key(self, name: str, feed_len: int) -> None:
        """Apply one key press (Textual key names); unknown keys are ignored."""
        if len(name) == 1 and name in "12345678":
            self.tab = int(name) - 1
        elif name == "tab":
            self.tab = (self.tab + 1) % len(TABS)
        elif name in ("shift+tab", "backtab"):
            self.tab = (self.tab - 1) % len(TABS)
        elif name == "up":
            self.scroll += 1
        elif name == "down":
            self.scroll -= 1
        elif name == "pageup":
            self.scroll += 10
        elif name == "pagedown":
            self.scroll -= 10
        elif name == "g":
            self.scroll = feed_len
        elif name == "G":
            self.scroll = 0
        elif name == "p":
            self.paused = not self.paused
        self.scroll = max(0, min(self.scroll, max(0, feed_len - 1)))


def render_frame(
    snapshot: dict[str, Any],
    state: LensState,
    cols: int,
    rows: int,
    *,
    color: bool = True,
    clock: Callable[[], float] = time.time,
) -> list[Text]:
    """The frame: header, throughput strip, tab strip, body, status bar; ``rows`` x ``cols`` exactly."""
    if cols < MIN_COLS or rows < MIN_ROWS:
        lines = [Text("terminal too small"), Text(f"need {MIN_COLS}x{MIN_ROWS}"), Text(f"have {cols}x{rows}")]
        return _fit(lines, cols, rows)
    style = _Styles(color)
    body_rows = rows - 4
    snap = snapshot if isinstance(snapshot, dict) else {}
    body = _guarded(lambda: _VIEWS[state.tab](snap, state, cols, body_rows, style), style)
    lines = [
        *_guarded(lambda: [_header(snap, cols, style, clock)], style),
        *_guarded(lambda: [_throughput(snap, state, cols, style)], style),
        _tabs(state.tab, cols, style),
        *_fit(body, cols, body_rows),
        *_guarded(lambda: [_status(snap, state, cols, style)], style),
    ]
    return _fit(lines, cols, rows)


def _guarded(draw: Callable[[], list[Text]], s: _Styles) -> list[Text]:
    """A piece of the frame; a snapshot the piece cannot read draws one line saying so instead of
    taking the dashboard down (the hub's shape is ours, so this is a bug report, not a code path)."""
    try:
        return draw()
    except Exception as exc:
        return [Text(f"(cannot draw this view: {type(exc).__name__}: {exc})", s.red)]


# -- frame pieces -----------------------------------------------------------------------------------------


class _Styles:
    """Rich styles, or none under NO_COLOR / a non-TTY."""

    def __init__(self, color: bool) -> None:
        on = color
        self.bold = "bold" if on else ""
        self.dim = "dim" if on else ""
        self.red = "red" if on else ""
        self.green = "green" if on else ""
        self.yellow = "yellow" if on else ""
        self.tab = "reverse bold" if on else ""
        self.badge = "reverse bold yellow" if on else ""
        self.hot = "bold red" if on else ""


def _header(snap: dict[str, Any], cols: int, s: _Styles, clock: Callable[[], float]) -> Text:
    health = snap.get("health") or {}
    meta = snap.get("meta") or {}
    n = len(snap.get("policies", ()))
    left = Text(f"ThrottleKit · {health.get('backend', '?')} · fail-{health.get('failMode', '?')} · ")
    left.append(f"{n} {'policy' if n == 1 else 'policies'}")
    left.stylize(s.bold, 0, 11)
    at = meta.get("generatedAt")
    now = at / 1000 if isinstance(at, (int, float)) else clock()
    window = int(meta.get("windowMs", 60_000)) // 1000
    right = Text(f"{time.strftime('%H:%M:%S', time.gmtime(now))} · {window}s window")
    return _spread(left, right, cols)


def _throughput(snap: dict[str, Any], state: LensState, cols: int, s: _Styles) -> Text:
    allowed = sum(_analytics(p).get("allowed", 0) for p in snap.get("policies", ()))
    denied = sum(_analytics(p).get("denied", 0) for p in snap.get("policies", ()))
    total = allowed + denied
    pct = 100 * denied / total if total else 0.0
    t = Text("ALLOW ")
    t.append(f"{allowed:,}", s.green)
    t.append("  DENY ")
    t.append(f"{denied:,}", s.red)
    t.append(f"  {pct:.1f}% denied  ")
    room = cols - t.cell_len
    if room > 0:
        t.append(_sparkline(list(state.spark)[-room:]), s.red)
    return t


def _sparkline(values: Sequence[int]) -> str:
    top = max(values, default=0)
    if top <= 0:
        return _SPARK[1] * len(values) if values else ""
    steps = len(_SPARK) - 1
    return "".join(_SPARK[0 if v <= 0 else max(1, round(v * steps / top))] for v in values)


def _tabs(active: int, cols: int, s: _Styles) -> Text:
    t = Text()
    for i, name in enumerate(TABS):
        label = f" {i + 1} {name} "
        t.append(label, s.tab if i == active else s.dim)
    if t.cell_len > cols:  # narrow: the active tab's full name, the others by number
        t = Text()
        for i, name in enumerate(TABS):
            t.append(f" {i + 1}{':' + name if i == active else ''} ", s.tab if i == active else s.dim)
    return t


def _status(snap: dict[str, Any], state: LensState, cols: int, s: _Styles) -> Text:
    left = Text("q quit  1-8/Tab views  ↑↓ scroll  p pause  r what-if  P plan")
    if state.paused:
        left = Text.assemble(Text(" PAUSED ", s.badge), " ", left)
    node = str((snap.get("meta") or {}).get("nodeId", ""))
    return _spread(left, Text(node, s.dim), cols)


# -- the eight views ----------------------------------------------------------------------------------


def _overview(snap: dict[str, Any], state: LensState, cols: int, rows: int, s: _Styles) -> list[Text]:
    out: list[Text] = []
    admitters = [p for p in snap.get("policies", ()) if p.get("kind") == "admitter"]
    unified = [p for p in admitters if len(p.get("axes") or ()) > 1]  # the spec's hero: a unified one
    hero = (unified or admitters or [None])[0]
    if hero is None:
        out.append(Text("binding axis  (no admitter policies reporting)", s.dim))
    else:
        a = _analytics(hero)
        by_lane = a.get("deniedByLane") or {}
        denied = sum(int(by_lane.get(lane, 0)) for lane in LANES)
        out.append(Text(f"binding axis · {hero.get('name', '')} · {denied} denied", s.bold))
        for lane in LANES:
            n = int(by_lane.get(lane, 0))
            share = n / denied if denied else 0.0
            line = Text(f"  {lane:<12}{n:>7} {100 * share:5.1f}% ")
            line.append(_bar(share, max(0, cols - line.cell_len)), s.red)
            out.append(line)
    out.append(Text(""))
    merged: list[tuple[int, str, str]] = []
    for p in snap.get("policies", ()):
        for kc in _analytics(p).get("topDenied", ()):
            merged.append((int(kc.get("count", 0)), str(kc.get("key", "")), str(p.get("name", ""))))
    merged.sort(key=lambda m: (-m[0], m[1]))
    out.append(Text("top denied keys", s.bold))
    if not merged:
        out.append(Text("  (no denials in this window)", s.dim))
    for count, key, policy in merged[:5]:
        out.append(Text(f"  {count:>7}  {key}  [{policy}]"))
    out.append(Text(""))
    out.append(Text("guards", s.bold))
    guards = snap.get("guards") or []
    if not guards:
        out.append(Text("  (no concurrency guards)", s.dim))
    for g in guards[:4]:
        out.append(_guard_line(g, s))
    out.append(Text(""))
    out.append(Text("live denials (↑↓ PgUp PgDn g G)", s.bold))
    feed = _feed(snap, state, max(1, rows - len(out)), s)
    return out + feed


def _feed(snap: dict[str, Any], state: LensState, rows: int, s: _Styles) -> list[Text]:
    denials = list(snap.get("recentDenials") or [])
    if not denials:
        return [Text("  (no denials yet)", s.dim)]
    end = max(1, len(denials) - state.scroll)
    shown = denials[max(0, end - rows) : end]
    out = []
    who = [f"{d.get('key', '')}" + (f" [{d['lane']}]" if d.get("lane") else "") for d in shown]
    pw = min(16, max(len(str(d.get("policy", ""))) for d in shown))
    kw = min(24, max(len(w) for w in who))
    for d, w in zip(shown, who):
        dec = d.get("decision") or {}
        at = d.get("at")
        stamp = (
            time.strftime("%H:%M:%S", time.gmtime(at / 1000)) if isinstance(at, (int, float)) else "--:--:--"
        )
        line = Text(f"  {stamp}  {_clip(str(d.get('policy', '')), pw):<{pw}}  {_clip(w, kw):<{kw}}")
        line.append(f"  remaining {dec.get('remaining', 0)}  retry {_ms(dec.get('retryAfterMs', 0))}", s.dim)
        out.append(line)
    return out


def _latency(snap: dict[str, Any], state: LensState, cols: int, rows: int, s: _Styles) -> list[Text]:
    out = [Text(f"{'policy':<24}{'avg':>10}{'p50':>10}{'p99':>10}{'max':>10}{'n':>8}", s.bold)]
    policies = snap.get("policies") or []
    if not policies:
        out.append(Text("(no policies)", s.dim))
    for p in policies:
        lat = p.get("latency") or {}
        n = int(lat.get("n", 0))
        name = _clip(str(p.get("name", "")), 23)
        if n == 0:
            out.append(Text(f"{name:<24}", "").append("no samples yet", s.dim))
            continue
        p50, p99 = float(lat.get("p50Ms", 0)), float(lat.get("p99Ms", 0))
        line = Text(f"{name:<24}{_ms_f(lat.get('avgMs', 0)):>10}{_ms_f(p50):>10}")
        hot = p99 >= 25 and p99 >= 10 * p50
        line.append(f"{_ms_f(p99):>10}", s.hot if hot else "")
        line.append(f"{_ms_f(lat.get('maxMs', 0)):>10}{n:>8}")
        out.append(line)
    out.append(Text(""))
    out.append(Text("p99 in red: at least 25 ms and 10x the median (a tail, not a slow store)", s.dim))
    return out


def _fairness(snap: dict[str, Any], state: LensState, cols: int, rows: int, s: _Styles) -> list[Text]:
    rooms = [x for x in (snap.get("stats") or []) if x.get("kind") == "wfe"]
    if not rooms:
        return [Text("(no fair-share policies reporting)", s.dim)]
    out: list[Text] = []
    for room in rooms:
        v = room.get("value") or {}
        if "error" in v or "error" in room:
            out.append(Text(f"{room.get('name', '')}: {v.get('error') or room.get('error')}", s.red))
            continue
        limit = int(v.get("effectiveLimit", v.get("limit", 0)))
        tenants = list(v.get("tenants") or [])
        weights = sum(float(t.get("weight", 1)) for t in tenants) or 1.0
        rows_ = []
        for t in tenants:
            w = float(t.get("weight", 1))
            guar = int(w * limit // weights)
            used = int(t.get("used", 0))
            rows_.append((max(used, guar), str(t.get("tenant", "")), used, guar))
        rows_.sort(key=lambda r: (-r[0], r[1]))
        out.append(
            Text(
                f"{room.get('name', '')}  L {limit}  used {v.get('totalUsed', 0)}  free {v.get('pool', 0)}",
                s.bold,
            )
        )
        for _, tenant, used, guar in rows_[:10]:
            borrowed = max(0, used - guar)
            line = Text(f"  {_clip(tenant, 16):<16} used {used:>6} guar {guar:>6} borrowed {borrowed:>6} ")
            share = used / limit if limit else 0.0
            line.append(
                _bar(min(1.0, share), max(0, cols - line.cell_len)), s.yellow if borrowed else s.green
            )
            out.append(line)
        if len(rows_) > 10:
            below = sum(1 for r in rows_[10:] if r[2] < r[3])
            out.append(Text(f"  +{len(rows_) - 10} more ({below} below guarantee)", s.dim))
    return out


def _capacity(snap: dict[str, Any], state: LensState, cols: int, rows: int, s: _Styles) -> list[Text]:
    now = (snap.get("meta") or {}).get("generatedAt", 0)
    out = [Text(f"{'policy':<24}{'hottest key':<20}{'spendable':>10}{'+1 in':>10}{'full in':>10}", s.bold)]
    reasons = {"async": "(async store)", "unsupported": "(no forecast)", "idle": "(no traffic yet)"}
    for p in snap.get("policies") or []:
        name = f"{_clip(str(p.get('name', '')), 23):<24}"
        if p.get("kind") == "admitter":
            out.append(Text(name).append("n/a (admitter)", s.dim))
            continue
        fc = p.get("forecast")
        if not fc:
            reason = reasons.get(str(p.get("forecastUnavailable", "")), "(no forecast)")
            out.append(Text(name).append(f"n/a {reason}", s.dim))
            continue
        plus = _rel(fc.get("nextReplenishAt"), now)
        full = _rel(fc.get("fullAt"), now)
        out.append(
            Text(
                f"{name}{_clip(str(fc.get('key', '')), 19):<20}{fc.get('spendableNow', 0):>10}{plus:>10}{full:>10}"
            )
        )
    if len(out) == 1:
        out.append(Text("(no limiters)", s.dim))
    return out


def _guarantee(snap: dict[str, Any], state: LensState, cols: int, rows: int, s: _Styles) -> list[Text]:
    guards = snap.get("guards") or []
    fences = snap.get("recentFences") or []
    within = sum(1 for g in guards if int(g.get("inflight", 0)) <= int(g.get("limit", 0)))
    out = [
        Text(
            f"{within} guard(s) within their slice · {len(guards) - within} draining over it · "
            f"{len(fences)} self-fence(s)",
            s.bold,
        )
    ]
    if not guards:
        out.append(Text("(no concurrency guards)", s.dim))
    for g in guards:
        out.append(_guard_line(g, s))
    out.append(Text(""))
    out.append(Text("last self-fences", s.bold))
    if not fences:
        out.append(Text("  (none)", s.dim))
    for f in fences[-5:]:
        at = f.get("at")
        stamp = time.strftime("%H:%M:%S", time.gmtime(at / 1000)) if isinstance(at, (int, float)) else "?"
        out.append(Text(f"  {stamp}  {f.get('guard', '')}"))
    out.append(Text(""))
    out.append(
        Text(
            "the fleet bound (sum of slices <= L_global) is a design property; it is not verified live", s.dim
        )
    )
    return out


def _guard_line(g: dict[str, Any], s: _Styles) -> Text:
    inflight, limit = int(g.get("inflight", 0)), int(g.get("limit", 0))
    line = Text(
        f"  {_clip(str(g.get('name', '')), 18):<18} {inflight}/{limit} headroom {max(0, limit - inflight)}"
    )
    if g.get("rttNoload") is not None:
        line.append(f"  rtt0 {_ms(g.get('rttNoload'))}")
    if g.get("lGlobal"):
        line.append(f"  share {g.get('share', 0)} of {g.get('lGlobal')} on {g.get('nodes', 0)} node(s)")
    if g.get("fenced"):
        line.append("  FENCED", s.hot)
    return line


def _cost_room(snap: dict[str, Any], state: LensState, cols: int, rows: int, s: _Styles) -> list[Text]:
    rooms = snap.get("costRooms") or []
    if not rooms:
        return [Text("(no cost rooms: no fair-escrow policy has costRoom on)", s.dim)]
    now = (snap.get("meta") or {}).get("generatedAt", 0)
    out: list[Text] = []
    for r in rooms:
        start, span = r.get("windowStart"), int(r.get("windowMs", 0))
        resets = _rel(start + span, now) if isinstance(start, (int, float)) else "warming"
        out.append(
            Text(
                f"{r.get('policy', '')} · window {span // 1000}s · resets in {resets} · "
                f"{r.get('scope', 'single-node')} · L1-only · unit {r.get('unit', 'units')}",
                s.bold,
            )
        )
        eta = _rel(r.get("poolEtaToExhaustAt"), now) if r.get("poolEtaToExhaustAt") else "-"
        out.append(
            Text(
                f"  L {r.get('effectiveLimit', r.get('limit', 0))}  used {r.get('totalUsed', 0)}  "
                f"pool {r.get('pool', 0)}  pool ETA {eta}  cost lane not configured",
                s.dim,
            )
        )
        for t in (r.get("tenants") or [])[:12]:
            burn = t.get("burnPerSec")
            why = {"window-too-short": "win<1.3s"}.get(
                str(t.get("burnReason")), str(t.get("burnReason") or "")
            )
            burn_s = f"{burn:.1f}/s" if isinstance(burn, (int, float)) and burn > 0 else (why or "warming")
            eta_t = _rel(t.get("etaToExhaustAt"), now) if t.get("etaToExhaustAt") else f"resets in {resets}"
            line = Text(
                f"  {_clip(str(t.get('tenant', '')), 14):<14} {t.get('used', 0):>6}/{t.get('guaranteed', 0)}"
                f"(+{t.get('borrowed', 0)}) {burn_s:>9} {eta_t:>12} "
            )
            limit = int(r.get("effectiveLimit", 0)) or 1
            line.append(
                _bar(min(1.0, int(t.get("used", 0)) / limit), max(0, cols - line.cell_len)),
                s.yellow if t.get("borrowed") else s.green,
            )
            out.append(line)
    return out


def _replay(snap: dict[str, Any], state: LensState, cols: int, rows: int, s: _Styles) -> list[Text]:
    panel = state.replay
    if not panel and not state.what_if:
        return [
            Text("(what-if replay is off: add a `replay:` block with enabled: true)", s.dim),
            Text(""),
            Text(_HONESTY_REPLAY, s.dim),
        ]
    panel = panel or {}
    out = [Text(f"{'policy':<24}{'steps':>10}  state", s.bold)]
    for sh in panel.get("shadows") or []:
        out.append(
            Text(f"{_clip(str(sh.get('policy', '')), 23):<24}{sh.get('steps', 0):>10}  {sh.get('state', '')}")
        )
    out.append(Text(""))
    cand = panel.get("candidate")
    out.append(Text(f"candidate: {cand or '(none configured)'}", s.bold))
    result = state.what_if or panel.get("result")
    if result is None:
        out.append(Text("press r to run the what-if", s.dim))
    elif result.get("refusal"):
        out.append(Text(f"REFUSED — {result.get('refusal')}", s.red))
    else:
        out.append(
            Text(
                f"{result.get('policy', '')}: {result.get('state', '')} · {result.get('steps', 0)} steps · "
                f"allow→deny {result.get('flippedAllowToDeny', 0)} · deny→allow "
                f"{result.get('flippedDenyToAllow', 0)} · divergent {result.get('divergent', 0)}"
            )
        )
    out.append(Text(""))
    out.append(Text(_HONESTY_REPLAY, s.dim))
    return out


def _plan(snap: dict[str, Any], state: LensState, cols: int, rows: int, s: _Styles) -> list[Text]:
    panel = state.plan
    if not panel or panel.get("placeholder"):
        reason = (panel or {}).get("placeholder", "no-candidate")
        return [
            Text(f"({reason}: start with --plan-candidate FILE and a `replay:` block, then press P)", s.dim),
            Text(""),
            Text(_HONESTY_PLAN, s.dim),
        ]
    out = [Text(f"candidate: {panel.get('candidate', '')}", s.bold)]
    if panel.get("corpus"):
        out.append(Text(str(panel["corpus"]), s.dim))
    summary = panel.get("summary")
    if summary:
        out.append(Text(str(summary)))
    for row in (panel.get("rows") or [])[:8]:
        out.append(Text(f"  {row}"))
    out.append(Text(""))
    out.append(Text(_HONESTY_PLAN, s.dim))
    return out


_VIEWS: tuple[Callable[[dict[str, Any], LensState, int, int, _Styles], list[Text]], ...] = (
    _overview,
    _latency,
    _fairness,
    _capacity,
    _guarantee,
    _cost_room,
    _replay,
    _plan,
)


# -- helpers --------------------------------------------------------------------------------------------


def _analytics(policy: dict[str, Any]) -> dict[str, Any]:
    a = policy.get("analytics")
    return a if isinstance(a, dict) else {}


def _fit(lines: Iterable[Text], cols: int, rows: int) -> list[Text]:
    """Exactly ``rows`` lines of exactly ``cols`` cells: long lines cropped, short ones padded."""
    out: list[Text] = []
    for line in lines:
        if len(out) == rows:
            break
        t = line.copy()
        t.truncate(cols, overflow="crop", pad=True)
        out.append(t)
    while len(out) < rows:
        out.append(Text(" " * cols))
    return out


def _spread(left: Text, right: Text, cols: int) -> Text:
    gap = cols - left.cell_len - right.cell_len
    if gap < 1:
        return left
    return Text.assemble(left, " " * gap, right)


def _bar(share: float, width: int) -> str:
    width = min(width, 30)
    n = max(0, min(width, round(share * width)))
    return "█" * n + "·" * (width - n)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _ms(v: Any) -> str:
    try:
        ms = float(v)
    except (TypeError, ValueError):
        return "?"
    return f"{ms / 1000:.1f}s" if ms >= 1000 else f"{ms:.0f}ms"


def _ms_f(v: Any) -> str:
    try:
        return f"{float(v):.2f}ms"
    except (TypeError, ValueError):
        return "?"


def _rel(at: Any, now: Any) -> str:
    if not isinstance(at, (int, float)) or not isinstance(now, (int, float)):
        return "n/a"
    return _ms(max(0, at - now))
