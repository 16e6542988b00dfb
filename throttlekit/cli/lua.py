"""``tk lua list`` and ``tk lua verify``: inspect the transforms and prove conformance."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .._clock import ManualClock
from .._errors import ThrottleKitError
from .._loader import load_manifest
from ..vectors import SuiteResult, bundled_vector_files, run_suites

__all__ = ["VERIFY_STORES", "lua"]


def _memory(opts: dict[str, Any]) -> Callable[[ManualClock], Any]:
    from ..stores import MemoryStore

    return lambda clock: MemoryStore(clock=clock, runtime=opts.get("runtime"))


def _redis(opts: dict[str, Any]) -> Callable[[ManualClock], Any]:
    from ..stores import open_sync

    url = opts["redis_url"]
    try:
        probe = open_sync(url)  # the store factory: the URL's db, prefix, TLS and timeouts
        try:
            probe.delete("tk-verify-probe")
        finally:
            probe.close()
    except ThrottleKitError as exc:
        raise click.ClickException(f"cannot reach Redis at {url}: {exc}") from exc
    return lambda clock: open_sync(url, clock=clock)


def _postgres(opts: dict[str, Any]) -> Callable[[ManualClock], Any]:
    from ..stores import open_store

    url, table = opts["postgres_url"], opts["postgres_table"]
    try:
        probe = open_store(url, asynchronous=False, table=table, sweep_interval_ms=0)
        try:
            probe.sweep()  # connects, creates the table on first use
        finally:
            probe.close()
    except ThrottleKitError as exc:
        raise click.ClickException(f"cannot reach Postgres at {url}: {exc}") from exc
    return lambda clock: open_store(url, asynchronous=False, clock=clock, table=table, sweep_interval_ms=0)


def _dynamodb(opts: dict[str, Any]) -> Callable[[ManualClock], Any]:
    from ..stores import open_store
    from ..stores._factory import dynamodb_url

    table = opts["dynamodb_table"]
    url = dynamodb_url(table, region=opts["dynamodb_region"], endpoint=opts["dynamodb_endpoint"])
    try:
        probe = open_store(url, asynchronous=False, create=opts["dynamodb_create_table"])
        try:
            probe.eval("gcra_peek", ["tk-verify-probe"], 0, [1000, 1, 1])
        finally:
            probe.close()
    except ThrottleKitError as exc:
        raise click.ClickException(f"cannot use DynamoDB table {table!r}: {exc}") from exc
    return lambda clock: open_store(url, asynchronous=False, clock=clock)


#: ``--store`` choices: name -> builder(options) -> store factory(clock). One entry per store.
VERIFY_STORES: dict[str, Callable[[dict[str, Any]], Callable[[ManualClock], Any]]] = {
    "memory": _memory,
    "redis": _redis,
    "postgres": _postgres,
    "dynamodb": _dynamodb,
}


@click.group()
def lua() -> None:
    """Inspect the Lua transforms and verify them against golden vectors."""


@lua.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """Print every transform: its keys, ARGV, reply fields and SHA1."""
    rows = list(load_manifest().values())
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "file": t.file,
                        "keys": t.keys,
                        "argv": t.argv,
                        "reply": t.reply,
                        "read_only": t.read_only,
                        "state_version": t.state_version,
                        "sha1": t.sha,
                    }
                    for t in rows
                ],
                indent=2,
            )
        )
        return
    for t in rows:
        ro = " (read-only)" if t.read_only else ""
        click.echo(f"{t.name}{ro}  sha1 {t.sha}")
        click.echo(f"    KEYS  {', '.join(t.keys)}")
        click.echo(f"    ARGV  {', '.join(t.argv)}")
        click.echo(f"    reply {', '.join(t.reply)}")


def _table(results: list[SuiteResult]) -> None:
    by_source: dict[str, list[SuiteResult]] = {}
    for r in results:
        by_source.setdefault(f"{r.source} / {r.primitive}", []).append(r)
    for title, rows in by_source.items():
        click.echo(f"\n{title}")
        width = max(len(r.name) for r in rows)
        click.echo(f"  {'suite'.ljust(width)}  ops  result")
        for r in rows:
            status = "ok" if r.passed else "FAIL"
            click.echo(f"  {r.name.ljust(width)}  {r.ops:>3}  {status}")


@lua.command("verify")
@click.option(
    "--vectors",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Vector file(s) to replay (default: the bundled golden and project suites).",
)
@click.option(
    "--store",
    type=click.Choice(sorted(VERIFY_STORES)),
    default="memory",
    show_default=True,
    help="Where the transforms run.",
)
@click.option(
    "--redis-url",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    envvar="THROTTLEKIT_REDIS_URL",
    help="Redis for --store redis.",
)
@click.option(
    "--runtime",
    type=click.Choice(["luajit", "lua51"]),
    default=None,
    help="Lua runtime for --store memory (default: luajit where available).",
)
@click.option(
    "--postgres-url",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    envvar="THROTTLEKIT_POSTGRES_URL",
    help="Postgres for --store postgres.",
)
@click.option(
    "--postgres-table", default="throttlekit", show_default=True, help="State table (--store postgres)."
)
@click.option(
    "--dynamodb-table", default="throttlekit-verify", show_default=True, help="Table (--store dynamodb)."
)
@click.option("--dynamodb-region", default=None, envvar="AWS_REGION", help="Region (--store dynamodb).")
@click.option(
    "--dynamodb-endpoint", default=None, help="Endpoint, e.g. http://127.0.0.1:8000 (DynamoDB Local, moto)."
)
@click.option(
    "--dynamodb-create-table/--no-dynamodb-create-table",
    default=True,
    show_default=True,
    help="Create the DynamoDB table if absent.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of tables.")
def verify(
    files: tuple[Path, ...], store: str, redis_url: str, runtime: str | None, as_json: bool, **store_opts: Any
) -> None:
    """Replay every vector suite; exit 0 only if every op matches every field."""
    try:
        paths = list(files) if files else bundled_vector_files()
        factory = VERIFY_STORES[store]({"redis_url": redis_url, "runtime": runtime, **store_opts})
        results = run_suites(paths, factory, progress=lambda line: click.echo(line, err=True))
    except ThrottleKitError as exc:
        raise click.ClickException(str(exc)) from exc
    failed = [r for r in results if not r.passed]
    ops = sum(r.ops for r in results)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "store": store,
                    "suites": len(results),
                    "ops": ops,
                    "passed": not failed,
                    "results": [r.to_dict() for r in results],
                },
                indent=2,
            )
        )
    else:
        _table(results)
        click.echo(f"\n{len(results) - len(failed)}/{len(results)} suites, {ops} ops on store {store}")
    if failed:
        first = failed[0]
        why = str(first.mismatches[0]) if first.mismatches else f"{first.name}: {first.error}"
        click.echo(f"first mismatch: {why}", err=True)
        sys.exit(1)
