"""A cached virtual environment holding the PyPI client ``throttlekit-py`` 0.5.x (which imports as
``throttlekit`` too, so it can only run in its own interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests._support.env import IN_CI

VENV = Path(
    os.environ.get(
        "THROTTLEKIT_PY_VENV", Path(__file__).resolve().parents[2] / ".pytest_cache" / "tk-py-venv"
    )
)
SPEC = "throttlekit-py==0.5.*"


def tkpy_python() -> Path:
    """The venv's interpreter, creating the venv on first use (about 10 s, then cached)."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if marker.exists() and python.exists():
        return python
    try:
        venv.create(VENV, with_pip=True, clear=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", SPEC, "redis", "grpcio", "protobuf"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        msg = f"cannot install {SPEC} into {VENV}: {exc} {detail.decode(errors='replace')[-500:]}"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    marker.write_text(SPEC)
    return python


def tkpy_readme() -> str:
    """The long description (README) of the installed throttlekit-py, from its package metadata."""
    found = sorted(VENV.glob("lib/python*/site-packages/throttlekit_py-*.dist-info/METADATA"))
    if not found:
        tkpy_python()
        found = sorted(VENV.glob("lib/python*/site-packages/throttlekit_py-*.dist-info/METADATA"))
    assert found, f"no throttlekit-py METADATA under {VENV}"
    return found[-1].read_text(encoding="utf-8")


def readme_python_blocks() -> list[str]:
    """Every fenced ``python`` code block of throttlekit-py's README, in order, as written."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in tkpy_readme().splitlines():
        if current is None:
            if line.strip() == "```python":
                current = []
        elif line.strip() == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        else:
            current.append(line)
    return blocks


def run_tkpy(code: str, *args: str, timeout: float = 60) -> str:
    """Run ``code`` under throttlekit-py's interpreter; return its stdout (fails the test on error)."""
    proc = subprocess.run(
        [str(tkpy_python()), "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": ""},
        cwd="/",
    )
    if proc.returncode != 0:
        pytest.fail(f"throttlekit-py subprocess failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


__all__ = ["readme_python_blocks", "run_tkpy", "sys", "tkpy_python", "tkpy_readme"]
