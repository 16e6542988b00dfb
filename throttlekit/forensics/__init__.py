"""Forensics and safe change: decision capture, What-If Replay and Policy Plans.

- :mod:`._engine`: cold record / replay of a rate strategy over arrivals (the server's Lua transforms on
  a private memory store, the clock set to each arrival's instant);
- :mod:`._corpus`: traces and corpora read from JSON;
- :mod:`._plan`: policy sets, the plan diff, its renders and gates (``throttlekit-server policy plan``).
"""

from __future__ import annotations

from ._corpus import Corpus, CorpusError, Trace, load_corpus, merge, parse_corpus, parse_trace
from ._engine import Arrival, Fold, fold, record
from ._plan import (
    UNREPLAYABLE,
    Gates,
    Leaf,
    PlanError,
    PolicySet,
    classify,
    gate,
    load_policy_set,
    make_plan,
    render_text,
)

__all__ = [
    "UNREPLAYABLE",
    "Arrival",
    "Corpus",
    "CorpusError",
    "Fold",
    "Gates",
    "Leaf",
    "PlanError",
    "PolicySet",
    "Trace",
    "classify",
    "fold",
    "gate",
    "load_corpus",
    "load_policy_set",
    "make_plan",
    "merge",
    "parse_corpus",
    "parse_trace",
    "record",
    "render_text",
]
