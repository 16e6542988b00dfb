"""Commands with the upstream server's error contract: ``error: <reason>`` on stderr and exit 1 for every
failure (usage included), where click's own usage errors exit 2."""

from __future__ import annotations

import re
from typing import IO, Any

import click

__all__ = ["Fail", "StrictCommand", "non_negative"]


class Fail(click.ClickException):
    """Print ``error: <message>`` and exit 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class StrictCommand(click.Command):
    """A click command whose parse errors exit 1 as ``error: ...`` (an unknown flag reads
    ``unknown argument: <flag>``, as upstream prints it)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise Fail(f"unknown argument: {exc.option_name}") from exc
        except click.UsageError as exc:
            raise Fail(exc.message) from exc


def non_negative(flag: str, value: str | None) -> int | None:
    """A numeric flag's value: a non-negative integer, else ``Fail``."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch("[0-9]{1,15}", text) is None:
        raise Fail(f"{flag} must be a non-negative integer, got {value}")
    return int(text)
