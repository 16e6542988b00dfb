"""The Replay and Plan views' data: What-If Replay shadows (``replay:`` block) and ``--plan-candidate``.

The replay itself is :mod:`throttlekit.forensics` (the shadows on the decision tap, the what-if, the plan
diff); this module only shapes their results for the dashboard. ``prepare_*`` run on the server's event
loop and copy what they need (the shadows' arrivals); the function they return replays on a worker
thread, through the same Lua transforms on private memory stores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ReplayPanels"]

#: Per-policy rows the Plan view shows.
PLAN_ROWS = 8


class ReplayPanels:
    """The dashboard's :class:`~throttlekit.lens._link.Panels` over ``shadows`` (a
    :class:`~throttlekit.forensics.ReplayShadows`, or None when ``replay:`` is off) and an optional
    plan candidate file compared with the serving config file."""

    def __init__(self, shadows: Any, config_path: str | Path, candidate_path: str | Path | None) -> None:
        self.shadows = shadows
        self.config_path = Path(config_path)
        self.candidate_path = Path(candidate_path) if candidate_path is not None else None

    def _candidate_label(self) -> str | None:
        from ..forensics import describe_candidate

        delta = self.shadows.replay.candidate if self.shadows is not None else None
        return f"configured ({delta.policy}: {describe_candidate(delta)})" if delta is not None else None

    def replay(self) -> dict[str, Any] | None:
        if self.shadows is None:
            return None
        return {"shadows": self.shadows.status(), "candidate": self._candidate_label()}

    def prepare_what_if(self) -> Callable[[], dict[str, Any]] | None:
        if self.shadows is None:
            return None
        shadows, panel = self.shadows, self.replay()

        def job() -> dict[str, Any]:
            result = shadows.run().get("whatIf")
            if isinstance(result, dict) and isinstance(result.get("refusal"), dict):
                r = result["refusal"]
                result = {**result, "refusal": f"{r.get('reason')}: {r.get('message')}"}
            elif result is None:
                result = {"refusal": "no candidate: add replay.candidate (set, scale or swap) to the config"}
            return {**(panel or {}), "result": result}

        return job

    def prepare_plan(self) -> Callable[[], dict[str, Any]] | None:
        if self.candidate_path is None:
            return lambda: {"placeholder": "no-candidate"}
        if self.shadows is None:
            return lambda: {"placeholder": "no-shadows"}
        from ..forensics import Trace

        # copied on the loop: the shadows keep recording while the plan replays on a worker thread
        corpus = {
            name: [Trace(list(s.steps), s.truncated)] for name, s in self.shadows.shadows.items() if s.steps
        }
        config_path, candidate_path = self.config_path, self.candidate_path

        def job() -> dict[str, Any]:
            from ..forensics import load_policy_set, make_plan, render_text

            plan = make_plan(
                load_policy_set(config_path, "current"), load_policy_set(candidate_path, "candidate"), corpus
            )
            lines = render_text(plan).splitlines()
            rows = [ln.strip() for ln in lines[2:] if not ln.startswith("Summary:")][:PLAN_ROWS]
            return {
                "candidate": candidate_path.name,
                "corpus": lines[1],
                "summary": lines[-1],
                "rows": rows,
            }

        return job
