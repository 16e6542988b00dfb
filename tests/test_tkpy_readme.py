"""Every code example of throttlekit-py 0.5.1's README runs unchanged against our package and our server.

The examples are read at test time from the client's own package metadata (never copied here). They
name fixed addresses (localhost:50051 for the server, localhost:6379 for Redis), so they run in a network
namespace of their own with our server and a redis-server on exactly those ports
(``tests/_support/readme_driver.py``). Each example gets the names it takes as given (``api_key``,
``app``, ``backend``...) and a probe that checks what it did. Examples needing another issue's feature
are listed in ``PENDING``: they run too, and the test prints whether they pass yet.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests._support.env import IN_CI, ROOT
from tests._support.tkpy import readme_python_blocks

pytestmark = pytest.mark.slow

DJANGO_PRELUDE = """
import django
from django.conf import settings
if not settings.configured:
    settings.configure(DEBUG=False, SECRET_KEY="readme", ALLOWED_HOSTS=["*"], INSTALLED_APPS=[])
    django.setup()
from throttlekit import ServiceBackend, bind_policy
backend = ServiceBackend("localhost:50051")
"""

#: example (picked by a line only it has) -> prelude (names it takes as given), probe (fills ``facts``)
EXAMPLES: dict[str, dict[str, str]] = {
    'd = rl.check("api", api_key)': {
        "prelude": 'api_key = "readme-service"',
        "probe": "facts.update(allowed=d.allowed, limit=d.limit, remaining=d.remaining)",
    },
    'with rl.admit("checkout", user_id) as adm:': {
        "prelude": (
            "from throttlekit import ServiceBackend\n"
            'rl = ServiceBackend("localhost:50051")\nuser_id = "u1"\ndo_work = lambda: None'
        ),
        # the with block released the slot: a second admission finds the whole cap (2) free again
        "probe": (
            "facts.update(allowed=adm.allowed)\n"
            "held = [rl.admit('checkout', 'other') for _ in range(2)]\n"
            "facts.update(released=all(h.allowed for h in held))\n"
            "for h in held:\n    h.release()"
        ),
    },
    "api = RedisBackend(client,": {
        "prelude": 'api_key = "readme-redis"',
        "probe": (
            "facts.update(allowed=d.allowed, limit=d.limit, remaining=d.remaining,"
            " stored=client.exists('prod:readme-redis'))"
        ),
    },
    'adm = await rl.admit("checkout", user_id)': {
        "prelude": 'api_key = "readme-async"\nuser_id = "u2"\nasync def do_work(): pass',
        "probe": (
            "facts.update(allowed=d.allowed, admitted=adm.allowed)\n"
            "from throttlekit import ServiceBackend\n"
            "with ServiceBackend('localhost:50051') as again:\n"
            "    held = [again.admit('checkout', 'other-async') for _ in range(2)]\n"
            "    facts.update(released=all(h.allowed for h in held))\n"
            "    for h in held:\n        h.release()"
        ),
    },
    "api = AsyncRedisBackend(client,": {
        "prelude": 'api_key = "readme-async-redis"',
        "probe": "facts.update(allowed=d.allowed, limit=d.limit, remaining=d.remaining)",
    },
    "with FleetBackend(": {
        "prelude": "workload = range(3)\nbackoff = lambda ms: None",
        "probe": "facts.update(allowed=d.allowed)",
    },
    "with MonitorBackend(": {
        "prelude": "",
        "probe": (
            "names = sorted(p.name for p in snap.policies)\n"
            "facts.update(names=[n for n in names if n in ('api', 'checkout', 'llm')],"
            " seen_api=any(p.name == 'api' and p.allowed > 0 for p in snap.policies))"
        ),
    },
    "app, backend = FastAPI(), ServiceBackend(": {
        "prelude": "",
        "probe": (
            "from fastapi.testclient import TestClient\n"
            "with TestClient(app) as c:\n"
            "    r = c.get('/items')\n"
            "facts.update(status=r.status_code, limit=r.headers.get('RateLimit-Limit'))"
        ),
    },
    "tk = ThrottleKit(app, checker=bind_policy(backend,": {
        "prelude": (
            "from flask import Flask\nfrom throttlekit import ServiceBackend, bind_policy\n"
            'app = Flask("readme")\nbackend = ServiceBackend("localhost:50051")'
        ),
        # the example's view returns nothing (a stub), so the probe spends the peer's budget first and
        # checks the denial the adapter answers without calling the view
        "probe": (
            "for _ in range(5):\n    backend.check('api', '127.0.0.1')\n"
            "r = app.test_client().get('/')\n"
            "facts.update(status=r.status_code, retry_after=r.headers.get('Retry-After'))"
        ),
    },
    "@rate_limit(bind_policy(backend,": {
        "prelude": DJANGO_PRELUDE,
        "probe": (
            "from django.test import RequestFactory\n"
            "from throttlekit.contrib.django import Ratelimited, ThrottleKitMiddleware\n"
            "for _ in range(5):\n    backend.check('api', '10.9.9.9')\n"
            "request = RequestFactory().get('/', REMOTE_ADDR='10.9.9.9')\n"
            "try:\n    my_view(request)\nexcept Ratelimited as denial:\n"
            "    r = ThrottleKitMiddleware(lambda req: None).process_exception(request, denial)\n"
            "    facts.update(status=r.status_code, retry_after=r.headers.get('Retry-After'))"
        ),
    },
}

#: what each example must show (a subset of its facts)
EXPECTED: dict[str, dict[str, Any]] = {
    'd = rl.check("api", api_key)': {"allowed": True, "limit": 5, "remaining": 4},
    "api = RedisBackend(client,": {"allowed": True, "limit": 20, "remaining": 19, "stored": 1},
    "api = AsyncRedisBackend(client,": {"allowed": True, "limit": 20, "remaining": 19},
    "app, backend = FastAPI(), ServiceBackend(": {"status": 200, "limit": "5"},
    "with FleetBackend(": {"allowed": True},
    "tk = ThrottleKit(app, checker=bind_policy(backend,": {"status": 429},
    "@rate_limit(bind_policy(backend,": {"status": 429},
    'with rl.admit("checkout", user_id) as adm:': {"allowed": True, "released": True},
    'adm = await rl.admit("checkout", user_id)': {"allowed": True, "admitted": True, "released": True},
    "with MonitorBackend(": {"names": ["api", "checkout"], "seen_api": True},  # policies with traffic so far
}

#: examples whose feature another issue delivers (they run all the same; the test prints the outcome)
PENDING: dict[str, str] = {}


#: the README's prose examples (no code block of their own): the LLM token budget through ``debit``, and
#: "wire it yourself" with ``@rate_limit`` and ``decision_headers``
PROSE: dict[str, dict[str, Any]] = {
    "debit": {
        "code": (
            "from throttlekit import ServiceBackend\n"
            'with ServiceBackend("localhost:50051") as rl:\n'
            '    spent = [rl.debit("llm", "stream-1", 600), rl.debit("llm", "stream-1", 600),'
            ' rl.debit("llm", "stream-1", 1)]\n'
        ),
        "probe": "facts.update(allowed=[d.allowed for d in spent], denied_retry=spent[2].retry_after_ms > 0)",
        "expected": {"allowed": [True, True, False], "denied_retry": True},
    },
    "decorator": {
        "code": (
            "from throttlekit import RateLimited, ServiceBackend, bind_policy, decision_headers, rate_limit\n"
            'backend = ServiceBackend("localhost:50051")\n'
            '@rate_limit(bind_policy(backend, "api"), key=lambda user_id: user_id)\n'
            "def handle(user_id):\n"
            '    return "ok"\n'
            'served = [handle("deco-user") for _ in range(5)]\n'
            "try:\n"
            '    handle("deco-user")\n'
            "except RateLimited as exc:\n"
            "    headers = decision_headers(exc.decision)\n"
        ),
        "probe": "facts.update(served=len(served), remaining=headers['RateLimit-Remaining'], retry='Retry-After' in headers)",
        "expected": {"served": 5, "remaining": "0", "retry": True},
    },
}


def _which(block: str) -> str:
    found = [marker for marker in EXAMPLES if marker in block]
    assert len(found) == 1, f"README example not recognised (update EXAMPLES):\n{block}"
    return found[0]


def _run(examples: list[dict[str, str]]) -> list[dict[str, Any]]:
    if shutil.which("unshare") is None:
        if IN_CI:
            pytest.fail("CI=true but unshare (util-linux) is missing")
        pytest.skip("unshare not found")
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, str(ROOT / "tests" / "_support" / "readme_driver.py")],
        input=json.dumps(examples),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    if proc.returncode != 0 and "unshare failed" in proc.stderr and not IN_CI:
        pytest.skip(f"no network namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_every_readme_example_runs_unchanged() -> None:
    blocks = readme_python_blocks()
    markers = [_which(b) for b in blocks]
    assert sorted(markers) == sorted(EXAMPLES), "a README example is missing or counted twice"
    prose = [{"code": p["code"], "prelude": "", "probe": p["probe"]} for p in PROSE.values()]
    results = _run([{"code": b, **EXAMPLES[m]} for b, m in zip(blocks, markers)] + prose)
    for name, result in zip(PROSE, results[len(blocks) :]):
        assert result["ok"], f"prose example {name!r} raised:\n{result['error']}"
        expected = PROSE[name]["expected"]
        assert {k: result["facts"].get(k) for k in expected} == expected, (name, result["facts"])
    failures, report = [], []
    for marker, result in zip(markers, results):
        if marker in PENDING:
            state = "runs" if result["ok"] else "fails: " + result["error"].strip().splitlines()[-1]
            report.append(f"  {marker!r} [pending {PENDING[marker]}]: {state}")
            continue
        if not result["ok"]:
            failures.append(f"{marker!r} raised:\n{result['error']}")
            continue
        expected = EXPECTED.get(marker, {})
        got = {k: result["facts"].get(k) for k in expected}
        if got != expected:
            failures.append(f"{marker!r}: expected {expected}, got {result['facts']}")
    print(f"\nthrottlekit-py README examples pending other issues ({len(report)}):")
    print("\n".join(report))
    assert not failures, "\n\n".join(failures)
