"""A fleet of ``throttlekit-server`` processes on one shared store, hammered by client processes
(``fleet_server.py``, ``fleet_client.py`` beside this module)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SERVERS, CLIENTS, PER_CLIENT, CONC = 3, 3, 120, 6
FW_LIMIT = 150  # < CLIENTS x PER_CLIENT: every window saturates
GC_LIMIT, GC_PERIOD_MS, GC_BURST = 100, 1000, 20

CONFIG = f"""version: 1
limiters:
  fw: {{ strategy: fixedWindow, limit: {FW_LIMIT}, period: 10m }}
  gc: {{ strategy: gcra, limit: {GC_LIMIT}, period: {GC_PERIOD_MS}ms, burst: {GC_BURST} }}
"""


#: Per-call deadline of the fleet clients: a hang guard, not a speed claim.
HANG_S = 120


class Fleet:
    def __init__(
        self,
        tmp: Path,
        store_args: list[str],
        env: dict[str, str],
        servers: int = SERVERS,
        fail: str = "closed",
        config: str = CONFIG,
    ) -> None:
        cfg = tmp / "fleet.yaml"
        cfg.write_text(config)
        self.procs: list[subprocess.Popen[str]] = []
        self.ports: list[int] = []
        self.logs = [tmp / f"server{i}.log" for i in range(servers)]
        for log in self.logs:
            with log.open("w") as err:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(HERE / "fleet_server.py"),
                            "serve",
                            "-c",
                            str(cfg),
                            "-p",
                            "0",
                            "--fail",
                            fail,
                            *store_args,
                        ],
                        stdout=subprocess.PIPE,
                        stderr=err,
                        text=True,
                        env=env,
                    )
                )
        for p, log in zip(self.procs, self.logs):
            line = p.stdout.readline() if p.stdout else ""
            if "listening on" not in line:
                self.stop()
                raise RuntimeError(f"server did not start: {line!r} {log.read_text()[-2000:]}")
            self.ports.append(int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1]))

    def hammer(self, policy: str, key: str, op: str = "check") -> list[dict[str, Any]]:
        """Run the client processes and return their JSON lines. Their timeouts only guard against a hang
        (:data:`HANG_S`): on a loaded machine moto (one request at a time) queues a 3-server retry storm for
        many seconds, and a slow answer is still a correct one."""
        ports = ",".join(map(str, self.ports))
        clients = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "fleet_client.py"),
                    ports,
                    policy,
                    key,
                    str(PER_CLIENT),
                    str(CONC),
                    op,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(CLIENTS)
        ]
        out = []
        try:
            for c in clients:
                stdout, _ = c.communicate(timeout=HANG_S * 2)
                assert c.returncode == 0
                out.append(json.loads(stdout))
        finally:  # a failed client must not leave the others running into the next test
            for c in clients:
                if c.poll() is None:
                    c.kill()
                    c.wait()
        return out

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
