"""``throttlekit-server capture <list|export|sweep> --config FILE [--id ID] [--credential C]
[--principal WHO]``: the capture admin actions over a config's durable segments.

Success: pretty JSON (2-space indent) on stdout, exit 0. Failure: ``error: <reason>`` on stderr, exit 1.
The credential comes from ``--credential`` (with a warning: it shows in process listings) or
``THROTTLEKIT_CAPTURE_CREDENTIAL``.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import click

from .._errors import ConfigError, ThrottleKitError
from ._strict import Fail, StrictCommand

if TYPE_CHECKING:
    from ..forensics import CaptureAdmin

__all__ = ["CREDENTIAL_ENV", "capture", "capture_admin", "operator_credential"]

CREDENTIAL_ENV = "THROTTLEKIT_CAPTURE_CREDENTIAL"
_ACTIONS = ("list", "export", "sweep")
_USAGE = (
    "usage: throttlekit-server capture <list|export|sweep> --config <path> [--id <id>] "
    "[--credential <cred>] [--principal <who>]"
)


def operator_credential(flag: str | None) -> str | None:
    """``--credential`` (warning that it is visible in process listings), else the environment."""
    if flag is not None:
        click.echo(
            f"warning: --credential is visible in process listings and shell history; prefer {CREDENTIAL_ENV}",
            err=True,
        )
        return flag
    return os.environ.get(CREDENTIAL_ENV) or None


def capture_admin(config_path: str | None, needs: str = "") -> CaptureAdmin:
    """The admin over ``config_path``'s capture block; ``needs`` words the errors for a caller other than
    ``capture`` (``"--from-capture needs"``)."""
    from ..config import PolicyConfigError, load_config_file
    from ..forensics import CaptureAdmin

    if not config_path:
        raise Fail("--config is required for capture")
    try:
        cfg = load_config_file(config_path)
    except PolicyConfigError as exc:
        raise Fail("; ".join(str(i) for i in exc.issues)) from exc
    except ConfigError as exc:
        raise Fail(str(exc)) from exc
    if cfg.capture is None:
        if needs:
            raise Fail(f"{needs} capture enabled in --config (set capture.enabled: true)")
        raise Fail("capture is not enabled in this config (set capture.enabled: true)")
    if cfg.capture.durable_dir is None:
        if needs:
            raise Fail(f"{needs} a durable capture store (set a capture.durable block)")
        raise Fail("capture admin requires a durable store (set a capture.durable block)")
    return CaptureAdmin(cfg.capture)


@click.command(cls=StrictCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("args", nargs=-1)
@click.option("-c", "--config", "config_path", help="The policy file with the capture block.")
@click.option("--id", "sid", help="Segment id (export).")
@click.option("--credential", help="Operator credential (visible in process listings; prefer the env).")
@click.option("--principal", default="operator", show_default=True, help="Who runs it (audit log).")
def capture(
    args: tuple[str, ...], config_path: str | None, sid: str | None, credential: str | None, principal: str
) -> None:
    """Capture admin: list, export or sweep the durable decision segments."""
    if not args:
        click.echo(_USAGE, err=True)
        raise SystemExit(1)
    action = args[0]
    if action not in _ACTIONS:
        raise Fail(f'unknown capture action "{action}" (list|export|sweep)')
    if len(args) > 1:
        raise Fail(f"unknown capture argument: {args[1]}")
    admin = capture_admin(config_path)
    cred = operator_credential(credential)
    try:
        if action == "list":
            out: object = admin.list(cred, principal)
        elif action == "export":
            out = admin.export(cred, sid, principal)
        else:
            out = admin.sweep(cred, principal)
    except ThrottleKitError as exc:
        raise Fail(str(exc)) from exc
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))
