"""``import throttlekit`` stays light: grpc, protobuf and redis load only with the client or store that
needs them (PEP 562 lazy attributes), and every lazy name still resolves."""

from __future__ import annotations

import subprocess
import sys

import throttlekit

HEAVY = ("grpc", "google.protobuf", "redis", "hiredis")
FRAMEWORKS = ("fastapi", "starlette", "django", "flask")


def _loaded_after(code: str, watch: tuple[str, ...] = HEAVY) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {watch!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_import_loads_no_transport() -> None:
    assert _loaded_after("import throttlekit as tk; tk.Gcra(10, '1s'); tk.ManualClock(0)") == []


def test_an_embedded_limiter_loads_no_redis() -> None:
    code = "import throttlekit as tk; tk.Limiter(tk.Gcra(10, '1s')).check('k')"
    assert _loaded_after(code) == []


def test_a_redis_store_brings_its_driver_in() -> None:
    assert "hiredis" in _loaded_after("import throttlekit as tk; tk.RedisStore")


def test_a_client_brings_grpc_in() -> None:
    assert "grpc" in _loaded_after("import throttlekit as tk; tk.ServiceBackend")


def test_every_lazy_name_resolves_and_is_cached() -> None:
    for name in throttlekit._LAZY:
        value = getattr(throttlekit, name)
        assert getattr(throttlekit, name) is value
        assert name in throttlekit.__all__


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        throttlekit.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_the_throttlekit_py_names_load_no_transport_and_no_framework() -> None:
    code = (
        "import throttlekit as tk, throttlekit.errors, throttlekit.contrib, throttlekit.headers\n"
        "tk.rate_limit, tk.RateLimited, tk.bind_policy, tk.decision_headers, tk.from_spec, tk.LeaseGrant\n"
        "tk.decision_headers(tk.Decision(True, 1, 1, 0, 0))"
    )
    assert _loaded_after(code, HEAVY + FRAMEWORKS) == []


def test_each_adapter_brings_in_its_framework_only() -> None:
    for adapter, expected in [
        ("flask", ["flask"]),
        ("django", ["django"]),
        ("starlette", ["starlette"]),
        ("fastapi", ["fastapi", "starlette"]),
    ]:
        assert _loaded_after(f"import throttlekit.contrib.{adapter}", FRAMEWORKS) == expected
