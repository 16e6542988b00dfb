"""throttlekit-py 0.5.x (PyPI, its own venv) drives Admit / Release / Heartbeat against our server
unchanged: its ``admit()`` context manager, a heartbeat-kept hold longer than the lease TTL, a unified
policy's binding axis, and a crashed holder (the process killed) whose slot comes back within the lease
TTL plus one sweep. The policy file carries admitters beside rate policies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

import throttlekit as tk
from tests._support.server import Starter
from tests._support.tkpy import run_tkpy, tkpy_python

pytestmark = pytest.mark.slow

TTL_MS = 600
SWEEP_S = 0.2

POLICIES = {
    "api": {"strategy": "gcra", "limit": 100, "period": "1s"},
    "pinned3": {"concurrency": {"minLimit": 3, "maxLimit": 3}},
    "single": {"concurrency": {"minLimit": 1, "maxLimit": 1}},
    "unified": {
        "strategy": "gcra",
        "limit": 5,
        "period": "10s",
        "burst": 5,
        "concurrency": {"minLimit": 2, "maxLimit": 2},
    },
    "window": {"strategy": "fixedWindow", "limit": 5, "period": "1m"},
}

SCRIPT = r"""
import json, sys, time
from throttlekit import ServiceBackend
from throttlekit.errors import OperationNotSupportedError

out = {}
with ServiceBackend(sys.argv[1], heartbeat_interval=0.15) as b:
    held = []
    with b.admit("pinned3", "k") as a:
        held.append([a.allowed, a.held, bool(a.lease_id), a.lease_expires_at > 0, a.binding_axis])
        extra = [b.admit("pinned3", "k") for _ in range(3)]
        held.append([x.allowed for x in extra] + [extra[-1].binding_axis, extra[-1].held])
        for x in extra:
            x.release()
            x.release()
    after = b.admit("pinned3", "k")
    held.append(after.allowed)
    after.release()
    try:
        with b.admit("pinned3", "k") as a:
            raise ValueError("work failed")
    except ValueError:
        held.append("raised")
    out["pinned"] = held

    long = b.admit("single", "k", heartbeat=True)
    time.sleep(3 * float(sys.argv[2]) / 1000)
    other = b.admit("single", "k")
    out["heartbeat"] = [long.allowed, long.reclaimed, other.allowed, other.binding_axis]
    long.release()
    out["after_heartbeat"] = b.admit("single", "k").allowed  # (left held: reclaimed by the TTL)

    u = [b.admit("unified", "u") for _ in range(3)]
    out["unified_conc"] = [(x.allowed, x.binding_axis, x.decision.limit) for x in u]
    for x in u:
        x.release()
    axes = []
    for _ in range(5):
        with b.admit("unified", "u") as x:
            axes.append((x.allowed, x.binding_axis))
    out["unified_rate"] = axes
    try:
        b.admit("api", "k")
    except OperationNotSupportedError:
        out["admit_on_rate"] = "OperationNotSupportedError"
print(json.dumps(out))
"""

HOLDER = r"""
import sys, time
from throttlekit import ServiceBackend
b = ServiceBackend(sys.argv[1])
a = b.admit("single", "k")
print(a.allowed, a.lease_id, flush=True)
time.sleep(60)
"""


def test_throttlekit_py_drives_admit_release_heartbeat(start_server: Starter) -> None:
    s = start_server(POLICIES, lease_ttl_ms=TTL_MS, sweep_s=SWEEP_S)
    out = json.loads(run_tkpy(SCRIPT, s.target, str(TTL_MS)))
    assert out["pinned"] == [
        [True, True, True, True, ""],
        [True, True, False, "concurrency", False],
        True,
        "raised",
    ]
    # held across 3 TTLs by its heartbeats: never reclaimed, the single slot stays taken
    assert out["heartbeat"] == [True, False, False, "concurrency"]
    assert out["after_heartbeat"] is True
    assert out["unified_conc"] == [[True, "", 2], [True, "", 2], [False, "concurrency", 2]]
    # gcra burst 5 per 10 s: two admits spent tokens 1-2, these three spend 3-5, then rate binds
    assert out["unified_rate"] == [[True, ""], [True, ""], [True, ""], [False, "rate"], [False, "rate"]]
    assert out["admit_on_rate"] == "OperationNotSupportedError"


def test_a_crashed_holders_slot_is_reclaimed_within_ttl_plus_a_sweep(start_server: Starter) -> None:
    s = start_server(POLICIES, lease_ttl_ms=TTL_MS, sweep_s=SWEEP_S)
    holder = subprocess.Popen(
        [str(tkpy_python()), "-c", HOLDER, s.target],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
        cwd="/",
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline().split()
        assert line[0] == "True" and line[1], line
        with tk.ServiceBackend(s.target, timeout=5) as c:
            assert c.admit("single", "k").allowed is False  # the holder has it
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(10)
            killed = time.monotonic()
            while True:
                adm = c.admit("single", "k")
                if adm.allowed:
                    break
                assert time.monotonic() - killed < 10, "the crashed holder's slot was never reclaimed"
                time.sleep(0.02)
            waited = time.monotonic() - killed
            adm.release()
        # the lease was minted before the kill, so the slot is back no later than TTL + one sweep
        assert waited <= TTL_MS / 1000 + SWEEP_S + 0.5, waited
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
