"""The serve command's operator surface: ``--version``, ``--help`` showing the serve flags, and
``--log-format json`` (one JSON object per stderr line, no client key or secret at the default level)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc

from tests._support.redis_server import free_port
from tests._support.server import config_text, launch, pb, wait_listening
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

SERVER = "import sys; from throttlekit.cli import server_main; sys.exit(server_main())"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SERVER, *args], capture_output=True, text=True, timeout=60)


def test_version_and_help_show_the_server() -> None:
    out = _run("--version")
    assert out.returncode == 0 and "0.1.0" in out.stdout
    for flag in ("--help", "-h"):
        out = _run(flag)
        assert out.returncode == 0
        for option in (
            "--config",
            "--metrics-port",
            "--monitor",
            "--log-format",
            "--watch-config",
        ):
            assert option in out.stdout, option
        assert "throttlekit-server health" in out.stdout  # the other commands are named


def test_json_logs_carry_no_key_or_secret(tmp_path: Path, processes: list[Any]) -> None:
    cfg = tmp_path / "p.json"
    cfg.write_text(config_text({"api": {"strategy": "gcra", "limit": 1, "period": "1m"}}))
    dead = f"redis://:hunter2pw@127.0.0.1:{free_port()}/0?socket_connect_timeout=0.3"
    proc = launch(
        "--config",
        str(cfg),
        "--port",
        "0",
        "--redis",
        dead,
        "--log-format",
        "json",
        env={"THROTTLEKIT_MONITOR_SECRET": "m0nitor-s3cret"},
    )
    processes.append(proc)
    target = wait_listening(proc)
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.RateLimiterStub(ch)
        for _ in range(3):  # store down: fail-open decisions, an outage logged once
            assert stub.Check(
                pb.CheckRequest(policy="api", key="secret-user-key"), timeout=10
            ).decision.allowed
    cfg.write_text("limiters:\n  api: { strategy: nope }\n")
    proc.send_signal(signal.SIGHUP)  # a failed reload is logged too
    import time

    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "event"} <= r.keys() for r in records)
    events = " ".join(r["event"] for r in records)
    assert "store outage" in events and "config reload from" in events and "received, draining" in events
    for secret in ("secret-user-key", "hunter2pw", "m0nitor-s3cret"):
        assert secret not in err, secret


def test_lua_verify_reports_progress_on_a_long_run() -> None:
    from throttlekit.stores import MemoryStore
    from throttlekit.vectors import bundled_vector_files, run_suites

    lines: list[str] = []
    results = run_suites(
        bundled_vector_files(), lambda clock: MemoryStore(clock=clock), lines.append, every_s=0
    )
    assert len(lines) == len(results) + 1  # every_s=0: a line per suite, then the closing line
    assert lines[-1].startswith(f"verify: {len(results)}/{len(results)} suites, ")
    assert " 0 failed, " in lines[-1]
    quiet: list[str] = []
    run_suites(bundled_vector_files()[:1], lambda clock: MemoryStore(clock=clock), quiet.append)
    assert quiet == []  # a short run prints nothing
