"""``throttlekit-server health``, the container's probe, against real servers: it follows the server's
port and TLS settings (the same flags or THROTTLEKIT_* variables as ``serve``), answers 0 only while the
server is SERVING, and 1 while it drains, when nothing listens, or when TLS does not verify."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._support.certs import Pki, make_pki
from tests._support.redis_server import free_port
from tests._support.server import EXAMPLE, ROOT, launch, wait_listening

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _serve(servers: list[subprocess.Popen[str]], env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    proc = launch("--config", str(EXAMPLE), "--drain-grace", "30", *args, env=env)
    servers.append(proc)
    wait_listening(proc)
    return proc


def _probe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from throttlekit.cli import server_main; sys.exit(server_main())"
    return subprocess.run(
        [sys.executable, "-c", code, "health", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **env},
    )


def test_plain_server_on_another_port_through_the_shared_variables(
    processes: list[subprocess.Popen[str]],
) -> None:
    env = {"THROTTLEKIT_PORT": str(free_port()), "THROTTLEKIT_HOST": "0.0.0.0"}
    proc = _serve(processes, env)
    ok = _probe(env)
    assert ok.returncode == 0 and f"127.0.0.1:{env['THROTTLEKIT_PORT']}: SERVING" in ok.stdout, ok
    proc.send_signal(signal.SIGTERM)  # draining: NOT_SERVING while the port still answers
    deadline = time.monotonic() + 20
    while (seen := _probe(env)).returncode == 0:
        assert time.monotonic() < deadline, "the probe never saw the drain"
    assert seen.returncode == 1 and "NOT_SERVING" in seen.stderr, seen
    proc.send_signal(signal.SIGTERM)  # skip the rest of the drain
    proc.communicate(timeout=20)
    gone = _probe(env)
    assert gone.returncode == 1 and "UNAVAILABLE" in gone.stderr


def test_nothing_listening_is_unhealthy_with_the_reason() -> None:
    res = _probe({}, "--port", str(free_port()))
    assert res.returncode == 1 and "UNAVAILABLE" in res.stderr


def test_tls_server_with_flags_and_the_same_files(processes: list[subprocess.Popen[str]], pki: Pki) -> None:
    port = str(free_port())
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    _serve(processes, {}, "--port", port, *tls)
    assert _probe({}, "--port", port).returncode == 1  # plaintext against a TLS port is not healthy
    ok = _probe({}, "--port", port, *tls, "--tls-root", str(pki.ca))
    assert ok.returncode == 0 and "SERVING" in ok.stdout, ok
    untrusted = _probe({}, "--port", port, *tls, "--tls-root", str(pki.other_ca))
    assert untrusted.returncode == 1 and "UNAVAILABLE" in untrusted.stderr


def test_mtls_server_through_the_shared_variables(processes: list[subprocess.Popen[str]], pki: Pki) -> None:
    env = {
        "THROTTLEKIT_PORT": str(free_port()),
        "THROTTLEKIT_TLS_CERT": str(pki.server_cert),
        "THROTTLEKIT_TLS_KEY": str(pki.server_key),
        "THROTTLEKIT_TLS_CA": str(pki.ca),
        "THROTTLEKIT_TLS_ROOT": str(pki.ca),
    }
    proc = _serve(processes, env)
    assert proc.stdout is not None
    with_client = {
        **env,
        "THROTTLEKIT_PROBE_CERT": str(pki.client_cert),
        "THROTTLEKIT_PROBE_KEY": str(pki.client_key),
    }
    ok = _probe(with_client)
    assert ok.returncode == 0 and "SERVING" in ok.stdout, ok


def test_a_bad_certificate_file_is_a_clear_probe_error(tmp_path: Path, pki: Pki) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("garbage")
    res = _probe({}, "--port", "50051", "--tls-cert", str(bad), "--tls-key", str(pki.server_key))
    assert res.returncode == 1 and f"--tls-cert {bad}: not a PEM certificate" in res.stderr
