"""Decision capture: the recorder on the service's decision tap (manual clock), redaction, rings and
retention, the encrypted segments on disk (tamper, wrong key, truncation, expiry, no plaintext) and the
audit log of the admin actions."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import throttlekit as tk
from throttlekit.config import load_config
from throttlekit.forensics import (
    DROPPED,
    CaptureAdmin,
    CaptureAdminError,
    CaptureRecorder,
    Redactor,
    SegmentError,
    SegmentStore,
    attach_capture,
)
from throttlekit.server import RateLimiterService

KEY_HEX = "0f" * 32
SECRET = "s3cret-hmac"


def _config(tmp: Path | None = None, **capture: Any) -> str:
    block: dict[str, Any] = {"enabled": True, "redaction": {"mode": "hmac", "secret": SECRET}}
    block.update(capture)
    if tmp is not None:
        block.setdefault("durable", {"dir": str(tmp / "segs"), "encryptionKeyHex": KEY_HEX})
        block.setdefault("auth", {"operatorSecret": "op-pass"})
    return json.dumps(
        {
            "limiters": {
                "api": {"strategy": "fixedWindow", "limit": 3, "period": "1m"},
                "meter": {"tokenBudget": {"budget": 10, "windowMs": 60000}},
            },
            "capture": block,
        }
    )


def _ref(raw: str) -> str:
    return hmac.new(SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()


def _service(text: str, clock: tk.ManualClock) -> tuple[RateLimiterService, Any]:
    cfg = load_config(text)
    service = RateLimiterService(cfg, clock=clock)
    flusher = attach_capture(service, cfg)
    assert flusher is not None
    return service, flusher


async def _traffic(service: RateLimiterService, clock: tk.ManualClock) -> None:
    for i in range(7):  # user0 x4 (the 4th denied: 3 per window), user1 x3
        await service.check("api", f"acme:user{i % 2}")
        clock.advance(10)
    await service.check_many("api", ["globex:a", "globex:b"])
    await service.peek("api", "acme:user0")  # not consuming: not recorded
    await service.debit("meter", "acme:llm", 4)


def test_counts_only_without_a_tenant_rule() -> None:
    clock = tk.ManualClock(1_000_000)
    service, flusher = _service(_config(), clock)
    asyncio.run(_traffic(service, clock))
    rec: CaptureRecorder = flusher.recorder
    assert rec.tallies == {"api": [8, 1], "meter": [1, 0]}
    assert rec.drain() == []
    asyncio.run(service.aclose())


def test_tenant_scoped_rings_redact_tenant_and_key() -> None:
    clock = tk.ManualClock(1_000_000)
    service, flusher = _service(_config(tenant={"from": "key-prefix"}), clock)
    asyncio.run(_traffic(service, clock))
    segs = {(s["scope"], s["policy"]): s for s in flusher.recorder.drain()}
    assert set(segs) == {(_ref("acme"), "api"), (_ref("globex"), "api"), (_ref("acme"), "meter")}
    api = segs[(_ref("acme"), "api")]
    assert api["count"] == 7 and api["dropped"] == 0 and api["createdAt"] == 1_000_000
    assert api["policyKind"] == "rate" and api["clock"] == "system" and api["redactionMode"] == "hmac"
    assert api["spec"] == {"limit": 3, "period": "1m", "prefix": _ref("api"), "strategy": "fixedWindow"}
    assert api["strategy"] == {"name": "fixedWindow", "limit": 3, "ttlMs": 0} and len(api["luaSha1"]) == 40
    first = api["events"][0]
    assert first == {
        "keyRef": _ref("acme:user0"),
        "cost": 1,
        "at": 1_000_000,
        "decision": {"allowed": True, "limit": 3, "remaining": 2, "resetAt": 1_020_000, "retryAfterMs": 0},
    }
    assert [e["decision"]["allowed"] for e in api["events"]] == [True] * 6 + [False]
    meter = segs[(_ref("acme"), "meter")]
    assert meter["policyKind"] == "meter" and "spec" not in meter and meter["events"][0]["cost"] == 4
    assert flusher.recorder.drain() == []  # rings restart empty
    asyncio.run(service.aclose())


def test_ring_size_tail_stop_and_max_scopes_eviction() -> None:
    clock = tk.ManualClock(1_000_000)
    text = _config(tenant={"from": "key"}, retention={"ringSize": 2, "maxScopes": 2})
    service, flusher = _service(text, clock)

    async def go() -> None:
        for _ in range(5):
            await service.check("api", "a")
        await service.check("api", "b")
        await service.check("api", "c")  # a third scope evicts the oldest ("a")

    asyncio.run(go())
    rec = flusher.recorder
    assert rec.evicted_events == 5
    segs = {s["scope"]: s for s in rec.drain()}
    assert set(segs) == {_ref("b"), _ref("c")}
    asyncio.run(service.aclose())

    service, flusher = _service(text, clock)

    async def fill() -> None:
        for _ in range(5):
            await service.check("api", "a")

    asyncio.run(fill())
    (seg,) = flusher.recorder.drain()
    assert seg["count"] == 2 and seg["dropped"] == 3
    assert [e["decision"]["remaining"] for e in seg["events"]] == [2, 1]  # the prefix is kept
    asyncio.run(service.aclose())


def test_drop_mode_and_key_with_no_tenant() -> None:
    clock = tk.ManualClock(1_000_000)
    text = _config(redaction={"mode": "drop"}, tenant={"from": "key-prefix", "delimiter": "/"})
    service, flusher = _service(text, clock)

    async def go() -> None:
        await service.check("api", "t1/x")
        await service.check("api", "t2/y")
        await service.check("api", "/no-tenant")

    asyncio.run(go())
    (seg,) = flusher.recorder.drain()
    assert seg["scope"] == DROPPED and {e["keyRef"] for e in seg["events"]} == {DROPPED}
    assert seg["count"] == 2 and flusher.recorder.skipped == 1
    asyncio.run(service.aclose())


def test_redaction_modes_and_collision_guard() -> None:
    h = Redactor("hmac", SECRET)
    assert h("alice") == _ref("alice") and h("alice") == _ref("alice")
    salted, other = Redactor("per-trace-salt"), Redactor("per-trace-salt")
    assert salted("alice") == salted("alice") != other("alice") and len(salted("alice") or "") == 64
    assert Redactor("drop")("alice") == DROPPED
    # a forced collision: "mallory" redacts to the reference "alice" already owns -> refused
    h._owners[_ref("mallory")] = "alice"
    assert h("mallory") is None and h.collisions == 1
    with pytest.raises(ValueError):
        Redactor("hmac")


def test_recorder_never_fails_a_decision() -> None:
    clock = tk.ManualClock(1_000_000)
    service, flusher = _service(_config(tenant={"from": "key"}), clock)
    flusher.recorder._rings = None  # every record now faults inside the recorder

    async def go() -> Any:
        return await service.check("api", "k")

    assert asyncio.run(go()).allowed is True
    assert flusher.recorder.faults == 1 and service.tap.errors == 0
    asyncio.run(service.aclose())


def test_flush_writes_encrypted_segments_and_unregisters(tmp_path: Path) -> None:
    clock = tk.ManualClock(1_000_000)
    service, flusher = _service(_config(tmp_path, tenant={"from": "key-prefix"}), clock)

    async def go() -> int:
        await _traffic(service, clock)
        flusher.store.now_ms = clock.now_ms
        await flusher.aclose()  # the final flush
        await service.check("api", "acme:late")  # unregistered: not recorded
        return len(flusher.recorder.drain())

    assert asyncio.run(go()) == 0
    assert flusher.written == 3
    names = sorted(os.listdir(tmp_path / "segs"))
    assert len(names) == 3 and all(
        n.startswith(("seg-1000000-", "seg-1000070-")) and n.endswith(".bin") for n in names
    )
    blob = (tmp_path / "segs" / names[0]).read_bytes()
    iv, tag, body = blob[:12], blob[12:28], blob[28:]
    seg = json.loads(AESGCM(bytes.fromhex(KEY_HEX)).decrypt(iv, body + tag, None))
    assert seg["createdAt"] == 1_000_000 and seg["redactionMode"] == "hmac"
    ivs = {(tmp_path / "segs" / n).read_bytes()[:12] for n in names}
    assert len(ivs) == 3  # a fresh IV per file
    asyncio.run(service.aclose())


def test_nothing_plaintext_on_disk(tmp_path: Path) -> None:
    clock = tk.ManualClock(1_000_000)
    service, flusher = _service(_config(tmp_path, tenant={"from": "key-prefix"}), clock)
    known = "tenant-zeta:user-4242"

    async def go() -> None:
        for _ in range(4):
            await service.check("api", known)
        flusher.store.now_ms = clock.now_ms
        await flusher.aclose()

    asyncio.run(go())
    admin = CaptureAdmin(load_config(_config(tmp_path)).capture, now_ms=clock.now_ms)  # type: ignore[arg-type]
    admin.list("op-pass", "auditor")
    data = b"".join(p.read_bytes() for p in (tmp_path / "segs").iterdir()) + b"".join(
        n.encode() for n in os.listdir(tmp_path / "segs")
    )
    for needle in (
        known,
        "tenant-zeta",
        "user-4242",
        _ref(known),
        _ref("tenant-zeta"),
        '"count"',
        "fixedWindow",
    ):
        assert needle.encode() not in data, needle
    asyncio.run(service.aclose())


def _segment(created: int, **extra: Any) -> dict[str, Any]:
    seg = {
        "policy": "api",
        "policyKind": "rate",
        "scope": "s",
        "createdAt": created,
        "redactionMode": "hmac",
        "clock": "system",
        "count": 1,
        "dropped": 0,
        "spec": {"strategy": "fixedWindow", "limit": 3, "period": "1m", "prefix": "p"},
        "strategy": {"name": "fixedWindow", "limit": 3, "ttlMs": 0},
        "events": [{"keyRef": "k", "cost": 1, "at": created, "decision": {"allowed": True}}],
    }
    seg.update(extra)
    return seg


def test_tamper_wrong_key_truncation_and_expiry(tmp_path: Path) -> None:
    now = [2_000_000]
    store = SegmentStore(tmp_path, bytes.fromhex(KEY_HEX), 60_000, lambda: now[0])
    sid = store.write(_segment(1_990_000))
    assert store.read(sid)["events"][0]["keyRef"] == "k"
    path = tmp_path / f"{sid}.bin"
    blob = bytearray(path.read_bytes())
    for at in (0, 13, len(blob) - 1):  # IV, tag, ciphertext
        tampered = bytearray(blob)
        tampered[at] ^= 0x01
        path.write_bytes(bytes(tampered))
        with pytest.raises(SegmentError, match=rf"segment {sid} failed authentication \(tampered with"):
            store.read(sid)
    path.write_bytes(bytes(blob))
    wrong = SegmentStore(tmp_path, bytes.fromhex("1f" * 32), 60_000, lambda: now[0])
    with pytest.raises(SegmentError, match="failed authentication"):
        wrong.read(sid)
    path.write_bytes(bytes(blob[:27]))
    with pytest.raises(SegmentError, match=rf"segment {sid} is corrupt \(truncated blob\)"):
        store.read(sid)
    path.write_bytes(bytes(blob))
    now[0] = 1_990_000 + 60_001
    with pytest.raises(SegmentError, match=rf"segment {sid} is past its TTL and was purged"):
        store.read(sid)
    assert not path.exists()
    with pytest.raises(SegmentError, match="no segment"):
        store.read("../../etc/passwd")
    # expired files are purged before every write, and by sweep
    old = store.write(_segment(now[0] - 1))
    now[0] += 60_000
    store.write(_segment(now[0]))
    assert [i for i, _ in store.ids()] != [old] and len(store.ids()) == 1
    now[0] += 60_001
    assert store.sweep() == 1 and store.ids() == []


def test_admin_authorization_and_audit_log(tmp_path: Path) -> None:
    now = [5_000_000]
    cap = load_config(_config(tmp_path)).capture
    assert cap is not None
    admin = CaptureAdmin(cap, now_ms=lambda: now[0])
    sid = admin.store.write(_segment(4_990_000))
    forensic = admin.store.write(_segment(4_995_000, policy="meter", policyKind="meter", spec=None))
    for cred, msg in (
        (None, "an operator credential is required"),
        ("", "an operator credential is required"),
        ("nope", "invalid operator credential"),
    ):
        with pytest.raises(CaptureAdminError, match=f"unauthorized: {msg}"):
            admin.list(cred)
        with pytest.raises(CaptureAdminError, match="unauthorized"):
            admin.export(cred, sid)
        with pytest.raises(CaptureAdminError, match="unauthorized"):
            admin.sweep(cred)
    audit = tmp_path / "segs" / "audit.jsonl"
    assert not audit.exists()  # unauthorized attempts are never logged
    listed = admin.list("op-pass", "alice")
    assert [r["id"] for r in listed] == [sid, forensic]
    assert listed[0]["replayable"] is True and listed[1]["replayable"] is False
    out = admin.export("op-pass", sid, "bob")
    assert out["kind"] == "replay-trace" and out["trace"]["fingerprint"]["clock"] == "system"
    assert out["trace"]["steps"] == [{"key": "k", "cost": 1, "at": 4_990_000, "decision": {"allowed": True}}]
    assert admin.export("op-pass", forensic)["kind"] == "forensic"
    with pytest.raises(CaptureAdminError, match="export requires a segment id"):
        admin.export("op-pass", None)
    now[0] = 4_990_000 + cap.ttl_ms + 1
    assert admin.sweep("op-pass") == {"purged": 1}
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["principal"], r["action"]) for r in records] == [
        ("alice", "list"),
        ("bob", "export"),
        ("operator", "export"),
        ("operator", "sweep"),
    ]
    assert (
        records[1]["policy"] == "api"
        and records[1]["tenant"] == "s"
        and records[1]["redactionMode"] == "hmac"
    )
    assert all(isinstance(r["ts"], int) for r in records)
    disabled = load_config(_config(tmp_path, auth={})).capture
    assert disabled is not None
    with pytest.raises(
        CaptureAdminError,
        match=r"capture admin is disabled: no operator credential is configured \(fail-closed\)",
    ):
        CaptureAdmin(disabled).list("op-pass")


def test_a_failed_segment_write_is_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "segs"
    blocker.write_text("a file where the segment directory should be")
    clock = tk.ManualClock(1_000_000)
    service, flusher = _service(_config(tmp_path, tenant={"from": "key-prefix"}), clock)

    async def go() -> None:
        await _traffic(service, clock)
        await flusher.flush()
        await _traffic(service, clock)
        await flusher.aclose()
        assert (await service.check("api", "acme:after")).allowed  # decisions are unaffected

    with caplog.at_level("ERROR", logger="throttlekit.server"):
        asyncio.run(go())
    assert flusher.written == 0 and flusher.failed == 6
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "could not be written" in logged[0] and "dropped (1 so far)" in logged[0]
    assert "acme" not in logged[0]
    asyncio.run(service.aclose())


def test_admit_is_recorded_as_an_admitter(tmp_path: Path) -> None:
    clock = tk.ManualClock(1_000_000)
    text = json.dumps(
        {
            "limiters": {"gate": {"concurrency": {"minLimit": 2, "maxLimit": 2}}},
            "capture": {"enabled": True, "redaction": {"mode": "drop"}, "tenant": {"from": "key"}},
        }
    )
    service, flusher = _service(text, clock)

    async def go() -> list[bool]:
        return [(await service.admit("gate", "job", 3)).decision.allowed for _ in range(3)]

    assert asyncio.run(go()) == [True, True, False]
    (seg,) = flusher.recorder.drain()
    assert seg["policyKind"] == "admitter" and "spec" not in seg
    assert [(e["cost"], e["decision"]["allowed"]) for e in seg["events"]] == [
        (3, True),
        (3, True),
        (3, False),
    ]
    assert flusher.recorder.tallies["gate"] == [2, 1]
    asyncio.run(service.aclose())


def test_the_periodic_flush_writes_without_a_shutdown(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, tenant={"from": "key"}))
    service = RateLimiterService(cfg)
    flusher = attach_capture(service, cfg, interval_s=0.02)
    assert flusher is not None

    async def go() -> int:
        flusher.start()
        await service.check("api", "k")
        for _ in range(500):  # bounded: 10 s at most
            if flusher.written:
                break
            await asyncio.sleep(0.02)
        written = flusher.written
        flusher._busy = True  # a flush in progress: the next tick (or call) is skipped
        assert await flusher.flush() == 0
        flusher._busy = False
        await flusher.aclose()
        return written

    assert asyncio.run(go()) == 1
    assert len([n for n in os.listdir(tmp_path / "segs") if n.endswith(".bin")]) == 1
    asyncio.run(service.aclose())


def test_a_policy_added_by_a_reload_is_recorded_without_a_spec() -> None:
    clock = tk.ManualClock(1_000_000)
    text = _config(tenant={"from": "key"})
    service, flusher = _service(text, clock)
    doc = json.loads(text)
    doc["limiters"]["added"] = {"strategy": "gcra", "limit": 5, "period": "1s"}
    service.reload(load_config(json.dumps(doc)))

    async def go() -> None:
        await service.check("added", "k")
        await service.check("api", "k")

    asyncio.run(go())
    segs = {s["policy"]: s for s in flusher.recorder.drain()}
    assert (
        segs["added"]["policyKind"] == "rate" and "spec" not in segs["added"] and segs["added"]["count"] == 1
    )
    assert "spec" in segs["api"] and flusher.recorder.tallies["added"] == [1, 0]
    asyncio.run(service.aclose())


# -- the recorder as a sink of the tap ---------------------------------------------------------------


def test_the_recorder_is_a_sink_and_every_read_drains_the_tap() -> None:
    """No event object per decision for capture: the tap queues plain tuples and hands them over in
    batches; ``tallies``, the counters and ``drain`` first take what is pending."""
    clock = tk.ManualClock(1_000_000)
    service, flusher = _service(_config(tenant={"from": "key-prefix"}), clock)
    rec: CaptureRecorder = flusher.recorder
    assert service.tap.observers == () and service.tap.sinks == (rec,)
    asyncio.run(_traffic(service, clock))
    assert len(service.tap._batch) == 11  # 7 checks, 2 of a CheckMany, a peek, a debit: pending
    assert rec.tallies == {"api": [8, 1], "meter": [1, 0]}
    assert service.tap._batch == []
    asyncio.run(service.check("api", ":no-tenant"))
    assert rec.skipped == 1  # drained by the read
    asyncio.run(service.check("api", "acme:user9"))
    assert sum(s["count"] for s in rec.drain() if s["policy"] == "api") == 10  # 9 + the last
    asyncio.run(service.check("api", ":again-no-tenant"))
    rec.skipped = 0  # writable as it always was: the pending decision is taken first, then reset
    assert rec.skipped == 0 and service.tap._batch == []
    assert "no tenant" in (type(rec).skipped.__doc__ or "")
    asyncio.run(service.aclose())


_TENANTS = ["acme", "globex", "initech", "", "umbrella"]


@st.composite
def _capture_events(draw: st.DrawFn) -> tuple[Any, ...]:
    from throttlekit.server._telemetry import DecisionEvent

    policy = draw(st.sampled_from(["api", "meter", "added"]))
    kind = {"api": "limiter", "meter": "meter", "added": "admitter"}[policy]
    tenant = draw(st.sampled_from(_TENANTS))
    key = f"{tenant}:{draw(st.sampled_from(['u1', 'u2', 'u3']))}"
    op = draw(st.sampled_from(["check", "check_many", "peek", "debit", "admit"]))
    cost, allowed, remaining = draw(st.integers(1, 5)), draw(st.booleans()), draw(st.integers(0, 3))
    at = 1_000_000 + draw(st.integers(0, 10_000))
    return tuple(DecisionEvent(policy, kind, op, key, cost, allowed, 3, remaining, 2_000_000, 0, at, 100))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_capture_events(), max_size=200), st.lists(st.integers(1, 60), min_size=1, max_size=6))
def test_a_batched_recorder_records_what_an_event_by_event_one_does(
    events: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    """Any stream (several policies, one added by a reload, peeks, tenants empty or many, rings filling
    up and scopes evicted: both are made small) fed in batches of any sizes leaves the same segments,
    tallies and counters as the same stream fed event by event."""
    from throttlekit.server._telemetry import DecisionEvent

    text = _config(tenant={"from": "key-prefix"}, retention={"ringSize": 5, "maxScopes": 3})
    one = CaptureRecorder(load_config(text).capture, load_config(text))  # type: ignore[arg-type]
    batched = CaptureRecorder(load_config(text).capture, load_config(text))  # type: ignore[arg-type]
    for e in events:
        one(DecisionEvent(*e))
    i, c = 0, 0
    while i < len(events):
        n = cuts[c % len(cuts)]
        batched.absorb(events[i : i + n])
        i, c = i + n, c + 1

    def state(r: CaptureRecorder) -> Any:
        return (r.drain(), r.tallies, r.skipped, r.faults, r.evicted_events, r.policies)

    assert state(batched) == state(one)


def test_a_recorder_read_from_another_thread_loses_no_decision() -> None:
    """Decisions on one thread, reads of the tallies on another: every decision is recorded once,
    however the drains interleave with the appends."""
    import sys
    import threading

    clock = tk.ManualClock(1_000_000)
    service, flusher = _service(_config(tenant={"from": "key-prefix"}), clock)
    rec: CaptureRecorder = flusher.recorder
    n, done = 20_000, threading.Event()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    drained: list[int] = []

    def read() -> None:
        while not done.is_set():
            assert rec.tallies["api"][1] == 0
            drained.extend(seg["count"] + seg["dropped"] for seg in rec.drain())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(n):
            service.tap.observe("api", "limiter", "check", f"t{i % 7}:k", 1, (1, 3, 2, 0, 0), 1, False, False)
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(old)
    drained.extend(seg["count"] + seg["dropped"] for seg in rec.drain())
    assert rec.tallies["api"] == [n, 0]
    assert sum(drained) + rec.evicted_events == n  # every event in exactly one segment (or evicted)
    asyncio.run(service.aclose())
