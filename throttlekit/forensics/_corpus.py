"""Traces and corpora: what a replay runs over, read from JSON with every bad value named.

A trace is ``{"steps": [{"key", "cost", "at", "decision"?}, ...], "truncated"?: bool, ...}`` (the shape
``capture export`` writes as ``{"kind": "replay-trace", "trace": ...}``; other fields are kept as
provenance and ignored). A corpus is ``{"<policy>": trace | [trace, ...]}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigError, quote
from .._validate import MAX_SAFE_INTEGER
from ._engine import Arrival

__all__ = [
    "MAX_KEY_LENGTH",
    "Corpus",
    "CorpusError",
    "Trace",
    "load_corpus",
    "merge",
    "parse_corpus",
    "parse_trace",
]

#: Longest key a step may carry (a redacted key is 64 characters; raw keys in hand-made corpora are allowed).
MAX_KEY_LENGTH = 4096


class CorpusError(ConfigError):
    """A corpus or trace that cannot be replayed; the message names where and what."""


@dataclass(frozen=True)
class Trace:
    """Arrivals in recorded order; ``truncated`` when the recording stopped early (a prefix)."""

    steps: list[Arrival]
    truncated: bool = False


#: policy name -> its traces
Corpus = dict[str, list[Trace]]


def _where(path: str, what: str, value: Any, allowed: str) -> CorpusError:
    return CorpusError(f"policy plan: {path} {what} (got {quote(value)}; allowed: {allowed})")


def parse_trace(value: Any, path: str) -> Trace:
    """One trace from decoded JSON; ``path`` names it in errors (``corpus["api"][0]``)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("steps"), list):
        got = "an object without a steps array" if isinstance(value, Mapping) else type(value).__name__
        raise CorpusError(f'policy plan: {path} is not a trace ({got}; expected {{"steps": [...]}})')
    truncated = value.get("truncated", False)
    if not isinstance(truncated, bool):
        raise _where(f"{path}.truncated", "must be a boolean", truncated, "true or false")
    steps: list[Arrival] = []
    append = steps.append
    for i, step in enumerate(value["steps"]):
        if not isinstance(step, Mapping):
            raise _where(f"{path}.steps[{i}]", "must be an object", step, '{"key", "cost", "at"}')
        key, cost, at = step.get("key"), step.get("cost", 1), step.get("at")
        if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
            raise _where(
                f"{path}.steps[{i}].key", "must be a string", key, f"at most {MAX_KEY_LENGTH} characters"
            )
        if (
            isinstance(cost, bool)
            or not isinstance(cost, (int, float))
            or not math.isfinite(cost)
            or not 0 < cost <= MAX_SAFE_INTEGER
        ):
            raise _where(
                f"{path}.steps[{i}].cost",
                "must be a positive number",
                cost,
                f"0 < cost <= {MAX_SAFE_INTEGER}",
            )
        if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= MAX_SAFE_INTEGER:
            raise _where(
                f"{path}.steps[{i}].at", "must be an epoch-ms integer", at, f"0 to {MAX_SAFE_INTEGER}"
            )
        append((key, cost, at))
    return Trace(steps, truncated)


def parse_corpus(doc: Any) -> Corpus:
    """A corpus from decoded JSON."""
    if not isinstance(doc, Mapping):
        raise CorpusError(
            f"policy plan: corpus is not an object (got {type(doc).__name__}; expected "
            '{"<policy>": trace | [trace, ...]})'
        )
    out: Corpus = {}
    for name, value in doc.items():
        where = f"corpus[{json.dumps(name)}]"
        if isinstance(value, list):
            out[name] = [parse_trace(t, f"{where}[{i}]") for i, t in enumerate(value)]
        else:
            out[name] = [parse_trace(value, where)]
    return out


def load_corpus(path: str | Path) -> Corpus:
    """A corpus file (JSON). Raises :class:`CorpusError` naming the file on a read or parse error."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"policy plan: cannot read corpus {p}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CorpusError(f"policy plan: corpus {p} is not JSON: {exc}") from exc
    return parse_corpus(doc)


def merge(traces: list[Trace]) -> tuple[list[Arrival], bool]:
    """One arrival list from a policy's traces (ordered by ``at``, recorded order kept among equal
    instants, so segments flushed one after another join in time order) and whether any was truncated."""
    if len(traces) == 1:
        steps = traces[0].steps
        ordered = all(steps[i][2] <= steps[i + 1][2] for i in range(len(steps) - 1))
        return (steps if ordered else sorted(steps, key=lambda a: a[2])), traces[0].truncated
    merged = [a for t in traces for a in t.steps]
    merged.sort(key=lambda a: a[2])
    return merged, any(t.truncated for t in traces)
