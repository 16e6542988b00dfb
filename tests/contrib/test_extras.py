"""Each adapter's framework is an optional extra of the package (and ``web`` installs all four)."""

from __future__ import annotations

import importlib.metadata
import re


def test_each_framework_is_an_extra() -> None:
    meta = importlib.metadata.metadata("throttlekit-server")
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"fastapi", "starlette", "django", "flask", "web"} <= extras
    requires = meta.get_all("Requires-Dist") or []
    for framework in ("fastapi", "starlette", "django", "flask"):
        pattern = rf"^{framework}>=[\d.]+ ?; ?extra == ['\"]{framework}['\"]$"
        assert any(re.match(pattern, r, re.IGNORECASE) for r in requires), (framework, requires)
    web = [r for r in requires if re.search(r"extra == ['\"]web['\"]", r)]
    assert all(any(r.startswith(f) for r in web) for f in ("fastapi", "starlette", "django", "flask")), web
    # none of them is a hard dependency: `import throttlekit` works without any framework
    hard = [r for r in requires if "extra ==" not in r]
    assert not [
        r
        for r in hard
        if r.split(">")[0].split("=")[0].lower() in ("fastapi", "starlette", "django", "flask")
    ]
