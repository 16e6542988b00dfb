"""Forensics and safe change: decision capture, What-If Replay and Policy Plans.

- :mod:`._engine`: cold record / replay of a rate strategy over arrivals (the server's Lua transforms on
  a private memory store, the clock set to each arrival's instant);
- :mod:`._corpus`: traces and corpora read from JSON;
- :mod:`._plan`: policy sets, the plan diff, its renders and gates (``throttlekit-server policy plan``);
- :mod:`._redact`, :mod:`._capture`, :mod:`._segments`, :mod:`._admin`: decision capture (the recorder
  registered on the decision tap, encrypted segments, the audit log, the admin actions);
- :mod:`._candidate`, :mod:`._shadow`: What-If Replay (the candidate DSL, shadows fed from the tap; the
  dashboard's Replay and Plan tabs shape their results in ``throttlekit/lens/_panels.py``).
"""

from __future__ import annotations

from ._admin import CaptureAdmin, CaptureAdminError, to_trace
from ._candidate import LIMITER_FIELDS, Refusal, apply_candidate, describe_candidate
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
from ._shadow import ReplayShadows, Shadow, ShadowView, attach_replay, what_if

__all__ = [
    "AUDIT_FILE",
    "DROPPED",
    "FLUSH_INTERVAL_S",
    "LIMITER_FIELDS",
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
    "Refusal",
    "ReplayShadows",
    "SegmentError",
    "SegmentStore",
    "Shadow",
    "ShadowView",
    "Trace",
    "apply_candidate",
    "attach_capture",
    "attach_replay",
    "banner",
    "classify",
    "describe_candidate",
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
    "what_if",
]
