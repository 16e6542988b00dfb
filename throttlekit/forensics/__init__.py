"""Forensics and safe change: decision capture, What-If Replay and Policy Plans.

- :mod:`._engine`: cold record / replay of a rate strategy over arrivals (the server's Lua transforms on
  a private memory store, the clock set to each arrival's instant);
- :mod:`._corpus`: traces and corpora read from JSON;
- :mod:`._plan`: policy sets, the plan diff, its renders and gates (``throttlekit-server policy plan``);
- :mod:`._redact`, :mod:`._capture`, :mod:`._segments`, :mod:`._admin`: decision capture (the recorder
  registered on the decision tap, encrypted segments, the audit log, the admin actions).
"""

from __future__ import annotations

from ._admin import CaptureAdmin, CaptureAdminError, to_trace
from ._capture import FLUSH_INTERVAL_S, CaptureFlusher, CaptureRecorder, Decided, attach_capture, banner
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
from ._redact import DROPPED, Redactor
from ._segments import AUDIT_FILE, SegmentError, SegmentStore

__all__ = [
    "AUDIT_FILE",
    "DROPPED",
    "FLUSH_INTERVAL_S",
    "UNREPLAYABLE",
    "Arrival",
    "CaptureAdmin",
    "CaptureAdminError",
    "CaptureFlusher",
    "CaptureRecorder",
    "Corpus",
    "CorpusError",
    "Decided",
    "Fold",
    "Gates",
    "Leaf",
    "PlanError",
    "PolicySet",
    "Redactor",
    "SegmentError",
    "SegmentStore",
    "Trace",
    "attach_capture",
    "banner",
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
    "to_trace",
]
