"""End to end: a ``throttlekit-server`` process with capture on serves real client traffic; after its
shutdown flush, ``capture list`` shows the segments, ``capture export`` yields a trace, and ``policy plan
--from-capture`` with a halved limit reports the allow->deny flips computed directly here, and a gate
fails the run. Plus every message and exit code of the ``capture`` command (spec 3.2)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import throttlekit as tk
from tests._support.server import launch, wait_listening
from throttlekit.cli import main

KEY_HEX = "ab" * 32
OP = "operator-pass-1"


def _config(tmp: Path, limit: int, **capture: Any) -> str:
    block: dict[str, Any] = {
        "enabled": True,
        "redaction": {"mode": "per-trace-salt"},
        "tenant": {"from": "key-prefix"},
        "durable": {"dir": str(tmp / "capture"), "encryptionKeyHex": KEY_HEX},
        "auth": {"operatorSecretEnv": "TK_TEST_OPERATOR"},
    }
    block.update(capture)
    return json.dumps(
        {
            "limiters": {
                "api": {"strategy": "fixedWindow", "limit": limit, "period": "1h"},
                "meter": {"tokenBudget": {"budget": 100, "windowMs": 60000}},
            },
            "capture": block,
        }
    )


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    base = {"TK_TEST_OPERATOR": OP, "THROTTLEKIT_CAPTURE_CREDENTIAL": OP}
    return CliRunner(env={**base, **(env or {})}).invoke(main, list(args))


def _direct(limit: int, steps: list[dict[str, Any]]) -> list[bool]:
    clock = tk.ManualClock(0)
    with tk.Limiter(tk.FixedWindow(limit, "1h"), store=tk.MemoryStore(clock=clock), clock=clock) as lim:
        out = []
        for s in steps:
            clock.set(s["at"])
            out.append(lim.check(s["key"], s["cost"]).allowed)
    return out


@pytest.mark.slow
def test_capture_list_export_and_plan_from_capture(tmp_path: Path, processes: list[Any]) -> None:
    cur = tmp_path / "current.json"
    cur.write_text(_config(tmp_path, 6))
    cand = tmp_path / "candidate.json"
    cand.write_text(_config(tmp_path, 3))
    proc = launch("--config", str(cur), "--port", "0", env={"TK_TEST_OPERATOR": OP})
    processes.append(proc)
    target = wait_listening(proc)
    with tk.ServiceBackend(target, timeout=10) as client:
        for i in range(24):
            client.check("api", f"team-{i % 2}:user-{i % 3}")
        client.debit("meter", "team-0:llm", 7)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "⚠ capture ON — recording decisions (PII): redaction=per-trace-salt" in err
    assert "tenant-scoped, ttl=86400000ms" in err

    res = _cli("capture", "list", "--config", str(cur))
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    rate = [r for r in listed if r["policy"] == "api"]
    assert len(rate) == 2 and all(r["replayable"] and r["policyKind"] == "rate" for r in rate)  # 2 tenants
    assert sum(r["count"] for r in rate) == 24
    assert next(r for r in listed if r["policy"] == "meter")["replayable"] is False

    res = _cli("capture", "export", "--config", str(cur), "--id", rate[0]["id"])
    assert res.exit_code == 0, res.output
    exported = json.loads(res.stdout)
    assert exported["kind"] == "replay-trace"
    trace = exported["trace"]
    assert trace["version"] == 1 and trace["redacted"] is True and trace["truncated"] is False
    assert trace["fingerprint"]["clock"] == "system" and trace["fingerprint"]["axis"] == "rate"
    assert len(trace["steps"]) == rate[0]["count"] and all(len(s["key"]) == 64 for s in trace["steps"])

    steps = []
    for row in rate:
        steps += json.loads(_cli("capture", "export", "-c", str(cur), "--id", row["id"]).stdout)["trace"][
            "steps"
        ]
    steps.sort(key=lambda s: s["at"])
    base, new = _direct(6, steps), _direct(3, steps)
    predicted = sum(b and not n for b, n in zip(base, new))
    assert predicted == 24 - 18 == sum(base) - sum(new) > 0  # 6 keys: 4 arrivals each, limit 6 -> 3

    args = ["policy", "plan", "--config", str(cur), "--candidate", str(cand), "--from-capture", "--json"]
    res = _cli(*args)
    assert res.exit_code == 0, res.output
    assert "corpus: api ← 2 segment(s)" in res.stderr
    assert "corpus: skipped 1 non-leaf-rate/unreadable segment(s)" in res.stderr
    plan = json.loads(res.stdout)
    row = next(d for d in plan["diffs"] if d["policy"] == "api")
    assert row["allowToDeny"] == predicted and row["denyToAllow"] == 0 and row["steps"] == 24
    res = _cli(*args, "--max-allow-deny", "2")
    assert res.exit_code == 1
    assert f"rejected: allow→deny {predicted} exceeds max 2" in res.stderr.splitlines()
    audit = [json.loads(line) for line in (tmp_path / "capture" / "audit.jsonl").read_text().splitlines()]
    assert [r["action"] for r in audit].count("list") == 3  # capture list + two plans
    assert not any(r["principal"] != "operator" for r in audit)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["capture"], {}, "usage: throttlekit-server capture <list|export|sweep>"),
        (["capture", "dump"], {}, 'error: unknown capture action "dump" (list|export|sweep)'),
        (
            ["capture", "export", "seg-1-0000000000000000"],
            {},
            "error: unknown capture argument: seg-1-0000000000000000",
        ),
        (["capture", "list"], {}, "error: --config is required for capture"),
        (
            ["capture", "list", "-c", "{off}"],
            {},
            "error: capture is not enabled in this config (set capture.enabled: true)",
        ),
        (
            ["capture", "list", "-c", "{mem}"],
            {},
            "error: capture admin requires a durable store (set a capture.durable block)",
        ),
        (
            ["capture", "list", "-c", "{cur}"],
            {"THROTTLEKIT_CAPTURE_CREDENTIAL": ""},
            "error: unauthorized: an operator credential is required",
        ),
        (
            ["capture", "list", "-c", "{cur}", "--credential", "wrong"],
            {},
            "error: unauthorized: invalid operator credential",
        ),
        (
            ["capture", "export", "-c", "{cur}"],
            {"THROTTLEKIT_CAPTURE_CREDENTIAL": OP},
            "error: export requires a segment id",
        ),
        (
            ["capture", "export", "-c", "{cur}", "--id", "seg-1-0000000000000000"],
            {"THROTTLEKIT_CAPTURE_CREDENTIAL": OP},
            "is past its TTL and was purged",
        ),
        (
            ["capture", "sweep", "-c", "{noauth}"],
            {"THROTTLEKIT_CAPTURE_CREDENTIAL": OP},
            "error: capture admin is disabled: no operator credential is configured (fail-closed)",
        ),
        (
            ["policy", "plan", "-c", "{off}", "--candidate", "{off}", "--from-capture"],
            {},
            "error: --from-capture needs capture enabled in --config (set capture.enabled: true)",
        ),
        (
            ["policy", "plan", "-c", "{mem}", "--candidate", "{off}", "--from-capture"],
            {},
            "error: --from-capture needs a durable capture store (set a capture.durable block)",
        ),
        (
            ["policy", "plan", "-c", "{cur}", "--candidate", "{off}", "--from-capture"],
            {"THROTTLEKIT_CAPTURE_CREDENTIAL": ""},
            "error: unauthorized: an operator credential is required",
        ),
    ],
)
def test_capture_command_errors_exit_1(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    files = {
        "cur": _config(tmp_path, 6),
        "off": json.dumps(
            {
                "limiters": {"api": {"strategy": "gcra", "limit": 1, "period": "1s"}},
                "capture": {"enabled": False},
            }
        ),
        "mem": _config(tmp_path, 6, durable=None),
        "noauth": _config(tmp_path, 6, auth=None),
    }
    paths = {}
    for name, text in files.items():
        doc = json.loads(text)
        if "capture" in doc:
            doc["capture"] = {k: v for k, v in doc["capture"].items() if v is not None}
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(doc))
        paths[name] = str(p)
    res = _cli(*[a.format(**paths) for a in args], env=env)
    assert res.exit_code == 1, res.output
    assert message in res.stderr and res.stdout == ""
    audit = tmp_path / "capture" / "audit.jsonl"
    if "unauthorized" in message or "disabled" in message:
        assert not audit.exists()


def test_credential_flag_warns_and_success_is_pretty_json(tmp_path: Path) -> None:
    p = tmp_path / "cur.json"
    p.write_text(_config(tmp_path, 6))
    res = _cli("capture", "sweep", "-c", str(p), "--credential", OP, "--principal", "ci-bot")
    assert res.exit_code == 0, res.output
    assert res.stdout == '{\n  "purged": 0\n}\n'
    assert "warning: --credential is visible in process listings" in res.stderr
    res = _cli("capture", "list", "-c", str(p))
    assert res.exit_code == 0 and json.loads(res.stdout) == [] and "warning" not in res.stderr
    audit = [json.loads(line) for line in (tmp_path / "capture" / "audit.jsonl").read_text().splitlines()]
    assert [(r["principal"], r["action"]) for r in audit] == [("ci-bot", "sweep"), ("operator", "list")]


@pytest.mark.slow
def test_live_shadows_report_the_what_if_on_sigusr1(tmp_path: Path, processes: list[Any]) -> None:
    """A headless server with a replay block: shadows fed by real client traffic, the what-if on SIGUSR1."""
    import queue
    import threading

    cfg = tmp_path / "replay.json"
    cfg.write_text(
        json.dumps(
            {
                "limiters": {"api": {"strategy": "fixedWindow", "limit": 6, "period": "1h"}},
                "replay": {"enabled": True, "candidate": {"policy": "api", "scale": {"limit": 0.5}}},
            }
        )
    )
    proc = launch("--config", str(cfg), "--port", "0")
    processes.append(proc)
    target = wait_listening(proc)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    with tk.ServiceBackend(target, timeout=10) as client:
        allowed = [client.check("api", f"team:{i % 2}").allowed for i in range(10)]
    assert allowed.count(True) == 10  # 5 per key, limit 6
    proc.send_signal(signal.SIGUSR1)
    report = None
    while report is None:
        line = lines.get(timeout=30)
        if line.startswith("replay: {"):
            report = json.loads(line[len("replay: ") :])
    what = report["whatIf"]
    # limit 6 -> 3: per key the 4th and 5th arrivals flip (2 keys x 2)
    assert what["state"] == "ok" and what["flippedAllowToDeny"] == 4 and what["steps"] == 10
    assert what["candidate"] == "limit*0.5" and report["shadows"][0]["state"] == "recording"
    with tk.MonitorBackend(target, timeout=10) as monitor:  # headless: the Monitor snapshot carries it too
        section = monitor.get_snapshot().parsed()["replay"]
    assert section["shadows"] == [{"policy": "api", "steps": 10, "observed": 10, "state": "recording"}]
    assert section["candidate"] == {"policy": "api", "label": "limit*0.5"} and section["lastWhatIf"] == what
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 0


def test_cli_reports_tampered_wrong_key_and_expired_segments(tmp_path: Path) -> None:
    from throttlekit.forensics import SegmentStore

    p = tmp_path / "cur.json"
    p.write_text(_config(tmp_path, 6))
    now = int(time.time() * 1000)
    store = SegmentStore(tmp_path / "capture", bytes.fromhex(KEY_HEX), 86_400_000, lambda: now)
    seg = {
        "policy": "api",
        "policyKind": "rate",
        "scope": "s",
        "createdAt": now,
        "count": 0,
        "dropped": 0,
        "events": [],
    }
    good, bad = store.write(dict(seg)), store.write(dict(seg))
    path = tmp_path / "capture" / f"{bad}.bin"
    blob = bytearray(path.read_bytes())
    blob[40] ^= 0xFF
    path.write_bytes(bytes(blob))
    listed = json.loads(_cli("capture", "list", "-c", str(p)).stdout)
    assert {r["id"]: r.get("unreadable", False) for r in listed} == {good: False, bad: True}
    res = _cli("capture", "export", "-c", str(p), "--id", bad)
    assert res.exit_code == 1
    assert (
        f"error: segment {bad} failed authentication (tampered with, or encrypted with another key)"
        in res.stderr
    )
    other = tmp_path / "other.json"
    other.write_text(_config(tmp_path, 6).replace(KEY_HEX, "cd" * 32))
    assert all(r["unreadable"] for r in json.loads(_cli("capture", "list", "-c", str(other)).stdout))
    assert "failed authentication" in _cli("capture", "export", "-c", str(other), "--id", good).stderr
    old = SegmentStore(tmp_path / "capture", bytes.fromhex(KEY_HEX), 86_400_000, lambda: now - 90_000_000)
    expired = old.write({**seg, "createdAt": now - 90_000_000})
    res = _cli("capture", "export", "-c", str(p), "--id", expired)
    assert res.exit_code == 1 and f"error: segment {expired} is past its TTL and was purged" in res.stderr
    assert not (tmp_path / "capture" / f"{expired}.bin").exists()
