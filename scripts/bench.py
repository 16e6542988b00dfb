"""Engine benchmark: ``python scripts/bench.py [--no-redis] [--redis-url URL] [--json]`` (same as ``tk bench``)."""

from __future__ import annotations

from throttlekit.cli.bench import bench

if __name__ == "__main__":
    bench()
