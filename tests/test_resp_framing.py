"""Every hand-framed EVALSHA equals hiredis' own framing of the same command: the packer (both of its
paths), the common call's template a store formats inline, and the batch framing."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

import throttlekit as tk
from throttlekit._clock import SERVER_TIME
from throttlekit._loader import load_manifest
from throttlekit.stores._resp import evalsha_batch, evalsha_common, evalsha_packer, pack

_GCRA = load_manifest()["gcra"]
_PARAMS = tuple(tk.Gcra(100, "1s").params)

keys = st.text(min_size=0, max_size=40)
nows = st.one_of(st.just(SERVER_TIME), st.integers(0, 2**53 - 1), st.floats(0, 1e15, allow_nan=False))
costs = st.one_of(st.just(1), st.integers(1, 2**53 - 1), st.text(max_size=20))


def _expected(key: str, now: float, cost: object) -> bytes:
    return pack("EVALSHA", _GCRA.sha, 1, key, now, *_PARAMS, cost)


@given(keys, nows, costs)
@example("100%", SERVER_TIME, 1)
@example("%d%s%b%%", SERVER_TIME, 1)
@example("clé-ü-\u2603", SERVER_TIME, 1)
@example("", SERVER_TIME, 1)
@example("k", 1_700_000_000_000.5, 7)
def test_the_packer_frames_as_hiredis(key: str, now: float, cost: object) -> None:
    assert evalsha_packer(_GCRA, _PARAMS)(key, now, cost) == _expected(key, now, cost)  # type: ignore[arg-type]


@given(keys)
@example("100%")
@example("%d%s%b%%")
@example("clé-ü-\u2603")
def test_the_common_template_frames_as_hiredis(key: str) -> None:
    kb = key.encode()
    assert evalsha_common(_GCRA, _PARAMS) % (len(kb), kb) == _expected(key, SERVER_TIME, 1)


@given(st.lists(keys, max_size=5), nows)
@example(["a%", "\u2603", ""], SERVER_TIME)
def test_the_batch_frames_as_hiredis(batch: list[str], now: float) -> None:
    framed = evalsha_batch(_GCRA, [(k,) for k in batch], now, (*_PARAMS, 1))
    assert framed == b"".join(_expected(k, now, 1) for k in batch)
