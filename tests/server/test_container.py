"""The container files, checked without a Docker engine (this machine has none): the Dockerfile's build
context installs, its CMD serves on 0.0.0.0:50051 and its HEALTHCHECK command sees SERVING, and the
compose file's server command runs against a real Redis."""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests._support.env import REDIS_URL, build_wheel, redis_client
from tests._support.server import launch

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _local_paths(args: list[str]) -> list[str]:
    return [
        a.replace("/etc/throttlekit/policies.yaml", str(ROOT / "examples" / "policies.yaml")) for a in args
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dockerfile_shape() -> None:
    ins = _instructions()
    words = [w for w, _ in ins]
    assert ins[0][0] == "FROM" and "slim" in ins[0][1]
    assert ("EXPOSE", "50051") in ins
    user = next(rest for w, rest in ins if w == "USER")
    assert user not in ("root", "0")
    assert words.index("USER") < words.index("ENTRYPOINT")
    cmd = next(rest for w, rest in ins if w == "CMD")
    assert '"--host", "0.0.0.0"' in cmd and '"--port", "50051"' in cmd


@pytest.mark.slow
def test_build_context_installs_and_the_image_command_serves(tmp_path: Path) -> None:
    """Copy exactly what the Dockerfile copies, build it as `pip install .` would, then run the
    entrypoint + CMD (on another port) and the HEALTHCHECK command against it."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("examples/"):
            *sources, _dest = rest.split()
            for src in sources:
                path = ROOT / src
                if path.is_dir():
                    shutil.copytree(path, ctx / src, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, ctx / src)
    build_wheel(ctx, tmp_path)

    cmd = next(rest for w, rest in _instructions() if w == "CMD")
    args = yaml.safe_load(cmd)  # a JSON array
    port = _free_port()
    args = _local_paths(args)
    args[args.index("--port") + 1] = str(port)
    proc = launch(*args)
    try:
        assert proc.stdout is not None
        assert f"listening on 0.0.0.0:{port}" in proc.stdout.readline()
        check = next(rest for w, rest in _instructions() if w == "HEALTHCHECK")
        argv = shlex.split(check.split(" CMD ", 1)[1])
        assert argv[:2] == ["python", "-c"]
        probe = argv[2].replace("127.0.0.1:50051", f"127.0.0.1:{port}")
        ok = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert proc.returncode == 0


@pytest.mark.redis
def test_compose_server_command_runs_against_redis() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "throttlekit"} <= set(services)
    assert services["throttlekit"]["depends_on"]["redis"]["condition"] == "service_healthy"
    client = redis_client()
    if "Fake" in type(client).__name__:
        pytest.skip("needs a real Redis server for a separate server process")
    args = [str(a) for a in services["throttlekit"]["command"]]
    args = [a.replace("redis://redis:6379/0", REDIS_URL) for a in args]
    args = _local_paths(args)
    args += ["--port", str(_free_port())]
    proc = launch(*args)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "[redis," in line and "0.0.0.0" in line, line
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "warning" in err.lower()  # 0.0.0.0 without TLS warns, as documented
