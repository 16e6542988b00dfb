"""The ``tk`` command (also ``throttlekit-server``, whose default command is ``serve``).

Commands are thin wrappers over library calls. Exit codes: 0 ok, 1 a failed verification or invalid
config, 2 usage errors (click's own).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from .lua import lua

__all__ = ["main", "server_main"]

# Command modules plugged in by later features (each defines a click command or group named below).
_PLUGINS = (
    ("throttlekit.cli.bench", "bench"),
    ("throttlekit.cli.serve", "serve"),
    ("throttlekit.cli.serve", "health"),
    ("throttlekit.cli.config", "config"),
    ("throttlekit.cli.policy", "policy"),
    ("throttlekit.cli.capture", "capture"),
    ("throttlekit.cli.replay", "replay"),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="throttlekit-server", prog_name="throttlekit")
def main() -> None:
    """ThrottleKit: rate limiting, concurrency and cost governance decided by Lua."""


main.add_command(lua)
for _module, _name in _PLUGINS:
    try:
        main.add_command(getattr(importlib.import_module(_module), _name))
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a feature is absent
        if _exc.name != _module:
            raise


class _DefaultServe(click.Group):
    """``throttlekit-server --config x.yaml`` means ``throttlekit-server serve --config x.yaml``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "serve" in self.commands and args in (["-h"], ["--help"]):
            args = ["serve", "--help"]  # the server's own flags; the serve help lists the other commands
        elif "serve" in self.commands and (
            not args or (args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"))
        ):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


def server_main(*args: Any, **kwargs: Any) -> Any:
    """Entry point of ``throttlekit-server``: the ``tk`` group with ``serve`` as the default command."""
    group = _DefaultServe(
        name="throttlekit-server",
        commands=main.commands,
        help=main.help,
        params=list(main.params),  # --version
        context_settings=main.context_settings,
    )
    return group.main(*args, **kwargs)
