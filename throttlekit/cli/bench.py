"""``tk bench``: the engine benchmarks, side by side in one run (see throttlekit/_bench.py)."""

from __future__ import annotations

import json

import click

from .._errors import ConfigError, StoreError

__all__ = ["bench"]


@click.command()
@click.option(
    "--redis-url", default="redis://127.0.0.1:6379/0", show_default=True, envvar="THROTTLEKIT_REDIS_URL"
)
@click.option("--no-redis", is_flag=True, help="Only the embedded (memory store) tables.")
@click.option("--quick", is_flag=True, help="Tiny rounds: a smoke run, not a measurement.")
@click.option("--json", "as_json", is_flag=True)
def bench(redis_url: str, no_redis: bool, quick: bool, as_json: bool) -> None:
    """Each engine path beside its physical ceiling, measured in the same run: the embedded check vs a
    pure-Python GCRA, bytes per key vs a dict, Redis check and check_many vs a raw socket sending the same
    EVALSHA bytes (with the floor of any Python client), async vs sync check_many. Ratios are medians over
    interleaved rounds, with their spread. The `limits` library's rows, for orientation, need the `bench`
    extra."""
    from .._bench import run_bench

    try:
        rows = run_bench(
            None if no_redis else redis_url, quick=quick, progress=lambda line: click.echo(line, err=True)
        )
    except ImportError as exc:
        raise click.ClickException(
            f"{exc}: install the extra with pip install 'throttlekit-server[bench]'"
        ) from exc
    except Exception as exc:  # e.g. Redis unreachable: say so instead of a traceback
        if type(exc).__module__.startswith("redis") or isinstance(exc, (StoreError, ConfigError)):
            raise click.ClickException(f"Redis at {redis_url}: {exc} (or pass --no-redis)") from exc
        raise
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    group = None
    for r in rows:
        if r.group != group:
            group = r.group
            click.echo(f"\n{group}")
            click.echo(f"  {'contender':56} {'decisions/s':>12} {'us/op':>8}  ratio [spread over rounds]")
        ratio = f"{r.ratio:.2f}x {r.baseline}" if r.ratio is not None else ""
        if r.spread is not None:
            ratio = f"{r.ratio:.2f}x [{r.spread[0]:.2f}..{r.spread[1]:.2f}] of {r.baseline}"
        if r.bytes_per_key is not None:
            click.echo(f"  {r.name:56} {r.bytes_per_key:9.1f} B/key  {ratio}")
            continue
        click.echo(f"  {r.name:56} {r.per_sec:12,.0f} {r.us:8.2f}  {ratio}")
