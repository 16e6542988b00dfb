"""``throttlekit-server [serve]``: startup line, warnings, flag errors, graceful SIGTERM/SIGINT."""

from __future__ import annotations

import importlib.util
import re
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import throttlekit as tk
from tests._support.server import EXAMPLE, launch
from throttlekit.cli import main
from throttlekit.cli.serve import is_loopback

LINE = re.compile(
    r"^throttlekit-server listening on (\S+):(\d+) \[(\w+), (\w+), fail=(\w+), monitor:(\w+), loop:(\w+)\] \((\d+) polic\w+: (.*)\)$"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_one_startup_line_serves_and_drains_on_signal(sig: signal.Signals) -> None:
    proc = launch("--config", str(EXAMPLE), "--port", "0", "--fail", "closed", "--drain-grace", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        m = LINE.match(line)
        assert m, line
        host, port, store, security, fail, monitor, loop, n, names = m.groups()
        assert (host, store, security, fail, n) == ("127.0.0.1", "memory", "insecure", "closed", "11")
        assert loop == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")  # --loop auto
        assert monitor == "loopback"
        assert (
            names
            == "api, uploads, reports, search, login, monthly, feed, completions, fleet-completions, checkout, export"
        )
        with tk.ServiceBackend(f"127.0.0.1:{port}", timeout=5) as client:
            assert client.check("login", "alice").remaining == 9
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"{sig.name} received, draining" in err
    assert "warning" not in err


def test_non_loopback_host_without_tls_warns() -> None:
    proc = launch("serve", "--config", str(EXAMPLE), "--port", "0", "--host", "0.0.0.0", "--drain-grace", "0")
    try:
        assert proc.stdout is not None
        assert LINE.match(proc.stdout.readline().strip())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert "warning: serving insecure gRPC on 0.0.0.0" in err
    assert "the Monitor door is loopback-only" in err


def test_loopback_detection() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost", "LOCALHOST"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.org"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-ca", str(EXAMPLE)], "--tls-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", str(EXAMPLE)], "--tls-cert and --tls-key go together"),
        (["--store", "redis"], "--store redis requires --redis <url>"),
        (["--fail", "maybe"], "'maybe' is not one of 'open', 'closed'"),
        (["--port", "-1"], "-1 is not in the range 0<=x<=65535"),
    ],
)
def test_flag_errors_are_usage_errors(args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["serve", "--config", str(EXAMPLE), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_missing_config_is_a_usage_error() -> None:
    res = CliRunner().invoke(main, ["serve"], env={"THROTTLEKIT_CONFIG": ""})
    assert res.exit_code == 2 and "--config" in res.output


def test_invalid_config_lists_every_error_and_exits_1() -> None:
    bad = Path(__file__).resolve().parent / "config" / "bad_many_errors.yaml"
    res = CliRunner().invoke(main, ["serve", "--config", str(bad), "--port", "0"])
    assert res.exit_code == 1
    assert "5 errors" in res.output and "limiters.b.weekStartsOn" in res.output


def test_server_main_defaults_to_serve() -> None:
    proc = launch("--config", "/nonexistent/policies.yaml")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1 and "cannot read policy file" in err


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_server_runs_on_either_event_loop(loop: str) -> None:
    """``--loop asyncio`` and ``--loop uvloop`` both serve and drain (auto is the default, above)."""
    proc = launch("--config", str(EXAMPLE), "--port", "0", "--drain-grace", "0", "--loop", loop)
    try:
        assert proc.stdout is not None
        m = LINE.match(proc.stdout.readline().strip())
        assert m and m.group(7) == loop, m
        with tk.ServiceBackend(f"127.0.0.1:{m.group(2)}", timeout=5) as client:
            assert client.check("login", "alice").remaining == 9
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        proc.kill()


def test_loop_uvloop_without_uvloop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from throttlekit.cli.serve import _event_loop

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    with pytest.raises(
        click.UsageError, match=r"--loop uvloop needs uvloop: pip install 'throttlekit-server\[uvloop\]'"
    ):
        _event_loop("uvloop")
    assert _event_loop("auto") == (None, "asyncio")
