"""The container files, checked without a Docker engine (this machine has none): the Dockerfile pins its
base image and every package it installs, lets a build argument choose the extras, and has a
.dockerignore admitting exactly what it copies; its build context installs, its CMD (with the image's
environment) serves, and its HEALTHCHECK command follows the port and TLS settings of that environment;
the compose file's server command runs against a real Redis."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

from tests._support.certs import make_pki
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


def _env() -> dict[str, str]:
    """The image's ENV variables."""
    out: dict[str, str] = {}
    for word, rest in _instructions():
        if word == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                out[name] = value
    return out


def _copied() -> list[str]:
    return [src for w, rest in _instructions() if w == "COPY" for src in rest.split()[:-1]]


def test_dockerfile_shape() -> None:
    ins = _instructions()
    words = [w for w, _ in ins]
    assert ins[0][0] == "FROM" and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", ins[0][1]), ins[0]
    assert ("EXPOSE", "50051") in ins
    user = next(rest for w, rest in ins if w == "USER")
    assert user not in ("root", "0")
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert _env()["THROTTLEKIT_HOST"] == "0.0.0.0" and _env()["THROTTLEKIT_PORT"] == "50051"
    cmd = yaml.safe_load(next(rest for w, rest in ins if w == "CMD"))
    assert cmd == ["--config", "/etc/throttlekit/policies.yaml"]  # address and TLS come from ENV / -e
    check = next(rest for w, rest in ins if w == "HEALTHCHECK")
    assert yaml.safe_load(check.split(" CMD ", 1)[1]) == ["throttlekit-server", "health"]


def test_the_build_argument_chooses_the_extras_and_every_install_is_pinned() -> None:
    ins = _instructions()
    assert ("ARG", 'EXTRAS=""') in ins
    install = next(rest for w, rest in ins if w == "RUN" and "pip install" in rest)
    assert "PIP_CONSTRAINT=/src/docker/constraints.txt" in install
    assert '".${EXTRAS:+[$EXTRAS]}"' in install
    expand = subprocess.run(  # the shell expansion pip sees, for each value of the argument
        ["sh", "-c", 'for EXTRAS in "" postgres postgres,dynamodb; do echo ".${EXTRAS:+[$EXTRAS]}"; done'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert expand == [".", ".[postgres]", ".[postgres,dynamodb]"]

    pinned = {}
    for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not pinned: {line!r}"
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for extra in ("postgres", "dynamodb"):
        needed += project["project"]["optional-dependencies"][extra]
    for req in map(Requirement, needed):
        if req.marker is None or req.marker.evaluate({"python_version": "3.12"}):
            name = re.sub(r"[-_.]+", "-", req.name).lower()
            assert name in pinned, f"{req} is not pinned in docker/constraints.txt"
            assert req.specifier.contains(pinned[name]), f"{name}=={pinned[name]} does not satisfy {req}"
            for sub in req.extras:  # redis[hiredis], psycopg[binary]
                assert {"hiredis": "hiredis", "binary": "psycopg-binary"}[sub] in pinned


def test_dockerignore_admits_exactly_what_the_build_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "**"  # everything else stays out of the context (.git, .venv, tests, secrets)
    admitted = {r[1:] for r in rules if r.startswith("!")}
    assert admitted == {c.rstrip("/") for c in _copied()}
    assert "**/__pycache__" in rules


@pytest.mark.slow
def test_build_context_installs_and_the_image_command_serves(tmp_path: Path) -> None:
    """Copy exactly what the Dockerfile copies, build it as `pip install .` would, then run the
    entrypoint + CMD with the image's environment (on another port) and the HEALTHCHECK command with the
    same environment: plain, then under TLS set by -e variables."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for src in _copied():
        if src.startswith("examples/"):
            continue
        path = ROOT / src
        (ctx / src).parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, ctx / src, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, ctx / src)
    build_wheel(ctx, tmp_path)

    args = _local_paths(yaml.safe_load(next(rest for w, rest in _instructions() if w == "CMD")))
    check = yaml.safe_load(
        next(rest for w, rest in _instructions() if w == "HEALTHCHECK").split(" CMD ", 1)[1]
    )
    pki = make_pki(tmp_path)
    tls = {
        "THROTTLEKIT_TLS_CERT": str(pki.server_cert),
        "THROTTLEKIT_TLS_KEY": str(pki.server_key),
        "THROTTLEKIT_TLS_ROOT": str(pki.ca),
    }
    for extra in ({}, tls):
        env = {**_env(), "THROTTLEKIT_PORT": str(_free_port()), **extra}
        proc = launch(*args, "--drain-grace", "0", env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert (
                f"listening on 0.0.0.0:{env['THROTTLEKIT_PORT']} [memory, {'TLS' if extra else 'insecure'}"
                in line
            )
            assert check[0] == "throttlekit-server"
            ok = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from throttlekit.cli import server_main; sys.exit(server_main())",
                    *check[1:],
                ],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
                env={**os.environ, **env},
            )
            assert ok.returncode == 0 and "SERVING" in ok.stdout, ok.stderr
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
