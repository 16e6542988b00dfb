"""``tk config validate FILE...``: check policy files, print every error (exit 1) or one line per policy."""

from __future__ import annotations

import click

from .._errors import ConfigError
from ..config import PolicyConfigError, load_config_file

__all__ = ["config"]


@click.group()
def config() -> None:
    """Policy files (YAML or JSON)."""


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Validate policy FILES: list every error (exit 1), or summarise each policy (exit 0)."""
    failed = False
    for path in files:
        try:
            cfg = load_config_file(path)
        except PolicyConfigError as exc:
            failed = True
            n = len(exc.issues)
            click.echo(f"{path}: {n} error{'s' if n != 1 else ''}", err=True)
            for issue in exc.issues:
                click.echo(f"  {issue}", err=True)
            continue
        except ConfigError as exc:
            failed = True
            click.echo(str(exc), err=True)
            continue
        n = len(cfg.policies)
        click.echo(f"{path}: ok, {n} polic{'ies' if n != 1 else 'y'}")
        for line in cfg.describe():
            click.echo(f"  {line}")
    if failed:
        raise SystemExit(1)
